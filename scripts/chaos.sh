#!/usr/bin/env bash
# Crash drill: kill -9 the exchange mid-load, again and again, and check that nothing it acknowledged
# was lost, nothing was sold twice and no cap was overshot (CONTRACT v2: idempotency, post_unknown,
# durability). Real processes: the mock buyers (gavel-buyers) and `gavel serve` on one SQLite file
# that persists across every crash.
#
#   scripts/chaos.sh [--cycles N] [--bin DIR] [--seed S] [--keep]
#
#   --cycles N   crash cycles (default 50; about 70 s on 2 cores with a debug build)
#   --bin DIR    where gavel and gavel-buyers are (default .build/debug); the script does not build
#   --seed S     seed of the load's random choices (default: time-based; printed)
#   --keep       keep the work directory (journal, database, logs) instead of deleting it
#
# Each cycle: start the exchange on the same database, resend some earlier requests with their
# Idempotency-Key (the retries a seller makes after a crash), run a concurrent load of leads,
# pings + posts and calls + events for 0.3-1.5 s, then kill -9 the exchange. At the end the
# exchange is started once more and left quiet, and scripts/chaos_driver.py checks the journal of
# every request and answer against GET /v1/auctions/{id}, /metrics and the database.
# Prints `chaos: N cycles, A acknowledged rounds, L lost, U post_unknown, R retries identical` and
# `chaos: P passed, F failed`; exits non-zero on any failure. Stops by itself (a hard limit of
# 6 minutes on top of the driver's own time budget).
set -euo pipefail
cd "$(dirname "$0")/.."

cycles=50 bin=.build/debug seed="" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) cycles=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "chaos.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
[ -n "$seed" ] || seed=$(date +%s)
for tool in gavel gavel-buyers; do
  if [ ! -x "$bin/$tool" ]; then
    echo "chaos.sh: $bin/$tool not found; build it first (swift build --product $tool) or pass --bin DIR" >&2
    exit 2
  fi
done
command -v python3 >/dev/null || { echo "chaos.sh: python3 is required" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gavel-chaos.XXXXXX")
fleet_pid="" driver_pid=""
cleanup() {
  local status=$?
  # The driver kills the exchange it started; if the driver itself was killed, its pid file says which.
  if [ -n "$driver_pid" ]; then kill -TERM "$driver_pid" 2>/dev/null || true; wait "$driver_pid" 2>/dev/null || true; fi
  if [ -s "$work/exchange.pid" ]; then kill -KILL "$(cat "$work/exchange.pid")" 2>/dev/null || true; fi
  if [ -n "$fleet_pid" ]; then kill -TERM "$fleet_pid" 2>/dev/null || true; wait "$fleet_pid" 2>/dev/null || true; fi
  if [ "$keep" = 1 ] || [ "$status" -ne 0 ]; then
    echo "chaos.sh: work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The buyers: fleet file written by the driver (the scenario lives in one place, with its checks).
python3 scripts/chaos_driver.py write-fleet "$work/fleet.json"
"$bin/gavel-buyers" --fleet "$work/fleet.json" --port 0 --seed "$seed" >"$work/buyers.out" 2>"$work/buyers.log" &
fleet_pid=$!
fleet_url=""
for _ in $(seq 1 100); do
  fleet_url=$(grep -m1 -o 'http://[^ ]*' "$work/buyers.out" 2>/dev/null || true)
  [ -n "$fleet_url" ] && break
  kill -0 "$fleet_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$fleet_url" ]; then
  echo "chaos.sh: gavel-buyers did not start" >&2
  cat "$work/buyers.log" >&2
  exit 1
fi
echo "chaos.sh: buyers at $fleet_url; work directory $work; seed $seed" >&2

# The exchange's config directory, pointing at the buyers.
python3 scripts/chaos_driver.py write-config "$work/config" --fleet-url "$fleet_url"
"$bin/gavel" validate --config "$work/config" >&2

# The drill. It runs in the background so that the EXIT trap can stop it (and its exchange).
timeout --kill-after=10 360 python3 scripts/chaos_driver.py run \
  --gavel "$bin/gavel" --config "$work/config" --db "$work/gavel.sqlite" --work "$work" \
  --cycles "$cycles" --seed "$seed" &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=""
exit "$status"

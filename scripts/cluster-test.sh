#!/usr/bin/env bash
# Several-nodes test (issue 12): two `gavel serve` nodes on one PostgreSQL database, the mock buyers
# (gavel-buyers), and the guarantees of a single node checked across them. Real processes throughout.
#
#   scripts/cluster-test.sh [--bin DIR] [--seed S] [--claim-grace-ms N] [--keep]
#
#   --bin DIR            where gavel and gavel-buyers are (default .build/debug); the script does not build
#   --seed S             seed of the load's random choices (default: time-based; printed)
#   --claim-grace-ms N   the nodes' --claim-grace-ms (default 3000, so the kill -9 phase is quick)
#   --keep               keep the work directory (journal, config, node logs) and the test's database
#                        (which outlives the run only on a server of your own: GAVEL_TEST_DATABASE_URL)
#
# PostgreSQL: runs under scripts/with-postgres.sh (a throwaway server on a unix socket) unless
# GAVEL_TEST_DATABASE_URL is set; either way the test makes its own fresh database on that server
# and drops it at the end. The checks (scripts/cluster_driver.py, which has the details):
#   1. cap race: 400 leads at once alternating between the nodes -> the buyer capped at 50 a day
#      (and a budget of exactly 50 sales) has exactly 50 sales, from both nodes; concurrent calls
#      never above the call buyer's `concurrent: 2`;
#   2. a ping on node 1 posted on node 1 and node 2 at the same moment -> one sale, identical answers;
#   3. SIGHUP to node 1 after pausing a buyer in its file -> node 2 follows within 2 s;
#   4. kill -9 of node 2 under load -> every acknowledged round readable on node 1 as answered, its
#      held pings posted and its live calls completed on node 1, its cap claims gone after the
#      grace, caps still exact.
# Prints `check NAME: ok|FAILED (...)` per check and `cluster: P passed, F failed`; exits non-zero
# on any failure and then keeps the work directory (with CSV dumps of the database's tables).
# Stops by itself: a hard limit of 4 minutes on the driver (about 1 minute on 2 cores, debug build).
set -euo pipefail
cd "$(dirname "$0")/.."

args=("$@")
bin=.build/debug seed="" grace=3000 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --claim-grace-ms) grace=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,26p' scripts/cluster-test.sh | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster-test.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
[ -n "$seed" ] || seed=$(date +%s)
for tool in gavel gavel-buyers; do
  if [ ! -x "$bin/$tool" ]; then
    echo "cluster-test.sh: $bin/$tool not found; build it first (swift build --product $tool) or pass --bin DIR" >&2
    exit 2
  fi
done
command -v python3 >/dev/null || { echo "cluster-test.sh: python3 is required" >&2; exit 2; }
if [ -z "${GAVEL_TEST_DATABASE_URL:-}" ]; then
  # A throwaway PostgreSQL server for this run (installed from Debian's packages when missing).
  exec scripts/with-postgres.sh scripts/cluster-test.sh "${args[@]}"
fi
if ! command -v psql >/dev/null; then
  # Debian keeps psql with the server's programs too.
  pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$pg" ] && [ -x "$pg/psql" ]; then export PSQL="$pg/psql"; else
    echo "cluster-test.sh: psql is required (apt-get install postgresql-client)" >&2; exit 2
  fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gavel-cluster.XXXXXX")
fleet_pid="" driver_pid=""
cleanup() {
  local status=$?
  # The driver kills the nodes it started; if the driver itself was killed, their pid files say which.
  if [ -n "$driver_pid" ]; then kill -TERM "$driver_pid" 2>/dev/null || true; wait "$driver_pid" 2>/dev/null || true; fi
  for pidfile in "$work"/node-*.pid; do
    [ -s "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
  done
  if [ -n "$fleet_pid" ]; then kill -TERM "$fleet_pid" 2>/dev/null || true; wait "$fleet_pid" 2>/dev/null || true; fi
  if [ "$keep" = 1 ] || [ "$status" -ne 0 ]; then
    echo "cluster-test.sh: work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The buyers: fleet file written by the driver (the scenario lives in one place, with its checks).
python3 scripts/cluster_driver.py write-fleet "$work/fleet.json"
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
  echo "cluster-test.sh: gavel-buyers did not start" >&2
  cat "$work/buyers.log" >&2
  exit 1
fi
echo "cluster-test.sh: buyers at $fleet_url; work directory $work; seed $seed" >&2

# The nodes' config directory (shared: phase 3 edits a buyer's file and sends SIGHUP to one node).
python3 scripts/cluster_driver.py write-config "$work/config" --fleet-url "$fleet_url"
"$bin/gavel" validate --config "$work/config" >&2

keep_db=()
[ "$keep" = 1 ] && keep_db=(--keep-db)
# The test. It runs in the background so that the EXIT trap can stop it (and its nodes).
timeout --kill-after=10 240 python3 scripts/cluster_driver.py run \
  --gavel "$bin/gavel" --config "$work/config" --database-url "$GAVEL_TEST_DATABASE_URL" --work "$work" \
  --fleet-url "$fleet_url" --seed "$seed" --claim-grace-ms "$grace" "${keep_db[@]}" &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=""
exit "$status"

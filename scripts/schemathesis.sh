#!/usr/bin/env bash
# Property-based API test: schemathesis checks the running demo exchange against docs/openapi.yaml
# (`--checks all`: no 5xx, every status, header, content type and body as documented, schema-valid
# requests accepted, invalid ones rejected, 405 + Allow for undeclared methods, auth not ignored).
# The seed is fixed, so a run is repeatable; any finding fails the script.
#
#   scripts/schemathesis.sh [--bin DIR] [--max-examples N] [--seed N] [-- EXTRA SCHEMATHESIS ARGS]
#
# Builds nothing: expects the debug binaries `gavel` and `gavel-buyers` in .build/debug (or --bin DIR).
# Environment: SCHEMATHESIS_MAX_EXAMPLES, SCHEMATHESIS_SEED (defaults below), GAVEL_KEY_ACME.
# Starts the demo buyers (LoadTests/fleets/demo.json) and the exchange (buyer-configs/, a temporary
# SQLite database) on free ports, runs schemathesis as the demo seller `acme-leads`, stops both.
# Installs schemathesis with pip when it is missing (pinned below).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
bin=.build/debug
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-100}
seed=${SCHEMATHESIS_SEED:-20261129}
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --max-examples) max_examples=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: $0 [--bin DIR] [--max-examples N] [--seed N] [-- SCHEMATHESIS ARGS]" >&2; exit 2 ;;
  esac
done
for tool in gavel gavel-buyers; do
  if [ ! -x "$bin/$tool" ]; then
    echo "schemathesis.sh: $bin/$tool is missing: build it first (swift build --product $tool)" >&2
    exit 2
  fi
done

# Through the interpreter pip installs into, so a fresh install needs no PATH or shim refresh.
schemathesis=(python3 -m schemathesis.cli)
if [ "$("${schemathesis[@]}" --version 2>/dev/null | grep -o '[0-9][0-9.]*$' || true)" != "$SCHEMATHESIS_VERSION" ]; then
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The demo seller's key, as buyer-configs/sellers.yaml defaults it.
export GAVEL_KEY_ACME=${GAVEL_KEY_ACME:-demo-key-acme-0001}
work=$(mktemp -d "${TMPDIR:-/tmp}/gavel-schemathesis.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (up to 30 s) for "<name> listening on http://HOST:PORT" in a log; prints the URL.
listening_url() {
  local log=$1 pid=$2 url=""
  for _ in $(seq 300); do
    url=$(grep -o 'listening on http://[^ ]*' "$log" 2>/dev/null | head -n 1 | sed 's/^listening on //') || true
    if [ -n "$url" ]; then echo "$url"; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "schemathesis.sh: no 'listening on' line in $log:" >&2
  cat "$log" >&2
  return 1
}

"$bin/gavel-buyers" --fleet LoadTests/fleets/demo.json --port 0 --seed 7 >"$work/buyers.log" 2>&1 &
pids+=($!)
buyers_url=$(listening_url "$work/buyers.log" "${pids[-1]}")

# The public tracking endpoint is limited per client address (a few per second): lift it, or nearly
# every generated tracking request would be answered 429 and its rules left untested.
serve_options=()
case "$("$bin/gavel" serve --help 2>&1 || true)" in
  *--dni-rate-limit*) serve_options+=(--dni-rate-limit 100000) ;;
esac
DEMO_BUYERS_URL=$buyers_url "$bin/gavel" serve --config buyer-configs --db "$work/gavel.sqlite" --port 0 \
  ${serve_options[@]+"${serve_options[@]}"} >"$work/gavel.log" 2>&1 &
pids+=($!)
gavel_url=$(listening_url "$work/gavel.log" "${pids[-1]}")
echo "schemathesis.sh: exchange at $gavel_url, demo buyers at $buyers_url"

# Run from the scratch folder, so nothing is left in the repository. scripts/schemathesis.toml turns
# off the cache of past failures, allows a post's ping-dependent answers (410, 422) and the time
# budget's documented 503s; scripts/schemathesis_hooks.py gives valid Idempotency-Keys unique values
# and checks that every other 5xx still fails the run.
status=0
root=$PWD
# In the background, so that a signal stops it at once (the trap kills it with the servers).
(cd "$work" && exec env SCHEMATHESIS_HOOKS="$root/scripts/schemathesis_hooks.py" \
  "${schemathesis[@]}" --config-file "$root/scripts/schemathesis.toml" run "$root/docs/openapi.yaml" \
  --url "$gavel_url" \
  --checks all \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --generation-database none \
  --header "Authorization: Bearer $GAVEL_KEY_ACME" \
  --no-color \
  ${extra[@]+"${extra[@]}"}) >"$work/schemathesis.log" 2>&1 &
pids+=($!)
wait "${pids[-1]}" || status=$?

if [ "$status" -ne 0 ]; then
  cat "$work/schemathesis.log"
  echo "--- exchange log (last 40 lines) ---"
  tail -n 40 "$work/gavel.log"
else
  # The summary block only: the operations' progress lines are noise when everything passed.
  sed -n '/SUMMARY/,$p' "$work/schemathesis.log"
fi
if ! kill -0 "${pids[1]}" 2>/dev/null; then
  echo "schemathesis.sh: the exchange died during the run" >&2
  tail -n 40 "$work/gavel.log" >&2
  status=1
fi
exit "$status"

#!/usr/bin/env bash
# Gavel's load test, in one command: builds the exchange, the mock buyers and the load generator,
# starts the buyers and the exchange on free ports, runs the standard scenarios and prints one table.
#
#   LoadTests/run.sh           the full run (S0 20 s per rate, S1/S3 15 s per step, S4 a 10-minute soak, S5 nginx buyers)
#   LoadTests/run.sh --quick   the same scenarios with short steps, about 2 minutes
#   LoadTests/run.sh --smoke   CI (LoadTests/smoke.sh): debug build, seconds per scenario, functional checks only
#
# Durations and rates come from the environment (SCENARIOS, WARMUP_SECONDS, S0_RATES, S0_SECONDS, S1_RATES,
# STEP_SECONDS, S2_RATE, S2_SECONDS, S3_RATES, S4_RATE, S4_SECONDS, S4_WINDOW_SECONDS, S5_RATES, S5R_RATES,
# RESULTS_DIR, BUILD); S5 needs nginx (Debian's nginx-light, installed when missing);
# see LoadTests/README.md. Results (JSON per scenario, logs, summary.txt) go to RESULTS_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
for arg in "$@"; do
  case "$arg" in
    --quick) mode=quick ;;
    --smoke) mode=smoke ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

# Defaults per mode; any of them can be overridden from the environment.
case $mode in
  full)
    : "${WARMUP_SECONDS:=5}" "${S0_SECONDS:=20}" "${STEP_SECONDS:=15}" "${S2_SECONDS:=20}" "${S4_SECONDS:=600}"
    : "${S0_RATES:=200,500,1000}"
    : "${S1_RATES:=250,500,750,1000,1250,1500,2000,2500,3000,3500,4000,5000,6000,8000,10000}"
    : "${S3_RATES:=500,1000,1500,2000,2500,3000,4000,5000,6000,8000,10000,12000,15000,20000,25000,30000}"
    : "${S5_RATES:=250,1000,2000,3000,4000,5000,6000}"
    : "${S5R_RATES:=1000,2000,3000,4000,5000,6000,8000,10000}"
    ;;
  quick)
    : "${WARMUP_SECONDS:=2}" "${S0_SECONDS:=4}" "${STEP_SECONDS:=3}" "${S2_SECONDS:=6}" "${S4_SECONDS:=30}"
    : "${S0_RATES:=200,500,1000}"
    : "${S1_RATES:=250,500,750,1000,1500,2000,3000,4000,6000}"
    : "${S3_RATES:=500,1000,1500,2000,3000,4000,6000,8000,12000}"
    : "${S5_RATES:=250,1000,2000,3000,4000}"
    : "${S5R_RATES:=1000,2000,4000,6000,8000}"
    ;;
  smoke)
    : "${WARMUP_SECONDS:=1}" "${S0_SECONDS:=3}" "${STEP_SECONDS:=2}" "${S2_SECONDS:=3}" "${S4_SECONDS:=4}"
    : "${S0_RATES:=25}" "${S2_RATE:=25}" "${S1_RATES:=20,40}" "${S3_RATES:=25}" "${S4_RATE:=25}"
    : "${S4_WINDOW_SECONDS:=2}" "${S5_RATES:=25}" "${S5R_RATES:=25}"
    # CI drives phone calls too: a fifth of S0's traffic is signed Twilio voice + dial-status webhooks.
    : "${S0_MIX:=leads=0.8,calls=0.2}"
    ;;
esac
: "${SCENARIOS:=S0 S1 S2 S3 S4 S5}"
: "${BUILD:=1}"
: "${RESULTS_DIR:=loadtest-results/$mode-$(date -u +%Y%m%d-%H%M%S)}"
# The soak's windows: a minute each, or a third of a short soak.
if [ -z "${S4_WINDOW_SECONDS:-}" ]; then
  S4_WINDOW_SECONDS=$((S4_SECONDS >= 180 ? 60 : (S4_SECONDS / 3 > 0 ? S4_SECONDS / 3 : 1)))
fi

mkdir -p "$RESULTS_DIR"
results=$(cd "$RESULTS_DIR" && pwd)
fleet_file=LoadTests/fleets/scenarios.json
export GAVEL_HASH_KEY="${GAVEL_HASH_KEY:-gavel-load-test-hash-key}"

log() { echo "run.sh: $*" >&2; }

# --- build ---------------------------------------------------------------------------------------
if [ "$mode" = smoke ]; then build_flags=(); else build_flags=(-c release --scratch-path .build-release); fi
if [ "$BUILD" = 1 ]; then
  for product in gavel gavel-buyers gavel-load; do
    log "building $product (${build_flags[*]:-debug})"
    if ! swift build "${build_flags[@]}" --product "$product" >"$results/build-$product.log" 2>&1; then
      tail -n 40 "$results/build-$product.log" >&2
      log "build of $product failed"
      exit 1
    fi
  done
fi
# GAVEL_BIN: binaries built elsewhere (a scratch path of your own); with BUILD=0.
bin=${GAVEL_BIN:-$(swift build "${build_flags[@]}" --show-bin-path)}

# --- processes -----------------------------------------------------------------------------------
fleet_pid="" exchange_pid="" fleet_url="" exchange_url=""

# Waits for "<prefix> http://..." in FILE while PID lives; prints the URL.
wait_for_url() {
  local file=$1 prefix=$2 pid=$3
  for _ in $(seq 1 300); do
    if grep -q "^$prefix" "$file" 2>/dev/null; then
      grep -m1 "^$prefix" "$file" | grep -o 'http://[^ ]*'
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

start_fleet() {
  "$bin/gavel-buyers" --fleet "$fleet_file" --port 0 >"$results/fleet.out" 2>"$results/fleet.log" &
  fleet_pid=$!
  fleet_url=$(wait_for_url "$results/fleet.out" "gavel-buyers listening on" "$fleet_pid") || {
    cat "$results/fleet.log" >&2
    return 1
  }
  log "buyers (pid $fleet_pid) at $fleet_url"
}

# A fresh exchange (and database) per scenario, so each starts from the same state.
start_exchange() {
  local name=$1
  "$bin/gavel" serve --config "$results/config" --db "$results/$name.sqlite" --port 0 --log-level warning \
    >"$results/gavel-$name.out" 2>"$results/gavel-$name.log" &
  exchange_pid=$!
  exchange_url=$(wait_for_url "$results/gavel-$name.out" "gavel listening on" "$exchange_pid") || {
    cat "$results/gavel-$name.log" >&2
    return 1
  }
  log "exchange (pid $exchange_pid) at $exchange_url for $name"
}

# SIGTERM, then wait: the exchange drains its rounds and commits. Returns its exit status.
stop_exchange() {
  [ -n "$exchange_pid" ] || return 0
  local pid=$exchange_pid status=0
  exchange_pid=""
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || status=$?
  return $status
}

# S5's buyers: nginx answering every ping with a fixed bid and every post with an acceptance, in
# ~0.04 ms, so what S5 measures is the exchange itself. One worker, access log off.
nginx_pid="" nginx_url=""
start_nginx() {
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    log "installing nginx-light (Debian) for S5"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; } >"$results/nginx-install.log" 2>&1 || return 1
  fi
  local nginx port
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$results/nginx/logs"
  cat >"$results/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $results/nginx/nginx.pid;
error_log $results/nginx/logs/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path $results/nginx/body;
  server {
    listen 127.0.0.1:$port backlog=4096;
    default_type application/json;
    location ~ /ping\$ { return 200 '{"bid": 10, "bid_id": "n", "expires_in_s": 60}'; }
    location ~ /post\$ { return 200 '{"accepted": true, "reference": "n"}'; }
  }
}
CONF
  "$nginx" -p "$results/nginx" -c "$results/nginx/nginx.conf" -g 'daemon off;' 2>"$results/nginx/logs/stderr.log" &
  nginx_pid=$!
  for _ in $(seq 1 50); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
      nginx_url="http://127.0.0.1:$port"
      log "nginx buyers (pid $nginx_pid) at $nginx_url"
      return 0
    fi
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$results/nginx/logs/stderr.log" >&2
  return 1
}

cleanup() {
  stop_exchange || true
  if [ -n "$nginx_pid" ]; then
    kill -TERM "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
  fi
  if [ -n "$fleet_pid" ]; then
    kill -TERM "$fleet_pid" 2>/dev/null || true
    wait "$fleet_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# --- smoke bookkeeping ---------------------------------------------------------------------------
passed=0 failed=0
# Counts the `check` lines of a scenario's output, and the failures they cannot show.
tally() {
  local output=$1 name=$2 status=$3
  local ok bad
  ok=$(grep -c '^check .*: ok' "$output" || true)
  bad=$(grep -c '^check .*: FAILED' "$output" || true)
  passed=$((passed + ok))
  failed=$((failed + bad))
  if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
    echo "check $name run: FAILED (gavel-load exited $status)"
    failed=$((failed + 1))
  elif [ "$ok" -eq 0 ] && [ "$bad" -eq 0 ]; then
    echo "check $name run: FAILED (no checks ran)"
    failed=$((failed + 1))
  fi
}
record() { # name passed(0/1) detail
  if [ "$2" = 1 ]; then
    echo "check $1: ok ($3)"
    passed=$((passed + 1))
  else
    echo "check $1: FAILED ($3)"
    failed=$((failed + 1))
  fi
}

# --- scenarios -----------------------------------------------------------------------------------
# Runs gavel-load with the common flags; its tables go to the terminal and to report.txt.
load() {
  local name=$1
  shift
  local extra=()
  [ "$mode" = smoke ] && extra+=(--verify)
  local status=0
  "$bin/gavel-load" "$@" --fleet-url "${load_fleet_url:-$fleet_url}" --fleet-pid "$fleet_pid" --warmup-seconds "$WARMUP_SECONDS" \
    --json "$results/$name.json" "${extra[@]}" | tee "$results/$name.txt" || status=$?
  cat "$results/$name.txt" >>"$results/report.txt"
  echo >>"$results/report.txt"
  if [ "$mode" = smoke ]; then tally "$results/$name.txt" "$name" "$status"; fi
  if [ "$status" -ne 0 ] && [ "$mode" != smoke ]; then log "$name: gavel-load exited $status"; fi
  echo
}

# A scenario against the exchange: start it fresh, run, stop it (and check it stopped cleanly in smoke).
lead_scenario() {
  local name=$1
  shift
  if ! start_exchange "$name"; then
    [ "$mode" = smoke ] && record "$name exchange start" 0 "gavel serve did not start"
    log "$name: the exchange did not start"
    return 0
  fi
  load "$name" leads --scenario "$name" --url "$exchange_url" --watch-pid "$exchange_pid" "$@"
  local alive=1
  kill -0 "$exchange_pid" 2>/dev/null || alive=0
  local status=0
  stop_exchange || status=$?
  if [ "$mode" = smoke ]; then
    record "$name exchange alive" "$alive" "gavel serve still running after the load"
    record "$name exchange shutdown" "$([ "$status" -eq 0 ] && echo 1 || echo 0)" "SIGTERM exit status $status"
  fi
}

# S2 and S4 run at half the rate S1 sustained (rounded to 50/s), so they measure faults and drift
# rather than overload; 500/s when S1 did not run or found no sustainable rate.
half_sustained() {
  local sustained
  sustained=$("$bin/gavel-load" get "$results/S1.json" sustainedRate 2>/dev/null || echo 1000)
  local rate=$(((${sustained%.*} / 2 + 25) / 50 * 50))
  echo $((rate >= 50 ? rate : 50))
}

log "mode $mode; results in $results"
if ! start_fleet; then
  [ "$mode" = smoke ] && echo "smoke: 0 passed, 1 failed"
  exit 1
fi
nginx_flags=()
case " $SCENARIOS " in
  *" S5 "*)
    if start_nginx; then
      nginx_flags=(--nginx-url "$nginx_url")
    else
      log "S5: nginx did not start; S5 is skipped"
      [ "$mode" = smoke ] && record "S5 nginx" 0 "nginx did not start"
    fi
    ;;
esac
"$bin/gavel-load" make-config --fleet "$fleet_file" --fleet-url "$fleet_url" --out "$results/config" "${nginx_flags[@]}" >&2

for scenario in $SCENARIOS; do
  case $scenario in
    S0) lead_scenario S0 --rates "$S0_RATES" --seconds "$S0_SECONDS" --mix "${S0_MIX:-leads=1.0}" ;;
    # No refining step for S1: after a saturated step the exchange keeps buyers backed off as unhealthy
    # for up to a minute, so a step right after it would measure that, not the rate.
    S1) lead_scenario S1 --rates "$S1_RATES" --seconds "$STEP_SECONDS" --until-saturated --refine 0 ;;
    S2) lead_scenario S2 --rate "${S2_RATE:-$(half_sustained)}" --seconds "$S2_SECONDS" ;;
    S3) load S3 raw --scenario S3 --fleet "$fleet_file" --rates "$S3_RATES" --seconds "$STEP_SECONDS" --until-saturated --refine 1 ;;
    S4) lead_scenario S4 --rate "${S4_RATE:-$(half_sustained)}" --seconds "$S4_SECONDS" --window-seconds "$S4_WINDOW_SECONDS" ;;
    S5)
      [ -n "$nginx_url" ] || continue
      lead_scenario S5 --rates "$S5_RATES" --seconds "$STEP_SECONDS" --until-saturated --refine 0
      # The raw engine against the same nginx buyers, in the same run: the ceiling S5 is compared with.
      if [ "$mode" != smoke ]; then
        load_fleet_url=$nginx_url load S5R raw --scenario S5R --rates "$S5R_RATES" --seconds "$STEP_SECONDS" --until-saturated --refine 0
      fi
      ;;
    *) log "unknown scenario $scenario (S0 S1 S2 S3 S4 S5)" ;;
  esac
done

summary_status=0
"$bin/gavel-load" summary "$results" | tee "$results/summary.txt" || summary_status=$?
log "results in $results (summary.txt, report.txt, one JSON per scenario)"

if [ "$mode" = smoke ]; then
  record "summary" "$([ "$summary_status" -eq 0 ] && echo 1 || echo 0)" "gavel-load summary exit status $summary_status"
  echo "smoke: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
fi

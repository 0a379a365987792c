#!/usr/bin/env bash
# Gavel's load test, in one command: builds the exchange, the mock buyers and the load generator,
# starts the buyers and the exchange on free ports, runs the standard scenarios and prints one table.
#
#   LoadTests/run.sh           the full run (S0 20 s per rate, S1/S3 15 s per step, S4 a 10-minute soak, S5 nginx buyers,
#                              then S5X: twice the rate S5 sustained, 10 s)
#   LoadTests/run.sh --quick   the same scenarios with short steps, about 2 minutes
#   LoadTests/run.sh --smoke   CI (LoadTests/smoke.sh): debug build, seconds per scenario, functional checks only
#   SCENARIOS=S6 LoadTests/run.sh --quick   only S6: SQLite, PostgreSQL, two nodes on PostgreSQL
#
# Durations and rates come from the environment (SCENARIOS, WARMUP_SECONDS, S0_RATES, S0_SECONDS, S1_RATES,
# STEP_SECONDS, S2_RATE, S2_SECONDS, S3_RATES, S4_RATE, S4_SECONDS, S4_WINDOW_SECONDS, S5_RATES, S5R_RATES,
# S5X_RATE, S5X_SECONDS, S6_RATES, S6_SECONDS, S6_MIX, RESULTS_DIR, BUILD); S5 and S5X need nginx (Debian's
# nginx-light, installed when missing); S6 needs PostgreSQL (GAVEL_TEST_DATABASE_URL, else a throwaway server
# by scripts/with-postgres.sh); see LoadTests/README.md. Results (JSON per scenario, logs, summary.txt) go to RESULTS_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
for arg in "$@"; do
  case "$arg" in
    --quick) mode=quick ;;
    --smoke) mode=smoke ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
    : "${S6_RATES:=100,250,500}" "${S6_SECONDS:=20}" "${S5X_SECONDS:=10}"
    ;;
  quick)
    : "${WARMUP_SECONDS:=2}" "${S0_SECONDS:=4}" "${STEP_SECONDS:=3}" "${S2_SECONDS:=6}" "${S4_SECONDS:=30}"
    : "${S0_RATES:=200,500,1000}"
    : "${S1_RATES:=250,500,750,1000,1500,2000,3000,4000,6000}"
    : "${S3_RATES:=500,1000,1500,2000,3000,4000,6000,8000,12000}"
    : "${S5_RATES:=250,1000,2000,3000,4000}"
    : "${S5R_RATES:=1000,2000,4000,6000,8000}"
    : "${S6_RATES:=50,100}" "${S6_SECONDS:=5}" "${S5X_SECONDS:=5}"
    ;;
  smoke)
    : "${WARMUP_SECONDS:=1}" "${S0_SECONDS:=3}" "${STEP_SECONDS:=2}" "${S2_SECONDS:=3}" "${S4_SECONDS:=4}"
    : "${S0_RATES:=25}" "${S2_RATE:=25}" "${S1_RATES:=20,40}" "${S3_RATES:=25}" "${S4_RATE:=25}"
    : "${S4_WINDOW_SECONDS:=2}" "${S5_RATES:=25}" "${S5R_RATES:=25}"
    : "${S6_RATES:=10}" "${S6_SECONDS:=3}"
    # S5X in CI: one round in flight at most and S0's 10 ms buyers at 200/s, so rounds are shed for
    # certain (every 5 ms a lead, each round 10 ms or more) and the form of the shedding is checked.
    : "${S5X_RATE:=200}" "${S5X_SECONDS:=3}"
    # CI drives phone calls too: a fifth of S0's traffic is signed Twilio voice + dial-status webhooks.
    : "${S0_MIX:=leads=0.8,calls=0.2}"
    ;;
esac
: "${SCENARIOS:=S0 S1 S2 S3 S4 S5 S6}"
# S6 sends S0's traffic: in smoke, calls too.
: "${S6_MIX:=${S0_MIX:-leads=1.0}}"
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

# A fresh exchange (and database) per scenario, so each starts from the same state; more serve flags after NAME.
start_exchange() {
  local name=$1
  shift
  "$bin/gavel" serve --config "$results/config" --db "$results/$name.sqlite" --port 0 --log-level warning "$@" \
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
  local pid
  for pid in ${s6_nodes[@]+"${s6_nodes[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  [ -z "${pg_pid:-}" ] || stop_postgres
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
# serve_flags: more flags for this scenario's `gavel serve` (set just before, reset after).
serve_flags=()
lead_scenario() {
  local name=$1
  shift
  if ! start_exchange "$name" ${serve_flags[@]+"${serve_flags[@]}"}; then
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

# S5X runs at twice the rate S5 sustained (rounded to 50/s): past saturation, where the exchange must
# shed what it cannot start in time and still answer what it admits within the budget. Nothing when
# S5 found no sustainable rate (and S5X_RATE is not set).
overload_rate() {
  local sustained
  sustained=$("$bin/gavel-load" get "$results/S5.json" sustainedRate 2>/dev/null) || return 1
  local rate=$(((${sustained%.*} * 2 + 25) / 50 * 50))
  echo $((rate >= 50 ? rate : 50))
}

# S5X: the overload step, one rate, the exchange's RSS sampled (--watch-pid). In smoke it checks the
# shedding's form against an exchange held to one round in flight (see the smoke defaults).
run_s5x() {
  local rate=${S5X_RATE:-}
  if [ -z "$rate" ] && ! rate=$(overload_rate); then
    log "S5X: S5 found no sustained rate in $results (set S5X_RATE); S5X is skipped"
    return 0
  fi
  if [ "$mode" = smoke ]; then
    serve_flags=(--max-rounds-in-flight 1)
    lead_scenario S5X --rate "$rate" --seconds "$S5X_SECONDS" --campaign s0 --tmax-ms 1000 --expect-shed
    serve_flags=()
  else
    lead_scenario S5X --rate "$rate" --seconds "$S5X_SECONDS"
  fi
}

# --- S6: storage backends ------------------------------------------------------------------------
# S0's traffic and buyers at fixed rates against (a) one node on SQLite, (b) one node on PostgreSQL,
# (c) two nodes on one PostgreSQL database, each driven by its own gavel-load at half the rate, the two
# started together. One gavel-load per node and rate, so the PostgreSQL server's CPU (the postmaster
# and its backends, from /proc) can be put next to each step. Results in RESULTS_DIR/S6/, out of the
# way of `gavel-load summary` (which keeps one result per scenario); the S6 table is printed by
# s6_table and appended to summary.txt.
s6_dir="$results/S6"
pg_url="" pg_pid="" pg_master="" s6_nodes=()

# A PostgreSQL server: GAVEL_TEST_DATABASE_URL as given, else scripts/with-postgres.sh keeps a throwaway
# one up (its command waits for run.sh to say stop, or to die) and stops and removes it afterwards.
start_postgres() {
  mkdir -p "$s6_dir"
  if [ -n "${GAVEL_TEST_DATABASE_URL:-}" ]; then
    pg_url=$GAVEL_TEST_DATABASE_URL
  else
    rm -f "$s6_dir/pg-url" "$s6_dir/pg-stop"
    # shellcheck disable=SC2016 # expanded by the inner shell
    scripts/with-postgres.sh bash -c 'echo "$GAVEL_TEST_DATABASE_URL" >"$1.tmp" && mv "$1.tmp" "$1"
      while [ ! -e "$2" ] && kill -0 "$3" 2>/dev/null; do sleep 0.2; done' \
      s6-postgres "$s6_dir/pg-url" "$s6_dir/pg-stop" $$ >"$s6_dir/with-postgres.log" 2>&1 &
    pg_pid=$!
    for _ in $(seq 1 3000); do # up to 5 minutes: the first time installs PostgreSQL
      [ -s "$s6_dir/pg-url" ] && break
      kill -0 "$pg_pid" 2>/dev/null || break
      sleep 0.1
    done
    if [ ! -s "$s6_dir/pg-url" ]; then
      cat "$s6_dir/with-postgres.log" >&2
      stop_postgres
      return 1
    fi
    pg_url=$(cat "$s6_dir/pg-url")
  fi
  # The postmaster's pid (the first line of the socket's lock file), for the server's CPU; unix sockets only.
  local dir port
  dir=$(pg_param host) port=$(pg_param port)
  pg_master=""
  if [ -n "$dir" ] && [ -r "$dir/.s.PGSQL.${port:-5432}.lock" ]; then
    pg_master=$(head -n 1 "$dir/.s.PGSQL.${port:-5432}.lock")
  fi
  psql "$pg_url" -X -At -c 'select version()' \
    -c "select name || ' = ' || current_setting(name) from pg_settings where name in ('shared_buffers', 'synchronous_commit', 'fsync', 'wal_level', 'max_connections', 'checkpoint_timeout', 'max_wal_size', 'work_mem', 'full_page_writes') order by name" \
    >"$s6_dir/postgres-settings.txt" 2>&1 || true
  log "S6: PostgreSQL at $pg_url${pg_master:+ (postmaster pid $pg_master)}"
}

stop_postgres() {
  [ -n "$pg_pid" ] || return 0
  # The server's log goes with its directory: keep a copy.
  local dir
  dir=$(pg_param host)
  [ -n "$dir" ] && cp "$dir/postgres.log" "$s6_dir/postgres.log" 2>/dev/null || true
  touch "$s6_dir/pg-stop"
  wait "$pg_pid" 2>/dev/null || true
  pg_pid=""
}

# One query parameter of pg_url (host, port), or nothing.
pg_param() {
  case "$pg_url" in *"?"*) ;; *) return 0 ;; esac
  echo "${pg_url#*\?}" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# A fresh database NAME on the server; prints its URL.
pg_fresh_db() {
  local name=$1 prefix=${pg_url%%\?*} query=""
  [ "$prefix" = "$pg_url" ] || query="?${pg_url#*\?}"
  PGOPTIONS="-c client_min_messages=warning" psql "$pg_url" -X -q -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >&2 || return 1
  echo "${prefix%/*}/$name$query"
}

pg_drop_db() {
  psql "$pg_url" -X -q -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null 2>&1 || true
}

# CPU ticks of the PostgreSQL server so far: the postmaster with its reaped children, and its live children.
pg_ticks() {
  [ -n "$pg_master" ] && [ -r "/proc/$pg_master/stat" ] || return 0
  local total=0 pid stat fields
  for pid in $pg_master $(ps -o pid= --ppid "$pg_master"); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -r -a fields <<<"${stat##*) }"
    # After the name: state is field 3, so utime (14), stime, cutime, cstime (17) are [11] to [14].
    total=$((total + fields[11] + fields[12] + fields[13] + fields[14]))
  done
  echo "$total"
}

# A node: gavel serve NAME on DB (a file or a postgres:// URL) with extra serve flags; sets node_pid, node_url.
node_pid="" node_url=""
start_node() {
  local name=$1 db=$2
  shift 2
  "$bin/gavel" serve --config "$results/config" --db "$db" --port 0 --log-level warning "$@" \
    >"$results/gavel-$name.out" 2>"$results/gavel-$name.log" &
  node_pid=$!
  s6_nodes+=("$node_pid")
  node_url=$(wait_for_url "$results/gavel-$name.out" "gavel listening on" "$node_pid") || {
    cat "$results/gavel-$name.log" >&2
    return 1
  }
  log "S6 node $name (pid $node_pid) at $node_url"
}

# SIGTERM to each node (pids), then wait; in smoke, records that each was still alive and exited 0.
stop_nodes() {
  local label=$1 pid status index=0 alive=()
  shift
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then alive+=(1); else alive+=(0); fi
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "$@"; do
    status=0
    wait "$pid" 2>/dev/null || status=$?
    if [ "$mode" = smoke ] && [ -n "$label" ]; then
      local name=$label
      [ $# -gt 1 ] && name="$label node-$((index + 1))/$#"
      record "$name exchange alive" "${alive[$index]}" "gavel serve still running after the load"
      record "$name exchange shutdown" "$([ "$status" -eq 0 ] && echo 1 || echo 0)" "SIGTERM exit status $status"
    fi
    index=$((index + 1))
  done
  local remaining=()
  for pid in "${s6_nodes[@]}"; do case " $* " in *" $pid "*) ;; *) remaining+=("$pid") ;; esac; done
  s6_nodes=("${remaining[@]}")
}

# gavel-load against one node at one rate: S0's campaign, buyers and --buyer-ms; output to S6/NAME.txt.
s6_load() {
  local name=$1 label=$2 url=$3 pid=$4 rate=$5 extra=()
  [ "$mode" = smoke ] && extra+=(--verify)
  local status=0
  "$bin/gavel-load" leads --scenario S0 --label "$label" --url "$url" --watch-pid "$pid" --rate "$rate" \
    --seconds "$S6_SECONDS" --mix "$S6_MIX" --fleet-url "$fleet_url" --fleet-pid "$fleet_pid" \
    --warmup-seconds "$WARMUP_SECONDS" --json "$s6_dir/$name.json" "${extra[@]}" \
    >"$s6_dir/$name.txt" 2>"$s6_dir/$name.progress" || status=$?
  echo "$status" >"$s6_dir/$name.status"
}

# After s6_load: its table to the terminal and report.txt, its checks tallied.
s6_report() {
  local name=$1 status
  status=$(cat "$s6_dir/$name.status" 2>/dev/null || echo 1)
  cat "$s6_dir/$name.txt"
  { cat "$s6_dir/$name.txt"; echo; } >>"$results/report.txt"
  if [ "$mode" = smoke ]; then tally "$s6_dir/$name.txt" "S6 $name" "$status"; fi
  if [ "$status" -ne 0 ] && [ "$mode" != smoke ]; then log "S6 $name: gavel-load exited $status"; tail -n 5 "$s6_dir/$name.progress" >&2; fi
  echo
}

# One configuration's step: KEY (file names), LABEL (rows), RATE over the nodes "pid url" … (each at
# RATE / nodes, their generators started together); the PostgreSQL server's CPU around it.
s6_step() {
  local key=$1 label=$2 rate=$3
  shift 3
  local count=$# index=0 node pid url share before after start name names=() pids=()
  share=$(awk -v r="$rate" -v n="$count" 'BEGIN { printf "%g", r / n }')
  before=$(pg_ticks)
  start=$(date +%s.%N)
  # What the server's sessions wait on, twice a second (S6/KEY-RATE.activity), for diagnosis.
  local sampler=""
  if [ "$key" != sqlite ] && [ -n "$pg_url" ]; then
    while :; do
      psql "$pg_url" -X -At -F ' | ' -c "select clock_timestamp()::time(3), pid, datname, state, wait_event_type, wait_event, round(extract(epoch from clock_timestamp() - query_start) * 1000) as ms, left(regexp_replace(query, '\s+', ' ', 'g'), 120) from pg_stat_activity where datname like 'gavel_s6_%' and state not in ('idle') and pid <> pg_backend_pid() order by query_start" 2>/dev/null || true
      sleep 0.5
    done >"$s6_dir/$key-$rate.activity" &
    sampler=$!
  fi
  for node in "$@"; do
    index=$((index + 1))
    read -r pid url <<<"$node"
    if [ "$count" -gt 1 ]; then
      s6_load "$key-$rate-node$index" "$label node-$index/$count" "$url" "$pid" "$share" &
      names+=("$key-$rate-node$index")
    else
      s6_load "$key-$rate" "$label" "$url" "$pid" "$share" &
      names+=("$key-$rate")
    fi
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  after=$(pg_ticks)
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; fi
  if [ -n "$before" ] && [ -n "$after" ]; then
    echo "$((after - before)) $(getconf CLK_TCK) $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')" \
      >"$s6_dir/$key-$rate.pgcpu"
  fi
  for name in "${names[@]}"; do s6_report "$name"; done
}

run_s6() {
  mkdir -p "$s6_dir"
  local rates rate db
  IFS=',' read -r -a rates <<<"$S6_RATES"
  # (a) one node on SQLite
  if start_node s6-sqlite "$results/S6-sqlite.sqlite" --node-id sqlite; then
    for rate in "${rates[@]}"; do s6_step sqlite "S6 sqlite" "$rate" "$node_pid $node_url"; done
    stop_nodes "S6 sqlite" "$node_pid"
  else
    [ "$mode" = smoke ] && record "S6 sqlite exchange start" 0 "gavel serve did not start"
    stop_nodes "" "${s6_nodes[@]}"
  fi
  if ! start_postgres; then
    log "S6: no PostgreSQL server; the PostgreSQL configurations are skipped"
    [ "$mode" = smoke ] && record "S6 postgres server" 0 "scripts/with-postgres.sh did not start one"
    return 0
  fi
  # (b) one node on PostgreSQL
  if db=$(pg_fresh_db gavel_s6_postgres) && start_node s6-postgres "$db" --node-id node-1; then
    for rate in "${rates[@]}"; do s6_step postgres "S6 postgres" "$rate" "$node_pid $node_url"; done
    stop_nodes "S6 postgres" "$node_pid"
  else
    [ "$mode" = smoke ] && record "S6 postgres exchange start" 0 "gavel serve did not start on PostgreSQL"
    stop_nodes "" "${s6_nodes[@]}"
  fi
  pg_drop_db gavel_s6_postgres
  # (c) two nodes on one PostgreSQL database, started one after the other (the first migrates)
  local one="" two=""
  if db=$(pg_fresh_db gavel_s6_cluster) && start_node s6-postgres-node-1 "$db" --node-id node-1 && one="$node_pid $node_url" \
    && start_node s6-postgres-node-2 "$db" --node-id node-2 && two="$node_pid $node_url"; then
    for rate in "${rates[@]}"; do s6_step cluster "S6 postgres" "$rate" "$one" "$two"; done
    stop_nodes "S6 postgres" "${one%% *}" "${two%% *}"
  else
    [ "$mode" = smoke ] && record "S6 postgres 2 nodes exchange start" 0 "gavel serve did not start on PostgreSQL"
    stop_nodes "" "${s6_nodes[@]}"
  fi
  pg_drop_db gavel_s6_cluster
  stop_postgres
}

# The S6 table: per rate, a row per node of each configuration (and the two nodes' total), with the
# added latency (minus the buyers' 10 ms), the exchange's CPU per auction and the PostgreSQL server's.
s6_table() {
  python3 - "$s6_dir" "$S6_RATES" "$WARMUP_SECONDS" <<'PY'
import json, os, sys
d, rates, warmup = sys.argv[1], [r.strip() for r in sys.argv[2].split(",") if r.strip()], float(sys.argv[3])

def load(name):
    try:
        with open(os.path.join(d, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def pg_cpu(key, rate, auctions):
    try:
        ticks, hz, wall = open(os.path.join(d, f"{key}-{rate}.pgcpu")).read().split()
    except (OSError, ValueError):
        return "-", "-"
    seconds = int(ticks) / int(hz)
    per = f"{seconds * 1e6 / auctions:,.0f}" if auctions else "-"
    return f"{seconds * 100 / float(wall):.0f}%", per

def ms(v):
    return f"{v:.1f}" if v >= 100 else f"{v:.2f}"

head = ["node", "target/s", "achieved/s", "p50", "p90", "p99", "p99.9", "max", "sold%", "errors",
        "gavel CPU", "gavel µs/auct", "pg CPU", "pg µs/auct", "own p50", "own p99"]
width = [24, 9, 11, 8, 8, 8, 8, 9, 7, 7, 10, 14, 7, 11, 8, 8]
def line(cells):
    return " ".join(str(c).rjust(w) for c, w in zip(cells, width))

out = []
# The machine as the first gavel-load of S6 saw it (the load average at its start).
runs = sorted((r for r in (load(n[:-5]) for n in os.listdir(d) if n.endswith(".json")) if r), key=lambda r: r.get("startedAt", ""))
for machine in [r["machine"] for r in runs[:1] if r.get("machine")]:
    if machine:
        out.append(f"machine: {machine['cpuModel']}, {machine['cores']} cores, {machine['memoryGiB']:.1f} GiB, Linux {machine['kernel']};"
                   " generator, buyers, exchange nodes and PostgreSQL share it"
                   + (f"; load average {machine['loadAverage']:.2f} at the start" if machine.get("loadAverage") is not None else ""))
        break
out += ["S6 storage backends: S0's 10 buyers (10 ms each); latency in ms from each request's intended start, "
        "minus the buyers' 10 ms (the exchange's added latency)", line(head)]
failed = []
for rate in rates:
    groups = [("sqlite", ["sqlite-" + rate]), ("postgres", ["postgres-" + rate]),
              ("cluster", [f"cluster-{rate}-node1", f"cluster-{rate}-node2"])]
    for key, names in groups:
        results = [(n, load(n)) for n in names]
        if all(r is None for _, r in results):
            continue
        auctions, achieved, target = 0, 0.0, 0.0
        for name, r in results:
            if r is None or not r.get("steps"):
                out.append(line([name, "no result"]))
                continue
            step, buyer = r["steps"][0], r.get("buyerTimeMs") or 0
            lat = step["latency"]
            shift = lambda v: max(0.0, v - buyer)
            ok = step["ok"]
            sold = step["sold"] * 100 / ok if ok else 0
            cpu = (step.get("cpu") or {}).get("exchange")
            per = f"{cpu / 100 * 1e6 / step['achievedRate']:,.0f}" if cpu is not None and step["achievedRate"] > 0 else "-"
            own = (step.get("readback") or {}).get("exchangeOverhead") or {}
            pg = pg_cpu(key, rate, step["scheduled"] + warmup * step["targetRate"]) if len(names) == 1 and key != "sqlite" else ("-", "-")
            out.append(line([r["label"], f"{step['targetRate']:,.0f}", f"{step['achievedRate']:.1f}", ms(shift(lat["p50"])),
                             ms(shift(lat["p90"])), ms(shift(lat["p99"])), ms(shift(lat["p999"])), ms(shift(lat["max"])),
                             f"{sold:.1f}", step["errors"], f"{cpu:.0f}%" if cpu is not None else "-", per, pg[0], pg[1],
                             ms(own["p50"]) if own else "-", ms(own["p99"]) if own else "-"]))
            auctions += step["scheduled"] + warmup * step["targetRate"]
            achieved += step["achievedRate"]
            target += step["targetRate"]
            if step["errors"]:
                failed.append(f"{r['label']} {rate}/s: " + ", ".join(f"{k} {v}" for k, v in sorted(step["errorKinds"].items())))
        if len(names) > 1:
            pg = pg_cpu(key, rate, auctions)
            out.append(line(["S6 postgres 2 nodes", f"{target:,.0f}", f"{achieved:.1f}", "", "", "", "", "", "", "", "", "",
                             pg[0], pg[1], "", ""]))
notes = []
if failed:
    notes.append("errors by kind: " + "; ".join(failed))
notes.append("gavel CPU: the node's CPU over the step in % of one core; gavel µs/auct: that per achieved auction. pg: the PostgreSQL"
             " server (postmaster and backends) over the whole gavel-load run (warmup, step, drain, read-back), per auction sent;"
             " for two nodes on the total row. own: the exchange's own work inside a round (read back: duration less the slowest ping and the posts).")
try:
    settings = [l.strip() for l in open(os.path.join(d, "postgres-settings.txt")) if l.strip()]
    if settings:
        notes.append("PostgreSQL: " + settings[0].split(" on ")[0] + "; " + ", ".join(settings[1:]))
except OSError:
    pass
print("\n".join(out + [""] + notes))
PY
}

log "mode $mode; results in $results"
if ! start_fleet; then
  [ "$mode" = smoke ] && echo "smoke: 0 passed, 1 failed"
  exit 1
fi
nginx_flags=()
case " $SCENARIOS " in
  *" S5 "* | *" S5X "*)
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
      # Past saturation: twice what S5 sustained, while the machine is as S5 left it.
      case " $SCENARIOS " in *" S5X "*) ;; *) run_s5x ;; esac
      # The raw engine against the same nginx buyers, in the same run: the ceiling S5 is compared with.
      if [ "$mode" != smoke ]; then
        load_fleet_url=$nginx_url load S5R raw --scenario S5R --rates "$S5R_RATES" --seconds "$STEP_SECONDS" --until-saturated --refine 0
      fi
      ;;
    # Alone (SCENARIOS="S5 S5X" or with S5X_RATE): the overload step after S5, or at the rate given.
    S5X)
      [ -n "$nginx_url" ] || continue
      run_s5x
      ;;
    S6) run_s6 ;;
    *) log "unknown scenario $scenario (S0 S1 S2 S3 S4 S5 S5X S6)" ;;
  esac
done

summary_status=0
: >"$results/summary.txt"
# gavel-load summary reads the JSON of S0–S5X and S5R in RESULTS_DIR; S6 keeps its own in S6/.
if compgen -G "$results/*.json" >/dev/null; then
  "$bin/gavel-load" summary "$results" | tee "$results/summary.txt" || summary_status=$?
fi
if compgen -G "$s6_dir/*.json" >/dev/null; then
  { echo; s6_table; } | tee -a "$results/summary.txt" || summary_status=$?
fi
log "results in $results (summary.txt, report.txt, one JSON per scenario)"

if [ "$mode" = smoke ]; then
  record "summary" "$([ "$summary_status" -eq 0 ] && echo 1 || echo 0)" "gavel-load summary exit status $summary_status"
  echo "smoke: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
fi

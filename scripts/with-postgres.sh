#!/usr/bin/env bash
# Runs a command with a PostgreSQL server to test against:
#
#   scripts/with-postgres.sh swift test --filter GavelPostgresTests
#
# With GAVEL_TEST_DATABASE_URL already set, the command runs against that server as it is.
# Otherwise: installs PostgreSQL from Debian's packages if initdb is missing, makes a cluster in a
# temporary directory (as the postgres user: initdb refuses root), starts it on a unix socket only
# (no TCP), creates the database `gavel`, exports GAVEL_TEST_DATABASE_URL, runs the command, then
# stops the server and removes the directory. Exits with the command's status.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

if [[ -n "${GAVEL_TEST_DATABASE_URL:-}" ]]; then
    exec "$@"
fi

# Debian keeps the server's programs (initdb, pg_ctl, postgres, createdb) together per version.
find_bin() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$found" && -x "$found/initdb" ]]; then echo "$found"; return; fi
    found=$(command -v initdb 2>/dev/null || true)
    if [[ -n "$found" && -x "$(dirname "$found")/pg_ctl" && -x "$(dirname "$found")/createdb" ]]; then dirname "$found"; fi
}

PGBIN=$(find_bin)
if [[ -z "$PGBIN" ]]; then
    echo "with-postgres: installing PostgreSQL from Debian's packages" >&2
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
    PGBIN=$(find_bin)
    if [[ -z "$PGBIN" ]]; then
        echo "with-postgres: initdb not found after installing postgresql" >&2
        exit 1
    fi
fi

# As root, the server runs as the postgres user; otherwise as whoever runs this.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

DIR=$(mktemp -d /tmp/gavel-pg.XXXXXX)
chmod 755 "$DIR"
if [[ $(id -u) -eq 0 ]]; then chown postgres: "$DIR"; fi
DATA="$DIR/data"
LOG="$DIR/postgres.log"
PORT=5432

cleanup() {
    local status=$?
    as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    exit "$status"
}
trap cleanup EXIT

as_owner "$PGBIN/initdb" -A trust -U postgres -D "$DATA" --no-instructions >"$DIR/initdb.log" 2>&1 || {
    cat "$DIR/initdb.log" >&2
    exit 1
}
as_owner "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
    -o "-k $DIR -c listen_addresses='' -p $PORT -c fsync=on -c max_connections=200" start >/dev/null || {
    cat "$LOG" >&2
    exit 1
}
as_owner "$PGBIN/createdb" -h "$DIR" -p "$PORT" -U postgres gavel

export GAVEL_TEST_DATABASE_URL="postgres://postgres@/gavel?host=$DIR"
# For outage drills (scripts/cluster-test.sh): how to stop and start this server again.
export GAVEL_TEST_PG_STOP="$( [[ $(id -u) -eq 0 ]] && echo "runuser -u postgres -- " )$PGBIN/pg_ctl -D $DATA -m fast -w stop"
export GAVEL_TEST_PG_START="$( [[ $(id -u) -eq 0 ]] && echo "runuser -u postgres -- " )$PGBIN/pg_ctl -D $DATA -l $LOG -w -t 60 -o \"-k $DIR -c listen_addresses='' -p $PORT -c fsync=on -c max_connections=200\" start"
echo "with-postgres: PostgreSQL on unix socket $DIR/.s.PGSQL.$PORT (log $LOG)" >&2
echo "with-postgres: GAVEL_TEST_DATABASE_URL=$GAVEL_TEST_DATABASE_URL   psql: $PGBIN/psql -h $DIR -U postgres gavel" >&2

set +e
"$@"
STATUS=$?
set -e
exit "$STATUS"

#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the tests (idempotent) and print its URL.
# As root on Debian it runs the image's PostgreSQL under `runuser -u postgres` (postgres refuses to
# run as root) in /tmp/torc-pg, on port 5433 (the image's own cluster keeps 5432), with trust auth on
# localhost and fsync off: data there is disposable. As another user it runs initdb/pg_ctl directly.
# Usage: scripts/postgres-up.sh [--stop]      Env: TORC_PG_DIR (default /tmp/torc-pg), TORC_PG_PORT (5433)
set -euo pipefail
DIR=${TORC_PG_DIR:-/tmp/torc-pg}
PORT=${TORC_PG_PORT:-5433}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PGBIN/initdb" ] || { echo "postgres-up: no PostgreSQL binaries found (apt-get install postgresql)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = "--stop" ]; then
  [ -f "$DIR/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
  exit 0
fi

mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
if [ ! -f "$DIR/data/PG_VERSION" ]; then
  as_pg "$PGBIN/initdb" -D "$DIR/data" -A trust -U postgres --no-sync -E UTF8 >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
fi
if ! as_pg "$PGBIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 30 start \
    -o "-p $PORT -k $DIR -h localhost -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    >/dev/null || { tail -20 "$DIR/log" >&2; exit 1; }
fi
echo "postgresql://postgres@localhost:$PORT/postgres"

#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the test suite and print its URL (last line).
# Installs Debian's postgresql when missing. pg_ctl refuses to run as root, so the cluster belongs to
# the `postgres` user. The data folder is temporary; the server listens on loopback only.
set -euo pipefail
PORT="${LLDMIX_PG_PORT:-54329}"
export DEBIAN_FRONTEND=noninteractive
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  apt-get update -qq >&2 || echo "start_postgres: apt-get update failed" >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
URL="postgresql://postgres@127.0.0.1:${PORT}/lldmix_test"
if "$BIN/pg_isready" -h 127.0.0.1 -p "$PORT" -q 2>/dev/null; then echo "$URL"; exit 0; fi
DATA=$(mktemp -d /tmp/lldmix-pg.XXXXXX)
chown postgres "$DATA"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$BIN/initdb" -D "$DATA" -A trust -U postgres >&2
as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DATA -c fsync=off -c max_connections=200" start >&2 \
  || { echo "start_postgres: the server did not start; its log:" >&2; cat "$DATA/server.log" >&2; exit 1; }
as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres lldmix_test
echo "$URL"

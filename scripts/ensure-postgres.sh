#!/usr/bin/env bash
# Make sure the local PostgreSQL server the OMOP tests use is up (127.0.0.1:5432, user postgres,
# trust auth). Starts the Debian cluster if it is installed but stopped; fails loudly otherwise.
set -uo pipefail
HOST=${HYPERINFLAM_PG_HOST:-127.0.0.1}
PORT=${HYPERINFLAM_PG_PORT:-5432}
if pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; then
  exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "== starting PostgreSQL $version (cluster main)"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h "$HOST" -p "$PORT" && exit 0
    sleep 1
  done
fi
echo "ERROR: PostgreSQL is not reachable on $HOST:$PORT. The OMOP PostgreSQL tests need it" \
     "(trust auth, user postgres). Start it, e.g. 'pg_ctlcluster 15 main start'." >&2
exit 1

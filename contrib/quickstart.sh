#!/usr/bin/env bash
# The main job on an embedded default: installs and builds walhook, starts a
# throwaway Postgres with wal2json allowed (in .walhook-demo/, removed on
# exit), creates a demo table and a trigger whose webhook is `walhook sink`,
# and runs `walhook run` in the foreground: each row change is captured and
# delivered to the sink, which prints it. Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."

contrib/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build src/walhook >/dev/null

demo="$PWD/.walhook-demo"
contrib/pgtmp.sh destroy "$demo" 2>/dev/null || true
mkdir -p "$demo"
# Ctrl-C or any exit stops and removes everything started here. Not under
# set -e: a process that already ended must not stop the cleanup halfway.
cleanup() {
  set +e
  trap - EXIT INT TERM
  for pid in "${walhook_pid:-}" "${sink_pid:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
  done
  wait 2>/dev/null
  contrib/pgtmp.sh destroy "$demo" >/dev/null 2>&1
  rm -rf "$demo"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port=$(contrib/pgtmp.sh start "$demo")
src="host=127.0.0.1 port=$port dbname=postgres user=postgres"
psql_cmd="psql \"$src\""
psql() { command psql -X -q "$src" "$@"; }

build/src/walhook init --source "$src"
psql -c "CREATE TABLE signups (id bigserial PRIMARY KEY, email text NOT NULL, created_at timestamptz DEFAULT now())" \
     -c "INSERT INTO eventing.triggers (name, type, table_name, url) VALUES ('welcome_email', 'DB_INSERT', 'signups', 'http://127.0.0.1:4123/')"

export WALHOOK_SECRET=demo-secret
# A Standard Webhooks key (base64 after whsec_), for the demo only.
export WALHOOK_SIGNING_SECRET=whsec_ZGVtby1zaWduaW5nLWtleS1mb3Itd2FsaG9vaw==
# The sink prints each delivery and whether its token and signature verify.
build/src/walhook sink &
sink_pid=$!
build/src/walhook run --source "$src" &
walhook_pid=$!
sleep 2
psql -c "INSERT INTO signups (email) VALUES ('ada@example.com')"
sleep 1
echo
echo "A signup became an event, and the sink above received it:"
psql -c "SELECT id, trigger_name, type, status, attempts, payload->'doc'->>'email' AS email FROM eventing.event_logs"
cat <<EOT

walhook is running against a throwaway Postgres on port $port. In another terminal:

  $psql_cmd -c "INSERT INTO signups (email) VALUES ('grace@example.com')"
  $psql_cmd -c "SELECT id, trigger_name, status, attempts, remark FROM eventing.event_logs"
  $psql_cmd -c "SELECT event_id, response_status_code, duration_ms FROM eventing.invocation_logs"
  $psql_cmd -c "SELECT * FROM eventing.trigger_status" -c "SELECT * FROM eventing.bridge_status"

Press Ctrl-C to stop walhook and remove the demo database.
EOT
wait "$walhook_pid"

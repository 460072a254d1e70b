#!/usr/bin/env bash
# Runs the all-in-one demo server: `ttserver run -c conf/ttserver.conf` (embedded SQLite under
# ./data). On the first start it creates a department and two demo users, alice and bob, both
# with password 123456, so a TeamTalk client can log in at once. The admin HTTP API's token is
# the conf's AdminToken if it has one, else DataDir/admin.token, which the server creates with
# a random token (mode 0600) on its first start.
# Usage: scripts/start.sh [conf file, default conf/ttserver.conf]
set -euo pipefail
cd "$(dirname "$0")/.."
conf="${1:-conf/ttserver.conf}"

cargo build --release --quiet
bin=target/release/ttserver

data_dir=$(sed -n 's/^[[:space:]]*DataDir[[:space:]]*=[[:space:]]*\([^#]*\).*/\1/p' "$conf" | tail -n 1 | xargs)
data_dir=${data_dir:-./data}
if [ ! -f "$data_dir/ttserver.db" ]; then
    dep=$("$bin" admin -c "$conf" depart add "Demo")
    "$bin" admin -c "$conf" user add alice --password 123456 --nick Alice --depart "$dep" >/dev/null
    "$bin" admin -c "$conf" user add bob --password 123456 --nick Bob --depart "$dep" >/dev/null
    echo "created demo users alice and bob (password 123456) in $data_dir" >&2
fi
if grep -q '^[[:space:]]*AdminToken[[:space:]]*=' "$conf"; then
    echo "admin token: AdminToken in $conf" >&2
else
    echo "admin token: $data_dir/admin.token (the server creates it if missing; ADMIN_TOKEN=\$(cat $data_dir/admin.token))" >&2
fi
exec "$bin" run -c "$conf"

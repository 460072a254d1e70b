#!/usr/bin/env bash
# Rough core measurements on loopback (issue #2): 1:1 messages per second with DbSync=full
# (one sender, one receiver) and server RSS with N idle logged-in connections.
# Usage: scripts/measure_core.sh [messages=50000] [idle_conns=1000] [window=64]
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-50000}
conns=${2:-1000}
window=${3:-64}

cargo build --release --quiet --bins
bin=${TTSERVER_BIN:-target/release/ttserver}
load=target/release/ttload

work=$(mktemp -d /tmp/ttserver-measure.XXXXXX)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/bench.conf" <<CONF
ClientListen=127.0.0.1:0
MsgListen=127.0.0.1:0
FileListen=127.0.0.1:0
MsfsListen=127.0.0.1:0
AdminListen=127.0.0.1:0
AdminToken=bench
DataDir=$work/data
PasswordHashCost=low
DbSync=full
# The per-connection rate limit (default 100/s) would measure the limit, not the server.
MsgRateLimit=1000000
MobileIdleTimeout=600
CONF

{
    echo "sender,pw"
    echo "receiver,pw"
    for i in $(seq 1 "$conns"); do echo "idle$i,pw"; done
} > "$work/users.csv"
"$bin" admin -c "$work/bench.conf" user import "$work/users.csv" >/dev/null

coproc SERVER { exec ${SERVER_WRAPPER:-} "$bin" run -c "$work/bench.conf" 2>"$work/server.log"; }
server_pid=$SERVER_PID
msg_addr=
while read -r line <&"${SERVER[0]}"; do
    case "$line" in
        "listening msg "*) msg_addr=${line#listening msg } ;;
        ready) break ;;
    esac
done
echo "server pid $server_pid msg $msg_addr ($(nproc) cores, $(uname -r))" >&2

"$load" p2p --msg "$msg_addr" --sender sender --receiver receiver --password pw \
    --messages "$messages" --window "$window" --size 100
"$load" idle --msg "$msg_addr" --user-prefix idle --count "$conns" --password pw \
    --server-pid "$server_pid" --hold 2

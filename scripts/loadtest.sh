#!/usr/bin/env bash
# Load test of ttserver on loopback: creates users, starts the server on a temp DataDir
# (DbSync=full, PasswordHashCost=low), runs the ttload scenarios and prints a table.
#
#   scripts/loadtest.sh [--compare-baseline] [--quick] [--pairs N] [--messages M] [--window W]
#                       [--idle N] [--logins N] [--offline-pairs N] [--offline-messages M]
#                       [--group-members N] [--group-senders S] [--group-messages K]
#                       [--threads T] [--only p2p|login|idle|offline|group]
#
# --compare-baseline also runs p2p against `ttload relay` (framing + forwarding, no storage) in
# the same run and prints ttserver / relay. Every run is bounded (ttload caps count and time).
# Past 28,000 connections the idle scenario spreads its sockets over 127.0.0.x source addresses.
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=50 messages=20000 window=64 idle=10000 logins=20000 off_pairs=20 off_msgs=500
g_members=500 g_senders=5 g_msgs=400
threads=1 compare=0 only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --compare-baseline) compare=1 ;;
        --quick) pairs=4 messages=500 idle=200 logins=200 off_pairs=2 off_msgs=50
                 g_members=20 g_senders=2 g_msgs=50 ;;
        --group-members) g_members=$2; shift ;;
        --group-senders) g_senders=$2; shift ;;
        --group-messages) g_msgs=$2; shift ;;
        --pairs) pairs=$2; shift ;;
        --messages) messages=$2; shift ;;
        --window) window=$2; shift ;;
        --idle) idle=$2; shift ;;
        --logins) logins=$2; shift ;;
        --offline-pairs) off_pairs=$2; shift ;;
        --offline-messages) off_msgs=$2; shift ;;
        --threads) threads=$2; shift ;;
        --only) only=$2; shift ;;
        *) echo "loadtest.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

. scripts/lib.sh
tt_build

# Enough descriptors for the idle scenario on both sides (the server and ttload share the box).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "fd limit $(ulimit -n); $(nproc) cores; $(uname -sr)" >&2

tt_workdir loadtest

users=$(( 2 * pairs ))
for n in "$idle" "$logins" "$(( 2 * off_pairs ))" "$g_members"; do [ "$n" -gt "$users" ] && users=$n; done
max_unread=$(( off_msgs > 100 ? off_msgs : 100 ))
# MsgRateLimit: measure the server, not the per-connection rate limit (default 100 msg/s).
# LoginFailLimit: failures never happen here; keep the throttle out of the way of 1,000s of
# logins.
tt_conf "$work/load.conf" DbSync=full MsgRateLimit=1000000 "MaxUnreadMsgs=$max_unread" \
    PcIdleTimeout=600 MobileIdleTimeout=600 LoginFailLimit=100
seq 1 "$users" | sed 's/.*/u&,pw/' > "$work/users.csv"
"$bin" admin -c "$work/load.conf" user import "$work/users.csv" >/dev/null
# A fresh database numbers users from 1: u1 .. uN have ids 1 .. N.
group_id=$("$bin" admin -c "$work/load.conf" group add loadtest --members "$(seq -s, 1 "$g_members")")
echo "created $users users and group $group_id of $g_members members" >&2

tt_start server "$bin" run -c "$work/load.conf"
server_pid=$last_pid login_addr=${listen[login]:?server printed no login address}
results=()
run() {  # scenario args...
    local out
    out=$("$load" "$@" | tail -n 1)
    echo "$out"
    results+=("$out")
}

want() { [ -z "$only" ] || [ "$only" = "$1" ]; }

if want p2p; then
    run p2p --login "$login_addr" --pairs "$pairs" --messages "$messages" --window "$window" \
        --user-prefix u --password pw --threads "$threads"
    peak=$(echo "${results[-1]}" | grep -o 'deliv_per_s=[0-9.]*' | cut -d= -f2)
    # Latency at 25% of the peak just measured (per-pair rate).
    rate=$(awk -v p="$peak" -v n="$pairs" 'BEGIN { r = p * 0.25 / n; if (r < 1) r = 1; printf "%d", r }')
    run p2p --login "$login_addr" --pairs "$pairs" --messages "$(( messages / 4 > 100 ? messages / 4 : 100 ))" \
        --rate "$rate" --user-prefix u --password pw --threads "$threads"
fi
if want login; then
    run login --login "$login_addr" --users "$logins" --user-prefix u --password pw --threads "$threads"
fi
if want offline; then
    run offline --login "$login_addr" --pairs "$off_pairs" --messages "$off_msgs" \
        --user-prefix u --password pw --threads "$threads"
fi
if want group; then
    run group --login "$login_addr" --group "$group_id" --members "$g_members" \
        --senders "$g_senders" --messages "$g_msgs" --user-prefix u --password pw --threads "$threads"
fi
if want idle; then
    src=""
    if [ "$idle" -gt 28000 ]; then
        n=$(( idle / 28000 + 1 ))
        src="--source-addrs $(seq -s, 1 "$n" | sed 's/\([0-9]*\)/127.0.0.\1/g')"
    fi
    # shellcheck disable=SC2086
    run idle --login "$login_addr" --users "$idle" --user-prefix u --password pw \
        --server-pid "$server_pid" --hold 5 --threads "$threads" $src
fi

if [ "$compare" = 1 ] && want p2p; then
    tt_start relay "$load" relay --listen 127.0.0.1:0
    relay_addr=${listen[relay]:?relay printed no address}
    run p2p --login "$relay_addr" --pairs "$pairs" --messages "$messages" --window "$window" \
        --user-prefix u --password pw --threads "$threads"
    relay_line=${results[-1]}
    server_line=${results[0]}
    s=$(echo "$server_line" | grep -o 'deliv_per_s=[0-9.]*' | cut -d= -f2)
    r=$(echo "$relay_line" | grep -o 'deliv_per_s=[0-9.]*' | cut -d= -f2)
    awk -v s="$s" -v r="$r" 'BEGIN { printf "ratio ttserver/relay deliv_per_s = %.0f / %.0f = %.2f\n", s, r, s / r }'
fi

echo
printf '%-8s %s\n' scenario "key figures"
for line in "${results[@]}"; do
    name=$(echo "$line" | grep -o 'scenario=[a-z0-9]*' | cut -d= -f2)
    figs=$(echo "$line" | tr ' ' '\n' | grep -E '^(acked|delivered|lost|dup|ack_per_s|deliv_per_s|p50_ms|p99_ms|p999_ms|exactly_once|logins_per_s|failed|conns|rss_per_conn_bytes|server_cpu_pct|read_per_s|read_back|expected_deliveries)=' | tr '\n' ' ')
    printf '%-8s %s\n' "$name" "$figs"
done

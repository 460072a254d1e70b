# Shared by scripts/loadtest.sh, filebench.sh and filestall.sh: a temp work dir removed at exit
# with every process started through tt_start, the base conf of a loopback test server, and
# starting a process that announces `listening <role> <addr>` lines then `ready`.
# Source it after `cd` to the checkout; needs bash 4 (associative arrays).

# tt_build: builds the binaries; sets $bin (ttserver, or $TTSERVER_BIN to measure another
# build) and $load (ttload).
tt_build() {
    cargo build --release --quiet --bins
    bin=${TTSERVER_BIN:-target/release/ttserver}
    load=target/release/ttload
}

# tt_workdir NAME: sets $work to a new /tmp/ttserver-NAME.XXXXXX and an EXIT trap that stops
# every pid in $pids (and $sampler, if set) and removes $work.
tt_workdir() {
    work=$(mktemp -d "/tmp/ttserver-$1.XXXXXX")
    pids=()
    sampler=
    trap tt_cleanup EXIT
}

tt_cleanup() {
    if [ -n "${sampler:-}" ]; then kill "$sampler" 2>/dev/null || true; fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}

# tt_conf FILE [KEY=VALUE...]: a conf with every listener on 127.0.0.1 port 0, DataDir
# $work/data, PasswordHashCost=low, plus the extra lines given. No AdminToken: the server
# generates one into $work/data/admin.token.
tt_conf() {
    local file=$1
    shift
    {
        printf '%s\n' ClientListen=127.0.0.1:0 MsgListen=127.0.0.1:0 FileListen=127.0.0.1:0 \
            MsfsListen=127.0.0.1:0 AdminListen=127.0.0.1:0 \
            "DataDir=$work/data" PasswordHashCost=low
        for line in "$@"; do printf '%s\n' "$line"; done
    } > "$file"
}

# tt_start NAME CMD...: starts CMD in the background (stdout read here, stderr to
# $work/NAME.log), waits for its `ready` line and fills the associative array `listen`
# (role -> host:port) from its `listening` lines; sets $last_pid.
declare -A listen
tt_start() {
    local name=$1; shift
    local fifo="$work/out.$name"
    mkfifo "$fifo"
    "$@" >"$fifo" 2>"$work/$name.log" &
    pids+=($!)
    last_pid=$!
    exec 7<"$fifo"
    local line role addr
    while read -r line <&7; do
        case "$line" in
            "listening "*) read -r _ role addr <<<"$line"; listen[$role]=$addr ;;
            ready) break ;;
        esac
    done
    # Keep draining in the background so the process never blocks on stdout.
    cat <&7 >/dev/null &
    exec 7<&-
}

# tt_val LINE KEY: the value of KEY=VALUE in a `result ...` line.
tt_val() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

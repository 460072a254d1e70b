#!/usr/bin/env bash
# Before/after figures of two builds of ttserver, alternating in one run on one machine, so
# that both see the same noise:
#
#   scripts/ab.sh [--base REV | --base-bin PATH] [--rounds N] [--file-size BYTES] [--skip-file]
#
# Builds REV (default a2e3552^, the last commit before the shared event loop) in a temporary
# git worktree, and this checkout as it is. Then, for each round, in the order base, this,
# this, base (ABBA, so drift over the run does not favour either side):
#   scripts/loadtest.sh --compare-baseline --only p2p   (durable p2p, p2p at 25% of the peak,
#                                                        the relay ratio)
#   scripts/loadtest.sh --only login --logins 5000       (login rate)
#   scripts/loadtest.sh --only group                     (group fan-out)
#   scripts/filebench.sh --rounds 1 --size BYTES         (offline download, ratio to tcpcopy)
# each with TTSERVER_BIN pointing at the build under test (the load generator is this
# checkout's ttload for both). Prints every run's figures and the medians per build.
# Loopback only; every run bounded by the scripts it calls.
set -euo pipefail
cd "$(dirname "$0")/.."

base=a2e3552^ base_bin="" rounds=3 file_size=268435456 skip_file=0
while [ $# -gt 0 ]; do
    case "$1" in
        --base) base=$2; shift ;;
        --base-bin) base_bin=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --file-size) file_size=$2; shift ;;
        --skip-file) skip_file=1 ;;
        *) echo "ab.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

here=$(pwd)
tree=$(mktemp -d /tmp/ttserver-ab-base.XXXXXX)
results=$(mktemp /tmp/ttserver-ab-results.XXXXXX)
cleanup() {
    git -C "$here" worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
}
trap cleanup EXIT

if [ -z "$base_bin" ]; then
    git worktree add --detach --quiet "$tree" "$base"
    echo "building base $(git -C "$tree" rev-parse --short HEAD) in $tree" >&2
    CARGO_TARGET_DIR="$here/target/ab-base" cargo build --release --quiet --bin ttserver \
        --manifest-path "$tree/Cargo.toml"
    base_bin="$here/target/ab-base/release/ttserver"
    base_name=$(git -C "$tree" rev-parse --short HEAD)
else
    base_name=$base_bin
fi
cargo build --release --quiet --bins
this_bin="$here/target/release/ttserver"
echo "base $base_name, this $(git rev-parse --short HEAD)$(git diff --quiet || echo +changes); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# record BUILD SCENARIO KEY=VALUE...
record() { echo "$*" >> "$results"; }
val() { echo "$1" | tr ' ' '\n' | grep "^$2=" | head -n 1 | cut -d= -f2; }

one_round() {  # build-name binary
    local name=$1 bin=$2 out line
    out=$(TTSERVER_BIN=$bin scripts/loadtest.sh --compare-baseline --only p2p --idle 100 --logins 100 2>/dev/null)
    mapfile -t p2p < <(echo "$out" | grep 'scenario=p2p')
    line=${p2p[0]:-}
    record "$name" p2p_peak "deliv_per_s=$(val "$line" deliv_per_s)" "p50_ms=$(val "$line" p50_ms)" \
        "p99_ms=$(val "$line" p99_ms)" "exactly_once=$(val "$line" exactly_once)"
    line=${p2p[1]:-}
    record "$name" p2p_25pct "deliv_per_s=$(val "$line" deliv_per_s)" "p50_ms=$(val "$line" p50_ms)" \
        "p99_ms=$(val "$line" p99_ms)"
    line=$(echo "$out" | grep '^ratio ' || true)
    record "$name" relay_ratio "ratio=$(echo "$line" | awk '{ print $NF }')"
    out=$(TTSERVER_BIN=$bin scripts/loadtest.sh --only login --idle 100 --logins 5000 2>/dev/null | grep 'scenario=login' || true)
    record "$name" login "logins_per_s=$(val "$out" logins_per_s)" "p50_ms=$(val "$out" p50_ms)" \
        "p99_ms=$(val "$out" p99_ms)" "failed=$(val "$out" failed)"
    out=$(TTSERVER_BIN=$bin scripts/loadtest.sh --only group --idle 100 --logins 100 2>/dev/null | grep 'scenario=group' || true)
    record "$name" group "deliv_per_s=$(val "$out" deliv_per_s)" "p50_ms=$(val "$out" p50_ms)" \
        "p99_ms=$(val "$out" p99_ms)" "exactly_once=$(val "$out" exactly_once)"
    if [ "$skip_file" = 0 ]; then
        out=$(TTSERVER_BIN=$bin scripts/filebench.sh --rounds 1 --size "$file_size" 2>/dev/null)
        line=$(echo "$out" | grep '^median ' || true)
        # median ttserver_MB/s tcpcopy_MB/s ratio | ... | rss_peak anon_peak file_peak
        record "$name" file "download_mb_s=$(echo "$line" | awk '{ print $2 }')" \
            "tcpcopy_mb_s=$(echo "$line" | awk '{ print $3 }')" "ratio=$(echo "$line" | awk '{ print $4 }')" \
            "rss_peak_mib=$(echo "$line" | awk -F'|' '{ split($3, f, " "); print f[1] }')"
    fi
    tail -n "$([ "$skip_file" = 0 ] && echo 6 || echo 5)" "$results" | sed 's/^/  /' >&2
}

for r in $(seq 1 "$rounds"); do
    echo "round $r/$rounds" >&2
    if [ $(( r % 2 )) = 1 ]; then
        one_round base "$base_bin"; one_round this "$this_bin"
    else
        one_round this "$this_bin"; one_round base "$base_bin"
    fi
done

echo
echo "every run:"
cat "$results"
echo
echo "medians over $rounds rounds (base -> this):"
awk '
    { build = $1; sc = $2
      for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[2] ~ /^[0-9.]+$/) { key = sc " " kv[1]; v[build, key, ++n[build, key]] = kv[2]; keys[key] = 1 } } }
    function median(b, k,   m, i, j, t, a) {
        m = n[b, k]; if (m == 0) return "-"
        for (i = 1; i <= m; i++) a[i] = v[b, k, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    END { for (k in keys) { b = median("base", k); t = median("this", k)
          r = (b != "-" && t != "-" && b + 0 != 0) ? sprintf("%.2f", t / b) : "-"
          printf "%-28s %14s %14s  x%s\n", k, b, t, r } }' "$results" | sort
rm -f "$results"

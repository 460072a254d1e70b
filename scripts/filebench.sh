#!/usr/bin/env bash
# Offline file download throughput over loopback, against a plain TCP copy of the same bytes
# measured in the same run, and the server's memory during the download.
#
#   scripts/filebench.sh [--size BYTES] [--rounds N] [--chunk BYTES] [--window W]
#
# Creates users fb1 (sender) and fb2 (receiver), starts ttserver on a temp DataDir bound to
# 127.0.0.1 (ports 0), uploads one offline file of --size bytes (default 1 GiB, the default
# MaxFileSize) with `ttload file` (which also downloads it once), then for each round runs
#   ttload file --download-only TASK   (fb2 downloads the stored file again, every byte checked)
#   ttload tcpcopy                     (the same bytes from a file over one plain TCP connection)
# interleaved, sampling the server's VmRSS, RssAnon and RssFile from /proc/PID/status every
# 100 ms while the download runs. Prints the table with medians and the ratio
# ttserver/tcpcopy. One upload serves every round: the upload is not what is measured, and an
# upload per round would add an fsynced GiB per round and a stored file per round to the disk.
# Needs about 2 x --size of free space in /tmp (the stored file and tcpcopy's file).
set -euo pipefail
cd "$(dirname "$0")/.."

size=1073741824 rounds=3 chunk=262144 window=4
while [ $# -gt 0 ]; do
    case "$1" in
        --size) size=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --chunk) chunk=$2; shift ;;
        --window) window=$2; shift ;;
        *) echo "filebench.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

. scripts/lib.sh
tt_build

tt_workdir filebench
need_kib=$(( 2 * size / 1024 + 65536 ))
free_kib=$(df -Pk "$work" | awk 'NR == 2 { print $4 }')
if [ "$free_kib" -lt "$need_kib" ]; then
    echo "filebench.sh: $work has $free_kib KiB free, about $need_kib KiB needed" >&2
    exit 2
fi
echo "$(nproc) cores; $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg); size $size bytes, $rounds rounds, chunk $chunk, window $window" >&2

max_file=$(( size > 1073741824 ? size : 1073741824 ))
tt_conf "$work/fb.conf" "MaxFileSize=$max_file"
printf 'fb1,pw\nfb2,pw\n' > "$work/users.csv"
"$bin" admin -c "$work/fb.conf" user import "$work/users.csv" >/dev/null 2>"$work/admin.log" ||
    { cat "$work/admin.log" >&2; exit 1; }

tt_start server "$bin" run -c "$work/fb.conf"
server_pid=$last_pid
login_addr=${listen[login]:?server printed no login address}
echo "server pid $server_pid: login ${listen[login]} msg ${listen[msg]:-?} file ${listen[file]:-?}" >&2

# One `VmRSS RssAnon RssFile` line (KiB) of the server.
sample() {
    awk '/^VmRSS:/ { v = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } END { print v, a, f }' \
        "/proc/$server_pid/status"
}
common=(--login "$login_addr" --user-prefix fb --password pw --size "$size" --chunk "$chunk"
        --window "$window" --duration-limit 600)

echo "idle server: $(sample | awk '{ printf "VmRSS %d KiB, RssAnon %d KiB, RssFile %d KiB", $1, $2, $3 }')" >&2
first=$("$load" file "${common[@]}" | tail -n 1)
echo "$first"
[ "$(tt_val "$first" ok)" = true ] || { echo "filebench.sh: upload run failed" >&2; exit 1; }
task=$(tt_val "$first" task)

dl=() cp=() rows=()
for r in $(seq 1 "$rounds"); do
    samples="$work/rss.$r"
    : > "$samples"
    ( while :; do sample >> "$samples"; sleep 0.1; done ) &
    sampler=$!
    line=$("$load" file "${common[@]}" --download-only "$task" | tail -n 1)
    kill "$sampler"; wait "$sampler" 2>/dev/null || true; sampler=
    echo "$line"
    [ "$(tt_val "$line" ok)" = true ] || { echo "filebench.sh: download round $r failed" >&2; exit 1; }
    base=$(head -n 1 "$samples")
    peaks=$(awk '{ if ($1 > v) v = $1; if ($2 > a) a = $2; if ($3 > f) f = $3 }
                 END { print v, a, f, NR }' "$samples")
    cline=$("$load" tcpcopy --size "$size" --dir "$work" --duration-limit 600 | tail -n 1)
    echo "$cline"
    [ "$(tt_val "$cline" ok)" = true ] || { echo "filebench.sh: tcpcopy round $r failed" >&2; exit 1; }
    d=$(tt_val "$line" download_mb_s) c=$(tt_val "$cline" mb_s)
    dl+=("$d") cp+=("$c")
    rows+=("$r $d $c $base $peaks")
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo
echo "upload (once, 64 KiB segments, fsync + commit before 6/3 done): $(tt_val "$first" upload_mb_s) MB/s;" \
     "first download right after it: $(tt_val "$first" download_mb_s) MB/s"
echo "download: ${size} bytes, chunk $chunk, window $window; MB = 10^6 bytes; RSS in MiB of the server" \
     "(before = first sample of the round, peak = max over the samples every 100 ms)"
printf '%-7s %12s %12s %7s | %10s %10s %10s | %10s %10s %10s %7s\n' round ttserver_MB/s tcpcopy_MB/s ratio \
    rss_before anon_before file_before rss_peak anon_peak file_peak samples
for row in "${rows[@]}"; do
    set -- $row
    awk -v r="$1" -v d="$2" -v c="$3" -v bv="$4" -v ba="$5" -v bf="$6" -v pv="$7" -v pa="$8" -v pf="$9" -v n="${10}" \
        'BEGIN { printf "%-7s %12.1f %12.1f %7.2f | %10.1f %10.1f %10.1f | %10.1f %10.1f %10.1f %7d\n",
                 r, d, c, d / c, bv / 1024, ba / 1024, bf / 1024, pv / 1024, pa / 1024, pf / 1024, n }'
done
md=$(median "${dl[@]}") mc=$(median "${cp[@]}")
col() { local i=$1; for row in "${rows[@]}"; do set -- $row; echo "${!i}"; done; }
# shellcheck disable=SC2046
awk -v d="$md" -v c="$mc" -v pv="$(median $(col 7))" -v pa="$(median $(col 8))" -v pf="$(median $(col 9))" \
    'BEGIN { printf "%-7s %12.1f %12.1f %7.2f | %10s %10s %10s | %10.1f %10.1f %10.1f\n",
             "median", d, c, d / c, "", "", "", pv / 1024, pa / 1024, pf / 1024 }'
echo "ratio ttserver/tcpcopy (medians): $(awk -v d="$md" -v c="$mc" 'BEGIN { printf "%.2f", d / c }')"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
pids=()

#!/usr/bin/env bash
# How long a small offline download waits while a large offline upload finishes (fsync).
#
#   scripts/filestall.sh [--size BYTES]
#
# Starts ttserver on a temp DataDir on 127.0.0.1, stores a 1,000-byte offline file (users sm1 ->
# sm2), then starts a --size upload (default 1 GiB; users fb1 -> fb2, `ttload file`, which also
# downloads it once) and, while that runs, downloads the small file again and again
# (`ttload file --download-only`: msg login, 6/16, 6/1 mode 4, pulls), timing each from process
# start to exit. Prints the count, median and maximum of those times. The upload's last step is
# an fsync of the whole file; a download that waits behind it shows as the maximum.
set -euo pipefail
cd "$(dirname "$0")/.."

size=1073741824
while [ $# -gt 0 ]; do
    case "$1" in
        --size) size=$2; shift ;;
        *) echo "filestall.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

. scripts/lib.sh
tt_build
tt_workdir filestall

max_file=$(( size > 1073741824 ? size : 1073741824 ))
tt_conf "$work/fs.conf" "MaxFileSize=$max_file"
printf 'fb1,pw\nfb2,pw\nsm1,pw\nsm2,pw\n' > "$work/users.csv"
"$bin" admin -c "$work/fs.conf" user import "$work/users.csv" >/dev/null

tt_start server "$bin" run -c "$work/fs.conf"
login=${listen[login]:?server printed no login address}

small=$("$load" file --login "$login" --user-prefix sm --password pw --size 1000 | tail -n 1)
task=$(tt_val "$small" task)

"$load" file --login "$login" --user-prefix fb --password pw --size "$size" \
    --duration-limit 600 > "$work/big.out" &
big=$!
pids+=("$big")
times=()
while kill -0 "$big" 2>/dev/null; do
    t0=$(date +%s%N)
    "$load" file --login "$login" --user-prefix sm --password pw --size 1000 \
        --download-only "$task" > /dev/null
    times+=($(( ($(date +%s%N) - t0) / 1000000 )))
done
wait "$big" || { echo "filestall.sh: the large transfer failed" >&2; exit 1; }
echo "large: $(tail -n 1 "$work/big.out")"
printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END {
    printf "small downloads during it: %d, median %d ms, max %d ms\n", NR, v[int((NR + 1) / 2)], v[NR] }'

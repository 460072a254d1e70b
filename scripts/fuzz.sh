#!/usr/bin/env bash
# Fuzz the frame/PDU decoders for a bounded time (not part of CI).
# Usage: scripts/fuzz.sh [seconds=60] [extra libFuzzer args...]
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz needs nightly (-Z sanitizer flags). Use it if installed, else try stable with
# RUSTC_BOOTSTRAP=1 (unsupported, but usually works).
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    echo "fuzz.sh: no nightly toolchain; trying stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
fi

mkdir -p fuzz/corpus/decode
# Seed the corpus with the golden vectors (stream mode, both directions).
if [ -f tests/vectors/client_pdus.txt ]; then
    i=0
    while read -r name mc hexstr; do
        case "$name" in ''|'#'*) continue ;; esac
        for sel in 00 01; do
            printf '%s%s' "$sel" "$hexstr" | xxd -r -p > "fuzz/corpus/decode/vec-$i-$sel" 2>/dev/null \
                || true
        done
        i=$((i + 1))
    done < tests/vectors/client_pdus.txt
fi

exec cargo "${toolchain[@]}" fuzz run decode fuzz/corpus/decode -- \
    -max_total_time="$secs" -rss_limit_mb=512 -malloc_limit_mb=64 "$@"

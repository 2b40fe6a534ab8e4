#!/usr/bin/env bash
# lz4 compression of the chunk bench's typical pages, one core: lz4_flex as
# sqlseal builds it (criterion, `parts/lz4_compress/typical`) against the
# reference C implementation's benchmark, `lz4 -b` (level 1 with 1 MiB
# blocks as sqlseal's chunks, with 64 KiB blocks, and the faster, weaker
# --fast=2 and --fast=4), on the very same 8 MiB, in turn, RUNS times
# each. Shows how far any lz4 encoder gets on these pages before
# encryption is added.
#
# Usage: benches/lz4_reference.sh [--runs N]
# Needs lz4 (apt-get install lz4).

set -euo pipefail
export LC_ALL=C

RUNS=3
while (($#)); do
    case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "lz4_reference.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v lz4 >/dev/null || { echo "lz4_reference.sh: lz4 is missing (apt-get install lz4)" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
INPUT="$WORK/typical.bin"

flex() {
    SQLSEAL_BENCH_SAVE_TYPICAL="$INPUT" cargo bench -q -p sqlseal-benches \
        --manifest-path "$ROOT/Cargo.toml" --bench chunk -- \
        --warm-up-time 1 --measurement-time 3 'parts/lz4_compress/typical' 2>/dev/null |
        awk '!done && /thrpt:/ { v = $4; if ($5 == "GiB/s") v *= 1024; printf "%.0f\n", v; done = 1 }'
}

# reference [LZ4 OPTION...]: MiB/s and ratio of `lz4 -b` with the options.
reference() {
    # lz4 -b prints decimal MB/s on a line rewritten with \r; keep the last.
    lz4 -b -i3 "$@" "$INPUT" 2>&1 | tr '\r' '\n' | grep 'MB/s' | tail -1 |
        sed -E 's/.*-> +[0-9]+ \(([0-9.]+)\), *([0-9.]+) MB\/s.*/\1 \2/' |
        awk '{ printf "%.0f %.3f\n", $2 * 1e6 / 1048576, 1 / $1 }'
}

VERSION=$(lz4 --version 2>&1 | grep -o 'v[0-9.]*')
echo "| run | lz4_flex (sqlseal's build) | lz4 $VERSION -1 | -1, 64 KiB blocks | --fast=2 | --fast=4 |"
echo "|---:|---:|---:|---:|---:|---:|"
for run in $(seq "$RUNS"); do
    row="| $run | $(flex) MiB/s"
    for options in "-1 -B6" "-1 -B4" "--fast=2 -B6" "--fast=4 -B6"; do
        # shellcheck disable=SC2086 # options are words
        read -r speed ratio < <(reference $options)
        row+=" | $speed MiB/s ($ratio)"
    done
    echo "$row |"
done
echo
echo "(ratio): compressed size over input size."
echo
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"

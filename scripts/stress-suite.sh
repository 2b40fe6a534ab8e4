#!/usr/bin/env bash
# Runs the whole test suite RUNS times in a row (default 5) under CPU load:
# one busy loop per core at normal priority, so that the tests compete for
# every core as they would on a loaded CI machine. Stops at the first
# failing run. Prints one line per run and a summary; the per-run output is
# kept in stress-run-N.log under the log directory (default: a new
# temporary directory).
#
#   scripts/stress-suite.sh [RUNS] [LOGDIR]
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
logdir=${2:-$(mktemp -d)}
mkdir -p "$logdir"
cores=$(nproc)

echo "==> building the tests once"
cargo test --workspace --no-run -q

load=()
stop_load() {
    if ((${#load[@]})); then kill "${load[@]}" 2>/dev/null || true; fi
}
trap stop_load EXIT
for _ in $(seq "$cores"); do
    (while :; do :; done) &
    load+=($!)
done
echo "==> $runs runs under load ($cores busy loops on $cores cores); logs in $logdir"

for run in $(seq "$runs"); do
    started=$(date +%s)
    log="$logdir/stress-run-$run.log"
    if cargo test --workspace -q >"$log" 2>&1; then
        passed=$(grep -o '[0-9]* passed' "$log" | awk '{s += $1} END {print s}')
        echo "run $run: ok, $passed tests passed in $(($(date +%s) - started)) s"
    else
        echo "run $run: FAILED after $(($(date +%s) - started)) s; see $log"
        grep -E '^(test .* FAILED|---- )' "$log" || true
        exit 1
    fi
done
echo "==> all $runs runs passed under load"

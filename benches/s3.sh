#!/usr/bin/env bash
# A backup of a ~1 GiB SQLite database to a local S3 server (s3s-fs on the
# loopback interface) next to the same backup to a local directory: wall
# time and peak RSS of `sqlseal backup create`, `verify --latest` and
# `restore --latest`, the median of several runs, and the server's own
# peak RSS; and the floor any reader of that server has: the backup
# fetched whole by `curl` (SigV4, one GET), with the server's CPU for it.
# Prints a Markdown table; the "S3" section of docs/benchmarks.md holds one
# run of it.
#
# Usage: benches/s3.sh [--size MIB] [--runs N] [--workdir DIR] [--no-build]
# Needs sqlite3, curl 7.75+, GNU time (/usr/bin/time) and s3s-fs 0.14.1
# (`cargo install s3s-fs --version 0.14.1 --locked --features binary`).

set -euo pipefail
export LC_ALL=C

SIZE=1024
RUNS=3
WORKDIR=""
BUILD=1
while (($#)); do
    case $1 in
        --size) SIZE=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --workdir) WORKDIR=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

die() { echo "s3.sh: $*" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v sqlite3 >/dev/null || die "sqlite3 is missing"
command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
[[ -x /usr/bin/time ]] || die "GNU time is missing (apt-get install time)"
S3S=${SQLSEAL_S3S_FS:-$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")}
[[ -x $S3S ]] || die "s3s-fs is missing"

if ((BUILD)); then
    cargo build --release -p sqlseal-cli --manifest-path "$ROOT/Cargo.toml" >&2
fi
SQLSEAL="$ROOT/target/release/sqlseal"

TEMP_WORKDIR=0
if [[ -z $WORKDIR ]]; then
    WORKDIR=$(mktemp -d)
    TEMP_WORKDIR=1
fi
S3S_PID=""
cleanup() {
    [[ -z $S3S_PID ]] || kill "$S3S_PID" 2>/dev/null || true
    ((TEMP_WORKDIR == 0)) || rm -rf "$WORKDIR"
}
trap cleanup EXIT
mkdir -p "$WORKDIR"
DB="$WORKDIR/app.db"

# The same kind of rows as benches/compare.sh: orders with an index.
source "$ROOT/benches/orders_db.sh"
[[ -f $DB ]] || build_orders_db "$DB" "$SIZE"
[[ -f $WORKDIR/key.pem ]] || "$SQLSEAL" keygen -o "$WORKDIR/key.pem" >/dev/null

# The S3 server, on a free port, storing on the same disk as the directory.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORKDIR/s3/bench" "$WORKDIR/local"
"$S3S" --host 127.0.0.1 --port "$PORT" --access-key bench --secret-key bench-secret \
    "$WORKDIR/s3" >/dev/null 2>&1 &
S3S_PID=$!
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
export SQLSEAL_S3_ENDPOINT="http://127.0.0.1:$PORT" SQLSEAL_S3_ACCESSKEYID=bench
export SQLSEAL_S3_SECRETACCESSKEY=bench-secret SQLSEAL_S3_ALLOWHTTP=true

# measure NAME ARGS...: appends "NAME seconds max_rss_kib" to the results.
RESULTS="$WORKDIR/results"
: >"$RESULTS"
# Waits (at most 120 s) until the CPUs are at least 80% idle over a second,
# so that other work on a shared machine does not land in the timings.
wait_quiet() {
    local deadline=$((SECONDS + 120)) a b
    while ((SECONDS < deadline)); do
        read -r -a a < <(head -1 /proc/stat)
        sleep 1
        read -r -a b < <(head -1 /proc/stat)
        local total=0 i
        for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
        local idle=$((b[4] - a[4] + b[5] - a[5]))
        ((total > 0 && idle * 100 / total >= 80)) && return 0
    done
    echo "s3.sh: the machine stayed busy; timing anyway" >&2
}

# timed NAME COMMAND...: appends "NAME seconds max_rss_kib" to the results.
timed() {
    local name=$1 log="$WORKDIR/time.log"
    shift
    sync
    wait_quiet
    /usr/bin/time -v -o "$log" "$@" >/dev/null
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0;
        for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
    echo "$name $wall $rss" >>"$RESULTS"
}
measure() { timed "$1" "$SQLSEAL" "${@:2}"; }
# CPU seconds the S3 server has used so far.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14 + $15) / hz}' "/proc/$S3S_PID/stat"; }

KEY="$WORKDIR/key.pem"
for run in $(seq "$RUNS"); do
    for where in local s3; do
        if [[ $where == local ]]; then dir="$WORKDIR/local"; else dir="s3://bench/app"; fi
        measure "create-$where" backup create --db "$DB" --dir "$dir" --key "$KEY"
        measure "verify-$where" backup verify --dir "$dir" --latest --key "$KEY"
        rm -f "$WORKDIR/restored.db"
        measure "restore-$where" backup restore --dir "$dir" --latest --key "$KEY" \
            --db "$WORKDIR/restored.db"
    done
    # The floor of any reader of this server: the newest backup in one
    # signed GET by curl, to /dev/null, and the server's CPU for it.
    object=$(find "$WORKDIR/s3/bench/app" -name '*.sqlseal' -printf '%f\n' | sort | tail -1)
    before=$(server_cpu)
    timed download curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user bench:bench-secret \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -o /dev/null \
        "http://127.0.0.1:$PORT/bench/app/$object"
    echo "server-cpu $(awk -v a="$before" -v b="$(server_cpu)" 'BEGIN {print b - a}')" >>"$RESULTS"
    echo "run $run of $RUNS done" >&2
done
SERVER_RSS=$(awk '/VmHWM/ {print $2}' "/proc/$S3S_PID/status")
BACKUP=$(find "$WORKDIR/local" -name '*.sqlseal' -printf '%s\n' | head -1)

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
row() {
    local op=$1 local_t local_m s3_t s3_m
    local_t=$(awk -v n="$op-local" '$1 == n {print $2}' "$RESULTS" | median)
    local_m=$(awk -v n="$op-local" '$1 == n {print $3}' "$RESULTS" | sort -n | tail -1)
    s3_t=$(awk -v n="$op-s3" '$1 == n {print $2}' "$RESULTS" | median)
    s3_m=$(awk -v n="$op-s3" '$1 == n {print $3}' "$RESULTS" | sort -n | tail -1)
    printf '| %s | %.2f s | %d MiB | %.2f s | %d MiB |\n' "$op" "$local_t" \
        $((local_m / 1024)) "$s3_t" $((s3_m / 1024))
}
echo "database: $(($(stat -c %s "$DB") / 1048576)) MiB, backup: $((BACKUP / 1048576)) MiB," \
    "median of $RUNS runs (time), highest peak RSS"
echo
echo "| operation | local directory | peak RSS | s3s-fs on loopback | peak RSS |"
echo "|---|---:|---:|---:|---:|"
row create
row verify
row restore
download=$(awk '$1 == "download" {print $2}' "$RESULTS" | median)
cpu=$(awk '$1 == "server-cpu" {print $2}' "$RESULTS" | median)
printf '| the backup in one GET by curl | | | %.2f s | |\n' "$download"
echo
echo "s3s-fs CPU to serve that GET: $cpu s (median)"
echo "s3s-fs peak RSS over the whole run: $((SERVER_RSS / 1024)) MiB"

#!/usr/bin/env bash
# The integrity check split by table: `sqlseal backup restore --check full`
# and `backup verify --check full` against `PRAGMA integrity_check` of the
# sqlite3 CLI (one connection, the operator's check) on databases of the
# same size and rows in 1, 2 and 4 tables (each with an index on a text
# column), interleaved, each run after `sync` with its input read once so
# that it is warm in the page cache. Prints a Markdown table of the
# medians (wall seconds, CPU seconds, peak RSS).
#
# Usage: benches/check_split.sh [--size MIB] [--tables "1 2 4"] [--runs N]
#                               [--workdir DIR] [--no-build]
# Needs sqlite3 and GNU time (/usr/bin/time).

set -euo pipefail
export LC_ALL=C

SIZE=1024
TABLES="1 2 4"
RUNS=3
WORKDIR=""
BUILD=1
while (($#)); do
    case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --tables) TABLES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check_split.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v sqlite3 >/dev/null || { echo "check_split.sh: sqlite3 is missing (apt-get install sqlite3)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "check_split.sh: GNU time is missing (apt-get install time)" >&2; exit 2; }
((BUILD == 0)) || cargo build --release -p sqlseal-cli --manifest-path "$ROOT/Cargo.toml" >&2
SQLSEAL="$ROOT/target/release/sqlseal"

TEMP=0
if [[ -z $WORKDIR ]]; then
    WORKDIR=$(mktemp -d)
    TEMP=1
fi
trap '((TEMP == 0)) || rm -rf "$WORKDIR"' EXIT
mkdir -p "$WORKDIR"
source "$ROOT/benches/orders_db.sh"
KEY=$WORKDIR/key.pem
[[ -f $KEY ]] || "$SQLSEAL" keygen -o "$KEY" >/dev/null

# timed NAME INPUT CMD...: runs CMD after `sync` and a warm read of INPUT;
# appends "NAME wall cpu rss_kib" to $RESULTS.
timed() {
    local name=$1 input=$2 log=$WORKDIR/time.log
    shift 2
    sync
    cat "$input" >/dev/null
    /usr/bin/time -f '%e %U %S %M' -o "$log" "$@" >/dev/null
    read -r wall user sys rss <"$log"
    echo "$name $wall $(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}') $rss" >>"$RESULTS"
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

echo "| tables | rows | \`sqlite3 DB 'PRAGMA integrity_check'\` | \`sqlseal backup verify --check full\` | \`sqlseal backup restore --check full\` |"
echo "|---:|---:|---|---|---|"
for tables in $TABLES; do
    db=$WORKDIR/db-$SIZE-$tables.db
    [[ -f $db ]] || build_orders_db "$db" "$SIZE" "$tables"
    dir=$WORKDIR/backups-$tables
    if [[ ! -d $dir ]]; then
        mkdir -p "$dir"
        "$SQLSEAL" backup create --db "$db" --dir "$dir" --key "$KEY" --check none >/dev/null
    fi
    backup=$(ls "$dir"/*.sqlseal | head -1)
    RESULTS=$WORKDIR/results-$tables
    : >"$RESULTS"
    for _ in $(seq "$RUNS"); do
        timed sqlite3 "$db" sqlite3 "$db" 'PRAGMA integrity_check'
        timed verify "$backup" "$SQLSEAL" backup verify "$backup" --key "$KEY" --check full
        rm -f "$WORKDIR/restored.db"
        timed restore "$backup" "$SQLSEAL" backup restore "$backup" --key "$KEY" \
            --db "$WORKDIR/restored.db" --check full
    done
    rm -f "$WORKDIR/restored.db"
    rows=$(sqlite3 "$db" "SELECT (SELECT count(*) FROM orders) * $tables")
    cells=""
    for name in sqlite3 verify restore; do
        wall=$(awk -v n=$name '$1 == n {print $2}' "$RESULTS" | median)
        cpu=$(awk -v n=$name '$1 == n {print $3}' "$RESULTS" | median)
        rss=$(awk -v n=$name '$1 == n {print $4}' "$RESULTS" | sort -n | tail -1)
        cells="$cells | $wall s ($cpu s CPU, $((rss / 1024)) MiB)"
    done
    echo "| $tables | $rows$cells |"
done

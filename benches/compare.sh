#!/usr/bin/env bash
# End-to-end comparison of sqlseal with the script an operator would write
# (`sqlite3 .backup`, then `lz4 -1`, then `age`), on a ~1 GiB and a ~256 MiB
# SQLite database, and of backups taken while a writer commits 1,000 times
# a second. Writes the results into the "End-to-end comparison" section of
# docs/benchmarks.md (the rest of that file is left alone).
#
# Run from anywhere in the repository:  benches/compare.sh [options]
# See --help for the options. It takes several minutes per size.

set -euo pipefail
export LC_ALL=C

usage() {
    cat <<'EOF'
Usage: benches/compare.sh [options]

Builds SQLite databases of realistic rows, then times (wall seconds) and
records the peak RSS of: sqlite3 .backup; the operator script
(.backup, lz4 -1, age) and its restore (age -d | lz4 -d) and
PRAGMA integrity_check; sqlseal backup create (each method), verify and
restore. Then backs up while a writer commits at a fixed rate. Writes the
tables into docs/benchmarks.md.

Options:
  --sizes LIST       database sizes in MiB, comma- or space-separated
                     (default: 1024,256)
  --runs N           timed runs of each operation; the median is reported
                     (default: 3)
  --workdir DIR      work in DIR (kept afterwards); a database built there
                     by an earlier run of the same size is reused
  --keep             keep the temporary work directory (its databases, keys
                     and logs; backups are deleted after each size)
  --doc FILE         the file to write the section into
                     (default: docs/benchmarks.md in this repository)
  --no-doc           print the section instead of writing it
  --no-live          skip the backups under a live writer
  --rate N           commits a second of the live writer (default: 1000)
  --live-timeout S   give up on a backup under the writer after S seconds
                     (default: 60)
  --quiet-pct P      before each timing, wait until other processes use at
                     most P% of the CPUs (default: 20) ...
  --quiet-wait S     ... but for at most S seconds (default: 120)
  --no-build         use the existing release binary
  -h, --help         this text
EOF
}

SIZES="1024 256"
RUNS=3
WORK=""
KEEP=0
DOC=""
WRITE_DOC=1
LIVE=1
RATE=1000
LIVE_TIMEOUT=60
QUIET_PCT=20
QUIET_WAIT=120
BUILD=1

while (($#)); do
    case "$1" in
    --sizes | --size)
        SIZES=${2//,/ }
        shift 2
        ;;
    --runs)
        RUNS=$2
        shift 2
        ;;
    --workdir)
        WORK=$2
        KEEP=1
        shift 2
        ;;
    --keep)
        KEEP=1
        shift
        ;;
    --doc)
        DOC=$2
        shift 2
        ;;
    --no-doc)
        WRITE_DOC=0
        shift
        ;;
    --no-live)
        LIVE=0
        shift
        ;;
    --rate)
        RATE=$2
        shift 2
        ;;
    --live-timeout)
        LIVE_TIMEOUT=$2
        shift 2
        ;;
    --quiet-pct)
        QUIET_PCT=$2
        shift 2
        ;;
    --quiet-wait)
        QUIET_WAIT=$2
        shift 2
        ;;
    --no-build)
        BUILD=0
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "error: unknown option $1 (see --help)" >&2
        exit 2
        ;;
    esac
done

for n in $SIZES $RUNS $RATE $LIVE_TIMEOUT; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "error: $n is not a positive whole number" >&2; exit 2; }
done
for n in $QUIET_PCT $QUIET_WAIT; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "error: $n is not a whole number" >&2; exit 2; }
done
[[ -n $SIZES ]] || { echo "error: --sizes needs at least one size" >&2; exit 2; }

BENCHES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCHES")
DOC=${DOC:-$REPO/docs/benchmarks.md}

say() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# --- 1. tools and the release binary ---------------------------------------

missing=()
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v lz4 >/dev/null || missing+=(lz4)
{ command -v age >/dev/null && command -v age-keygen >/dev/null; } || missing+=(age)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get update
    apt-get install -y "${missing[@]}"
fi

TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
SQLSEAL=$TARGET_DIR/release/sqlseal
if ((BUILD)); then
    say "building sqlseal (release)"
    (cd "$REPO" && cargo build --release -p sqlseal-cli)
fi
[[ -x $SQLSEAL ]] || die "no release binary at $SQLSEAL; run without --no-build"
WRITER=(python3 "$BENCHES/writer.py")

# --- work directory ----------------------------------------------------------

if [[ -z $WORK ]]; then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/sqlseal-compare.XXXXXX")
else
    mkdir -p "$WORK"
    WORK=$(cd "$WORK" && pwd)
fi
WRITER_PID=""
cleanup() {
    if [[ -n $WRITER_PID ]]; then
        kill "$WRITER_PID" 2>/dev/null || true
        wait "$WRITER_PID" 2>/dev/null || true
    fi
    if ((KEEP)); then
        say "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
mkdir -p "$WORK/logs" "$WORK/tmp"
# Temporary files of the tools under test go here, on the same disk as the rest.
export TMPDIR=$WORK/tmp
RESULTS=$WORK/results.tsv # size name run wall_us rss_kib out_bytes busy_pct cpu_ms
FACTS=$WORK/facts.tsv     # size key value  (size "-" for the machine)
: >"$RESULTS"
: >"$FACTS"
fact() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$FACTS"; }

# --- machine ---------------------------------------------------------------

fact - date "$(date -u +%Y-%m-%d)"
fact - cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
fact - cores "$(nproc)"
fact - memory_kib "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
fact - kernel "$(uname -r)"
fact - rustc "$(rustc --version | awk '{print $2}')"
fact - sqlite3 "$(sqlite3 --version | awk '{print $1}')"
fact - lz4 "$(lz4 --version 2>&1 | grep -o 'v[0-9][0-9.]*' | head -n 1 | tr -d v)"
fact - age "$(age --version)"
fact - python_sqlite "$(python3 -c 'import sqlite3; print(sqlite3.sqlite_version)')"
fact - libsqlite3_sys "$(awk '/^name = "libsqlite3-sys"/ {getline; gsub(/[^0-9.]/, ""); print}' "$REPO/Cargo.lock")"
fact - commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
# Whether the binary was built from a tree with uncommitted changes to the crates.
fact - dirty "$(git -C "$REPO" status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l)"
fact - runs "$RUNS"
fact - rate "$RATE"
fact - live_timeout "$LIVE_TIMEOUT"
fact - quiet_pct "$QUIET_PCT"
fact - quiet_wait "$QUIET_WAIT"
fact - loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"

STARTED=$SECONDS

# --- keys --------------------------------------------------------------------

KEY=$WORK/sqlseal.key
AGE_KEY=$WORK/age.key
[[ -f $KEY ]] || "$SQLSEAL" keygen -o "$KEY" >/dev/null
[[ -f $AGE_KEY ]] || age-keygen -o "$AGE_KEY" 2>/dev/null
AGE_RECIPIENT=$(age-keygen -y "$AGE_KEY")

# --- helpers -----------------------------------------------------------------

# Busy share of all CPUs (percent) over half a second, from /proc/stat.
cpu_busy_pct() {
    local u n s i w q sq st b1 i1 b2 i2
    read -r _ u n s i w q sq st _ </proc/stat
    b1=$((u + n + s + q + sq + st))
    i1=$((i + w))
    sleep 0.5
    read -r _ u n s i w q sq st _ </proc/stat
    b2=$((u + n + s + q + sq + st))
    i2=$((i + w))
    local total=$((b2 - b1 + i2 - i1))
    ((total > 0)) || total=1
    echo $(((b2 - b1) * 100 / total))
}

# Before every timing: write back dirty pages (so no contender pays for
# another's writeback), read the inputs once (so every contender starts with
# its input in the page cache), and wait, up to QUIET_WAIT seconds, until
# other processes leave the CPUs mostly idle. BUSY holds the last sample.
BUSY=0
QUIET_TIMEOUTS=0
settle() {
    sync
    local f
    for f in "$@"; do
        cat "$f" >/dev/null
    done
    local waited=0
    BUSY=$(cpu_busy_pct)
    while ((BUSY > QUIET_PCT)); do
        if ((waited >= QUIET_WAIT)); then
            QUIET_TIMEOUTS=$((QUIET_TIMEOUTS + 1))
            say "other processes keep the CPUs ${BUSY}% busy; measuring anyway"
            break
        fi
        sleep 2
        waited=$((waited + 3))
        BUSY=$(cpu_busy_pct)
    done
}

output_bytes() {
    local out=$1
    if [[ -f $out ]]; then
        stat -c %s "$out"
    elif [[ -d $out ]]; then
        find "$out" -type f -name '*.sqlseal' -printf '%s\n' | awk '{s += $1} END {print s + 0}'
    else
        echo 0
    fi
}

# timed SIZE NAME RUN OUTPUT CMD...: runs CMD under /usr/bin/time -v and
# records wall time, peak RSS, the size of OUTPUT (a file, or the .sqlseal
# files in a directory) and how busy the CPUs were just before.
timed() {
    local size=$1 name=$2 run=$3 output=$4
    shift 4
    local log=$WORK/logs/$size-$name-$run.log tfile=$WORK/logs/$size-$name-$run.time
    local start end rc=0
    start=${EPOCHREALTIME/./}
    /usr/bin/time -v -o "$tfile" "$@" >"$log" 2>&1 || rc=$?
    end=${EPOCHREALTIME/./}
    if ((rc != 0)); then
        tail -n 5 "$log" >&2
        die "$name ($size MiB, run $run) failed with exit status $rc; log: $log"
    fi
    local rss cpu
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tfile")
    cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%d", s * 1000}' "$tfile")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$name" "$run" "$((end - start))" \
        "$rss" "$(output_bytes "$output")" "$BUSY" "$cpu" >>"$RESULTS"
    printf '  %-22s run %s: %6.2f s wall, %6.2f s CPU, %6d KiB peak RSS, CPUs %d%% busy before\n' \
        "$name" "$run" "$(awk -v us=$((end - start)) 'BEGIN {print us / 1e6}')" \
        "$(awk -v ms="$cpu" 'BEGIN {print ms / 1e3}')" "$rss" "$BUSY" >&2
}

# The operator's script: a copy with the backup API, compressed, encrypted.
# $1 database, $2 temporary copy, $3 age recipient, $4 output, $5 "sync" to
# fsync the output at the end (sqlseal always does).
# shellcheck disable=SC2016 # expanded by the inner bash
OPERATOR_BACKUP='set -euo pipefail
sqlite3 "$1" ".backup \"$2\""
lz4 -1 -q -c "$2" | age -r "$3" -o "$4"
rm -f "$2"
if [[ $5 == sync ]]; then sync "$4"; fi'
# Its restore: $1 age identity, $2 backup, $3 output, $4 "sync" as above.
# shellcheck disable=SC2016
OPERATOR_RESTORE='set -euo pipefail
age -d -i "$1" "$2" | lz4 -d -q -c >"$3"
if [[ $4 == sync ]]; then sync "$3"; fi'

# A database of about SIZE MiB of order rows (text, integers, an index on a
# text column), built with the sqlite3 CLI and a recursive CTE, then put in
# WAL mode like a live service's.
build_db() {
    local size=$1 db=$2
    local target=$((size * 1024 * 1024))
    rm -f "$db" "$db-wal" "$db-shm"
    sqlite3 "$db" <<'SQL'
PRAGMA page_size = 4096;
CREATE TABLE orders(
    id INTEGER PRIMARY KEY,
    customer TEXT NOT NULL,
    email TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    status TEXT NOT NULL,
    note TEXT,
    created_at INTEGER NOT NULL);
CREATE INDEX orders_customer ON orders(customer);
CREATE TABLE events(id INTEGER PRIMARY KEY, at REAL NOT NULL, payload TEXT NOT NULL);
CREATE TABLE counter(n INTEGER NOT NULL);
INSERT INTO counter VALUES (0);
SQL
    local rows=0 bytes batch
    bytes=$(stat -c %s "$db")
    while ((bytes < target)); do
        if ((rows == 0)); then
            # A first batch well under the target (rows take ~170 bytes with the index).
            batch=$((target / 400))
            ((batch <= 200000)) || batch=200000
            ((batch >= 1000)) || batch=1000
        else
            # Enough rows to reach the target at the bytes per row so far.
            batch=$(((target - bytes) * rows / bytes + 1000))
            ((batch <= 1000000)) || batch=1000000
        fi
        sqlite3 "$db" >/dev/null <<SQL
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
WITH RECURSIVE seq(n) AS (SELECT $((rows + 1)) UNION ALL SELECT n + 1 FROM seq WHERE n < $((rows + batch))),
rows(n, name, k) AS (
    SELECT n,
        CASE n % 8 WHEN 0 THEN 'Ada' WHEN 1 THEN 'Grace' WHEN 2 THEN 'Linus' WHEN 3 THEN 'Margaret'
            WHEN 4 THEN 'Dennis' WHEN 5 THEN 'Barbara' WHEN 6 THEN 'Ken' ELSE 'Frances' END,
        abs(random()) % 99991
    FROM seq)
INSERT INTO orders(id, customer, email, amount_cents, status, note, created_at)
SELECT n, name || ' ' || k, lower(name) || '.' || k || '@example.com', abs(random()) % 100000,
    CASE n % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' ELSE 'returned' END,
    'order ' || n || ' for ' || name || ' ' || k || ': ' || (n % 17 + 1)
        || ' items, deliver to warehouse ' || (n % 31) || ', ref ' || hex(randomblob(6)),
    1700000000 + n * 37 + abs(random()) % 37
FROM rows;
SQL
        rows=$((rows + batch))
        bytes=$(stat -c %s "$db")
    done
    [[ $(sqlite3 "$db" 'PRAGMA journal_mode = WAL') == wal ]] || die "could not put $db in WAL mode"
    echo "$rows" >"$db.rows"
}

# --- 2-4. the timed comparison -----------------------------------------------

run_round() {
    local size=$1 run=$2
    local d=$WORK/$size db=$WORK/db-$size.db
    local age_out=$d/script.db.lz4.age script_db=$d/script-restored.db

    rm -f "$d/copy.db"
    settle "$db"
    timed "$size" sqlite_backup "$run" "$d/copy.db" sqlite3 "$db" ".backup \"$d/copy.db\""
    rm -f "$d/copy.db"

    for variant in nosync sync; do
        local name=script_backup
        [[ $variant == sync ]] && name=script_backup_sync
        rm -f "$age_out" "$d/script-tmp.db"
        settle "$db"
        timed "$size" "$name" "$run" "$age_out" \
            bash -c "$OPERATOR_BACKUP" _ "$db" "$d/script-tmp.db" "$AGE_RECIPIENT" "$age_out" "$variant"
    done

    for variant in sync nosync; do
        local name=script_restore
        [[ $variant == sync ]] && name=script_restore_sync
        rm -f "$script_db" "$script_db-wal" "$script_db-shm"
        settle "$age_out"
        timed "$size" "$name" "$run" "$script_db" \
            bash -c "$OPERATOR_RESTORE" _ "$AGE_KEY" "$age_out" "$script_db" "$variant"
    done

    settle "$script_db"
    timed "$size" integrity_check "$run" - sqlite3 "$script_db" 'PRAGMA integrity_check'
    [[ $(cat "$WORK/logs/$size-integrity_check-$run.log") == ok ]] ||
        die "integrity_check of the operator's restored database did not say ok"

    local m
    for m in dbpage backup-api vacuum; do
        rm -rf "$d/backups-$m"
        settle "$db"
        timed "$size" "create_$m" "$run" "$d/backups-$m" \
            "$SQLSEAL" backup create --db "$db" --dir "$d/backups-$m" --key "$KEY" --method "$m"
    done

    # The same without the integrity check recorded at backup time.
    rm -rf "$d/backups-nocheck"
    settle "$db"
    timed "$size" create_nocheck "$run" "$d/backups-nocheck" \
        "$SQLSEAL" backup create --db "$db" --dir "$d/backups-nocheck" --key "$KEY" --check none

    local backup
    backup=$(find "$d/backups-dbpage" -name '*.sqlseal' | head -n 1)
    settle "$backup"
    timed "$size" verify "$run" - "$SQLSEAL" backup verify "$backup" --key "$KEY"
    settle "$backup"
    timed "$size" verify_full "$run" - "$SQLSEAL" backup verify "$backup" --key "$KEY" --check full

    rm -f "$d/restored.db" "$d/restored.db-wal" "$d/restored.db-shm"
    settle "$backup"
    timed "$size" restore "$run" "$d/restored.db" \
        "$SQLSEAL" backup restore "$backup" --key "$KEY" --db "$d/restored.db"
    rm -f "$d/restored-full.db" "$d/restored-full.db-wal" "$d/restored-full.db-shm"
    settle "$backup"
    timed "$size" restore_full "$run" "$d/restored-full.db" \
        "$SQLSEAL" backup restore "$backup" --key "$KEY" --db "$d/restored-full.db" --check full
}

# --- 5. backups while a writer commits ---------------------------------------

start_writer() {
    local db=$1 log=$2 ready=$3
    rm -f "$log" "$ready"
    "${WRITER[@]}" run --db "$db" --rate "$RATE" --log "$log" --ready "$ready" &
    WRITER_PID=$!
    local i
    for i in $(seq 100); do
        [[ -f $ready ]] && return 0
        kill -0 "$WRITER_PID" 2>/dev/null || die "the writer stopped; see above"
        sleep 0.1
    done
    die "the writer did not start committing within 10 s (waited $i times)"
}

stop_writer() {
    kill -TERM "$WRITER_PID"
    wait "$WRITER_PID" || die "the writer failed"
    WRITER_PID=""
}

live() {
    local size=$1 who=$2
    local d=$WORK/$size db=$WORK/db-$size.db
    local log=$d/writer-$who.log out
    say "$size MiB: backup with $who while the writer commits $RATE times a second"
    settle "$db"
    start_writer "$db" "$log" "$d/writer.ready"
    sleep 3 # the baseline: the writer alone
    local start end rc=0 tfile=$WORK/logs/$size-live-$who.time
    start=$EPOCHREALTIME
    case $who in
    sqlseal)
        out=$d/live-backups
        rm -rf "$out"
        /usr/bin/time -v -o "$tfile" timeout -k 5 "$LIVE_TIMEOUT" \
            "$SQLSEAL" backup create --db "$db" --dir "$out" --key "$KEY" --method dbpage \
            >"$WORK/logs/$size-live-$who.log" 2>&1 || rc=$?
        ;;
    sqlite3)
        out=$d/live-copy.db
        rm -f "$out"
        /usr/bin/time -v -o "$tfile" timeout -k 5 "$LIVE_TIMEOUT" \
            sqlite3 "$db" ".backup \"$out\"" >"$WORK/logs/$size-live-$who.log" 2>&1 || rc=$?
        ;;
    esac
    end=$EPOCHREALTIME
    sleep 2
    stop_writer
    local finished=1
    if ((rc == 124 || rc == 137)); then
        finished=0
    elif ((rc != 0)); then
        die "backup with $who under the writer failed with exit status $rc"
    fi
    fact "$size" "live_${who}_finished" "$finished"
    fact "$size" "live_${who}_seconds" "$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}')"
    fact "$size" "live_${who}_rss_kib" "$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tfile")"
    local kv
    while IFS= read -r kv; do
        fact "$size" "live_${who}_${kv%%=*}" "${kv#*=}"
    done < <("${WRITER[@]}" analyze --log "$log" --start "$start" --end "$end" --baseline 3)

    # A consistent image has as many events as the counter says.
    local consistent=-
    if ((finished)); then
        case $who in
        sqlseal)
            local backup
            backup=$(find "$out" -name '*.sqlseal' | head -n 1)
            rm -f "$d/live-restored.db"
            "$SQLSEAL" backup restore "$backup" --key "$KEY" --db "$d/live-restored.db" >/dev/null
            consistent=$("${WRITER[@]}" check --db "$d/live-restored.db")
            ;;
        sqlite3)
            [[ $(sqlite3 "$out" 'PRAGMA integrity_check') == ok ]] || die "the live copy fails integrity_check"
            consistent=$("${WRITER[@]}" check --db "$out")
            ;;
        esac
    fi
    fact "$size" "live_${who}_consistent" "$consistent"
    say "  finished=$finished in $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') s, consistent=$consistent"
}

# --- main --------------------------------------------------------------------

for size in $SIZES; do
    d=$WORK/$size
    db=$WORK/db-$size.db
    mkdir -p "$d"
    if [[ -f $db && -f $db.rows ]]; then
        say "$size MiB: reusing the database built earlier in the work directory"
        fact "$size" build_seconds -
    else
        say "$size MiB: building the database"
        t0=$SECONDS
        build_db "$size" "$db"
        fact "$size" build_seconds $((SECONDS - t0))
    fi
    sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null
    fact "$size" db_bytes "$(stat -c %s "$db")"
    fact "$size" rows "$(cat "$db.rows")"

    for run in $(seq "$RUNS"); do
        say "$size MiB: run $run of $RUNS"
        run_round "$size" "$run"
    done

    # The restored databases hold what the original does.
    want=$(sqlite3 "$db" 'SELECT count(*), sum(amount_cents) FROM orders')
    for restored in "$d/restored.db" "$d/script-restored.db"; do
        got=$(sqlite3 "$restored" 'SELECT count(*), sum(amount_cents) FROM orders')
        [[ $got == "$want" ]] || die "$restored holds $got, the original $want"
    done

    if ((LIVE)); then
        live "$size" sqlseal
        live "$size" sqlite3
    fi
    # Free the disk before the next size; keep the database for --workdir reuse.
    rm -rf "$d/backups-"* "$d/live-backups" "$d"/*.db "$d"/*.db-wal "$d"/*.db-shm "$d"/*.age
done

fact - loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
fact - minutes $(((SECONDS - STARTED + 30) / 60))
fact - quiet_timeouts "$QUIET_TIMEOUTS"

section=$WORK/section.md
python3 "$BENCHES/compare_report.py" --results "$RESULTS" --facts "$FACTS" >"$section"
if ((WRITE_DOC)); then
    python3 "$BENCHES/compare_report.py" --splice "$section" --doc "$DOC"
    say "wrote the section into $DOC"
else
    cat "$section"
fi

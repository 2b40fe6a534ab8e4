#!/usr/bin/env bash
# One `sqlseal run` serving many small databases (default 1,000) found by a
# `Database.Dirs` pattern: start-up time, one backup round at Frequency with
# Concurrency 2 while a writer commits to one of the databases, the daemon's
# RSS during and after the round, then start-up again from a directory store
# that holds a backup of every database. Writes the section "One daemon,
# 1,000 databases" of docs/benchmarks.md (the rest of that file is left
# alone).
#
# Run from anywhere in the repository:  benches/tenants.sh [options]
# See --help for the options. It takes about five minutes at 1,000
# databases after the build.

set -euo pipefail
export LC_ALL=C

usage() {
    cat <<'EOF'
Usage: benches/tenants.sh [options]

Builds N small WAL databases under tenants/tNNNN/app.db in a temporary
directory, runs one sqlseal daemon over them (Database.Dirs), and measures:
start-up (to the last database's "next backup scheduled" log line), one full
backup round (all N backed up, no errors), a writer's commit latency during
the round, the daemon's RSS during and after the round, and start-up again
(several restarts) with a backup of every database in the store.

Options:
  --count N          databases (default: 1000)
  --frequency S      Backup.Frequency of the round, in seconds (default: 60)
  --concurrency N    Backup.Concurrency (default: 2)
  --rate N           commits a second of the writer (default: 100)
  --idle S           seconds to watch the idle daemon after the round
                     (default: the frequency, so that every database falls
                     due once more and is found unchanged; the steady-state
                     RSS is taken over the last two thirds)
  --restarts N       timed restarts with backups present (default: 3)
  --restart-frequency DUR
                     Backup.Frequency during the restarts, so that nothing
                     falls due while they are timed (default: 1h)
  --keep             keep the temporary work directory
  --doc FILE         the file to write the section into
                     (default: docs/benchmarks.md in this repository)
  --no-doc           print the section instead of writing it (implied when
                     --count is not 1000, unless --doc is given)
  --no-build         use the existing release binary
  -h, --help         this text
EOF
}

COUNT=1000
FREQ=60
CONCURRENCY=2
RATE=100
IDLE=""
RESTARTS=3
RESTART_FREQ=1h
KEEP=0
DOC=""
WRITE_DOC=""
BUILD=1

while (($#)); do
    case "$1" in
    --count) COUNT=$2; shift 2 ;;
    --frequency) FREQ=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --restarts) RESTARTS=$2; shift 2 ;;
    --restart-frequency) RESTART_FREQ=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --doc) DOC=$2; WRITE_DOC=1; shift 2 ;;
    --no-doc) WRITE_DOC=0; shift ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

IDLE=${IDLE:-$FREQ}
for n in $COUNT $FREQ $CONCURRENCY $RATE $IDLE $RESTARTS; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "error: $n is not a positive whole number" >&2; exit 2; }
done
if [[ -z $WRITE_DOC ]]; then
    if ((COUNT == 1000)); then WRITE_DOC=1; else WRITE_DOC=0; fi
fi

BENCHES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCHES")
DOC=${DOC:-$REPO/docs/benchmarks.md}
HELPER=(python3 "$BENCHES/tenants.py")

say() { printf '[tenants %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# --- tools and the release binary --------------------------------------------

for tool in python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
SQLSEAL=$TARGET_DIR/release/sqlseal
if ((BUILD)); then
    say "building sqlseal (release)"
    (cd "$REPO" && cargo build --release -p sqlseal-cli)
fi
[[ -x $SQLSEAL ]] || die "no release binary at $SQLSEAL; run without --no-build"

# --- work directory and cleanup ----------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sqlseal-tenants.XXXXXX")
DAEMON_PID=""
WRITER_PID=""
SAMPLER_PID=""
stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$SAMPLER_PID"
    stop_pid "$WRITER_PID"
    stop_pid "$DAEMON_PID"
    if ((KEEP)); then
        say "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
mkdir -p "$WORK/tenants" "$WORK/backups" "$WORK/logs"

FACTS=$WORK/facts.tsv
: >"$FACTS"
fact() { printf '%s\t%s\n' "$1" "$2" >>"$FACTS"; }
# kv KEY_PREFIX CMD...: runs a helper that prints key=value lines and
# records each as a fact KEY_PREFIX_key (and as a shell variable of that name).
kv() {
    local prefix=$1 line key value
    shift
    while IFS='=' read -r key value; do
        [[ -n $key ]] || continue
        [[ $key == example ]] && { say "  $value"; continue; }
        fact "${prefix}_$key" "$value"
        printf -v "${prefix}_$key" '%s' "$value"
    done < <("$@")
}

# --- machine -------------------------------------------------------------------

fact date "$(date -u +%Y-%m-%d)"
fact cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
fact cores "$(nproc)"
fact memory_kib "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
fact kernel "$(uname -r)"
fact rustc "$(rustc --version 2>/dev/null | awk '{print $2}' || echo unknown)"
fact nofile "$(ulimit -n)"
fact commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
fact dirty "$(git -C "$REPO" status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l)"
fact loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
fact count "$COUNT"
fact frequency "$FREQ"
fact concurrency "$CONCURRENCY"
fact rate "$RATE"
fact restart_frequency "$RESTART_FREQ"
STARTED=$SECONDS

# --- 1. databases, key, configuration -----------------------------------------

say "building $COUNT databases"
kv db "${HELPER[@]}" make --dir "$WORK/tenants" --count "$COUNT"
say "  $((db_bytes / 1048576)) MiB, $db_rows rows"
"$SQLSEAL" keygen -o "$WORK/server.pem" >/dev/null

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CONF=$WORK/sqlseal.yaml
write_config() {
    cat >"$CONF" <<EOF
Database:
  Dirs: ["$WORK/tenants/*/app.db"]
Backup:
  Location: $WORK/backups
  Frequency: $1
  Concurrency: $CONCURRENCY
  Keys: [$WORK/server.pem]
Status:
  File: $WORK/status.json
Metrics:
  Listen: 127.0.0.1:$PORT
EOF
}

# --- helpers -------------------------------------------------------------------

# Samples the daemon's VmRSS (KiB) and CPU time (user + system, clock
# ticks) every 0.25 s into $1 as "epoch rss ticks".
sample() {
    local pid=$1 out=$2 rss ticks stat
    while [[ -r /proc/$pid/status ]]; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || break
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || break
        # Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
        read -r -a f <<<"${stat##*) }"
        ticks=$((f[11] + f[12]))
        [[ -n $rss ]] && printf '%s %s %s\n' "$EPOCHREALTIME" "$rss" "$ticks" >>"$out"
        sleep 0.25
    done
}

# start_daemon NAME: starts the daemon with its JSON log in logs/NAME.log
# and an RSS sampler; sets DAEMON_PID, T0 (epoch seconds), LOG, SAMPLES.
start_daemon() {
    LOG=$WORK/logs/$1.log
    SAMPLES=$WORK/logs/$1.rss
    : >"$SAMPLES"
    T0=$EPOCHREALTIME
    "$SQLSEAL" run --config "$CONF" --log-format json 2>"$LOG" &
    DAEMON_PID=$!
    sample "$DAEMON_PID" "$SAMPLES" &
    SAMPLER_PID=$!
}

# stop_daemon: SIGTERM, wait; fails if the daemon exits with an error.
stop_daemon() {
    local rc=0
    kill -TERM "$DAEMON_PID"
    wait "$DAEMON_PID" || rc=$?
    DAEMON_PID=""
    stop_pid "$SAMPLER_PID"
    SAMPLER_PID=""
    ((rc == 0)) || { tail -n 5 "$LOG" >&2; die "the daemon exited with status $rc on SIGTERM; log: $LOG"; }
}

alive() { [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; }

# distinct MESSAGE: how many databases have logged MESSAGE so far.
distinct() {
    { grep -F "\"message\":\"$1\"" "$LOG" || true; } | { grep -o '"database":"[^"]*"' || true; } | sort -u | wc -l
}

# wait_for MESSAGE TIMEOUT_S [soft]: until every database has logged
# MESSAGE; on timeout fails the script, or with "soft" returns 1.
wait_for() {
    local message=$1 timeout=$2 soft=${3:-} deadline n=0
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        alive || { tail -n 5 "$LOG" >&2; die "the daemon died; log: $LOG"; }
        n=$(distinct "$message")
        ((n >= COUNT)) && return 0
        sleep 0.2
    done
    say "after ${timeout} s only $n of $COUNT databases logged \"$message\""
    [[ $soft == soft ]] && return 1
    tail -n 3 "$LOG" >&2
    die "log: $LOG"
}

wait_started() {
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        alive || { tail -n 5 "$LOG" >&2; die "the daemon died; log: $LOG"; }
        grep -qF '"message":"sqlseal daemon started"' "$LOG" && return 0
        sleep 0.1
    done
    die "no \"sqlseal daemon started\" after $1 s; log: $LOG"
}

# since EPOCH: seconds from T0 to EPOCH.
since() { awk -v a="$T0" -v b="$1" 'BEGIN {printf "%.3f", b - a}'; }
rss_now() { awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status"; }
hwm_now() { awk '/^VmHWM:/ {print $2}' "/proc/$DAEMON_PID/status"; }

# metric NAME LABEL_FILTER: the sum of a metric's series whose labels
# contain LABEL_FILTER, from /metrics.
metric() {
    curl -sf "http://127.0.0.1:$PORT/metrics" |
        awk -v name="$1" -v filter="$2" 'index($0, name) == 1 && index($0, filter) {s += $NF} END {printf "%d\n", s}'
}

# --- 2-5. the first start, the round, the writer, RSS --------------------------

PERIOD_MS=$((FREQ * 1000))
WRITER_TENANT=$("${HELPER[@]}" pick --count "$COUNT" --period-ms "$PERIOD_MS")
WRITER_DB=$WORK/tenants/$WRITER_TENANT/app.db
WRITER_NAME=$WRITER_TENANT/app.db
fact writer_db "$WRITER_NAME"
BASELINE=5
fact writer_baseline "$BASELINE"
say "writer: $RATE commits/s to $WRITER_NAME"
python3 "$BENCHES/writer.py" run --db "$WRITER_DB" --rate "$RATE" --log "$WORK/logs/writer.log" \
    --ready "$WORK/logs/writer.ready" --max-seconds $((FREQ * 4 + 600)) 2>"$WORK/logs/writer.err" &
WRITER_PID=$!
for _ in $(seq 100); do [[ -s $WORK/logs/writer.ready ]] && break; sleep 0.1; done
[[ -s $WORK/logs/writer.ready ]] || die "the writer did not start: $(cat "$WORK/logs/writer.err")"
sleep "$BASELINE"

write_config "${FREQ}s"
say "first start (empty store), Frequency ${FREQ}s, Concurrency $CONCURRENCY"
start_daemon first
wait_started 120
wait_for "next backup scheduled" 300
fact cold_scheduled_kib "$(rss_now)"
kv cold_started "${HELPER[@]}" times --log "$LOG" --message "sqlseal daemon started"
kv cold_sched "${HELPER[@]}" times --log "$LOG" --message "next backup scheduled"
fact cold_started_s "$(since "$cold_started_first")"
fact cold_startup_s "$(since "$cold_sched_last_new")"
say "  started after $(since "$cold_started_first") s, all scheduled after $(since "$cold_sched_last_new") s"

say "waiting for the round (spread over ${FREQ} s)"
ROUND_COMPLETE=1
wait_for "backup done" $((FREQ * 3 + 300)) soft || ROUND_COMPLETE=0
T_ROUND=$EPOCHREALTIME
# Stop the writer now; it writes its log on SIGTERM.
WRITER_ALIVE=1
kill -0 "$WRITER_PID" 2>/dev/null || WRITER_ALIVE=0
kill -TERM "$WRITER_PID" 2>/dev/null || true
wait "$WRITER_PID" || WRITER_ALIVE=0
WRITER_PID=""
[[ -s $WORK/logs/writer.err ]] && { say "writer stderr:"; cat "$WORK/logs/writer.err" >&2; }
fact writer_alive "$WRITER_ALIVE"

kv done "${HELPER[@]}" times --log "$LOG" --message "backup done"
fact round_complete "$ROUND_COMPLETE"
fact round_s "$(since "$done_last_new")"
fact first_done_s "$(since "$done_first")"
fact success_databases "$done_databases"
fact success_count "$(metric sqlseal_backups_total 'result="success"')"
fact failures "$(metric sqlseal_backups_total 'result="failure"')"
fact busy_s "$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk 'index($0, "sqlseal_backup_duration_seconds_sum") == 1 {s += $NF} END {printf "%.3f\n", s}')"
fact backup_bytes "$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk 'index($0, "sqlseal_backup_size_bytes_sum") == 1 {s += $NF} END {printf "%d\n", s}')"
kv round "${HELPER[@]}" samples --file "$SAMPLES" --start "$T0" --end "$T_ROUND"
say "  round: $done_databases databases backed up after $(since "$done_last_new") s, peak RSS $((round_max_kib / 1024)) MiB"

# The writer over the round, and over the backup of its own database.
if ((WRITER_ALIVE)); then
    kv writer "python3" "$BENCHES/writer.py" analyze --log "$WORK/logs/writer.log" \
        --start "$T0" --end "$done_last_new" --baseline "$BASELINE"
    kv own "${HELPER[@]}" times --log "$LOG" --message "backup done" --database "$WRITER_NAME"
    own_s=$(curl -sf "http://127.0.0.1:$PORT/metrics" |
        awk -v db="database=\"$WRITER_NAME\"" 'index($0, "sqlseal_backup_duration_seconds_sum") == 1 && index($0, db) {print $NF}')
    own_n=$(curl -sf "http://127.0.0.1:$PORT/metrics" |
        awk -v db="database=\"$WRITER_NAME\"" 'index($0, "sqlseal_backup_duration_seconds_count") == 1 && index($0, db) {print $NF}')
    if [[ ${own_n:-0} == 1 && -n $own_first ]]; then
        fact writer_own_s "$own_s"
        # The backup alone is too short for statistics: a second either side.
        fact writer_own_margin 1
        own_start=$(awk -v e="$own_first" -v d="$own_s" 'BEGIN {printf "%.6f", e - d - 1}')
        own_end=$(awk -v e="$own_first" 'BEGIN {printf "%.6f", e + 1}')
        kv writer_own_tmp python3 "$BENCHES/writer.py" analyze --log "$WORK/logs/writer.log" \
            --start "$own_start" --end "$own_end"
        for k in rate max_ms p99_ms gap_ms; do
            v="writer_own_tmp_during_$k"
            fact "writer_own_$k" "${!v}"
        done
    fi
    say "  writer: longest commit $writer_during_max_ms ms, p99 $writer_during_p99_ms ms over the round"
else
    for k in before during; do
        for m in rate max_ms p99_ms gap_ms; do fact "writer_${k}_$m" 0; done
    done
    say "  the writer died during the round"
fi

say "idle for ${IDLE} s"
sleep "$IDLE"
T_IDLE=$EPOCHREALTIME
IDLE_FROM=$(awk -v a="$T_ROUND" -v i="$IDLE" 'BEGIN {printf "%.6f", a + i / 3}')
fact idle_window "$((IDLE - IDLE / 3))"
kv idle "${HELPER[@]}" samples --file "$SAMPLES" --start "$IDLE_FROM" --end "$T_IDLE"
fact peak_kib "$(hwm_now)"
fact unchanged_count "$(metric sqlseal_backups_total 'result="unchanged"')"
fact failures_after_idle "$(metric sqlseal_backups_total 'result="failure"')"
say "  idle RSS $((idle_median_kib / 1024)) MiB (median), VmHWM $(($(hwm_now) / 1024)) MiB"
stop_daemon
kv log "${HELPER[@]}" levels --log "$LOG"

# --- restarts with a backup of every database in the store ---------------------

BACKUPS=$(find "$WORK/backups" -name '*.sqlseal' | wc -l)
fact restart_backups "$BACKUPS"
write_config "$RESTART_FREQ"
STARTUPS=""
STARTEDS=""
SCHED_KIB=""
for r in $(seq "$RESTARTS"); do
    say "restart $r of $RESTARTS ($BACKUPS backups in the store)"
    start_daemon "restart-$r"
    wait_started 120
    wait_for "next backup scheduled" 300
    SCHED_KIB="$SCHED_KIB $(rss_now)"
    kv rs "${HELPER[@]}" times --log "$LOG" --message "sqlseal daemon started"
    kv rn "${HELPER[@]}" times --log "$LOG" --message "next backup scheduled"
    STARTEDS="$STARTEDS $(since "$rs_first")"
    STARTUPS="$STARTUPS $(since "$rn_last_new")"
    say "  started after $(since "$rs_first") s, all scheduled after $(since "$rn_last_new") s"
    if ((r == RESTARTS)); then
        T_SCHED=$EPOCHREALTIME
        sleep "$IDLE"
        kv restart_idle "${HELPER[@]}" samples --file "$SAMPLES" \
            --start "$(awk -v a="$T_SCHED" -v i="$IDLE" 'BEGIN {printf "%.6f", a + i / 3}')" --end "$EPOCHREALTIME"
        say "  idle RSS after restart $((restart_idle_median_kib / 1024)) MiB"
    fi
    stop_daemon
    kv rlog "${HELPER[@]}" levels --log "$LOG"
    ((rlog_error == 0)) || say "  errors in the log of restart $r: $rlog_error"
done
fact restart_startups "${STARTUPS# }"
fact restart_started "${STARTEDS# }"
fact restart_scheduled_kib "${SCHED_KIB# }"
fact loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
fact elapsed_s "$((SECONDS - STARTED))"

# --- 6. the figures -------------------------------------------------------------

section=$WORK/section.md
"${HELPER[@]}" report --facts "$FACTS" >"$section"
if ((WRITE_DOC)); then
    "${HELPER[@]}" splice --section "$section" --doc "$DOC"
    say "wrote the section into $DOC"
fi
cat "$section"

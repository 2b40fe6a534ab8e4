#!/usr/bin/env bash
# The daemon with `Backup.IncrementFrequency: 1s` on a SQLite database of
# order rows while benches/writer.py commits at a fixed rate: the recovery
# point (how old the newest point in the store is, sampled ten times a
# second), the daemon's CPU (user + system over the window, as a share of
# one core) and peak RSS, the increments' sizes, and the writer's commit
# latency during the window against the seconds before the daemon started.
# Prints key=value lines; docs/benchmarks.md ("Increments") holds a run.
#
# Usage: benches/increments.sh [--size MIB] [--seconds N] [--rate N] [--workdir DIR] [--no-build]
# (defaults: 1024 MiB, 300 s, 1000 commits a second). Needs sqlite3 and python3.

set -euo pipefail
export LC_ALL=C

SIZE=1024
SECONDS_TO_RUN=300
RATE=1000
WORKDIR=""
BUILD=1
while (($#)); do
    case $1 in
        --size) SIZE=$2; shift 2 ;;
        --seconds) SECONDS_TO_RUN=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --workdir) WORKDIR=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

die() { echo "increments.sh: $*" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCHES="$ROOT/benches"
command -v sqlite3 >/dev/null || die "sqlite3 is missing"
if ((BUILD)); then
    cargo build --release -p sqlseal-cli --manifest-path "$ROOT/Cargo.toml" >&2
fi
SQLSEAL="$ROOT/target/release/sqlseal"

TEMP_WORKDIR=0
if [[ -z $WORKDIR ]]; then
    WORKDIR=$(mktemp -d)
    TEMP_WORKDIR=1
fi
DAEMON_PID="" WRITER_PID=""
cleanup() {
    [[ -z $DAEMON_PID ]] || kill "$DAEMON_PID" 2>/dev/null || true
    [[ -z $WRITER_PID ]] || kill "$WRITER_PID" 2>/dev/null || true
    ((TEMP_WORKDIR == 0)) || rm -rf "$WORKDIR"
}
trap cleanup EXIT
mkdir -p "$WORKDIR"
DB="$WORKDIR/app.db"

# The same kind of rows as benches/s3.sh: orders with an index.
source "$BENCHES/orders_db.sh"
rm -rf "$WORKDIR/backups" "$DB.sqlseal"* "$WORKDIR"/.app.db.sqlseal-*
[[ -f $DB ]] || build_orders_db "$DB" "$SIZE"
[[ -f $WORKDIR/key.pem ]] || "$SQLSEAL" keygen -o "$WORKDIR/key.pem" >/dev/null
cat >"$WORKDIR/sqlseal.yaml" <<YAML
Backup:
  Location: $WORKDIR/backups
  Frequency: 24h
  IncrementFrequency: 1s
  Check: none
  Keys: [$WORKDIR/key.pem]
Database:
  Paths: [$DB]
Status:
  File: $WORKDIR/status.json
YAML

now() { date +%s.%N; }
# user + system clock ticks of a process.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

python3 "$BENCHES/writer.py" run --db "$DB" --rate "$RATE" --log "$WORKDIR/writer.log" \
    --ready "$WORKDIR/writer.ready" --max-seconds $((SECONDS_TO_RUN + 600)) &
WRITER_PID=$!
for _ in $(seq 300); do [[ -f $WORKDIR/writer.ready ]] && break; sleep 0.1; done
[[ -f $WORKDIR/writer.ready ]] || die "the writer did not start"
sleep 10
DAEMON_START=$(now)
"$SQLSEAL" run --config "$WORKDIR/sqlseal.yaml" 2>"$WORKDIR/daemon.log" &
DAEMON_PID=$!
DIR="$WORKDIR/backups/app.db"
# The first full backup, then a few increments to settle.
for _ in $(seq 1200); do
    (($(ls "$DIR" 2>/dev/null | grep -c '\.sqlseal$') >= 3)) && break
    sleep 0.5
done
(($(ls "$DIR" 2>/dev/null | grep -c '\.sqlseal$') >= 3)) || die "no chain after 10 minutes: $(tail -3 "$WORKDIR/daemon.log")"
FIRST=$(ls "$DIR" | grep -c '\.sqlseal$')

WINDOW_START=$(now)
TICKS_START=$(cpu_ticks "$DAEMON_PID")
# One sampler, ten times a second: how old the newest point's time (from
# its name, app.db-YYYYmmddTHHMMSS.ffffffZ-xxxxxx.sqlseal) is.
python3 - "$DIR" "$SECONDS_TO_RUN" >"$WORKDIR/lags" <<'PY'
import datetime, os, re, sys, time
directory, seconds = sys.argv[1], float(sys.argv[2])
pattern = re.compile(r"-(\d{8}T\d{6}\.\d{6})Z-[0-9a-f]+\.sqlseal$")
end = time.time() + seconds
while time.time() < end:
    stamps = [m.group(1) for m in map(pattern.search, os.listdir(directory)) if m]
    newest = datetime.datetime.strptime(max(stamps), "%Y%m%dT%H%M%S.%f")
    newest = newest.replace(tzinfo=datetime.timezone.utc).timestamp()
    print(f"{time.time() - newest:.3f}", flush=True)
    time.sleep(0.1)
PY
WINDOW_END=$(now)
TICKS_END=$(cpu_ticks "$DAEMON_PID")
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
LAST=$(ls "$DIR" | grep -c '\.sqlseal$')
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true
DAEMON_PID=""
kill -TERM "$WRITER_PID"
wait "$WRITER_PID" || true
WRITER_PID=""

HZ=$(getconf CLK_TCK)
python3 - "$WORKDIR/lags" <<PY
import sys
lags = sorted(float(x) for x in open(sys.argv[1]))
n = len(lags)
print(f"size_mib={$SIZE}")
print(f"window_s={$WINDOW_END - $WINDOW_START:.1f}")
print(f"samples={n}")
print(f"recovery_point_mean_s={sum(lags) / n:.2f}")
print(f"recovery_point_p99_s={lags[min(n - 1, int(0.99 * n))]:.2f}")
print(f"recovery_point_max_s={lags[-1]:.2f}")
print(f"increments_in_window={$LAST - $FIRST}")
print(f"daemon_cpu_share_of_one_core={($TICKS_END - $TICKS_START) / $HZ / ($WINDOW_END - $WINDOW_START):.2f}")
print(f"daemon_peak_rss_mib={$HWM / 1024:.1f}")
PY
ls -l "$DIR" | awk '/\.sqlseal$/ {print $5}' | sort -n | python3 -c "
import sys
sizes = [int(x) for x in sys.stdin]
inc = sizes[:-1]  # all but the largest (the full backup)
print(f'full_backup_mib={sizes[-1] / 2**20:.1f}')
print(f'increment_median_kib={inc[len(inc) // 2] / 1024:.1f}')
"
echo "writer_$(python3 "$BENCHES/writer.py" analyze --log "$WORKDIR/writer.log" \
    --start "$WINDOW_START" --end "$WINDOW_END" --baseline 0 | grep '^during_p99_ms')"
echo "writer_baseline_$(python3 "$BENCHES/writer.py" analyze --log "$WORKDIR/writer.log" \
    --start "$(python3 -c "print($DAEMON_START - 8)")" --end "$DAEMON_START" --baseline 0 |
    grep '^during_p99_ms')"
echo "writer_$(python3 "$BENCHES/writer.py" analyze --log "$WORKDIR/writer.log" \
    --start "$WINDOW_START" --end "$WINDOW_END" --baseline 0 | grep '^during_rate')"

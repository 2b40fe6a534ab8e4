#!/usr/bin/env python3
"""A paced SQLite writer for benches/compare.sh, and the analysis of its log.

`writer.py run` commits to a WAL database on a fixed schedule (default
1,000 commits a second, `synchronous=NORMAL`, like a busy service) until it
receives SIGTERM or SIGINT, then writes one line per commit to the log:
the wall-clock time the commit finished (seconds since the epoch) and how
long the transaction took (seconds). Each commit inserts a row into
`events` and increments `counter.n` in the same transaction, so a
consistent snapshot has `count(*) FROM events` equal to `counter.n`. If it
falls behind schedule it commits back to back until it has caught up, as a
service draining a queue would.

`writer.py analyze` reads a log and prints `key=value` lines for a time
window (the backup) and for the seconds before it (the baseline): commits
a second, the longest commit and when it finished, the 99th percentile,
and the longest gap between two consecutive commits (a stall in which
nothing committed).

`writer.py check` prints 1 if a database's `events` and `counter` agree.
"""

import argparse
import signal
import sqlite3
import sys
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counter(n INTEGER NOT NULL);
INSERT INTO counter SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM counter);
"""


def run(args):
    stop = False

    def on_signal(_signum, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    conn = sqlite3.connect(args.db, isolation_level=None, timeout=30)
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        sys.exit(f"writer: {args.db} is not in WAL mode (journal_mode={mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(SCHEMA)

    ends = []
    latencies = []
    interval = 1.0 / args.rate
    started = time.perf_counter()
    deadline = started + args.max_seconds
    # perf_counter for pacing and latency; time.time() to line commits up
    # with the backup's start and end as the shell script records them.
    n = 0
    ready_written = False
    while not stop:
        due = started + n * interval
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        if now > deadline:
            break
        begin = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO events(at, payload) VALUES (?, ?)",
            (time.time(), f"event {n}: order status changed, session {n * 7919 % 99991:05d}"),
        )
        conn.execute("UPDATE counter SET n = n + 1")
        conn.execute("COMMIT")
        end = time.perf_counter()
        ends.append(time.time())
        latencies.append(end - begin)
        n += 1
        if not ready_written and n >= args.rate // 10:
            with open(args.ready, "w", encoding="ascii") as f:
                f.write(f"{time.time():.6f}\n")
            ready_written = True
    conn.close()
    with open(args.log, "w", encoding="ascii") as f:
        for end, latency in zip(ends, latencies):
            f.write(f"{end:.6f} {latency:.6f}\n")


def window_stats(entries, start, end):
    """Statistics of the commits that finished in [start, end]."""
    inside = [(e, lat) for e, lat in entries if start <= e <= end]
    duration = max(end - start, 1e-9)
    if not inside:
        return {
            "commits": 0,
            "rate": 0.0,
            "max_ms": 0.0,
            "max_at_s": 0.0,
            "p99_ms": 0.0,
            "gap_ms": duration * 1000,
        }
    lats = sorted(lat for _, lat in inside)
    # When the longest commit finished, in seconds from the window start.
    slowest_end = max(inside, key=lambda x: x[1])[0]
    p99 = lats[min(len(lats) - 1, int(0.99 * len(lats)))]
    # Gaps include the edges of the window, so a writer frozen for the
    # whole backup shows a gap as long as the backup.
    times = [start] + [e for e, _ in inside] + [end]
    gap = max(b - a for a, b in zip(times, times[1:]))
    return {
        "commits": len(inside),
        "rate": len(inside) / duration,
        "max_ms": lats[-1] * 1000,
        "max_at_s": slowest_end - start,
        "p99_ms": p99 * 1000,
        "gap_ms": gap * 1000,
    }


def analyze(args):
    entries = []
    with open(args.log, encoding="ascii") as f:
        for line in f:
            end, latency = line.split()
            entries.append((float(end), float(latency)))
    during = window_stats(entries, args.start, args.end)
    before = window_stats(entries, args.start - args.baseline, args.start)
    for prefix, stats in (("during", during), ("before", before)):
        for key, value in stats.items():
            if isinstance(value, float):
                print(f"{prefix}_{key}={value:.2f}")
            else:
                print(f"{prefix}_{key}={value}")


def check(args):
    uri = f"file:{args.db}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    events, counter = conn.execute(
        "SELECT (SELECT count(*) FROM events), (SELECT n FROM counter)"
    ).fetchone()
    conn.close()
    print(1 if events == counter else 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="commit at a fixed rate until SIGTERM")
    p.add_argument("--db", required=True)
    p.add_argument("--rate", type=int, default=1000, help="commits a second")
    p.add_argument("--log", required=True, help="where to write the commit log at exit")
    p.add_argument("--ready", required=True, help="file written once commits flow")
    p.add_argument("--max-seconds", type=float, default=600.0, help="stop after this long anyway")
    p.set_defaults(func=run)

    p = sub.add_parser("analyze", help="commit rate and stalls in a time window")
    p.add_argument("--log", required=True)
    p.add_argument("--start", type=float, required=True, help="window start, epoch seconds")
    p.add_argument("--end", type=float, required=True, help="window end, epoch seconds")
    p.add_argument("--baseline", type=float, default=3.0, help="seconds before the window")
    p.set_defaults(func=analyze)

    p = sub.add_parser("check", help="print 1 if events and counter agree")
    p.add_argument("--db", required=True)
    p.set_defaults(func=check)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()

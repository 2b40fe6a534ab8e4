#!/usr/bin/env python3
"""Helpers of benches/tenants.sh: builds the tenants' databases, reads the
daemon's JSON log and the RSS samples, and turns the measurements into the
section "One daemon, 1,000 databases" of docs/benchmarks.md.

    tenants.py make --dir DIR --count N
    tenants.py pick --count N --period-ms MS
    tenants.py times --log LOG --message MSG [--database NAME]
    tenants.py samples --file SAMPLES --start EPOCH --end EPOCH
    tenants.py report --facts FACTS > section.md
    tenants.py splice --section section.md --doc docs/benchmarks.md
"""

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
from datetime import datetime

HEADING = "## One daemon, 1,000 databases"

# The issue's targets for 1,000 databases.
RSS_MAX_MIB = 100
STARTUP_MAX_S = 10.0

FIRST = ["Ada", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances"]
STATUS = ["new", "paid", "shipped", "returned"]


def tenant(i):
    return f"t{i:04d}"


def make(args):
    """N small WAL databases of a shop's rows: customers, orders with an
    index, and the writer's `events` and `counter` tables."""
    rng = random.Random(args.seed)
    total_bytes = 0
    total_rows = 0
    for i in range(1, args.count + 1):
        d = os.path.join(args.dir, tenant(i))
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "app.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(
            """
            CREATE TABLE customers(
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                email TEXT NOT NULL UNIQUE,
                country TEXT NOT NULL,
                created_at INTEGER NOT NULL);
            CREATE TABLE orders(
                id INTEGER PRIMARY KEY,
                customer_id INTEGER NOT NULL REFERENCES customers(id),
                reference TEXT NOT NULL,
                amount_cents INTEGER NOT NULL,
                status TEXT NOT NULL,
                note TEXT,
                created_at INTEGER NOT NULL);
            CREATE INDEX orders_customer ON orders(customer_id, created_at);
            CREATE TABLE events(id INTEGER PRIMARY KEY, at REAL NOT NULL, payload TEXT NOT NULL);
            CREATE TABLE counter(n INTEGER NOT NULL);
            INSERT INTO counter VALUES (0);
            """
        )
        customers = rng.randint(250, 400)
        orders = rng.randint(2600, 4000)
        conn.execute("BEGIN")
        for c in range(1, customers + 1):
            name = f"{rng.choice(FIRST)} {rng.randint(1, 99991)}"
            conn.execute(
                "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
                (c, name, f"{name.lower().replace(' ', '.')}.{c}@{tenant(i)}.example.com",
                 rng.choice(["DE", "FR", "GB", "US", "NL", "SE", "JP", "BR"]),
                 1700000000 + c * 3600 + rng.randint(0, 3599)),
            )
        for o in range(1, orders + 1):
            note = None
            if rng.random() < 0.35:
                note = f"deliver to warehouse {rng.randint(1, 31)}, {rng.randint(1, 17)} items, gate {rng.choice('ABCDEF')}"
            conn.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
                (o, rng.randint(1, customers), f"ORD-{o:08d}-{rng.getrandbits(24):06x}",
                 rng.randint(100, 100000), rng.choice(STATUS), note,
                 1700000000 + o * 600 + rng.randint(0, 599)),
            )
        conn.execute("COMMIT")
        conn.close()
        total_bytes += os.path.getsize(path)
        total_rows += customers + orders
    print(f"bytes={total_bytes}")
    print(f"rows={total_rows}")


def stable_offset(name, period_ms):
    """The daemon's start offset of a database found by a pattern (FNV-1a
    of its name modulo the period), to pick the writer's database."""
    h = 0xCBF29CE484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h % max(period_ms, 1)


def pick(args):
    """The tenant whose first backup falls nearest the middle of the round."""
    best = min(
        range(1, args.count + 1),
        key=lambda i: abs(stable_offset(f"{tenant(i)}/app.db", args.period_ms) - args.period_ms / 2),
    )
    print(tenant(best))


def parse_time(text):
    # tracing's JSON timestamps: RFC 3339, UTC, up to nanoseconds.
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(text).timestamp()


def log_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def times(args):
    """For one log message: how many lines and distinct databases, when the
    first line came, and when the last database first said it (epoch s)."""
    first = None
    lines = 0
    seen = {}
    for entry in log_lines(args.log):
        fields = entry.get("fields", {})
        if fields.get("message") != args.message:
            continue
        db = fields.get("database")
        if args.database is not None and db != args.database:
            continue
        t = parse_time(entry["timestamp"])
        lines += 1
        if first is None:
            first = t
        if db is not None and db not in seen:
            seen[db] = t
    last_new = max(seen.values()) if seen else first
    print(f"lines={lines}")
    print(f"databases={len(seen)}")
    print(f"first={first if first is not None else ''}")
    print(f"last_new={last_new if last_new is not None else ''}")


def levels(args):
    """Lines at WARN and ERROR, and the first few of them."""
    counts = {"WARN": 0, "ERROR": 0}
    shown = []
    for entry in log_lines(args.log):
        level = entry.get("level")
        if level in counts:
            counts[level] += 1
            if len(shown) < 5:
                shown.append(json.dumps(entry.get("fields", {}))[:300])
    print(f"warn={counts['WARN']}")
    print(f"error={counts['ERROR']}")
    for s in shown:
        print(f"example={s}")


def samples(args):
    """RSS (KiB) and CPU time (clock ticks) samples in [start, end]:
    largest and median RSS, and CPU seconds used in the window."""
    rows = []
    with open(args.file, encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3:
                continue
            t, rss, ticks = float(parts[0]), int(parts[1]), int(parts[2])
            if args.start <= t <= args.end:
                rows.append((t, rss, ticks))
    if not rows:
        print("n=0")
        return
    rss = [r for _, r, _ in rows]
    span = rows[-1][0] - rows[0][0]
    cpu = (rows[-1][2] - rows[0][2]) / os.sysconf("SC_CLK_TCK")
    print(f"n={len(rows)}")
    print(f"max_kib={max(rss)}")
    print(f"median_kib={int(statistics.median(rss))}")
    print(f"last_kib={rss[-1]}")
    print(f"cpu_s={cpu:.2f}")
    print(f"span_s={span:.2f}")


# --- the report ---------------------------------------------------------------


def load_facts(path):
    facts = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            facts[key] = value
    return facts


def mib(kib):
    return f"{int(kib) / 1024:.1f}"


def num(n):
    return f"{int(n):,}"


def report(args):
    f = load_facts(args.facts)
    n = int(f["count"])
    restarts = [float(x) for x in f.get("restart_startups", "").split() if x]
    restart_median = statistics.median(restarts) if restarts else None
    steady_kib = int(f["idle_median_kib"])
    restart_steady_kib = int(f.get("restart_idle_median_kib", "0") or 0)
    ok_round = (
        f["round_complete"] == "1"
        and int(f["success_databases"]) == n
        and int(f["failures"]) == 0
        and int(f["log_error"]) == 0
    )
    writer_ok = f["writer_alive"] == "1"
    out = []
    w = out.append
    w(HEADING)
    w("")
    w(
        f"One `sqlseal run` serving {num(n)} small databases found by one `Database.Dirs` pattern "
        f"(`tenants/*/app.db`), backing up to a local directory with `Backup.Concurrency: "
        f"{f['concurrency']}` and `Backup.Frequency: {f['frequency']}s`, while a writer commits "
        f"{f['rate']} times a second to one of them. Measured on {f['date']} at sqlseal "
        f"`{f['commit']}`{' (with uncommitted changes to the crates)' if f.get('dirty', '0') != '0' else ''}."
    )
    w("")
    w(
        f"Machine: {f['cpu']}, `nproc` {f['cores']}, {int(f['memory_kib']) / 1048576:.1f} GiB RAM, "
        f"Linux {f['kernel']}; rustc {f['rustc']}; open-file limit (`ulimit -n`) {f['nofile']}. "
        f"Other work shared the machine: load average {f['loadavg_start']} at the start, "
        f"{f['loadavg_end']} at the end."
    )
    w("")
    w(
        f"Databases: {num(n)} files of {num(int(f['db_bytes']) // n // 1024)} KiB on average "
        f"({int(f['db_bytes']) / 1048576:.0f} MiB in all, {num(f['db_rows'])} rows: customers "
        f"with a unique e-mail, orders with an index, built by `benches/tenants.py` with Python's "
        f"sqlite3 module, in WAL mode); backups with the defaults otherwise "
        f"(`Backup.Check: full`, `Backup.MaxCount: 10`)."
    )
    w("")
    w("### Targets")
    w("")
    w("| target | measured | result |")
    w("|---|---|---|")
    w(
        f"| steady-state RSS ≤ {RSS_MAX_MIB} MiB | {mib(steady_kib)} MiB after the round "
        f"(median over {f['idle_window']} s of idle), {mib(restart_steady_kib)} MiB idle after a restart; "
        f"peak {mib(f['peak_kib'])} MiB (VmHWM) | "
        f"{'met' if max(steady_kib, restart_steady_kib) <= RSS_MAX_MIB * 1024 else '**missed**'} |"
    )
    if restart_median is not None:
        w(
            f"| start-up (discovery + newest header of each database) ≤ {STARTUP_MAX_S:.0f} s, directory store "
            f"| {restart_median:.2f} s (median of {len(restarts)} restarts: "
            f"{', '.join(f'{x:.2f}' for x in restarts)} s) | "
            f"{'met' if restart_median <= STARTUP_MAX_S and max(restarts) <= STARTUP_MAX_S else '**missed**'} |"
        )
    w(
        f"| one round of all {num(n)} at Frequency, Concurrency {f['concurrency']}, no errors "
        f"| {num(f['success_databases'])} of {num(n)} backed up in {float(f['round_s']):.1f} s; "
        f"{f['failures']} failed; {f['log_warn']} warnings and {f['log_error']} errors in the log | "
        f"{'met' if ok_round else '**missed**'} |"
    )
    w(
        f"| the writer of one database never blocked "
        f"| longest commit {float(f['writer_during_max_ms']):.1f} ms, p99 {float(f['writer_during_p99_ms']):.2f} ms, "
        f"longest gap without a commit {float(f['writer_during_gap_ms']):.1f} ms over the round; "
        f"{'no' if writer_ok else '**a**'} failed commit (blocked would be a commit failing with "
        f"SQLITE_BUSY after its 30 s timeout, or one taking over 1 s) | "
        f"{'met' if writer_ok and float(f['writer_during_max_ms']) < 1000 else '**missed**'} |"
    )
    w("")
    w("### Start-up")
    w("")
    w(
        "Start-up is measured from the moment the script starts the process to the log line "
        "\"next backup scheduled\" of the last of the databases: each database's loop logs it once it "
        "has listed its backups and authenticated their headers (that is when it knows when its "
        "next backup is due). The daemon first takes a lock per database, checks that each exists "
        "(auto-restore) and logs \"sqlseal daemon started\"; the table shows that line too."
    )
    w("")
    w("| start | backups in the store | \"sqlseal daemon started\" | all databases scheduled | RSS when scheduled |")
    w("|---|---|---:|---:|---:|")
    w(
        f"| first (empty store) | none | {float(f['cold_started_s']):.2f} s | "
        f"{float(f['cold_startup_s']):.2f} s | {mib(f['cold_scheduled_kib'])} MiB |"
    )
    for i, (s, t, r) in enumerate(
        zip(
            f.get("restart_started", "").split(),
            restarts,
            f.get("restart_scheduled_kib", "").split(),
        ),
        start=1,
    ):
        w(
            f"| restart {i} (`Backup.Frequency: {f['restart_frequency']}`) | "
            f"{num(f['restart_backups'])} backups of {num(n)} databases | {float(s):.2f} s | {t:.2f} s | {mib(r)} MiB |"
        )
    w("")
    w(
        f"The restarts run with a Frequency of {f['restart_frequency']} so that no backup falls due while "
        "they are measured: with the round's Frequency, every database whose newest backup is older "
        "than one period is due at once and backs up right after start-up (bounded by Concurrency)."
    )
    w("")
    w("### The round")
    w("")
    w(
        f"Databases found by a pattern, with no backup yet, start at a stable offset within one period, "
        f"so the first round is spread over {f['frequency']} s by design: its wall time says that the "
        f"daemon keeps up, not how fast it could go. {num(f['success_databases'])} databases "
        f"backed up in {float(f['round_s']):.1f} s from start (first backup done at "
        f"{float(f['first_done_s']):.1f} s); the backups themselves took {float(f['busy_s']):.1f} s in all "
        f"({float(f['busy_s']) * 1000 / max(int(f['success_count']), 1):.0f} ms each on average, "
        f"snapshot with the full integrity check, seal, store, read-back and retention), "
        f"{int(f['backup_bytes']) / 1048576:.0f} MiB written; the daemon used {float(f['round_cpu_s']):.1f} s of CPU "
        f"during the round. Successful backups counted by `sqlseal_backups_total{{result=\"success\"}}`: "
        f"{num(f['success_count'])} (a database changed by the writer may be backed up twice in the round)."
    )
    w("")
    w(
        f"Memory: peak RSS {mib(f['round_max_kib'])} MiB during the round (samples every 0.25 s), "
        f"{mib(f['peak_kib'])} MiB VmHWM over the run; after the round, idle for {f['idle_window']} s, "
        f"{mib(steady_kib)} MiB (median; largest sample {mib(f['idle_max_kib'])} MiB), using "
        f"{float(f['idle_cpu_s']):.2f} s of CPU in that time (due databases found unchanged are skipped: "
        f"{f['unchanged_count']} so far)."
    )
    w("")
    w(
        f"The writer (`benches/writer.py`, WAL, `synchronous=NORMAL`, {f['rate']} commits a second, "
        f"one insert and one counter update each) wrote to `{f['writer_db']}`, chosen as the database whose "
        f"first backup falls nearest the middle of the round:"
    )
    w("")
    w("| window | commits/s | longest commit ms | p99 ms | longest gap without a commit ms |")
    w("|---|---:|---:|---:|---:|")
    w(
        f"| {f['writer_baseline']} s before the daemon started | {float(f['writer_before_rate']):.1f} | "
        f"{float(f['writer_before_max_ms']):.2f} | {float(f['writer_before_p99_ms']):.2f} | "
        f"{float(f['writer_before_gap_ms']):.1f} |"
    )
    w(
        f"| the whole round ({float(f['round_s']):.0f} s) | {float(f['writer_during_rate']):.1f} | "
        f"{float(f['writer_during_max_ms']):.2f} | {float(f['writer_during_p99_ms']):.2f} | "
        f"{float(f['writer_during_gap_ms']):.1f} |"
    )
    if f.get("writer_own_s"):
        w(
            f"| the backup of its own database ({float(f['writer_own_s']) * 1000:.0f} ms), "
            f"from {f['writer_own_margin']} s before to {f['writer_own_margin']} s after | "
            f"{float(f['writer_own_rate']):.1f} | {float(f['writer_own_max_ms']):.2f} | "
            f"{float(f['writer_own_p99_ms']):.2f} | {float(f['writer_own_gap_ms']):.1f} |"
        )
    w("")
    w("### Against Litestream")
    w("")
    w(
        f"The comparison the issue quotes puts Litestream at 36, 55 and 160 MB RSS for 1, 10 and 100 "
        f"databases. sqlseal served {num(n)} databases in {mib(steady_kib)} MiB "
        f"({int(steady_kib) * 1024 / 1e6:.0f} MB) when idle and {mib(f['peak_kib'])} MiB "
        f"({int(f['peak_kib']) * 1024 / 1e6:.0f} MB) at its peak: {n / 100:g} times the databases in "
        f"{'less' if int(f['peak_kib']) * 1024 / 1e6 < 160 else 'more'} memory than Litestream's figure for 100. "
        f"The two do different work (Litestream ships WAL continuously; sqlseal takes whole "
        f"snapshots on a schedule) and were not measured on the same machine, so this compares "
        f"orders of magnitude only."
    )
    w("")
    w(
        f"Reproduce: `benches/tenants.sh` (builds the release binary; this run took "
        f"{int(f['elapsed_s']) // 60} min {int(f['elapsed_s']) % 60} s after the build). "
        f"`--count N` for another number of databases (the section is written for 1,000 only), "
        f"`--no-doc` to print instead of writing this section, `--keep` to keep the work directory, "
        f"`--help` for the rest."
    )
    print("\n".join(out))


def splice(args):
    with open(args.section, encoding="utf-8") as fh:
        section = fh.read().rstrip("\n") + "\n"
    with open(args.doc, encoding="utf-8") as fh:
        lines = fh.read().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == HEADING), None)
    if start is None:
        text = "".join(lines).rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        after = "".join(lines[end:])
        text = "".join(lines[:start]) + section + ("\n" + after if after else "")
    tmp = args.doc + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, args.doc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make", help="build the tenants' databases")
    p.add_argument("--dir", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, default=15)
    p.set_defaults(func=make)

    p = sub.add_parser("pick", help="the tenant whose first backup falls mid-round")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--period-ms", type=int, required=True)
    p.set_defaults(func=pick)

    p = sub.add_parser("times", help="when a log message was said, by how many databases")
    p.add_argument("--log", required=True)
    p.add_argument("--message", required=True)
    p.add_argument("--database")
    p.set_defaults(func=times)

    p = sub.add_parser("levels", help="warnings and errors in a log")
    p.add_argument("--log", required=True)
    p.set_defaults(func=levels)

    p = sub.add_parser("samples", help="RSS and CPU samples in a window")
    p.add_argument("--file", required=True)
    p.add_argument("--start", type=float, required=True)
    p.add_argument("--end", type=float, required=True)
    p.set_defaults(func=samples)

    p = sub.add_parser("report", help="the Markdown section")
    p.add_argument("--facts", required=True)
    p.set_defaults(func=report)

    p = sub.add_parser("splice", help="put the section into the document")
    p.add_argument("--section", required=True)
    p.add_argument("--doc", required=True)
    p.set_defaults(func=splice)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())

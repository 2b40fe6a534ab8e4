#!/usr/bin/env python3
"""Turns the measurements of benches/compare.sh into the Markdown section
"End-to-end comparison" of docs/benchmarks.md, and splices that section
into the file in place (everything else in the file is left as it is).

    compare_report.py --results results.tsv --facts facts.tsv > section.md
    compare_report.py --splice section.md --doc docs/benchmarks.md
"""

import argparse
import os
import statistics
import sys

HEADING = "## End-to-end comparison"

# Targets the engine is held to (issue #11: create in a quarter of the
# operator script's time).
CREATE_RATIO_MAX = 0.25
RSS_MAX_MIB = 64

# Rows of the per-size table, in order: (name, label).
ROWS = [
    ("sqlite_backup", "`sqlite3 DB .backup COPY` (no compression, no encryption)"),
    ("script_backup", "operator script: `.backup`, then `lz4 -1`, then `age -r`"),
    ("script_backup_sync", "operator script, then `sync` of the output"),
    ("create_dbpage", "`sqlseal backup create --method dbpage`"),
    ("create_backup-api", "`sqlseal backup create --method backup-api`"),
    ("create_vacuum", "`sqlseal backup create --method vacuum`"),
    ("script_restore", "operator restore: `age -d \\| lz4 -d`"),
    ("script_restore_sync", "operator restore, then `sync` of the database"),
    ("integrity_check", "`sqlite3 RESTORED 'PRAGMA integrity_check'`"),
    ("operator_check", "operator restore + integrity_check (sum per run)"),
    ("create_nocheck", "`sqlseal backup create --check none` (no check recorded)"),
    ("verify", "`sqlseal backup verify` (every chunk, seal, hash; the check recorded at backup time)"),
    ("verify_full", "`sqlseal backup verify --check full` (and integrity_check again)"),
    ("restore", "`sqlseal backup restore` (verify with the recorded check, fsync, install)"),
    ("restore_full", "`sqlseal backup restore --check full` (integrity_check again)"),
]
SQLSEAL = [
    "create_dbpage",
    "create_backup-api",
    "create_vacuum",
    "create_nocheck",
    "verify",
    "verify_full",
    "restore",
    "restore_full",
]


def load(args):
    results = {}  # (size, name) -> list of (wall_s, rss_kib, out_bytes, busy, cpu_s)
    with open(args.results, encoding="utf-8") as f:
        for line in f:
            size, name, _run, wall_us, rss, out, busy, cpu_ms = line.rstrip("\n").split("\t")
            results.setdefault((int(size), name), []).append(
                (int(wall_us) / 1e6, int(rss), int(out), int(busy), int(cpu_ms) / 1e3)
            )
    facts = {}  # (size or "-", key) -> value
    with open(args.facts, encoding="utf-8") as f:
        for line in f:
            size, key, value = line.rstrip("\n").split("\t")
            facts[(size, key)] = value
    # The operator's full restore check, summed run by run.
    for size, name in list(results):
        if name == "script_restore" and (size, "integrity_check") in results:
            a = results[(size, "script_restore")]
            b = results[(size, "integrity_check")]
            results[(size, "operator_check")] = [
                (x[0] + y[0], max(x[1], y[1]), 0, max(x[3], y[3]), x[4] + y[4])
                for x, y in zip(a, b)
            ]
    return results, facts


def median(runs):
    return statistics.median(r[0] for r in runs)


def fastest(runs):
    return min(r[0] for r in runs)


def mib(n):
    return n / (1024 * 1024)


def size_label(size):
    return "~1 GiB" if size == 1024 else f"~{size} MiB"


def fmt_wall(runs):
    walls = [r[0] for r in runs]
    if len(walls) == 1:
        return f"{walls[0]:.2f}"
    return f"{statistics.median(walls):.2f} ({min(walls):.2f}–{max(walls):.2f})"


def machine(facts):
    f = lambda key: facts.get(("-", key), "?")  # noqa: E731
    mem_gib = int(f("memory_kib")) / (1024 * 1024) if f("memory_kib").isdigit() else 0
    return (
        f"{f('cpu')}, {f('cores')} cores, {mem_gib:.1f} GiB RAM, Linux {f('kernel')}; "
        f"rustc {f('rustc')}; sqlite3 CLI {f('sqlite3')}, lz4 {f('lz4')}, age {f('age')}; "
        f"sqlseal links SQLite bundled by libsqlite3-sys {f('libsqlite3_sys')}; "
        f"the writer uses Python's sqlite3 module (SQLite {f('python_sqlite')})."
    )


def load_note(results, facts):
    busy = [r[3] for runs in results.values() for r in runs]
    if not busy:
        return ""
    limit = int(facts.get(("-", "quiet_pct"), "20"))
    over = sum(1 for b in busy if b > limit)
    start = facts.get(("-", "loadavg_start"), "?")
    end = facts.get(("-", "loadavg_end"), "?")
    text = (
        f"Load: other work shares this machine. Before each timing the script waited until "
        f"the CPUs were at most {limit}% busy (sampled over half a second, for up to "
        f"{facts.get(('-', 'quiet_wait'), '120')} s); "
    )
    if over:
        text += (
            f"{over} of {len(busy)} timings started with the CPUs busier than that "
            f"(the busiest at {max(busy)}%), so those figures may be disturbed; "
        )
    else:
        text += f"all {len(busy)} timings started below it (median {statistics.median(busy):.0f}%); "
    text += f"load average {start} at the start, {end} at the end. The ranges show how much runs differed."
    return text


def targets(results, facts, sizes):
    lines = ["| target | size | measured | result |", "|---|---|---|---|"]

    def have(size, *names):
        return all((size, n) in results for n in names)

    def verdict(ratio, limit):
        return "met" if ratio <= limit else "**missed**"

    for size in sizes:
        if have(size, "create_dbpage", "script_backup"):
            create, script = results[(size, "create_dbpage")], results[(size, "script_backup")]
            ratio = median(create) / median(script)
            quick = fastest(create) / fastest(script)
            scope = "the target" if size == 1024 else "target set for 1 GiB"
            result = verdict(ratio, CREATE_RATIO_MAX)
            if verdict(quick, CREATE_RATIO_MAX) != result:
                result += f" (fastest runs: {verdict(quick, CREATE_RATIO_MAX)})"
            extra = ""
            if have(size, "script_backup_sync"):
                synced = median(create) / median(results[(size, "script_backup_sync")])
                extra = f"; {synced:.2f}x the script with `sync`"
            lines.append(
                f"| `create --method dbpage` ≤ {CREATE_RATIO_MAX}x the operator script "
                f"({scope}) | {size_label(size)} | "
                f"medians {median(create):.2f} s / {median(script):.2f} s = **{ratio:.2f}x**; "
                f"fastest runs {fastest(create):.2f} s / {fastest(script):.2f} s = {quick:.2f}x{extra} | "
                f"{result} |"
            )
    for size in sizes:
        if have(size, "restore", "script_restore", "integrity_check"):
            restore = results[(size, "restore")]
            decrypt, check = results[(size, "script_restore")], results[(size, "integrity_check")]
            budget = median(decrypt) + median(check)
            quick = fastest(restore) / (fastest(decrypt) + fastest(check))
            extra = ""
            if have(size, "script_restore_sync"):
                synced = median(results[(size, "script_restore_sync")]) + median(check)
                extra = f"; with `sync`: {synced:.2f} s"
            result = verdict(median(restore) / budget, 1.0)
            if verdict(quick, 1.0) != result:
                result += f" (fastest runs: {verdict(quick, 1.0)})"
            lines.append(
                f"| `restore` ≤ operator decrypt+decompress + integrity_check | {size_label(size)} | "
                f"medians {median(restore):.2f} s vs {budget:.2f} s (**{median(restore) / budget:.2f}x**){extra}; "
                f"fastest runs {quick:.2f}x | {result} |"
            )
    for size in sizes:
        # The operator's decrypt+decompress + integrity_check, against each
        # sqlseal read with its limit from the issue.
        for name, what, limit in [
            ("restore_full", "`restore --check full`", 0.6),
            ("restore", "`restore` (recorded check)", 0.25),
            ("verify", "`verify` (recorded check)", 0.25),
        ]:
            if not have(size, name, "script_restore", "integrity_check"):
                continue
            ours = results[(size, name)]
            budget = median(results[(size, "script_restore")]) + median(results[(size, "integrity_check")])
            ratio = median(ours) / budget
            lines.append(
                f"| {what} ≤ {limit}x operator decrypt+decompress + integrity_check | "
                f"{size_label(size)} | medians {median(ours):.2f} s vs {budget:.2f} s (**{ratio:.2f}x**) | "
                f"{verdict(ratio, limit)} |"
            )
    for size in sizes:
        peaks = [(max(r[1] for r in results[(size, n)]), n) for n in SQLSEAL if (size, n) in results]
        live = facts.get((str(size), "live_sqlseal_rss_kib"))
        if live and live.isdigit():
            peaks.append((int(live), "create under the writer"))
        if peaks:
            peak, which = max(peaks)
            lines.append(
                f"| sqlseal peak RSS ≤ {RSS_MAX_MIB} MiB | {size_label(size)} | "
                f"{peak / 1024:.1f} MiB ({which.replace('_', ' ')}) | "
                f"{'met' if peak / 1024 <= RSS_MAX_MIB else '**missed**'} |"
            )
    for size in sizes:
        done = facts.get((str(size), "live_sqlseal_finished"))
        if done is not None:
            consistent = facts.get((str(size), "live_sqlseal_consistent")) == "1"
            secs = facts.get((str(size), "live_sqlseal_seconds"), "?")
            lines.append(
                f"| `create --method dbpage` finishes under a writer | {size_label(size)} | "
                f"{'finished in ' + secs + ' s' if done == '1' else 'did not finish'}"
                f"{', image consistent' if consistent else ''} | "
                f"{'met' if done == '1' and consistent else '**missed**'} |"
            )
    return lines


def size_table(results, facts, size):
    db_bytes = int(facts.get((str(size), "db_bytes"), "0"))
    rows = facts.get((str(size), "rows"), "?")
    out = [
        f"### {size_label(size)} database ({db_bytes:,} bytes, {int(rows):,} rows)"
        if rows.isdigit()
        else f"### {size_label(size)} database ({db_bytes:,} bytes)",
        "",
        "| operation | wall s, median (range) | CPU s | peak RSS MiB | output MiB | output / database |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in ROWS:
        runs = results.get((size, name))
        if not runs:
            continue
        rss = max(r[1] for r in runs) / 1024
        outb = runs[-1][2]
        cpu = statistics.median(r[4] for r in runs)
        if name == "operator_check":
            out.append(f"| {label} | {fmt_wall(runs)} | {cpu:.2f} | | | |")
            continue
        size_cols = f"{mib(outb):.0f} | {outb / db_bytes:.3f}" if outb and db_bytes else " | "
        out.append(f"| {label} | {fmt_wall(runs)} | {cpu:.2f} | {rss:.1f} | {size_cols} |")
    return out


def live_table(facts, sizes):
    rate = facts.get(("-", "rate"), "1000")
    timeout = facts.get(("-", "live_timeout"), "?")
    lines = [
        f"### Backups while a writer commits {int(rate):,} times a second",
        "",
        "| size | backup | finished | wall s | commits/s before → during | "
        "longest commit ms before → during (s into the backup) | p99 commit ms during | "
        "longest gap without a commit ms | image consistent |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    any_row = False
    for size in sizes:
        for who, label in (("sqlseal", "`sqlseal backup create --method dbpage`"), ("sqlite3", "`sqlite3 .backup`")):
            k = lambda key: facts.get((str(size), f"live_{who}_{key}"), "?")  # noqa: E731
            if (str(size), f"live_{who}_finished") not in facts:
                continue
            any_row = True
            finished = "yes" if k("finished") == "1" else f"no (stopped after {timeout} s)"
            consistent = {"1": "yes", "0": "**no**"}.get(k("consistent"), "–")
            lines.append(
                f"| {size_label(size)} | {label} | {finished} | {k('seconds')} | "
                f"{k('before_rate')} → {k('during_rate')} | "
                f"{k('before_max_ms')} → {k('during_max_ms')} ({k('during_max_at_s')}) | "
                f"{k('during_p99_ms')} | {k('during_gap_ms')} | {consistent} |"
            )
    if not any_row:
        return []
    # Say so when the worst stall under sqlseal came at the very end, when the
    # finished backup file is fsynced.
    at_end = []
    for size in sizes:
        k = lambda key: facts.get((str(size), f"live_sqlseal_{key}"), "")  # noqa: E731
        try:
            if float(k("seconds")) - float(k("during_max_at_s")) <= 0.5 and float(k("during_max_ms")) > 100:
                at_end.append(size_label(size))
        except ValueError:
            continue
    if at_end:
        lines += [
            "",
            f"At {' and '.join(at_end)} the longest commit during sqlseal's backup ended in the last "
            "half second of the backup, when sqlseal fsyncs the finished backup file and the writer's "
            "I/O waits behind that writeback; the snapshot (a read transaction under WAL) holds no lock "
            "the writer waits for.",
        ]
    return lines


def render(args):
    results, facts = load(args)
    sizes = sorted({size for size, _ in results}, reverse=True)
    f = lambda key: facts.get(("-", key), "?")  # noqa: E731
    out = [
        HEADING,
        "",
        f"Measured by `benches/compare.sh` on {f('date')} at commit {f('commit')}"
        f"{' (with uncommitted changes in the working tree)' if f('dirty') not in ('0', '?') else ''}, "
        f"{f('runs')} run(s) of every operation, interleaved (one round of all operations, then the next).",
        "",
        f"Machine: {machine(facts)}",
        "",
        "How: each database is built by the `sqlite3` CLI with a recursive CTE (an `orders` table of "
        "text and integer columns, random customer names and references, an index on a text column), "
        "then put in WAL mode. A key is made with `sqlseal keygen` and an identity with `age-keygen`. "
        "The page cache is not dropped (that needs privileges); instead every contender starts the same "
        "way: the script runs `sync` (so no one pays for another's writeback), then reads its input once "
        "(`cat FILE > /dev/null`: the database for backups, the backup file for restores), so inputs are "
        "warm in the page cache for all of them. Wall time is measured by the shell around "
        "`/usr/bin/time -v`, which also gives the CPU time (user + system, median; all processes of a "
        "pipeline) and the peak RSS (\"Maximum resident set size\", the largest of all runs; for a "
        "pipeline, that of its largest single process). sqlseal fsyncs the backups and restored databases it writes; the "
        "operator script as usually written does not, so the rows \"then `sync`\" show it with the same "
        "durability. sqlseal runs with its defaults (1 MiB chunks, one worker per core).",
        "",
    ]
    note = load_note(results, facts)
    if note:
        out += [note, ""]
    out += ["### Targets", ""] + targets(results, facts, sizes) + [""]
    for size in sizes:
        out += size_table(results, facts, size) + [""]
    live = live_table(facts, sizes)
    if live:
        out += live + [
            "",
            "The writer (`benches/writer.py`) commits one insert and one counter update per "
            "transaction on a fixed schedule (WAL, `synchronous=NORMAL`) and catches up back to back "
            "when it falls behind. \"Before\" is the 3 s before the backup starts; \"during\" is from "
            "its start to its end (or to the time limit). The longest gap is the longest stretch in "
            "which no commit finished. An image is consistent when its number of events equals its "
            "counter (checked after `sqlseal backup restore`, or on the copy).",
            "",
        ]
    out += [
        f"Reproduce: `benches/compare.sh` (both sizes, 3 runs; this run took {f('minutes')} minutes after the build, "
        "most of it in `PRAGMA integrity_check`). "
        "`--sizes 256` for one size, `--runs 1` for a quick look, `--no-doc` to print instead of "
        "writing this section, `--keep` or `--workdir DIR` to keep the databases, `--help` for the rest.",
    ]
    sys.stdout.write("\n".join(out) + "\n")


INTRO = """# Benchmarks

How fast sqlseal is and how much memory it takes, measured on a real
machine. Figures differ between machines and between runs; compare
figures taken in one run only.

"""


def splice(args):
    with open(args.splice, encoding="utf-8") as f:
        section = f.read().rstrip("\n") + "\n"
    if os.path.exists(args.doc):
        with open(args.doc, encoding="utf-8") as f:
            lines = f.read().splitlines(keepends=True)
    else:
        lines = INTRO.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == HEADING)
    except StopIteration:
        start = None
    if start is None:
        text = "".join(lines).rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
            len(lines),
        )
        after = "".join(lines[end:])
        text = "".join(lines[:start]) + section + ("\n" + after if after else "")
    tmp = args.doc + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.doc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results")
    parser.add_argument("--facts")
    parser.add_argument("--splice", metavar="SECTION")
    parser.add_argument("--doc")
    args = parser.parse_args()
    if args.splice:
        if not args.doc:
            parser.error("--splice needs --doc")
        splice(args)
    elif args.results and args.facts:
        render(args)
    else:
        parser.error("give --results and --facts, or --splice and --doc")


if __name__ == "__main__":
    main()

//! SQLite's integrity check of one image, on several connections at once.
//!
//! `PRAGMA integrity_check` walks the whole file on one core. With several
//! connections reading the same image (the same snapshot), the work is
//! split the way SQLite allows it: `PRAGMA integrity_check(TABLE)` (and
//! `quick_check(TABLE)`) checks one table and its indexes, with everything
//! the whole-file check does for them (b-tree structure, records,
//! constraints, that every index holds exactly its table's rows), and the
//! check of `sqlite_schema` includes the freelist. The one thing only the
//! whole-file check does, that every page of the file belongs to exactly
//! one b-tree or to the freelist, is done here: once a table's check
//! passed, the pages of its b-trees are counted from `dbstat` (only then:
//! on a damaged b-tree `dbstat` can take unbounded time and memory), a
//! page counted twice is reported at once, and at the end the freelist is
//! read from its trunk pages and every page must have been counted once.
//!
//! Databases whose b-trees SQLite's check and `dbstat` might not see alike
//! get the whole-file check on one connection: `auto_vacuum` or
//! incremental vacuum (whose pointer map and header fields only the
//! whole-file check verifies), a virtual table (an FTS index, say: its own
//! check is left to SQLite's whole-file check), a schema row that is not a
//! table or an index but names a root page, an index of no table, a table
//! whose name reads as a number (which `integrity_check(N)` takes as a
//! line limit). So do databases of fewer than two tables (nothing to
//! split).
//!
//! The tables are taken from a shared queue in the schema's order. The
//! first problem found stops the other connections.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, InterruptHandle, OptionalExtension};

use crate::CheckLevel;

/// What a check found: at most the number of lines asked for, `["ok"]`
/// when sound, and how many connections it ran on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckReport {
    /// SQLite's lines (`ok`, or one per problem).
    pub lines: Vec<String>,
    /// How many connections the check ran on (1: the whole-file check).
    pub connections: usize,
}

impl CheckReport {
    /// Nothing found, on `connections` connections.
    fn sound(connections: usize) -> Self {
        CheckReport {
            lines: vec!["ok".to_owned()],
            connections,
        }
    }
}

/// Runs `level` on the image that every connection of `conns` reads (each
/// in the same read transaction, or on an immutable file), each with a
/// page cache of `cache_kib` (as `PRAGMA cache_size` takes it) divided
/// among them. Splits the check when there are two connections or more
/// and the database allows it (see the module documentation).
pub(crate) fn check_on(
    conns: &mut [Connection],
    level: CheckLevel,
    cache_kib: i64,
    max_lines: usize,
) -> rusqlite::Result<CheckReport> {
    let max_lines = max_lines.max(1);
    let (Some(pragma), Some(first)) = (level.pragma(), conns.first()) else {
        return Ok(CheckReport::sound(0));
    };
    let tables = if conns.len() > 1 {
        splittable_tables(first)?
    } else {
        None
    };
    let Some(tables) = tables else {
        first.execute_batch(&format!("PRAGMA cache_size = {cache_kib}"))?;
        let lines = pragma_lines(first, &format!("PRAGMA {pragma}({max_lines})"), max_lines)?;
        return Ok(CheckReport {
            lines,
            connections: 1,
        });
    };
    let page_count: i64 = first.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size: i64 = first.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let (page_count, page_size) = (page_count.max(0) as u64, page_size.max(512) as u64);
    let jobs: VecDeque<String> = std::iter::once(SCHEMA.to_owned()).chain(tables).collect();
    let workers = conns.len().min(jobs.len());
    let per_connection = cache_kib / i64::try_from(workers).unwrap_or(1);
    let shared = Shared {
        queue: Mutex::new(jobs),
        problems: Mutex::new(Vec::new()),
        failed: Arc::new(AtomicBool::new(false)),
        max_lines,
        interrupts: conns[..workers]
            .iter()
            .map(Connection::get_interrupt_handle)
            .collect(),
        counts: Mutex::new(PageCounts::new(page_count)),
    };
    let outcomes: Vec<rusqlite::Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = conns[..workers]
            .iter_mut()
            .map(|conn| {
                let shared = &shared;
                scope.spawn(move || {
                    conn.execute_batch(&format!("PRAGMA cache_size = {per_connection}"))?;
                    shared.work(conn, pragma)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(rusqlite::Error::InvalidQuery))
            })
            .collect()
    });
    let problems = shared
        .problems
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    // A problem found is the answer even if another connection was then
    // interrupted; otherwise any error is.
    if !problems.is_empty() {
        return Ok(CheckReport {
            lines: problems,
            connections: workers,
        });
    }
    for outcome in outcomes {
        outcome?;
    }
    // Every b-tree passed its check and was counted: the freelist and
    // the pages of nothing remain.
    let counts = shared
        .counts
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let lines = pages_of_nothing(&conns[0], counts, page_size, max_lines)?;
    if lines.is_empty() {
        return Ok(CheckReport::sound(workers));
    }
    Ok(CheckReport {
        lines,
        connections: workers,
    })
}

/// The name `dbstat` and `integrity_check` give the schema's own b-tree.
const SCHEMA: &str = "sqlite_schema";

/// The state the workers of one split check share.
struct Shared {
    /// The tables still to check (`sqlite_schema` first).
    queue: Mutex<VecDeque<String>>,
    problems: Mutex<Vec<String>>,
    /// Set at the first problem: the others stop taking jobs, and the
    /// statements still running stop at their next progress callback.
    failed: Arc<AtomicBool>,
    max_lines: usize,
    /// The workers' connections: at the first problem the statements
    /// still running are interrupted, so that a damaged database fails
    /// as soon as one part of the check saw it (the whole-file check
    /// reports only at its end).
    interrupts: Vec<InterruptHandle>,
    /// The pages of every b-tree counted so far.
    counts: Mutex<PageCounts>,
}

impl Shared {
    fn next(&self) -> Option<String> {
        if self.failed.load(Ordering::SeqCst) {
            return None;
        }
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    fn report(&self, lines: Vec<String>) {
        self.failed.store(true, Ordering::SeqCst);
        {
            let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
            let room = self.max_lines.saturating_sub(problems.len());
            problems.extend(lines.into_iter().take(room));
        }
        // A statement that starts after this call clears the interrupt; the
        // progress handler stops it instead.
        self.interrupts.iter().for_each(InterruptHandle::interrupt);
    }

    /// Takes jobs until the queue is empty or a problem was found, with a
    /// progress handler on `conn` that stops a statement once one was.
    fn work(&self, conn: &mut Connection, pragma: &str) -> rusqlite::Result<()> {
        let failed = Arc::clone(&self.failed);
        conn.progress_handler(1_000, Some(move || failed.load(Ordering::SeqCst)))?;
        let worked = self.take_jobs(conn, pragma);
        conn.progress_handler(0, None::<fn() -> bool>)?;
        worked
    }

    fn take_jobs(&self, conn: &Connection, pragma: &str) -> rusqlite::Result<()> {
        while let Some(table) = self.next() {
            let sql = format!("PRAGMA {pragma}({})", quote(&table));
            let lines = match pragma_lines(conn, &sql, self.max_lines) {
                Ok(lines) if lines.is_empty() => vec![format!("table {table}: no report")],
                Ok(lines) => lines,
                // The whole-file check reports what it found so far; this
                // reports the table it stopped in.
                Err(e) if is_damage(&e) => vec![format!("table {table}: {e}")],
                Err(e) => return Err(e),
            };
            if !crate::is_ok(&lines) {
                self.report(lines);
                continue;
            }
            // Its b-trees are sound: dbstat walks them in bounded time.
            match count_btree_pages(conn, &table, &self.counts) {
                Ok(twice) if twice.is_empty() => {}
                Ok(twice) => self.report(
                    twice
                        .into_iter()
                        .map(|p| format!("2nd reference to page {p}"))
                        .collect(),
                ),
                Err(e) if is_damage(&e) => {
                    self.report(vec![format!("Page accounting: table {table}: {e}")]);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Counts in `counts` the pages of `table`'s b-trees (the table's own
/// and its indexes': interior, leaf and overflow pages), a batch at a
/// time; returns the pages found counted before.
fn count_btree_pages(
    conn: &Connection,
    table: &str,
    counts: &Mutex<PageCounts>,
) -> rusqlite::Result<Vec<u64>> {
    let names: Vec<String> = if table == SCHEMA {
        vec![SCHEMA.to_owned()]
    } else {
        let mut stmt = conn.prepare_cached(
            "SELECT name FROM sqlite_schema
             WHERE tbl_name = ?1 COLLATE NOCASE AND type IN ('table', 'index') AND rootpage != 0",
        )?;
        stmt.query_map([table], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut twice = Vec::new();
    let mut batch = Vec::with_capacity(COUNT_BATCH);
    let mut flush = |batch: &mut Vec<u64>| {
        let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
        twice.extend(batch.drain(..).filter(|&p| counts.add(p)));
    };
    let mut stmt = conn.prepare_cached("SELECT pageno FROM dbstat WHERE name = ?1")?;
    for name in &names {
        let mut rows = stmt.query([name])?;
        while let Some(row) = rows.next()? {
            batch.push(u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0));
            if batch.len() == COUNT_BATCH {
                flush(&mut batch);
            }
        }
    }
    flush(&mut batch);
    Ok(twice)
}

/// Pages counted per lock of the shared counts.
const COUNT_BATCH: usize = 4096;

/// The tables of a database whose check can be split, or `None` when it
/// cannot be (see the module documentation; also an SQLite without
/// `dbstat`, `sqlite_dbpage` or `pragma_table_list`) or need not be (fewer
/// than two tables).
fn splittable_tables(conn: &Connection) -> rusqlite::Result<Option<Vec<String>>> {
    let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if auto_vacuum != 0 {
        return Ok(None);
    }
    let readable = |sql: &str| conn.prepare(sql).is_ok();
    if !readable("SELECT pageno FROM dbstat LIMIT 0")
        || !readable("SELECT data FROM sqlite_dbpage LIMIT 0")
    {
        return Ok(None);
    }
    // The largest root page and incremental-vacuum fields of the header:
    // non-zero in either only the whole-file check verifies.
    // (An empty file has no page 1: nothing to split.)
    let header: Option<Vec<u8>> = conn
        .query_row(
            "SELECT substr(data, 53, 16) FROM sqlite_dbpage WHERE pgno = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match header {
        Some(h) if h.len() == 16 && be32(&h[..4]) == 0 && be32(&h[12..16]) == 0 => {}
        _ => return Ok(None),
    }
    // A b-tree that dbstat walks and the whole-file check does not (or
    // the other way round).
    let unlike = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE CASE
                 WHEN type IN ('table', 'index') THEN typeof(rootpage) != 'integer' OR rootpage <= 0
                 ELSE coalesce(rootpage != 0, 0) END)
             OR EXISTS (SELECT 1 FROM sqlite_schema AS i WHERE i.type = 'index'
                 AND NOT EXISTS (SELECT 1 FROM sqlite_schema AS t
                     WHERE t.type = 'table' AND t.name = i.tbl_name COLLATE NOCASE))
             OR EXISTS (SELECT 1 FROM pragma_table_list WHERE schema = 'main' AND type = 'virtual')",
        [],
        |r| r.get::<_, bool>(0),
    );
    if !matches!(unlike, Ok(false)) {
        return Ok(None);
    }
    let mut stmt =
        conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY rootpage")?;
    let tables = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let numeric = |name: &str| {
        name.trim_start()
            .starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-')
    };
    if tables.iter().any(|name| numeric(name)) {
        return Ok(None);
    }
    Ok((tables.len() >= 2).then_some(tables))
}

/// `name` as an SQL string literal.
fn quote(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

/// The first `max_lines` lines of an integrity check pragma, each made one
/// line (see [`crate::one_problem`]). SQLite may end a report with
/// `SQLITE_CORRUPT` after the problems it found: that is a line too.
fn pragma_lines(conn: &Connection, sql: &str, max_lines: usize) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut lines = Vec::new();
    while lines.len() < max_lines {
        match rows.next() {
            Ok(Some(row)) => lines.push(crate::one_problem(&row.get::<_, String>(0)?)),
            Ok(None) => break,
            Err(e) if is_damage(&e) => {
                lines.push(e.to_string());
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(lines)
}

/// The byte offset SQLite leaves unused in every database: the page that
/// holds it belongs to nothing.
const PENDING_BYTE: u64 = 0x4000_0000;

/// The end of the page accounting, once every b-tree's pages are in
/// `counts`: the freelist's pages, read from its trunk pages, and the page
/// of the pending byte are counted too; then every page of the file must
/// have been counted once. Returns the problems in SQLite's wording (`Page
/// N: never used`, `2nd reference to page N`; at most `max_lines`). Damage
/// that keeps the freelist from being read is a problem, not an error.
fn pages_of_nothing(
    conn: &Connection,
    mut counts: PageCounts,
    page_size: u64,
    max_lines: usize,
) -> rusqlite::Result<Vec<String>> {
    let page_count = counts.page_count();
    let mut problems = Vec::new();
    match freelist_pages(conn, page_count, page_size) {
        Ok(Ok(free)) => free.into_iter().for_each(|p| {
            counts.add(p);
        }),
        Ok(Err(problem)) => problems.push(format!("Freelist: {problem}")),
        Err(e) if is_damage(&e) => problems.push(format!("Freelist: {e}")),
        Err(e) => return Err(e),
    }
    if problems.is_empty() {
        let pending = PENDING_BYTE / page_size + 1;
        if pending <= page_count {
            counts.add(pending);
        }
        problems = counts.problems(max_lines);
    }
    problems.truncate(max_lines);
    Ok(problems)
}

/// An error that means the file is damaged rather than that the check
/// could not run (interrupted, out of memory).
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// The freelist's trunk and leaf pages, read from page 1's header and the
/// trunk pages through `sqlite_dbpage`; `Ok(Err(..))` describes a
/// freelist that cannot be walked (a page number out of range, a loop, a
/// trunk page claiming more leaves than it holds).
fn freelist_pages(
    conn: &Connection,
    page_count: u64,
    page_size: u64,
) -> rusqlite::Result<Result<Vec<u64>, String>> {
    let mut stmt = conn.prepare("SELECT data FROM sqlite_dbpage WHERE pgno = ?1")?;
    let mut read = |page: u64| -> rusqlite::Result<Vec<u8>> {
        let page = i64::try_from(page).unwrap_or(i64::MAX);
        stmt.query_row([page], |r| r.get::<_, Vec<u8>>(0))
    };
    let first = read(1)?;
    let Some(header) = first.get(..100) else {
        return Ok(Err("page 1 is shorter than the database header".into()));
    };
    let reserved = u64::from(header[20]);
    let usable = page_size.saturating_sub(reserved);
    let mut trunk = u64::from(be32(&header[32..36]));
    let total = u64::from(be32(&header[36..40]));
    let mut pages = Vec::new();
    let mut trunks = 0u64;
    while trunk != 0 {
        trunks += 1;
        if trunk > page_count || trunks > page_count {
            return Ok(Err(format!(
                "trunk page {trunk} is out of range or loops (the file has {page_count} pages)"
            )));
        }
        let data = read(trunk)?;
        if data.len() < 8 {
            return Ok(Err(format!("trunk page {trunk} is short")));
        }
        let leaves = u64::from(be32(&data[4..8]));
        if leaves > (usable / 4).saturating_sub(2) {
            return Ok(Err(format!(
                "trunk page {trunk} claims {leaves} leaves, more than a page holds"
            )));
        }
        pages.push(trunk);
        // A loop through full trunk pages would otherwise grow this list
        // by a page's worth of leaves each time round.
        if pages.len() as u64 + leaves > page_count {
            return Ok(Err(format!(
                "the freelist holds more pages than the file ({page_count}): it loops"
            )));
        }
        for i in 0..leaves as usize {
            let at = 8 + 4 * i;
            let leaf = u64::from(be32(&data[at..at + 4]));
            if leaf == 0 || leaf > page_count {
                return Ok(Err(format!(
                    "leaf page {leaf} on trunk page {trunk} is out of range"
                )));
            }
            pages.push(leaf);
        }
        trunk = u64::from(be32(&data[..4]));
    }
    if pages.len() as u64 != total {
        return Ok(Err(format!(
            "the header counts {total} free pages, the freelist holds {}",
            pages.len()
        )));
    }
    Ok(Ok(pages))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// How often each page of a file was found in use: 0, 1, or more.
#[derive(Debug)]
pub(crate) struct PageCounts {
    /// Index 0 is page 1. Saturates at 2.
    seen: Vec<u8>,
    /// Page numbers beyond the file, in the order found.
    beyond: Vec<u64>,
}

impl PageCounts {
    pub(crate) fn new(page_count: u64) -> Self {
        PageCounts {
            seen: vec![0; usize::try_from(page_count).unwrap_or(0)],
            beyond: Vec::new(),
        }
    }

    /// The pages of the file.
    pub(crate) fn page_count(&self) -> u64 {
        self.seen.len() as u64
    }

    /// Counts one use of `page` (numbered from 1); true when this use is
    /// its second (not for a third or later).
    pub(crate) fn add(&mut self, page: u64) -> bool {
        let slot = page
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.seen.get_mut(i));
        match slot {
            Some(n) => {
                let second = *n == 1;
                *n = n.saturating_add(1).min(2);
                second
            }
            // Beyond the file, or page 0 (which is no page).
            None => {
                self.beyond.push(page);
                false
            }
        }
    }

    /// The first `max_lines` problems, in page order, in SQLite's wording.
    pub(crate) fn problems(&self, max_lines: usize) -> Vec<String> {
        let pages = self.seen.len() as u64;
        let beyond = self
            .beyond
            .iter()
            .map(|p| format!("invalid page number {p} (the file has {pages} pages)"));
        let counted = self.seen.iter().enumerate().filter_map(|(i, n)| match n {
            0 => Some(format!("Page {}: never used", i + 1)),
            1 => None,
            _ => Some(format!("2nd reference to page {}", i + 1)),
        });
        beyond.chain(counted).take(max_lines).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_used_once_are_sound_and_the_rest_are_named() {
        let mut counts = PageCounts::new(5);
        let second: Vec<bool> = [1, 2, 4, 4, 5, 4, 9, 0]
            .into_iter()
            .map(|p| counts.add(p))
            .collect();
        // Only the second use of page 4 is a second use.
        assert_eq!(
            second,
            [false, false, false, true, false, false, false, false]
        );
        assert_eq!(counts.page_count(), 5);
        assert_eq!(
            counts.problems(10),
            [
                "invalid page number 9 (the file has 5 pages)",
                "invalid page number 0 (the file has 5 pages)",
                "Page 3: never used",
                "2nd reference to page 4",
            ]
        );
        assert_eq!(counts.problems(1).len(), 1);
        let mut sound = PageCounts::new(3);
        (1..=3).for_each(|p| {
            sound.add(p);
        });
        assert!(sound.problems(10).is_empty());
    }

    /// A database of three tables (two with indexes) and free pages.
    fn tables_db(dir: &std::path::Path, auto_vacuum: bool) -> std::path::PathBuf {
        let db = dir.join("tables.db");
        let conn = Connection::open(&db).expect("open");
        conn.execute_batch(&format!(
            "PRAGMA auto_vacuum = {};
             CREATE TABLE a(id INTEGER PRIMARY KEY, name TEXT);
             CREATE INDEX a_name ON a(name);
             CREATE TABLE b(id INTEGER PRIMARY KEY, body TEXT);
             CREATE TABLE \"it's\"(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
             CREATE INDEX its_v ON \"it's\"(v);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)
             INSERT INTO a(name) SELECT 'name ' || (i * 7919 % 3000) FROM c;
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 400)
             INSERT INTO b(body) SELECT printf('%.*c', 900, 'x') || i FROM c;
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)
             INSERT INTO \"it's\" SELECT 'key ' || i, i % 97 FROM c;
             DELETE FROM b WHERE id > 100;",
            if auto_vacuum { "FULL" } else { "NONE" }
        ))
        .expect("fill");
        db
    }

    fn connections(db: &std::path::Path, n: usize) -> Vec<Connection> {
        (0..n)
            .map(|_| crate::open_image(db).expect("open image"))
            .collect()
    }

    fn check(db: &std::path::Path, n: usize, level: CheckLevel) -> CheckReport {
        check_on(&mut connections(db, n), level, -2000, 20).expect("check runs")
    }

    /// Each problem of a report once, sorted: SQLite puts several on one
    /// line (made `; `-separated), the split check one on each.
    fn problems(lines: &[String]) -> Vec<String> {
        let mut all: Vec<String> = lines
            .iter()
            .flat_map(|l| l.split("; ").map(str::to_owned))
            .collect();
        all.sort();
        all
    }

    /// Writes `bytes` at `offset` of `db` with plain file I/O.
    fn patch(db: &std::path::Path, offset: usize, bytes: &[u8]) {
        let mut image = std::fs::read(db).expect("read");
        image[offset..offset + bytes.len()].copy_from_slice(bytes);
        std::fs::write(db, image).expect("write");
    }

    #[test]
    fn a_sound_database_is_checked_on_every_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tables_db(dir.path(), false);
        let free: i64 = Connection::open(&db)
            .expect("open")
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .expect("freelist");
        assert!(free > 0, "the database has free pages");
        for level in [CheckLevel::Full, CheckLevel::Quick] {
            let split = check(&db, 3, level);
            assert_eq!(split.lines, ["ok"], "{level}");
            assert_eq!(split.connections, 3, "{level}");
            let whole = check(&db, 1, level);
            assert_eq!(whole.lines, ["ok"], "{level}");
            assert_eq!(whole.connections, 1, "{level}");
        }
        assert_eq!(check(&db, 2, CheckLevel::None).lines, ["ok"]);
    }

    #[test]
    fn free_pages_left_out_of_the_freelist_are_found_as_by_the_whole_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tables_db(dir.path(), false);
        // No freelist in the header: its pages now belong to nothing, which
        // no check of a single table can see.
        patch(&db, 32, &[0; 8]);
        let whole = check(&db, 1, CheckLevel::Full);
        assert!(whole.lines[0].ends_with("never used"), "{:?}", whole.lines);
        let split = check(&db, 2, CheckLevel::Full);
        assert_eq!(split.connections, 2);
        assert_eq!(problems(&split.lines), problems(&whole.lines));
        let quick = check(&db, 2, CheckLevel::Quick);
        assert_eq!(problems(&quick.lines), problems(&whole.lines));
    }

    /// Runs `first`, then adds tables `x` and `y` to `db` and points `y` at
    /// `x`'s root page: each table alone is sound, the file is not (a page
    /// used twice, one never used).
    fn share_a_root_page(db: &std::path::Path, first: &str) {
        let conn = Connection::open(db).expect("open");
        conn.execute_batch(first).expect("set-up");
        conn.execute_batch(
            "CREATE TABLE x(v); CREATE TABLE y(v);
             INSERT INTO x VALUES (1); INSERT INTO y VALUES (2);
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM sqlite_schema WHERE name = 'x')
                 WHERE name = 'y';
             PRAGMA writable_schema = OFF;",
        )
        .expect("share a root page");
    }

    #[test]
    fn a_page_shared_by_two_tables_is_found_as_by_the_whole_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("shared.db");
        share_a_root_page(&db, "CREATE TABLE z(v); INSERT INTO z VALUES (1);");
        // Each table alone is sound; the file is not.
        let whole = check(&db, 1, CheckLevel::Full);
        assert_ne!(whole.lines, ["ok"]);
        let split = check(&db, 3, CheckLevel::Full);
        assert_eq!(split.connections, 3);
        // The split check stops at the first problem it finds: the second
        // reference, as soon as both tables are counted.
        let expected = problems(&whole.lines);
        assert!(expected.iter().any(|l| l.ends_with("never used")));
        let found = problems(&split.lines);
        assert!(!found.is_empty());
        assert!(
            found.iter().all(|l| expected.contains(l)),
            "{found:?} {expected:?}"
        );
        assert!(found.iter().any(|l| l.starts_with("2nd reference to page")));
    }

    /// Rewrites schema rows of `db` with `update` (an UPDATE of
    /// sqlite_schema) under `writable_schema`.
    fn rewrite_schema(db: &std::path::Path, update: &str) {
        let conn = Connection::open(db).expect("open");
        conn.execute_batch(&format!(
            "PRAGMA writable_schema = ON; {update}; PRAGMA writable_schema = OFF;"
        ))
        .expect("rewrite the schema");
    }

    /// The full check of `db` on three connections, which must be the
    /// whole-file check on one, report and all; returns that report.
    fn split_checks_whole(db: &std::path::Path) -> CheckReport {
        let whole = check(db, 1, CheckLevel::Full);
        assert_eq!(check(db, 3, CheckLevel::Full), whole);
        whole
    }

    #[test]
    fn a_trigger_row_naming_a_root_page_gets_the_whole_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tables_db(dir.path(), false);
        // Table b's row made a trigger's, its root page kept: dbstat would
        // walk b's pages under that row, the whole check finds them unused.
        rewrite_schema(
            &db,
            "UPDATE sqlite_schema SET type = 'trigger', name = 'tr', tbl_name = 'a',
                 sql = 'CREATE TRIGGER tr AFTER INSERT ON a BEGIN SELECT 1; END'
             WHERE name = 'b'",
        );
        let whole = split_checks_whole(&db);
        assert!(whole.lines[0].ends_with("never used"), "{whole:?}");
    }

    #[test]
    fn an_incremental_vacuum_header_field_gets_the_whole_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tables_db(dir.path(), false);
        // Incremental vacuum on (offset 64), largest root page zero (52).
        patch(&db, 64, &[0, 0, 0, 1]);
        assert_ne!(split_checks_whole(&db).lines, ["ok"]);
    }

    #[test]
    fn a_freelist_that_loops_is_a_problem_found_without_growing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tables_db(dir.path(), false);
        let conn = Connection::open(&db).expect("open");
        let trunk: i64 = conn
            .query_row(
                "SELECT substr(data, 33, 4) FROM sqlite_dbpage WHERE pgno = 1",
                [],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .map(|b| i64::from(be32(&b)))
            .expect("first trunk page");
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size");
        drop(conn);
        assert!(trunk > 0, "the database has a freelist");
        // The trunk page points at itself.
        let at = usize::try_from((trunk - 1) * page_size).expect("offset");
        patch(&db, at, &u32::try_from(trunk).expect("page").to_be_bytes());
        let conn = crate::open_image(&db).expect("open image");
        let page_count: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .expect("page count");
        let walked = freelist_pages(&conn, page_count as u64, page_size as u64).expect("reads");
        let problem = walked.expect_err("a loop is a problem");
        assert!(problem.contains("more pages than the file"), "{problem}");
        assert_ne!(check(&db, 3, CheckLevel::Full).lines, ["ok"]);
    }

    #[test]
    fn a_report_of_no_lines_asked_is_still_a_report() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tables_db(dir.path(), false);
        patch(&db, 32, &[0; 8]);
        for n in [1, 3] {
            let report =
                check_on(&mut connections(&db, n), CheckLevel::Full, -2000, 0).expect("check runs");
            assert_eq!(report.lines.len(), 1, "{n} connections: {report:?}");
            assert_ne!(report.lines, ["ok"], "{n} connections");
        }
    }

    #[test]
    fn a_table_named_like_a_number_gets_the_whole_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tables_db(dir.path(), false);
        Connection::open(&db)
            .expect("open")
            .execute_batch("CREATE TABLE \"10\"(v); INSERT INTO \"10\" VALUES (1);")
            .expect("table 10");
        assert_eq!(check(&db, 3, CheckLevel::Full), CheckReport::sound(1));
    }

    #[test]
    fn the_first_problem_found_stops_the_other_connections() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("demo.db");
        crate::demo::create_demo_database(&db, 32 << 20).expect("demo db");
        share_a_root_page(&db, "PRAGMA journal_mode = DELETE;");
        let started = std::time::Instant::now();
        let whole = check(&db, 1, CheckLevel::Full);
        let whole_took = started.elapsed();
        let started = std::time::Instant::now();
        let split = check(&db, 2, CheckLevel::Full);
        let split_took = started.elapsed();
        assert!(
            problems(&whole.lines).contains(&split.lines[0]),
            "{split:?} {whole:?}"
        );
        assert!(
            split.lines[0].starts_with("2nd reference to page"),
            "{split:?}"
        );
        // Tables x and y are checked and counted in milliseconds; the
        // whole check, and the split one's check of the orders table, take
        // far longer.
        assert!(
            split_took * 2 < whole_took,
            "split {split_took:?}, whole {whole_took:?}"
        );
    }

    #[test]
    fn a_damaged_index_fails_the_split_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tables_db(dir.path(), false);
        let (root, page_size): (usize, usize) = {
            let conn = Connection::open(&db).expect("open");
            let root: i64 = conn
                .query_row(
                    "SELECT rootpage FROM sqlite_schema WHERE name = 'a_name'",
                    [],
                    |r| r.get(0),
                )
                .expect("root");
            let size: i64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .expect("page size");
            (root as usize, size as usize)
        };
        let garbage: Vec<u8> = (0..page_size / 2).map(|i| (i as u8) ^ 0x5a).collect();
        patch(&db, (root - 1) * page_size + page_size / 2, &garbage);
        let split = check(&db, 2, CheckLevel::Full);
        assert_ne!(split.lines, ["ok"]);
        assert!(split.lines.len() <= 20);
        assert_ne!(check(&db, 1, CheckLevel::Full).lines, ["ok"]);
    }

    #[test]
    fn a_database_with_a_virtual_table_gets_the_whole_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tables_db(dir.path(), false);
        Connection::open(&db)
            .expect("open")
            .execute_batch(
                "CREATE VIRTUAL TABLE notes USING fts5(body);
                 INSERT INTO notes SELECT name FROM a;",
            )
            .expect("fts5 table");
        // Sound, and checked whole on one connection.
        assert_eq!(check(&db, 3, CheckLevel::Full), CheckReport::sound(1));
    }

    #[test]
    fn auto_vacuum_and_single_table_databases_get_the_whole_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tables_db(dir.path(), true);
        // Sound, and checked whole on one connection.
        assert_eq!(check(&db, 3, CheckLevel::Full), CheckReport::sound(1));
        let one = dir.path().join("one.db");
        sqlseal_testkit::indexed_db(&one, 500);
        // Sound, and checked whole on one connection.
        assert_eq!(check(&one, 3, CheckLevel::Full), CheckReport::sound(1));
    }

    #[test]
    fn table_names_are_quoted_as_sql_strings() {
        assert_eq!(quote("orders"), "'orders'");
        assert_eq!(quote("it's"), "'it''s'");
    }
}

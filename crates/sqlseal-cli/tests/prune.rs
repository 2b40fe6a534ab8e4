//! `sqlseal backup prune` on the real binary: the plan, carrying it out,
//! files that do not verify, and the bad inputs.
//!
//! Which backup stands for which period (grandfather-father-son) is tested
//! on a two-year synthetic history in sqlseal-schedule's retention module;
//! here the backups are real and minutes apart, so the rules that matter are
//! the newest-N ones and "the newest is always kept".

mod common;

use std::time::Duration;

use common::{create_args, keygen, make_random_db, p, run, sqlseal};

const LIMIT: Duration = Duration::from_secs(60);

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sqlseal"))
        .collect();
    v.sort();
    v
}

#[test]
fn prune_plans_deletes_keeps_the_newest_and_skips_what_does_not_verify() {
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    make_random_db(&w.join("app.db"), 1, "prune");
    let key = keygen(w, "server.pem");
    let dir = w.join("backups");
    for _ in 0..4 {
        run(
            sqlseal(&create_args("app.db", "backups", p(&key), &[]), w),
            LIMIT,
        )
        .expect_success("create");
    }
    let made = names(&dir);
    assert_eq!(made.len(), 4);
    // A file that claims to be the newest backup but does not verify: a
    // genuine header with one character of its signature changed.
    let planted = "app.db-29991231T000000.000000Z-000000.sqlseal";
    let mut bytes = std::fs::read(dir.join(&made[0])).expect("read");
    let sig = bytes
        .windows(12)
        .position(|w| w == b"\nsignature: ")
        .expect("signature line")
        + 12;
    bytes[sig] = if bytes[sig] == b'A' { b'B' } else { b'A' };
    std::fs::write(dir.join(planted), bytes).expect("plant");

    let prune = |extra: &[&str]| {
        let mut args = vec!["backup", "prune", "--dir", "backups", "--key", p(&key)];
        args.extend_from_slice(extra);
        run(sqlseal(&args, w), LIMIT)
    };

    // The plan: the newest 2 kept, 2 to delete, the planted file skipped;
    // nothing deleted.
    let plan = prune(&["--max-count", "2", "--dry-run"]).expect_success("dry run");
    let lines: Vec<Vec<&str>> = plan.lines().map(|l| l.split('\t').collect()).collect();
    let action = |name: &str| {
        lines
            .iter()
            .find(|l| l[1].ends_with(name))
            .map(|l| l[0])
            .unwrap_or_else(|| panic!("{name} in the plan: {plan}"))
    };
    assert_eq!(action(&made[3]), "keep", "{plan}");
    assert_eq!(action(&made[2]), "keep", "{plan}");
    assert_eq!(action(&made[1]), "delete", "{plan}");
    assert_eq!(action(&made[0]), "delete", "{plan}");
    assert_eq!(action(planted), "skip", "{plan}");
    assert_eq!(names(&dir).len(), 5, "a dry run deletes nothing");

    // JSON says the same.
    let json = prune(&["--max-count", "2", "--dry-run", "--json"]).expect_success("json");
    let rows: serde_json::Value = serde_json::from_str(&json).expect("json array");
    let deletes = rows
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["action"] == "delete")
        .count();
    assert_eq!(deletes, 2);

    // Carried out: exactly the plan.
    let done = prune(&["--max-count", "2", "--yes"]).expect_success("prune");
    let deleted = done.lines().filter(|l| l.starts_with("deleted\t")).count();
    assert_eq!(deleted, 2, "{done}");
    let left = names(&dir);
    assert!(
        left.contains(&made[3]) && left.contains(&made[2]),
        "{left:?}"
    );
    assert!(
        !left.contains(&made[1]) && !left.contains(&made[0]),
        "{left:?}"
    );
    assert!(
        left.contains(&planted.to_owned()),
        "an unverified file is never deleted"
    );

    // Even a rule that keeps nothing by count keeps the newest.
    prune(&["--keep-yearly", "1", "--yes"]).expect_success("yearly");
    assert_eq!(
        names(&dir),
        vec![made[3].clone(), planted.to_owned()],
        "one backup per year: the newest stays, and the file that does not verify"
    );

    // Bad inputs: no rule, no mode, both modes.
    let o = prune(&["--dry-run"]);
    let line = o.expect_failure("no rule", 1, LIMIT);
    assert!(
        line.contains("--max-count") && line.contains("--keep-"),
        "{line}"
    );
    for (what, extra) in [
        ("no --dry-run or --yes", &["--max-count", "1"][..]),
        ("both", &["--max-count", "1", "--dry-run", "--yes"][..]),
    ] {
        let o = prune(extra);
        assert_eq!(o.code(what), 2, "{what}: usage error: {}", o.stderr);
        assert!(o.stderr.contains("--dry-run"), "{what}: {}", o.stderr);
        assert_eq!(names(&dir).len(), 2, "{what}: nothing deleted");
    }
}

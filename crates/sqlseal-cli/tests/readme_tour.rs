//! The README's "A 30-second tour" runs as written: every command of its
//! shell block, in order, in a directory holding a small `app.db`, with
//! `sqlseal` found on PATH as the binary under test. A change to the CLI
//! that breaks the tour, or a tour that drifts from the CLI, fails here.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{bin, db_tag_and_rows, make_random_db};

/// The commands of the first ```sh block after `heading`: comments and
/// blank lines dropped, `\`-continued lines joined.
fn shell_block(readme: &str, heading: &str) -> Vec<String> {
    let after = readme
        .split_once(heading)
        .unwrap_or_else(|| panic!("README.md has no {heading:?} section"))
        .1;
    let block = after
        .split_once("```sh\n")
        .expect("a ```sh block in the tour")
        .1
        .split_once("\n```")
        .expect("the tour's block ends")
        .0;
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        let line = line.trim_end();
        if pending.is_empty() && (line.trim_start().starts_with('#') || line.trim().is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    assert!(pending.is_empty(), "the tour ends in a continued line");
    commands
}

#[test]
fn the_readme_tour_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let commands = shell_block(&readme, "## A 30-second tour");
    assert!(
        commands.len() >= 10 && commands.iter().all(|c| c.starts_with("sqlseal ")),
        "the tour's commands: {commands:#?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    make_random_db(&dir.path().join("app.db"), 1, "tour");
    let bin_dir = bin().parent().expect("binary directory").to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");

    for command in &commands {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(command)
            .current_dir(dir.path())
            .env("PATH", &path);
        let outcome = common::run(sh, Duration::from_secs(120));
        assert_eq!(
            outcome.code(command),
            0,
            "README tour: `{command}` failed\nstdout: {}\nstderr: {}",
            outcome.stdout,
            outcome.stderr
        );
    }

    // The restores did restore: the same database under each new name.
    let original = db_tag_and_rows(&dir.path().join("app.db"));
    assert_eq!(original.0, "tour");
    let restored: Vec<_> = ["restored.db", "recovered.db"]
        .iter()
        .map(|name| dir.path().join(name))
        .filter(|p| p.exists())
        .collect();
    assert!(!restored.is_empty(), "the tour restores to a new file");
    for path in restored {
        assert_eq!(db_tag_and_rows(&path), original, "{}", path.display());
    }
}

#[test]
fn shell_block_joins_continued_lines_and_drops_comments() {
    let readme = "## T\n\n```sh\n# c\nsqlseal a \\\n  --b\n\nsqlseal c  # d\n```\n";
    assert_eq!(
        shell_block(readme, "## T"),
        vec!["sqlseal a    --b".to_owned(), "sqlseal c  # d".to_owned()]
    );
}

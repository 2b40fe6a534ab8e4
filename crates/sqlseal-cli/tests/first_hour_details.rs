//! The real `sqlseal` binary on what a new user meets in the first hour:
//! sizes with units, one-line errors for a bad `--dir`, readable backup
//! names, and the mode of restored files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlseal_testkit::{add_rows, bin, keygen, p, stderr, stdout};

use common::{create_args, one_line_error};

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("runs")
}

struct Setup {
    dir: tempfile::TempDir,
    db: PathBuf,
    key: PathBuf,
}

fn setup(db_name: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join(db_name);
    add_rows(&db, 2000, 0);
    let key = keygen(dir.path(), "server.pem");
    Setup { dir, db, key }
}

fn create(s: &Setup, dir: &Path, extra: &[&str]) -> Output {
    run(&create_args(p(&s.db), p(dir), p(&s.key), extra))
}

#[test]
fn chunk_size_takes_binary_units() {
    let s = setup("app.db");
    let backups = s.dir.path().join("backups");
    for (text, bytes) in [("64KiB", "65536"), ("4 MiB", "4194304"), ("8192", "8192")] {
        let o = create(&s, &backups, &["--chunk-size", text]);
        assert!(o.status.success(), "{text}: {}", stderr(&o));
        let backup = stdout(&o).trim().to_owned();
        let info = run(&["backup", "info", &backup]);
        assert!(
            stdout(&info).contains(&format!("chunk-size:  {bytes}\n")),
            "{text}: {}",
            stdout(&info)
        );
    }
}

#[test]
fn a_bad_chunk_size_names_the_flag_the_value_and_the_forms() {
    let s = setup("app.db");
    let backups = s.dir.path().join("backups");
    let o = create(&s, &backups, &["--chunk-size", "1MB"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("'1MB'") && err.contains("--chunk-size"),
        "{err}"
    );
    assert!(
        err.contains("ambiguous") && err.contains("KiB, MiB"),
        "{err}"
    );
    let o = create(&s, &backups, &["--chunk-size", "32MiB"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("use 4KiB to 16MiB"), "{}", stderr(&o));
}

#[test]
fn a_dir_that_is_a_file_is_one_line_naming_it_and_the_fix() {
    let s = setup("app.db");
    let file = s.dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("file");
    let err = one_line_error(&create(&s, &file, &[]));
    assert_eq!(
        err.trim(),
        format!(
            "error: backup directory {} is a file, not a directory; pass a directory to --dir (or Backup.Location)",
            file.display()
        )
    );
    let err = one_line_error(&create(&s, &file.join("below"), &[]));
    assert!(
        err.contains(&format!("{} is a file", file.display())),
        "{err}"
    );
    let err = one_line_error(&run(&["backup", "list", "--dir", p(&file)]));
    assert!(err.contains("is a file, not a directory"), "{err}");
}

/// A directory this process cannot write in, whoever it runs as: sysfs
/// refuses new files even to root; otherwise a 0555 directory, which root
/// would ignore.
fn unwritable_dir(base: &Path) -> Option<PathBuf> {
    let sys = PathBuf::from("/sys/kernel");
    if sys.is_dir() && std::fs::File::create(sys.join(".sqlseal-probe")).is_err() {
        return Some(sys);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = base.join("read-only");
        std::fs::create_dir(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        if std::fs::File::create(dir.join("probe")).is_err() {
            return Some(dir);
        }
    }
    None
}

#[test]
fn an_unwritable_dir_is_one_line_naming_it_and_the_fix() {
    let s = setup("app.db");
    let Some(dir) = unwritable_dir(s.dir.path()) else {
        eprintln!(
            "skipped: no directory here refuses writes to this process (root ignores permissions and /sys is writable)"
        );
        return;
    };
    let err = one_line_error(&create(&s, &dir, &[]));
    assert!(
        err.starts_with(&format!(
            "error: backup directory {} is not writable by this user",
            dir.display()
        )),
        "{err}"
    );
    assert!(
        err.trim_end()
            .ends_with("fix its permissions or choose another --dir (or Backup.Location)"),
        "{err}"
    );
}

#[test]
fn backup_names_keep_unicode_and_spaces() {
    let s = setup("café app ☕.db");
    let backups = s.dir.path().join("backups");
    let o = create(&s, &backups, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let path = PathBuf::from(stdout(&o).trim());
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("café app ☕.db-"), "{name}");
    let listed = stdout(&run(&["backup", "list", "--dir", p(&backups)]));
    assert!(listed.contains(&name), "{listed}");
}

#[cfg(unix)]
fn mode_and_owner(path: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).expect("metadata");
    (m.mode() & 0o7777, m.uid(), m.gid())
}

#[cfg(unix)]
#[test]
fn restored_files_are_0600_or_keep_the_replaced_files_mode_and_owner() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup("app.db");
    let backups = s.dir.path().join("backups");
    let o = create(&s, &backups, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let backup = stdout(&o).trim().to_owned();

    // A new file: 0600, said so.
    let fresh = s.dir.path().join("fresh.db");
    let restore = |target: &Path, extra: &[&str]| {
        let mut args = vec![
            "backup",
            "restore",
            &backup,
            "--key",
            p(&s.key),
            "--db",
            p(target),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = restore(&fresh, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode_and_owner(&fresh).0, 0o600);
    assert!(
        stdout(&o).contains("mode: 0600 (a new file)"),
        "{}",
        stdout(&o)
    );

    // Over a 0640 file: its mode, and its owner when this process may set it.
    let existing = s.dir.path().join("existing.db");
    std::fs::write(&existing, "old").expect("old");
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    // Only a privileged process can give the file away; then the restore
    // must give the restored file the same owner.
    let root = std::os::unix::fs::chown(&existing, Some(4242), Some(4343)).is_ok();
    let before = mode_and_owner(&existing);
    let o = restore(&existing, &["--force", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(json["mode"], "0640", "{json}");
    assert_eq!(json["mode_kept"], true, "{json}");
    assert_eq!(json["owner_kept"], root, "{json}");
    let after = mode_and_owner(&existing);
    assert_eq!(after.0, 0o640);
    if root {
        assert_eq!((after.1, after.2), (4242, 4343));
    } else {
        eprintln!("not root: the owner cannot be given away, so only the mode is checked");
    }
    assert_eq!(before.0, after.0);
}

//! Which databases the daemon serves and what each is called: names that
//! are unique in the daemon and readable in backup paths and metrics.
//!
//! - `Database.Paths` entries are `PATH` or `NAME=PATH`. Without a name, a
//!   database is called by its file name, or, where several share a file
//!   name, by the shortest trailing part of each path that tells them
//!   apart (`/srv/a/app.db` and `/srv/b/app.db` are `a/app.db` and
//!   `b/app.db`).
//! - `Database.Dirs` entries are glob patterns (`/srv/tenants/*/app.db`,
//!   `/var/lib/sites/**/*.sqlite`); a database found by one is called by its
//!   path relative to the pattern's directory part (`acme/app.db`).
//! - Names that still collide are refused, naming both paths.
//!
//! A name is one or more `/`-separated parts, none empty, `.` or `..`; it
//! is the database's subdirectory of each backup location, its name in
//! backup headers (with `/` written `_`), and its `database` label.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// One database to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedDatabase {
    /// Its file.
    pub path: PathBuf,
    /// Its name in the daemon.
    pub name: String,
}

/// Checks that `name` can name a database (see the module docs).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') {
        return Err(format!(
            "`{name}` is not a database name: use one or more `/`-separated parts, such as app.db or acme/app.db"
        ));
    }
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.chars().any(char::is_control) {
            return Err(format!(
                "`{name}` is not a database name: a part is empty, `.`, `..` or holds a control character"
            ));
        }
    }
    Ok(())
}

/// Splits a `Database.Paths` entry into its path and explicit name
/// (`NAME=PATH`; a path that itself holds `=` needs a name).
pub fn parse_path_entry(entry: &Path) -> Result<(PathBuf, Option<String>), String> {
    let text = entry.to_string_lossy();
    match text.split_once('=') {
        Some((name, path)) if !path.is_empty() => {
            check_name(name)?;
            Ok((PathBuf::from(path), Some(name.to_owned())))
        }
        Some(_) => Err(format!("`{text}` names no path after `=`; write NAME=PATH")),
        None => Ok((entry.to_path_buf(), None)),
    }
}

/// The last `k` parts of `path`, joined by `/`.
fn tail(path: &Path, k: usize) -> Option<String> {
    let parts: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    (k <= parts.len()).then(|| parts[parts.len() - k..].join("/"))
}

/// Names the `Database.Paths` entries: explicit names as given, the others
/// by file name or the shortest distinguishing trailing part.
pub fn name_paths(entries: &[(PathBuf, Option<String>)]) -> Result<Vec<NamedDatabase>, String> {
    let mut by_file: BTreeMap<String, Vec<&Path>> = BTreeMap::new();
    for (path, name) in entries {
        if name.is_none() {
            let file =
                tail(path, 1).ok_or_else(|| format!("{} is not a file path", path.display()))?;
            by_file.entry(file).or_default().push(path);
        }
    }
    let mut chosen: BTreeMap<&Path, String> = BTreeMap::new();
    for (file, paths) in by_file {
        if paths.len() == 1 {
            chosen.insert(paths[0], file);
            continue;
        }
        let mut k = 2;
        loop {
            let tails: Vec<Option<String>> = paths.iter().map(|p| tail(p, k)).collect();
            let mut seen: Vec<&String> = tails.iter().flatten().collect();
            seen.sort();
            seen.dedup();
            if tails.iter().all(Option::is_some) && seen.len() == paths.len() {
                for (p, t) in paths.iter().zip(tails) {
                    chosen.insert(p, t.unwrap_or_default());
                }
                break;
            }
            if tails.iter().all(Option::is_none) || tails.iter().any(Option::is_none) {
                // Some path has no more parts to tell it apart: the same
                // file listed twice (or a path that is a suffix of another).
                return Err(format!(
                    "{} are listed more than once or cannot be told apart by their trailing parts; list each once, or name them with NAME=PATH",
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ));
            }
            k += 1;
        }
    }
    Ok(entries
        .iter()
        .map(|(path, name)| NamedDatabase {
            path: path.clone(),
            name: name
                .clone()
                .or_else(|| chosen.get(path.as_path()).cloned())
                .unwrap_or_default(),
        })
        .collect())
}

/// The directory part of a glob pattern: its leading parts without `*`,
/// `?`, `[` or `{`.
pub fn pattern_base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for part in Path::new(pattern).components() {
        let text = part.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[', '{']) {
            break;
        }
        base.push(part);
    }
    if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    }
}

/// Whether a file found by a pattern is a database rather than one of
/// SQLite's or sqlseal's own files beside it.
fn is_database_file(path: &Path) -> bool {
    let Some(file) = path.file_name().map(|f| f.to_string_lossy()) else {
        return false;
    };
    let sidecar = ["-wal", "-shm", "-journal"]
        .iter()
        .any(|s| file.ends_with(s));
    !sidecar && !file.starts_with('.') && !file.contains(".pre-restore.") && path.is_file()
}

/// The databases a `Database.Dirs` pattern finds now, named by their path
/// relative to the pattern's directory part, in path order.
pub fn discover(pattern: &str) -> Result<Vec<NamedDatabase>, String> {
    let base = pattern_base(pattern);
    let found = glob::glob(pattern).map_err(|e| {
        format!(
            "`{pattern}` is not a glob pattern: {e}; use *, ** and ? as in /srv/tenants/*/app.db"
        )
    })?;
    let mut out = Vec::new();
    // Entries that cannot be read (permissions) are skipped here; a
    // database that cannot be read fails its backup, loudly, instead.
    for path in found.flatten() {
        if !is_database_file(&path) {
            continue;
        }
        let Ok(relative) = path.strip_prefix(&base) else {
            continue;
        };
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if check_name(&name).is_ok() {
            out.push(NamedDatabase { path, name });
        }
    }
    Ok(out)
}

/// Refuses two databases with one name (naming both paths) and one file
/// listed under two names.
pub fn check_unique(all: &[NamedDatabase]) -> Result<(), String> {
    let mut names: BTreeMap<&str, &Path> = BTreeMap::new();
    let mut paths: BTreeMap<&Path, &str> = BTreeMap::new();
    for d in all {
        if let Some(other) = names.insert(&d.name, &d.path) {
            return Err(format!(
                "{} and {} are both named `{}`; give one another name with NAME=PATH in Database.Paths",
                other.display(),
                d.path.display(),
                d.name
            ));
        }
        if let Some(other) = paths.insert(&d.path, &d.name) {
            return Err(format!(
                "{} is listed twice, as `{other}` and `{}`; list it once",
                d.path.display(),
                d.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(entries: &[&str]) -> Result<Vec<(String, String)>, String> {
        let parsed: Vec<(PathBuf, Option<String>)> = entries
            .iter()
            .map(|e| parse_path_entry(Path::new(e)))
            .collect::<Result<_, _>>()?;
        let all = name_paths(&parsed)?;
        check_unique(&all)?;
        Ok(all
            .into_iter()
            .map(|d| (d.path.display().to_string(), d.name))
            .collect())
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn unique_file_names_stay_as_they_were() {
        assert_eq!(
            named(&["/var/lib/app/app.db", "/srv/other.db"]).expect("names"),
            pairs(&[
                ("/var/lib/app/app.db", "app.db"),
                ("/srv/other.db", "other.db")
            ])
        );
    }

    #[test]
    fn shared_file_names_take_the_shortest_distinguishing_tail() {
        assert_eq!(
            named(&["/srv/a/app.db", "/srv/b/app.db", "/data/x.db"]).expect("names"),
            pairs(&[
                ("/srv/a/app.db", "a/app.db"),
                ("/srv/b/app.db", "b/app.db"),
                ("/data/x.db", "x.db")
            ])
        );
        assert_eq!(
            named(&["/one/t/app.db", "/two/t/app.db"]).expect("names"),
            pairs(&[
                ("/one/t/app.db", "one/t/app.db"),
                ("/two/t/app.db", "two/t/app.db")
            ])
        );
    }

    #[test]
    fn explicit_names_win_and_collisions_are_refused_naming_both() {
        assert_eq!(
            named(&["alpha=/srv/a/app.db", "/srv/b/app.db"]).expect("names"),
            pairs(&[("/srv/a/app.db", "alpha"), ("/srv/b/app.db", "app.db")])
        );
        let e = named(&["app.db=/srv/a/x.db", "/srv/b/app.db"]).expect_err("collision");
        assert_eq!(
            e,
            "/srv/a/x.db and /srv/b/app.db are both named `app.db`; give one another name with NAME=PATH in Database.Paths"
        );
        let e = named(&["/srv/a/app.db", "/srv/a/app.db"]).expect_err("twice");
        assert!(e.contains("listed more than once"), "{e}");
        for bad in ["../x=/a.db", "=/a.db", "a//b=/a.db", "/abs=/a.db"] {
            assert!(named(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_directory_part_of_a_pattern() {
        assert_eq!(
            pattern_base("/srv/tenants/*/app.db"),
            PathBuf::from("/srv/tenants")
        );
        assert_eq!(
            pattern_base("/var/lib/sites/**/*.sqlite"),
            PathBuf::from("/var/lib/sites")
        );
        assert_eq!(pattern_base("*.db"), PathBuf::from("."));
    }

    #[test]
    fn discovery_names_by_relative_path_and_skips_sidecars() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("tenants");
        for (tenant, files) in [
            ("acme", vec!["app.db", "app.db-wal", "app.db-shm"]),
            (
                "globex",
                vec![
                    "app.db",
                    ".app.db.sqlseal-1.lock",
                    "app.db.pre-restore.20261201",
                ],
            ),
            ("initech", vec!["other.db"]),
        ] {
            std::fs::create_dir_all(root.join(tenant)).expect("dir");
            for f in files {
                std::fs::write(root.join(tenant).join(f), b"x").expect("file");
            }
        }
        let pattern = format!("{}/*/app.db", root.display());
        let found = discover(&pattern).expect("discover");
        let names: Vec<&str> = found.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["acme/app.db", "globex/app.db"]);
        let all = discover(&format!("{}/**/*", root.display())).expect("discover");
        let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["acme/app.db", "globex/app.db", "initech/other.db"]);
        assert!(discover("/srv/[unclosed").is_err());
    }
}

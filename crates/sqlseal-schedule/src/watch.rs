//! Watching `Database.Dirs`: the patterns are matched again whenever the
//! file system reports a change under their directories (and every
//! [`RESCAN`] in any case, for file systems that report nothing), and the
//! scheduler is told which databases appeared and which disappeared.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::names::{NamedDatabase, discover, pattern_base};

/// Matching again at least this often, events or not.
const RESCAN: Duration = Duration::from_secs(30);
/// Events within this time of the first are taken together.
const SETTLE: Duration = Duration::from_millis(300);

/// What changed among the databases the patterns find.
#[derive(Debug)]
pub(crate) enum Change {
    /// A database appeared.
    Added(NamedDatabase),
    /// The database of this name disappeared.
    Removed(String),
}

fn find_all(patterns: &[String]) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    for pattern in patterns {
        match discover(pattern) {
            Ok(dbs) => found.extend(dbs.into_iter().map(|d| (d.name, d.path))),
            Err(e) => warn!(pattern = %pattern, error = %e, "Database.Dirs pattern"),
        }
    }
    found
}

/// Watches `patterns` until `token` is cancelled, starting from `known`
/// (the databases they found at start-up), sending each change to `tx`.
pub(crate) async fn watch(
    patterns: Vec<String>,
    mut known: BTreeMap<String, PathBuf>,
    tx: UnboundedSender<Change>,
    token: CancellationToken,
) {
    let (kick_tx, mut kick) = unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
        let _ = kick_tx.send(());
    });
    // Held while watching; dropping it stops the notifications.
    let _watcher = match watcher {
        Ok(mut w) => {
            for pattern in &patterns {
                let base = pattern_base(pattern);
                if let Err(e) = w.watch(&base, RecursiveMode::Recursive) {
                    warn!(directory = %base.display(), error = %e, "cannot watch a Database.Dirs directory; it is matched again every 30 s instead");
                }
            }
            Some(w)
        }
        Err(e) => {
            warn!(error = %e, "cannot watch Database.Dirs; the patterns are matched again every 30 s instead");
            None
        }
    };
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            Some(()) = kick.recv() => {
                tokio::time::sleep(SETTLE).await;
                while kick.try_recv().is_ok() {}
            }
            () = tokio::time::sleep(RESCAN) => {}
        }
        let patterns = patterns.clone();
        let Ok(found) = tokio::task::spawn_blocking(move || find_all(&patterns)).await else {
            continue;
        };
        let mut found = found;
        for (name, path) in &known {
            if found.contains_key(name) {
                continue;
            }
            // Gone only when the file system says so: a match that failed
            // for another reason (out of file descriptors, a permission
            // flicker) keeps the database scheduled.
            let gone = matches!(
                path.symlink_metadata(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound
            );
            if !gone {
                found.insert(name.clone(), path.clone());
                continue;
            }
            if tx.send(Change::Removed(name.clone())).is_err() {
                return;
            }
        }
        for (name, path) in &found {
            if known.get(name) != Some(path) {
                let db = NamedDatabase {
                    path: path.clone(),
                    name: name.clone(),
                };
                if tx.send(Change::Added(db)).is_err() {
                    return;
                }
            }
        }
        known = found;
    }
}

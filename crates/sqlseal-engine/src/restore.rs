//! Restoring a backup to a database path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlseal_crypto::Keyring;
use sqlseal_format::Header;
use sqlseal_store::BackupStore;

use crate::install;
use crate::open::{io_err, restore_into_file};
use crate::{CancelFlag, EngineError, Progress, VerifyOptions, VerifyReport};

/// A caller's last word on a backup: called with the authenticated header
/// of the very read that is about to be installed; `Err(reason)` refuses it.
pub type Approve = Arc<dyn Fn(&Header) -> Result<(), String> + Send + Sync>;

/// How to restore.
#[derive(Clone, Default)]
pub struct RestoreOptions {
    /// Restore over an existing database (moving its files aside first).
    pub force: bool,
    /// The checks and threads, as for verify.
    pub verify: VerifyOptions,
    /// Called with the authenticated header after every check passed and
    /// before anything is moved aside or installed; a refusal is
    /// [`EngineError::NotApproved`] and nothing is installed. Decide here on
    /// header fields (id, database, signer, time), not on a listing made
    /// by an earlier read of the same name.
    pub approve: Option<Approve>,
}

impl fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("force", &self.force)
            .field("verify", &self.verify)
            .field("approve", &self.approve.as_ref().map(|_| "Fn(&Header)"))
            .finish()
    }
}

/// What [`restore_backup`] did.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    /// The checks that passed.
    pub verified: VerifyReport,
    /// The restored database.
    pub target: PathBuf,
    /// Where the previous database files were moved, if any.
    pub moved_aside: Vec<PathBuf>,
}

/// Restores `name` to `target`: writes the image to a temporary file
/// beside it, checks it exactly as [`verify_backup`] does, sets 0600, and
/// renames it into place. An existing target is refused unless `force`;
/// with `force` it and its `-wal`/`-shm`/`-journal` files are first moved
/// aside to `TARGET.pre-restore.<time>` (never deleted). Such side files
/// left without their database are moved aside too, and temporary files of
/// an earlier, killed restore of the same target are removed. On any
/// failure the target is left as it was and no temporary file remains.
pub fn restore_backup(
    store: &dyn BackupStore,
    name: &str,
    keyring: &Keyring,
    target: &Path,
    options: &RestoreOptions,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<RestoreReport, EngineError> {
    let force = options.force;
    let exists = target.symlink_metadata().is_ok();
    if exists && !force {
        return Err(EngineError::TargetExists(target.to_path_buf()));
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(EngineError::Io {
            what: "restoring into",
            path: parent,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "directory does not exist; create it first",
            ),
        });
    }
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".into());
    let prefix = format!(".{file_name}.sqlseal-restore-");
    // Temporary files of a restore of this target that was killed.
    install::remove_stale_temps(&parent, &prefix)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut file = builder
        .tempfile_in(&parent)
        .map_err(io_err("creating a temporary file in", &parent))?;
    let verified = restore_into_file(
        store,
        name,
        keyring,
        &mut file,
        &options.verify,
        cancel,
        progress,
    )?;
    if cancel.is_cancelled() {
        return Err(EngineError::Cancelled);
    }
    if let Some(approve) = &options.approve {
        approve(&verified.header).map_err(|reason| EngineError::NotApproved {
            backup: name.to_owned(),
            reason,
        })?;
    }
    // With the target or without it: stale -wal, -shm and -journal files
    // would be replayed onto the restored image.
    let moved_aside = install::move_aside(target)?;
    file.persist_noclobber(target)
        .map_err(|e| EngineError::Io {
            what: "installing the restored database at",
            path: target.to_path_buf(),
            source: e.error,
        })?;
    if let Ok(dir) = std::fs::File::open(&parent) {
        let _ = dir.sync_all();
    }
    Ok(RestoreReport {
        verified,
        target: target.to_path_buf(),
        moved_aside,
    })
}

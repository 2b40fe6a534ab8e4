//! Restoring a backup to a database path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlseal_crypto::Keyring;
use sqlseal_format::Header;
use sqlseal_store::BackupStore;

use crate::install;
use crate::open::{ImageFile, ImageUse, io_err, restore_into_file};
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
    /// The permission bits of the restored file (e.g. `0o600`); `None` on
    /// systems without Unix modes.
    pub mode: Option<u32>,
    /// Whether `mode` is that of the file replaced (`--force` over a
    /// regular file) rather than the default 0600.
    pub mode_kept: bool,
    /// Whether the restored file got the owner and group of the file
    /// replaced. Changing the owner needs privileges; without them the
    /// file belongs to this process's user and this is `false`.
    pub owner_kept: bool,
}

/// The mode and owner of the file being replaced, when it is a regular file.
#[derive(Clone, Copy, Debug)]
struct Replaced {
    mode: u32,
    #[cfg(unix)]
    uid: u32,
    #[cfg(unix)]
    gid: u32,
}

impl Replaced {
    /// Reads them from `target` (following a symlink, as SQLite opens it).
    #[cfg(unix)]
    fn of(target: &Path) -> Option<Replaced> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(target).ok().filter(|m| m.is_file())?;
        Some(Replaced {
            // Permission bits only: never set-id or sticky bits on a database.
            mode: meta.mode() & 0o777,
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }

    #[cfg(not(unix))]
    fn of(_target: &Path) -> Option<Replaced> {
        None
    }

    /// Gives `file` this owner (when the process may: otherwise it keeps
    /// ours) and mode; returns whether the owner was set.
    #[cfg(unix)]
    fn apply(&self, file: &std::fs::File, path: &Path) -> Result<bool, EngineError> {
        use std::os::unix::fs::PermissionsExt;
        let owner_kept = match std::os::unix::fs::fchown(file, Some(self.uid), Some(self.gid)) {
            Ok(()) => true,
            // Only privileged processes may give a file away.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => false,
            Err(e) => return Err(io_err("setting the owner of", path)(e)),
        };
        // After chown, which may clear permission bits.
        file.set_permissions(std::fs::Permissions::from_mode(self.mode))
            .map_err(io_err("setting the mode of", path))?;
        Ok(owner_kept)
    }

    #[cfg(not(unix))]
    fn apply(&self, _file: &std::fs::File, _path: &Path) -> Result<bool, EngineError> {
        Ok(false)
    }
}

/// Restores `name` to `target`: writes the image to a temporary file
/// beside it, checks it exactly as [`verify_backup`](crate::verify_backup) does, and renames it
/// into place, mode 0600. An existing target is refused unless `force`;
/// with `force` the restored file takes the mode of the file it replaces
/// and, when the process may change owners, its owner and group; it and
/// its `-wal`/`-shm`/`-journal` files are first moved
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
    let mut file = sqlseal_private::private_tempfile_in(&parent, &prefix)
        .map_err(io_err("creating a temporary file in", &parent))?;
    // Which reader: a hint from the unauthenticated header; each reader
    // authenticates everything it installs and refuses the other kind.
    let read = if crate::chain::looks_like_increment(store, name) {
        crate::chain::restore_chain_into_file
    } else {
        restore_into_file
    };
    let verified = read(
        store,
        name,
        keyring,
        ImageFile {
            file: &mut file,
            image_use: ImageUse::Install,
        },
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
    // Keep the replaced file's mode and owner, so that the application
    // (or its group) can still open it; read just before it is moved.
    let replaced = if force { Replaced::of(target) } else { None };
    let owner_kept = match &replaced {
        Some(r) => r.apply(file.as_file(), file.path())?,
        None => false,
    };
    #[cfg(unix)]
    let mode = Some(replaced.map_or(0o600, |r| r.mode));
    #[cfg(not(unix))]
    let mode = None;
    // With the target or without it: stale -wal, -shm and -journal files
    // would be replayed onto the restored image.
    let moved_aside = install::move_aside(target)?;
    if let Err(e) = file.persist_noclobber(target) {
        // Nothing installed: what was there goes back.
        let note = moved_aside.put_back();
        return Err(EngineError::Io {
            what: "installing the restored database at",
            path: target.to_path_buf(),
            source: std::io::Error::new(e.error.kind(), format!("{}; {note}", e.error)),
        });
    }
    if let Ok(dir) = std::fs::File::open(&parent) {
        let _ = dir.sync_all();
    }
    Ok(RestoreReport {
        verified,
        target: target.to_path_buf(),
        moved_aside: moved_aside.paths(),
        mode,
        mode_kept: replaced.is_some(),
        owner_kept,
    })
}

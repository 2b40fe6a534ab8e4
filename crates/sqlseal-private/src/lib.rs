//! Files and directories that only their owner may read.
//!
//! Owns: the modes of everything sqlseal creates that holds a secret or
//! plaintext (backups, database images and snapshot copies, key files,
//! status files): 0600 files and 0700 directories, decided here once.
//! Never: knows what goes into them. On systems without Unix modes they are
//! ordinary files and directories.

use std::fs::File;
use std::io;
use std::path::Path;

use tempfile::{NamedTempFile, TempDir};

/// Creates `dir` and its missing parents; on Unix each new one has mode
/// 0700. An existing directory is left as it is.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A new directory in `parent` named `prefix` and random characters, mode
/// 0700 on Unix; it and all it holds are removed when it is dropped.
pub fn private_tempdir_in(parent: &Path, prefix: &str) -> io::Result<TempDir> {
    temp_builder(prefix, 0o700).tempdir_in(parent)
}

/// A new file in `dir` named `prefix` and random characters, mode 0600 on
/// Unix; removed when dropped unless persisted.
pub fn private_tempfile_in(dir: &Path, prefix: &str) -> io::Result<NamedTempFile> {
    temp_builder(prefix, 0o600).tempfile_in(dir)
}

/// A temporary name starting with `prefix`, created with `mode` on Unix.
fn temp_builder(prefix: &str, mode: u32) -> tempfile::Builder<'_, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder
}

/// Creates the file `path` for writing, mode 0600 on Unix; never replaces
/// an existing file (the error is then `AlreadyExists`).
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Restricts an existing file (one that another library created, such as
/// SQLite's copy of a database) to mode 0600 on Unix; elsewhere does
/// nothing.
pub fn restrict_to_owner(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn each_helper_makes_what_only_its_owner_may_read() {
        let root = tempfile::tempdir().expect("tempdir");
        let nested = root.path().join("a/b");
        create_private_dir_all(&nested).expect("dirs");
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        let dir = private_tempdir_in(root.path(), ".x-").expect("tempdir");
        assert_eq!(mode(dir.path()), 0o700);
        let file = private_tempfile_in(root.path(), ".y-").expect("tempfile");
        assert_eq!(mode(file.path()), 0o600);
        let key = root.path().join("key.pem");
        create_private_file(&key).expect("file");
        assert_eq!(mode(&key), 0o600);
        let copy = root.path().join("copy.db");
        std::fs::write(&copy, b"x").expect("write");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        restrict_to_owner(&copy).expect("restrict");
        assert_eq!(mode(&copy), 0o600);
        let again = create_private_file(&key).expect_err("exists");
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
    }
}

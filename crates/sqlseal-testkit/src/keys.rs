//! Key files for tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlseal_crypto::P256Identity;

use crate::process::{p, run, sqlseal};

/// Writes a new key, made in-process, to `path` as PKCS#8 PEM with mode
/// 0600 (what `sqlseal keygen` writes), and returns it.
pub fn write_key(path: &Path) -> P256Identity {
    let key = P256Identity::generate().expect("key");
    std::fs::write(path, key.to_pkcs8_pem().expect("pem").as_bytes()).expect("write key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    key
}

/// Writes a new key with the real binary's `sqlseal keygen` into `dir` as
/// `name`; for the tests of the binary.
pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    run(
        sqlseal(&["keygen", "-o", p(&key)], dir),
        Duration::from_secs(30),
    )
    .expect_success("keygen");
    key
}

//! `sqlseal keygen`, `sqlseal key ...`, and loading the keys other commands name.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use sqlseal_crypto::{
    Keyring, P256Identity, P256Recipient, load_identity_file, load_key_file, load_recipient_file,
};

/// A key as `--json` prints it.
#[derive(Serialize)]
struct KeyJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a Path>,
    key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
}

fn print_key(key: &KeyJson<'_>) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(key)?);
    Ok(())
}

/// Writes a new private key to `output` (0600, never overwriting) and
/// prints its key id and public key.
pub fn keygen(output: &Path, json: bool) -> anyhow::Result<()> {
    let identity = P256Identity::generate()?;
    let pem = identity.to_pkcs8_pem()?;
    let mut file = match sqlseal_store::create_private_file(output) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists; refusing to overwrite a key file (choose another path)",
            output.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("creating key file {}", output.display()));
        }
    };
    let written = file
        .write_all(pem.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(output);
        return Err(e).with_context(|| format!("writing key file {}", output.display()));
    }
    if json {
        return print_key(&KeyJson {
            path: Some(output),
            key_id: identity.key_id().to_string(),
            public_key: Some(identity.recipient().to_public_pem()),
        });
    }
    println!("key id: {}", identity.key_id());
    print!("{}", identity.recipient().to_public_pem());
    Ok(())
}

/// Prints the public key of a private key file.
pub fn public(keyfile: &Path, json: bool) -> anyhow::Result<()> {
    let (identity, warnings) = load_identity_file(keyfile)?;
    warn(&warnings);
    if json {
        return print_key(&KeyJson {
            path: None,
            key_id: identity.key_id().to_string(),
            public_key: Some(identity.recipient().to_public_pem()),
        });
    }
    print!("{}", identity.recipient().to_public_pem());
    Ok(())
}

/// Prints the key id of a private or public key file.
pub fn id(keyfile: &Path, json: bool) -> anyhow::Result<()> {
    let loaded = load_key_file(keyfile)?;
    warn(&loaded.warnings);
    let key_id = loaded.key.recipient().key_id().to_string();
    if json {
        return print_key(&KeyJson {
            path: None,
            key_id,
            public_key: None,
        });
    }
    println!("{key_id}");
    Ok(())
}

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// Loads private key files (warning about loose permissions).
pub fn identities(paths: &[PathBuf]) -> anyhow::Result<Vec<P256Identity>> {
    paths
        .iter()
        .map(|p| {
            let (identity, warnings) = load_identity_file(p)?;
            warn(&warnings);
            Ok(identity)
        })
        .collect()
}

/// The keys that open backups and the signers that are trusted.
pub fn keyring(keys: &[PathBuf], trust: &[PathBuf]) -> anyhow::Result<Keyring> {
    let mut keyring = Keyring::new();
    for identity in identities(keys)? {
        keyring.add_identity(identity);
    }
    for path in trust {
        keyring.trust(load_recipient_file(path)?);
    }
    Ok(keyring)
}

/// A keyring when keys were given (commands where `--key` is optional and
/// only authenticates headers), else `None`.
pub fn optional_keyring(keys: &[PathBuf], trust: &[PathBuf]) -> anyhow::Result<Option<Keyring>> {
    if keys.is_empty() {
        return Ok(None);
    }
    keyring(keys, trust).map(Some)
}

/// Recipients: the public halves of `identities` and the `extra` files, without duplicates.
pub fn recipients(
    identities: &[P256Identity],
    extra: &[PathBuf],
) -> anyhow::Result<Vec<P256Recipient>> {
    let mut out: Vec<P256Recipient> = Vec::new();
    let extra = extra
        .iter()
        .map(|p| load_recipient_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    for r in identities
        .iter()
        .map(|i| i.recipient().clone())
        .chain(extra)
    {
        if !out.iter().any(|o| o.key_id() == r.key_id()) {
            out.push(r);
        }
    }
    Ok(out)
}

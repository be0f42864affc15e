//! SSH host keys: one ed25519 key per node, generated once by ssh-keygen
//! and kept in `TREE/cluster-state/hostkeys/<hostname>/` (0700; the path is
//! compose-tree's `Layout::hostkeys_dir`), so every regeneration hands a
//! node the same identity and `ssh_known_hosts` stays valid. Keys of removed nodes are kept: a node re-added under the same
//! name keeps its identity.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

pub const PRIVATE: &str = "ssh_host_ed25519_key";
pub const PUBLIC: &str = "ssh_host_ed25519_key.pub";

#[derive(Clone, PartialEq, Eq)]
pub struct HostKey {
    pub private: String,
    /// `ssh-ed25519 AAAA... comment`
    pub public: String,
}

impl std::fmt::Debug for HostKey {
    // Never print private keys, not even in test failures.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostKey({})", self.public.trim())
    }
}

impl HostKey {
    /// `ssh-ed25519 AAAA...`: the key without its comment.
    pub fn public_key(&self) -> String {
        self.public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The stored key of `host`; None if there is none (or only half of one,
/// left by a crash: it is generated again).
pub fn load(keys_dir: &Path, host: &str) -> Result<Option<HostKey>> {
    let dir = keys_dir.join(host);
    let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.join(name).display())),
    };
    Ok(match (read(PRIVATE)?, read(PUBLIC)?) {
        (Some(private), Some(public)) => Some(HostKey { private, public }),
        _ => None,
    })
}

/// Generates a key for `host` with `ssh-keygen` in a private scratch
/// directory (0700, removed afterwards); nothing is written to the tree.
pub fn generate(ssh_keygen: &Path, host: &str) -> Result<HostKey> {
    let scratch = tempfile::Builder::new()
        .prefix("compose-hostkey-")
        .tempdir()
        .context("creating a scratch directory for ssh-keygen")?;
    let key = scratch.path().join("key");
    let out = Command::new(ssh_keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("root@{host}"))
        .arg("-f")
        .arg(&key)
        .output()
        .with_context(|| format!("running {} (install openssh-client)", ssh_keygen.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed for {host}: {}",
            ssh_keygen.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    Ok(HostKey {
        private: read(&key)?,
        public: read(&key.with_extension("pub"))?,
    })
}

/// Stores `key` as `host`'s: private key 0600 first, then the public key,
/// each replaced atomically (a crash in between leaves half a key, which
/// `load` treats as none).
pub fn store(keys_dir: &Path, host: &str, key: &HostKey) -> Result<()> {
    compose_fs::create_dir(keys_dir, 0o700)?;
    let dir = keys_dir.join(host);
    compose_fs::create_dir(&dir, 0o700)?;
    compose_fs::replace_file(&dir.join(PRIVATE), key.private.as_bytes(), 0o600)?;
    compose_fs::replace_file(&dir.join(PUBLIC), key.public.as_bytes(), 0o644)?;
    Ok(compose_fs::sync_dir(keys_dir)?)
}

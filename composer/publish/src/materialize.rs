//! Turning a snapshot into a root directory, cheaply.
//!
//! Roots are built from *checkpoints*: hard-link farms of a layer prefix,
//! keyed by the OCI ChainID of that prefix, under `chains/`. A new root
//! starts as a hard-link clone of the longest checkpoint it shares and
//! applies only the layers after it. The store's extractor replaces a file
//! by unlink + create, never by writing into it, so a file shared by links
//! is never modified: each root and checkpoint stays exactly as it was made.
//! Two checkpoints are kept per snapshot: the base layer and everything but
//! the last layer (where images change most), so republishing after a change
//! in the last layer costs one clone plus that layer, in time and in disk.

use anyhow::{bail, Context, Result};
use compose_fs::IoContext;
use compose_store::{apply_layer, Digest, Hasher, LayerDigest, SnapshotId, Store};
use compose_tree::Layout;
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// OCI ChainIDs of every prefix: `chain[0] = diff_id[0]`,
/// `chain[i] = sha256(chain[i-1] + " " + diff_id[i])`.
pub fn chain_ids(layers: &[LayerDigest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(layers.len());
    for layer in layers {
        let next = match out.last() {
            None => layer.digest(),
            Some(prev) => {
                let mut h = Hasher::new();
                h.update(format!("{prev} {layer}").as_bytes());
                h.finish()
            }
        };
        out.push(next);
    }
    out
}

/// What materializing a root did (for reports and benchmarks).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Materialized {
    pub root: PathBuf,
    /// The root existed already (same snapshot published before).
    pub reused: bool,
    /// Layers cloned from a checkpoint instead of extracted.
    pub layers_from_checkpoint: usize,
    pub layers_applied: usize,
}

/// How far the extraction of a new root is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extracting {
    /// 1-based, of `layers` (the ones extracted, after any checkpoint).
    pub layer: usize,
    pub layers: usize,
    /// Bytes of this layer's tar read so far, of `total`.
    pub bytes: u64,
    pub total: u64,
}

/// Reports at most every this many bytes (and at each layer's end).
const REPORT_EVERY: u64 = 4 << 20;

/// A layer's tar as it is read, reporting its progress.
struct Counting<'a, R> {
    inner: R,
    at: Extracting,
    reported: u64,
    progress: &'a mut dyn FnMut(Extracting),
}

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.at.bytes += n as u64;
        if self.at.bytes - self.reported >= REPORT_EVERY
            || (n == 0 && self.at.bytes != self.reported)
        {
            self.reported = self.at.bytes;
            (self.progress)(self.at);
        }
        Ok(n)
    }
}

/// `ROOT/roots/<hex>` for `snapshot`, building it if needed.
pub fn ensure_root(store: &Store, tree: &Layout, snapshot: &SnapshotId) -> Result<Materialized> {
    ensure_root_with(store, tree, snapshot, &mut |_| {})
}

/// [`ensure_root`], telling `progress` how the extraction goes.
pub fn ensure_root_with(
    store: &Store,
    tree: &Layout,
    snapshot: &SnapshotId,
    progress: &mut dyn FnMut(Extracting),
) -> Result<Materialized> {
    let dst = tree.root_dir(snapshot);
    if dst.is_dir() {
        return Ok(Materialized {
            root: dst,
            reused: true,
            ..Default::default()
        });
    }
    let layers = store.layers(snapshot)?;
    if layers.is_empty() {
        bail!("snapshot {snapshot} has no layers");
    }
    let chains = chain_ids(&layers);
    let n = layers.len();
    // Prefix lengths worth keeping as checkpoints.
    let keep: Vec<usize> = [1, n - 1]
        .into_iter()
        .filter(|&k| k >= 1 && k < n)
        .collect();
    let start = (1..n)
        .rev()
        .find(|&k| tree.chain_dir(&chains[k - 1]).is_dir())
        .unwrap_or(0);
    let scratch = tempfile::Builder::new()
        .prefix("root-")
        .tempdir_in(tree.tmp_dir())
        .context("creating a scratch directory in the publish tree")?;
    let work = scratch.path().join("root");
    if start > 0 {
        clone_tree(&tree.chain_dir(&chains[start - 1]), &work)?;
    } else {
        fs::create_dir(&work).at("creating", &work)?;
    }
    let mut new_checkpoints = Vec::new();
    for i in start..n {
        let blob = store.open_blob(&layers[i].digest())?;
        let total = blob.metadata().map(|m| m.len()).unwrap_or(0);
        let counting = Counting {
            inner: blob,
            at: Extracting {
                layer: i - start + 1,
                layers: n - start,
                bytes: 0,
                total,
            },
            reported: 0,
            progress: &mut *progress,
        };
        apply_layer(&work, std::io::BufReader::with_capacity(1 << 20, counting))
            .with_context(|| format!("extracting layer {} ({}) of {snapshot}", i + 1, layers[i]))?;
        compose_fs::fault::point("publish:mid-extract");
        let prefix = i + 1;
        if keep.contains(&prefix) && !tree.chain_dir(&chains[i]).is_dir() {
            let tmp = scratch.path().join(format!("chain-{prefix}"));
            clone_tree(&work, &tmp)?;
            new_checkpoints.push((tmp, tree.chain_dir(&chains[i])));
        }
    }
    // The root directory itself is not a tar entry.
    fs::set_permissions(&work, fs::Permissions::from_mode(0o755))
        .at("setting the mode of", &work)?;
    chown(&work, Some(0), Some(0)).at("changing the owner of", &work)?;
    // One syncfs makes the root and the checkpoints (links to the same
    // files) durable before any of them is renamed into sight.
    compose_fs::sync_filesystem(&work)?;
    compose_fs::fault::point("publish:before-root-rename");
    for (tmp, dst) in new_checkpoints {
        fs::rename(&tmp, &dst)
            .with_context(|| format!("moving a checkpoint to {}", dst.display()))?;
    }
    fs::rename(&work, &dst).with_context(|| format!("moving the new root to {}", dst.display()))?;
    compose_fs::sync_dir(&tree.chains_dir())?;
    compose_fs::sync_dir(&tree.roots_dir())?;
    Ok(Materialized {
        root: dst,
        reused: false,
        layers_from_checkpoint: start,
        layers_applied: n - start,
    })
}

/// Copies the directory structure of `src` to `dst` and hard-links every
/// other entry (files, symlinks, devices, fifos): the clone costs only its
/// directories. Directory owners, modes and mtimes are kept.
pub fn clone_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).with_context(|| format!("reading {}", src.display()))?;
    fs::create_dir(dst).with_context(|| format!("creating {}", dst.display()))?;
    let mut names: Vec<_> = fs::read_dir(src)
        .with_context(|| format!("listing {}", src.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .at("listing", src)?;
    names.sort();
    for name in names {
        let (s, d) = (src.join(&name), dst.join(&name));
        let m = fs::symlink_metadata(&s).at("inspecting", &s)?;
        if m.is_dir() {
            clone_tree(&s, &d)?;
        } else {
            // linkat without AT_SYMLINK_FOLLOW: a symlink is linked itself.
            nix::unistd::linkat(
                nix::fcntl::AT_FDCWD,
                &s,
                nix::fcntl::AT_FDCWD,
                &d,
                nix::fcntl::AtFlags::empty(),
            )
            .with_context(|| format!("linking {}", d.display()))?;
        }
    }
    chown(dst, Some(meta.uid()), Some(meta.gid())).at("changing the owner of", dst)?;
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .at("setting the mode of", dst)?;
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        dst,
        &mtime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .at("setting the times of", dst)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = LayerDigest::from(Digest::of(b"a"));
        let b = LayerDigest::from(Digest::of(b"b"));
        let c = chain_ids(&[a, b]);
        assert_eq!(c[0], a.digest());
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
        assert_eq!(chain_ids(&[]), Vec::<Digest>::new());
    }

    #[test]
    fn clone_shares_files_and_copies_directories() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("etc/sub")).unwrap();
        fs::write(src.join("etc/a"), "a").unwrap();
        std::os::unix::fs::symlink("/etc/a", src.join("etc/link")).unwrap();
        fs::set_permissions(src.join("etc/sub"), fs::Permissions::from_mode(0o700)).unwrap();
        let dst = d.path().join("dst");
        clone_tree(&src, &dst).unwrap();
        let (ma, mb) = (
            fs::metadata(src.join("etc/a")).unwrap(),
            fs::metadata(dst.join("etc/a")).unwrap(),
        );
        assert_eq!(ma.ino(), mb.ino(), "files are hard links");
        assert_eq!(
            fs::read_link(dst.join("etc/link")).unwrap().to_str(),
            Some("/etc/a")
        );
        let sub = fs::metadata(dst.join("etc/sub")).unwrap();
        assert_eq!(sub.mode() & 0o7777, 0o700);
        assert_ne!(sub.ino(), fs::metadata(src.join("etc/sub")).unwrap().ino());
    }
}

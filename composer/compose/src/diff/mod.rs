//! `compose diff`: what differs between the final file systems of two
//! snapshots: files, installed Debian packages and the text of /etc files.
//!
//! Layers are read header by header and file contents are only located
//! (layer + offset), never read up front. The layers both snapshots share as
//! a prefix are read once; only the paths their other layers touch are
//! compared, and contents are hashed only where two candidates differ in
//! location but not in size. So a diff of two images over a large common
//! base costs the headers of the base plus the bytes of the files that
//! actually changed.

mod compare;
mod content;
mod debver;
mod etc;
mod packages;
mod render;
mod tree;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_golden;
#[cfg(test)]
mod testutil;

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use compose_store::{LayerDigest, SnapshotId, Store};
use serde::Serialize;

use content::{Contents, Stats};
use tree::Tree;

pub use debver::compare_versions;
pub use render::render_text;

/// What to compute besides the file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffOptions {
    /// Unified diffs of changed /etc text files.
    pub etc_text_diffs: bool,
    /// /etc files larger than this (on either side) are only listed as changed.
    pub max_text_bytes: u64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            etc_text_diffs: true,
            max_text_bytes: 256 * 1024,
        }
    }
}

/// The difference between two snapshots, `from` -> `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotDiff {
    pub from: SnapshotId,
    pub to: SnapshotId,
    /// Leading layers the two snapshots have in common.
    pub shared_layers: usize,
    /// Sorted by path.
    pub files: Vec<FileChange>,
    /// Sorted by name.
    pub packages: Vec<PackageChange>,
    /// Sorted by path.
    pub etc_diffs: Vec<TextDiff>,
}

impl SnapshotDiff {
    /// Whether the two file systems are the same (up to directory mtimes).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.packages.is_empty() && self.etc_diffs.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One path that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// Absolute path in the image, e.g. `/etc/motd`.
    pub path: String,
    pub change: ChangeKind,
    /// For added/removed: the entry type (`file`, `dir`, `symlink`...).
    /// For changed: `type file -> symlink`, `mode 0644 -> 0600`,
    /// `owner 0:0 -> 100:101`, `size 12 -> 30`, `content`, `target a -> b`,
    /// `device 1:3 -> 1:5`, `xattrs`, `mtime`.
    pub details: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PkgChangeKind {
    Added,
    Removed,
    Upgraded,
    Downgraded,
    /// Same version (by dpkg's ordering), different spelling or architecture.
    Changed,
}

/// One installed package that differs (per `var/lib/dpkg/status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    /// The package name; `name:arch` when several architectures are installed.
    pub name: String,
    pub change: PkgChangeKind,
    /// Version before (`version (arch)` when only the architecture changed).
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A unified diff (3 lines of context) of one /etc text file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextDiff {
    pub path: String,
    pub unified: String,
}

/// The difference between the final file systems of snapshots `a` and `b`.
pub fn diff_snapshots(
    store: &Store,
    a: &SnapshotId,
    b: &SnapshotId,
    opts: &DiffOptions,
) -> Result<SnapshotDiff> {
    Ok(diff_with_stats(store, a, b, opts)?.0)
}

/// [`diff_snapshots`], plus how much was read (for tests of the fast path).
fn diff_with_stats(
    store: &Store,
    a: &SnapshotId,
    b: &SnapshotId,
    opts: &DiffOptions,
) -> Result<(SnapshotDiff, Stats)> {
    let mut contents = Contents::new(store);
    let mut diff = SnapshotDiff {
        from: *a,
        to: *b,
        shared_layers: 0,
        files: Vec::new(),
        packages: Vec::new(),
        etc_diffs: Vec::new(),
    };
    if a == b {
        diff.shared_layers = layers_of(store, a)?.len();
        return Ok((diff, contents.stats));
    }
    let (la, lb) = (layers_of(store, a)?, layers_of(store, b)?);
    let shared = la.iter().zip(&lb).take_while(|(x, y)| x == y).count();
    diff.shared_layers = shared;
    if shared == la.len() && shared == lb.len() {
        return Ok((diff, contents.stats)); // same layers, other metadata (labels...)
    }
    // The common base, once; then each side's own layers on a copy of it,
    // recording every path they create or remove.
    let mut tree_a = Tree::default();
    let mut touched = BTreeSet::new();
    contents.apply_layers(&mut tree_a, &la[..shared], None, a)?;
    let mut tree_b = tree_a.clone();
    contents.apply_layers(&mut tree_a, &la[shared..], Some(&mut touched), a)?;
    contents.apply_layers(&mut tree_b, &lb[shared..], Some(&mut touched), b)?;
    diff.files = compare::files(&tree_a, &tree_b, &touched, &mut contents)?;
    diff.packages = packages::changes(&tree_a, &tree_b, &touched, &mut contents)?;
    if opts.etc_text_diffs {
        diff.etc_diffs = etc::text_diffs(&diff.files, &tree_a, &tree_b, opts, &mut contents)?;
    }
    Ok((diff, contents.stats))
}

fn layers_of(store: &Store, id: &SnapshotId) -> Result<Vec<LayerDigest>> {
    store
        .layers(id)
        .with_context(|| format!("reading the layer list of snapshot {id}"))
}

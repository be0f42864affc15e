//! `Store::gc`: drops old snapshots from `index.json`, then deletes every
//! blob no remaining snapshot references.
//!
//! Crash safety comes from the order: `index.json` is replaced (atomically)
//! before any blob is deleted, so whenever the process dies the index only
//! references blobs that exist; at worst unreferenced blobs remain, and the
//! next gc removes them. Cache records are weak references: a layer only the
//! cache knows is garbage (the next build that needs it rebuilds it), and the
//! records pointing at deleted blobs go last.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::cache::CachedLayer;
use crate::digest::{Digest, SnapshotId};
use crate::error::StoreError;
use crate::fsutil::sync_dir;
use crate::index::{ser_rfc3339, IndexRef};
use crate::layout::Store;
use compose_fs::fault;

/// What [`Store::gc`] keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPolicy {
    /// The newest N snapshots of each image stay in the index; the one the
    /// image name resolves to always stays, so 0 acts as 1.
    pub keep_per_image: usize,
    /// Never dropped (e.g. published generations), under any image.
    pub pinned: BTreeSet<SnapshotId>,
    /// Report what would go, change nothing (and take no lock).
    pub dry_run: bool,
}

/// A snapshot dropped from the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedSnapshot {
    pub image: String,
    pub id: SnapshotId,
    #[serde(serialize_with = "ser_rfc3339")]
    pub built: SystemTime,
}

/// What [`Store::gc`] did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub removed_snapshots: Vec<RemovedSnapshot>,
    pub removed_blobs: u64,
    pub freed_bytes: u64,
    pub removed_cache_records: u64,
    /// Snapshots (of compose images) left in the index.
    pub kept_snapshots: usize,
}

impl Store {
    /// Drops the snapshots `policy` does not keep and deletes unreferenced
    /// blobs and stale cache records. Takes the store lock (blocking: call it
    /// without holding the lock yourself), except for a dry run, which only
    /// reads.
    ///
    /// Index entries compose did not write, or whose build time does not
    /// parse, are kept. Fails, before changing anything, if a kept
    /// manifest does not parse (gc could not tell which blobs it needs).
    ///
    /// Fault points (see [`compose_fs::fault`]):
    /// `gc:after-index`, `gc:mid-delete`.
    pub fn gc(&self, policy: &GcPolicy) -> Result<GcReport, StoreError> {
        let _lock = match policy.dry_run {
            true => None,
            false => Some(self.lock()?),
        };
        let mut index = self.load_index()?;
        let entries = index.entries();
        let keep = select(&entries, policy);
        let kept: Vec<&IndexRef> = keep.iter().map(|&i| &entries[i]).collect();
        // Computed before the index changes so a failure changes nothing.
        let live = self.live_set(&kept)?;
        let mut report = GcReport {
            removed_snapshots: removed(&entries, &keep),
            kept_snapshots: kept.iter().filter(|e| e.image.is_some()).count(),
            ..GcReport::default()
        };
        if !policy.dry_run && keep.len() < entries.len() {
            index.retain_positions(&keep);
            self.save_index(index)?;
        }
        fault::point("gc:after-index");
        self.delete_blobs(&live, policy.dry_run, &mut report)?;
        self.delete_cache_records(&live, policy.dry_run, &mut report)?;
        Ok(report)
    }

    /// Every blob reachable from the kept entries.
    fn live_set(&self, kept: &[&IndexRef]) -> Result<BTreeSet<Digest>, StoreError> {
        // Digests that do not parse name no blob in blobs/sha256.
        let mut todo: Vec<Digest> = kept.iter().filter_map(|e| e.digest.parse().ok()).collect();
        let mut live = BTreeSet::new();
        while let Some(d) = todo.pop() {
            if !live.insert(d) {
                continue;
            }
            let Some(node) = self.read_node(&d)? else {
                continue;
            };
            for desc in node.leaves() {
                live.extend(self.descriptor_digest_of(&d, desc)?);
            }
            for desc in node.children() {
                todo.extend(self.descriptor_digest_of(&d, desc)?);
            }
        }
        Ok(live)
    }

    /// A manifest or index blob's references; `None` if the blob is missing
    /// (then nothing it referenced can be identified: there is nothing to
    /// protect).
    fn read_node(&self, d: &Digest) -> Result<Option<Node>, StoreError> {
        let path = self.blob_path(d);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("reading", path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                digest: *d,
                path,
                reason: format!(
                    "not a manifest ({e}), so gc cannot tell which blobs it needs and deleted nothing (run `compose fsck`)"
                ),
            })
    }

    /// A descriptor's sha256 digest; other algorithms live outside
    /// `blobs/sha256`, which is all gc deletes from.
    fn descriptor_digest_of(
        &self,
        parent: &Digest,
        desc: &Desc,
    ) -> Result<Option<Digest>, StoreError> {
        if !desc.digest.starts_with("sha256:") {
            return Ok(None);
        }
        desc.digest
            .parse()
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                digest: *parent,
                path: self.blob_path(parent),
                reason: format!("it references a bad digest ({e}), so gc deleted nothing"),
            })
    }

    fn delete_blobs(
        &self,
        live: &BTreeSet<Digest>,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<(), StoreError> {
        let garbage: Vec<Digest> = self
            .list_blobs()?
            .blobs
            .into_iter()
            .filter(|d| !live.contains(d))
            .collect();
        let half = garbage.len() / 2;
        for (i, d) in garbage.iter().enumerate() {
            if i == half {
                fault::point("gc:mid-delete");
            }
            let path = self.blob_path(d);
            let size = match std::fs::symlink_metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("reading metadata of", path, e)),
            };
            if !dry_run && !remove(&path)? {
                continue;
            }
            report.removed_blobs += 1;
            report.freed_bytes += size;
        }
        if !dry_run && report.removed_blobs > 0 {
            sync_dir(&self.blobs_dir())?;
        }
        Ok(())
    }

    /// Removes records whose blob is gone (or is going now), and records
    /// that do not parse: those fail every build needing their key, and a
    /// cache record is only ever a shortcut.
    fn delete_cache_records(
        &self,
        live: &BTreeSet<Digest>,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<(), StoreError> {
        for path in self.cache_record_paths()? {
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("reading cache record", path, e)),
            };
            let stale = match serde_json::from_slice::<CachedLayer>(&bytes) {
                Err(_) => true,
                Ok(layer) => {
                    let d = layer.digest.digest();
                    !live.contains(&d) || !self.has_blob(&d)
                }
            };
            if stale && (dry_run || remove(&path)?) {
                report.removed_cache_records += 1;
            }
        }
        Ok(())
    }
}

/// Removes a file; `false` if it was already gone.
fn remove(path: &Path) -> Result<bool, StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("removing", path, e)),
    }
}

/// Positions of the entries to keep.
fn select(entries: &[IndexRef], policy: &GcPolicy) -> BTreeSet<usize> {
    let mut keep = BTreeSet::new();
    let mut by_image: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        match (&e.image, e.built, e.digest.parse::<SnapshotId>()) {
            (Some(image), Some(_), Ok(id)) => {
                by_image.entry(image).or_default().push(i);
                if policy.pinned.contains(&id) {
                    keep.insert(i);
                }
            }
            // Entries of other tools, or that gc cannot date or name, are not
            // gc's to drop.
            _ => {
                keep.insert(i);
            }
        }
    }
    for mut group in by_image.into_values() {
        group.sort_by_key(|&i| Reverse((entries[i].built, entries[i].digest.as_str())));
        keep.extend(group.iter().take(policy.keep_per_image));
        // What the bare name resolves to: the tagged entry, else the latest.
        keep.extend(group.iter().find(|&&i| entries[i].is_ref).or(group.first()));
    }
    keep
}

fn removed(entries: &[IndexRef], keep: &BTreeSet<usize>) -> Vec<RemovedSnapshot> {
    let mut out: Vec<RemovedSnapshot> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| !keep.contains(i))
        .filter_map(|(_, e)| {
            Some(RemovedSnapshot {
                image: e.image.clone()?,
                id: e.digest.parse().ok()?,
                built: e.built?,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.image, a.built).cmp(&(&b.image, b.built)));
    out
}

/// The references of a manifest or index, whatever its media type: leaves
/// are never read (layers are large), children are followed.
#[derive(Deserialize)]
struct Node {
    #[serde(default)]
    config: Option<Desc>,
    #[serde(default)]
    layers: Vec<Desc>,
    #[serde(default)]
    blobs: Vec<Desc>,
    #[serde(default)]
    manifests: Vec<Desc>,
    #[serde(default)]
    subject: Option<Desc>,
}

#[derive(Deserialize)]
struct Desc {
    digest: String,
}

impl Node {
    fn leaves(&self) -> impl Iterator<Item = &Desc> {
        self.config.iter().chain(&self.layers).chain(&self.blobs)
    }

    fn children(&self) -> impl Iterator<Item = &Desc> {
        self.manifests.iter().chain(&self.subject)
    }
}

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;

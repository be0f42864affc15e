//! `Store::fsck`: every blob must hash to its name, every snapshot in
//! `index.json` must be complete, cache records must parse.
//!
//! fsck only reads and takes no lock (readers never block a build), so blobs
//! may come and go while it runs: a blob removed between listing and hashing
//! is skipped, and problems of snapshots that left the index meanwhile (a
//! concurrent gc) are dropped.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Serialize, Serializer};

use crate::cache::CachedLayer;
use crate::digest::{Digest, Hasher};
use crate::error::StoreError;
use crate::index::IndexRef;
use crate::layout::Store;
use crate::snapshot::MEDIA_MANIFEST;

/// What [`Store::fsck`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    /// Blobs hashed.
    pub blobs_checked: u64,
    /// Bytes hashed.
    pub bytes_checked: u64,
    /// Damage: the store (or an image in it) is not usable as it is.
    pub problems: Vec<FsckProblem>,
    /// Harmless oddities (stale cache records), each a sentence.
    pub warnings: Vec<String>,
}

impl FsckReport {
    /// No problems (warnings allowed).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One problem found by [`Store::fsck`]; `Display` says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FsckProblem {
    /// A blob's content does not hash to its name.
    Corrupt {
        digest: Digest,
        #[serde(serialize_with = "lossy")]
        path: PathBuf,
        actual: Digest,
    },
    /// A blob cannot be read (an I/O error: failing disk?).
    Unreadable {
        digest: Digest,
        #[serde(serialize_with = "lossy")]
        path: PathBuf,
        error: String,
    },
    /// A snapshot needs a blob that is not in the store.
    Missing {
        digest: Digest,
        /// e.g. `snapshot hpc-node@sha256:… layer 3 of 5`.
        referenced_by: String,
    },
    /// A snapshot's manifest or config blob is unusable.
    BadManifest {
        digest: Digest,
        referenced_by: String,
        reason: String,
    },
    /// `index.json` (or one of its entries) is unusable.
    BadIndex {
        #[serde(serialize_with = "lossy")]
        path: PathBuf,
        reason: String,
    },
    /// A cache record does not parse (builds needing that key fail).
    BadCacheRecord {
        #[serde(serialize_with = "lossy")]
        path: PathBuf,
        reason: String,
    },
    /// Something in `blobs/sha256` that is not a blob named by its digest.
    Stray {
        #[serde(serialize_with = "lossy")]
        path: PathBuf,
    },
}

/// Paths are bytes; JSON wants text (a stray name may be anything).
fn lossy<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&p.to_string_lossy())
}

impl fmt::Display for FsckProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REBUILD: &str = "rebuild the image (`compose build`)";
        match self {
            FsckProblem::Corrupt { digest, path, actual } => write!(
                f,
                "blob {digest} is corrupt (content hashes to {actual}): {REBUILD} after removing {}, or restore it from a backup",
                path.display()
            ),
            FsckProblem::Unreadable { digest, path, error } => write!(
                f,
                "blob {digest} cannot be read ({}: {error}): check the disk, then {REBUILD} after removing it, or restore it from a backup",
                path.display()
            ),
            FsckProblem::Missing { digest, referenced_by } => write!(
                f,
                "blob {digest} is missing ({referenced_by} needs it): {REBUILD}, or restore the blob from a backup"
            ),
            FsckProblem::BadManifest { digest, referenced_by, reason } => write!(
                f,
                "{referenced_by} ({digest}) is unusable: {reason}; {REBUILD} and run `compose gc` to drop the broken snapshot"
            ),
            FsckProblem::BadIndex { path, reason } => write!(
                f,
                "{} is damaged: {reason}; restore it from a backup, or fix the entry by hand",
                path.display()
            ),
            FsckProblem::BadCacheRecord { path, reason } => write!(
                f,
                "cache record {} is damaged: {reason}; delete it (the next build rebuilds that layer)",
                path.display()
            ),
            FsckProblem::Stray { path } => write!(
                f,
                "{} is not a blob (its name is not a sha256 digest): move it out of the store or delete it",
                path.display()
            ),
        }
    }
}

/// Which index entry a problem belongs to, to drop it if the entry goes.
type Root = (Option<String>, String);

impl Store {
    /// Checks the whole store; see [`FsckReport`]. Fails only when the store
    /// cannot be listed at all; damage is reported, not returned as an error.
    pub fn fsck(&self) -> Result<FsckReport, StoreError> {
        let listing = self.list_blobs()?;
        let mut report = FsckReport::default();
        let strays = listing
            .strays
            .into_iter()
            .map(|path| FsckProblem::Stray { path });
        report.problems.extend(strays);
        let damaged = self.hash_blobs(&listing.blobs, &mut report);
        self.check_snapshots(&damaged, &mut report);
        self.check_cache(&mut report)?;
        Ok(report)
    }

    /// Re-hashes `blobs` in parallel; returns the damaged ones.
    fn hash_blobs(&self, blobs: &[Digest], report: &mut FsckReport) -> BTreeSet<Digest> {
        let results: Vec<(Digest, std::io::Result<(Digest, u64)>)> = blobs
            .par_iter()
            .map_init(
                || vec![0u8; 1 << 20],
                |buf, d| (*d, hash_file(&self.blob_path(d), buf)),
            )
            .collect();
        let mut damaged = BTreeSet::new();
        for (digest, result) in results {
            let path = self.blob_path(&digest);
            let problem = match result {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => FsckProblem::Unreadable {
                    digest,
                    path,
                    error: e.to_string(),
                },
                Ok((actual, size)) => {
                    report.blobs_checked += 1;
                    report.bytes_checked += size;
                    if actual == digest {
                        continue;
                    }
                    FsckProblem::Corrupt {
                        digest,
                        path,
                        actual,
                    }
                }
            };
            damaged.insert(digest);
            report.problems.push(problem);
        }
        damaged
    }

    fn check_snapshots(&self, damaged: &BTreeSet<Digest>, report: &mut FsckReport) {
        let index = match self.load_index() {
            Ok(i) => i,
            Err(e) => {
                let reason = match e {
                    StoreError::BadMetadata { reason, .. } => reason,
                    other => other.to_string(),
                };
                let path = self.index_path();
                return report.problems.push(FsckProblem::BadIndex { path, reason });
            }
        };
        let mut check = Check {
            store: self,
            damaged,
            found: Vec::new(),
        };
        for entry in index.entries() {
            check.entry(&entry);
        }
        self.report_indexed(check.found, report);
    }

    /// Reports the problems of entries still in the index: a gc may have
    /// dropped some (and deleted their blobs) while they were checked.
    fn report_indexed(&self, found: Vec<(Root, FsckProblem)>, report: &mut FsckReport) {
        let now: Option<BTreeSet<Root>> = self.load_index().ok().map(|i| {
            i.entries()
                .into_iter()
                .map(|e| (e.image, e.digest))
                .collect()
        });
        for (root, problem) in found {
            let gone = now.as_ref().is_some_and(|n| !n.contains(&root));
            if !gone && !report.problems.contains(&problem) {
                report.problems.push(problem);
            }
        }
    }

    fn check_cache(&self, report: &mut FsckReport) -> Result<(), StoreError> {
        for path in self.cache_record_paths()? {
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("reading cache record", path, e)),
            };
            match serde_json::from_slice::<CachedLayer>(&bytes) {
                Err(e) => report.problems.push(FsckProblem::BadCacheRecord {
                    path,
                    reason: format!("it does not parse: {e}"),
                }),
                Ok(layer) if !self.has_blob(&layer.digest.digest()) => {
                    report.warnings.push(format!(
                        "cache record {} points at blob {}, which is gone: harmless (the next build that needs it rebuilds the layer); `compose gc` removes such records",
                        path.display(),
                        layer.digest
                    ));
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }
}

/// Streams a file through sha256.
fn hash_file(path: &Path, buf: &mut [u8]) -> std::io::Result<(Digest, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Hasher::new();
    let mut size = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(0) => return Ok((hasher.finish(), size)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

/// Walks the snapshots of the index, collecting problems per entry.
struct Check<'a> {
    store: &'a Store,
    /// Blobs the hash pass already reported: their parse errors are noise.
    damaged: &'a BTreeSet<Digest>,
    found: Vec<(Root, FsckProblem)>,
}

impl Check<'_> {
    fn entry(&mut self, e: &IndexRef) {
        let root: Root = (e.image.clone(), e.digest.clone());
        let label = match &e.image {
            Some(image) => format!("snapshot {image}@{}", e.digest),
            None => format!("index.json entry {}", e.digest),
        };
        let mut problems = Vec::new();
        match e.digest.parse::<Digest>() {
            Err(err) => problems.push(FsckProblem::BadIndex {
                path: self.store.index_path(),
                reason: format!("{label}: {err}"),
            }),
            // Only compose's own kind of entry is checked in depth.
            Ok(d) if e.media_type == MEDIA_MANIFEST => self.manifest(d, &label, &mut problems),
            Ok(d) => {
                let _ = self.read(d, &label, &mut problems);
            }
        }
        self.found
            .extend(problems.into_iter().map(|p| (root.clone(), p)));
    }

    fn manifest(&self, d: Digest, label: &str, out: &mut Vec<FsckProblem>) {
        let Some(bytes) = self.read(d, label, out) else {
            return;
        };
        let m = match oci_spec::image::ImageManifest::from_reader(bytes.as_slice()) {
            Ok(m) => m,
            Err(e) => {
                let reason = format!("not an OCI image manifest: {e}");
                return self.bad(d, &format!("manifest of {label}"), reason, out);
            }
        };
        let n = m.layers().len();
        let mut layers = Vec::with_capacity(n);
        for (i, desc) in m.layers().iter().enumerate() {
            let what = format!("{label} layer {} of {n}", i + 1);
            if let Some(ld) = self.descriptor(d, &what, desc, out) {
                self.exists(d, ld, desc.size(), &what, out);
                layers.push(ld.to_string());
            }
        }
        let what = format!("{label} config");
        if let Some(cd) = self.descriptor(d, &what, m.config(), out) {
            self.config(cd, &what, &layers, out);
        }
    }

    fn config(&self, d: Digest, what: &str, layers: &[String], out: &mut Vec<FsckProblem>) {
        let Some(bytes) = self.read(d, what, out) else {
            return;
        };
        match oci_spec::image::ImageConfiguration::from_reader(bytes.as_slice()) {
            Err(e) => self.bad(d, what, format!("not an OCI image config: {e}"), out),
            // Uncompressed layers: each diff_id is the layer digest itself.
            Ok(c) if c.rootfs().diff_ids() != layers => {
                let reason = "its rootfs.diff_ids do not match the manifest's layers".into();
                self.bad(d, what, reason, out);
            }
            Ok(_) => {}
        }
    }

    /// A descriptor's digest, if it is a sha256 one.
    fn descriptor(
        &self,
        manifest: Digest,
        what: &str,
        desc: &oci_spec::image::Descriptor,
        out: &mut Vec<FsckProblem>,
    ) -> Option<Digest> {
        match desc.digest().to_string().parse() {
            Ok(d) => Some(d),
            Err(e) => {
                self.bad(manifest, what, format!("bad digest: {e}"), out);
                None
            }
        }
    }

    /// The blob must exist with the size its descriptor records.
    fn exists(&self, parent: Digest, d: Digest, size: u64, what: &str, out: &mut Vec<FsckProblem>) {
        match std::fs::metadata(self.store.blob_path(&d)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.push(FsckProblem::Missing {
                digest: d,
                referenced_by: what.to_string(),
            }),
            Err(_) => {}
            Ok(m) if m.len() != size && !self.damaged.contains(&d) => {
                let reason = format!("it records {size} bytes but {d} has {}", m.len());
                self.bad(parent, what, reason, out);
            }
            Ok(_) => {}
        }
    }

    /// Reads a blob, reporting it missing (unreadable ones the hash pass reports).
    fn read(&self, d: Digest, what: &str, out: &mut Vec<FsckProblem>) -> Option<Vec<u8>> {
        match std::fs::read(self.store.blob_path(&d)) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(FsckProblem::Missing {
                    digest: d,
                    referenced_by: what.to_string(),
                });
                None
            }
            Err(_) => None,
        }
    }

    fn bad(&self, d: Digest, what: &str, reason: String, out: &mut Vec<FsckProblem>) {
        if !self.damaged.contains(&d) {
            out.push(FsckProblem::BadManifest {
                digest: d,
                referenced_by: what.to_string(),
                reason,
            });
        }
    }
}

#[cfg(test)]
#[path = "fsck_tests.rs"]
mod tests;

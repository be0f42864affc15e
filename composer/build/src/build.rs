//! Running a plan: cache lookups, layer execution, layer blobs, snapshot.
//!
//! The working root lives in the store's `compose/tmp` (same filesystem,
//! swept at the next lock if we are killed). It is materialized lazily:
//! cache hits cost nothing until a later layer misses, at which point the
//! hits below it are extracted in order.

use crate::exec::{self, BootstrapStatus, StepContext};
use crate::plan::{Plan, PlannedLayer, Work};
use crate::scrub;
use anyhow::{Context, Result};
use compose_store::{
    changes, scan, write_layer, CachedLayer, ChangeSet, EntryKind, LayerDigest, LayerEntry,
    LayerOptions, Selection, SnapshotId, SnapshotSpec, Store, TreeScan,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Instant, SystemTime};

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Rebuild every layer, ignoring (and then overwriting) cache entries.
    pub no_cache: bool,
    /// Stream command output instead of logging it.
    pub verbose: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub index: usize,
    pub name: String,
    pub key: String,
    pub digest: String,
    pub size: u64,
    pub cache: &'static str,
    pub seconds: f64,
    /// Of `seconds`, the time spent packing the layer (scrub, scan, tar,
    /// sha256, fsync): compose's own overhead over the tools it runs.
    pub pack_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub image: String,
    pub snapshot: SnapshotId,
    pub layers: Vec<LayerReport>,
    pub seconds: f64,
}

impl BuildReport {
    pub fn all_hits(&self) -> bool {
        self.layers.iter().all(|l| l.cache == "hit")
    }
}

/// What a layer being built is doing, between `layer_started` and
/// `layer_finished`. Meant for display: counts may stop short of their total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// Extracting the cached `layers` below this one into the working root
    /// (the first miss after cache hits).
    Extracting { layers: usize },
    /// The base bootstrap, as its output tells.
    Bootstrap(BootstrapStatus),
    /// Step `index` (from 0) of `steps` runs; `kind` as in recipes
    /// ("packages", "script", ...).
    Step {
        index: usize,
        steps: usize,
        kind: &'static str,
    },
    /// Scrubbing and scanning the root for what the layer changed.
    Scanning,
    /// Writing the layer blob: `written` tar bytes of about `estimate`
    /// (from the scan: headers plus padded file sizes; hard links make it
    /// an overestimate).
    Packing { written: u64, estimate: u64 },
}

/// Where a build reports what it is doing (the CLI prints to stderr).
pub trait Progress {
    fn layer_started(&mut self, index: usize, total: usize, layer: &PlannedLayer, cached: bool);
    /// Finer news of the layer being built; called often while packing (at
    /// most once per [`PACK_REPORT_BYTES`]). Ignored unless overridden.
    fn activity(&mut self, _activity: &Activity) {}
    fn layer_finished(&mut self, total: usize, report: &LayerReport);
}

/// How many packed bytes between two [`Activity::Packing`] reports: often
/// enough for a smooth bar, rare enough to cost nothing.
pub const PACK_REPORT_BYTES: u64 = 4 << 20;

/// A progress sink that says nothing (tests, --verify's second build).
pub struct Quiet;
impl Progress for Quiet {
    fn layer_started(&mut self, _: usize, _: usize, _: &PlannedLayer, _: bool) {}
    fn layer_finished(&mut self, _: usize, _: &LayerReport) {}
}

/// Builds `plan` into `store` and tags the snapshot. Takes the store lock.
pub fn build(
    store: &Store,
    plan: &Plan,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
) -> Result<BuildReport> {
    let _lock = store.lock().context("locking the store")?;
    build_locked(store, plan, opts, progress)
}

/// [`build`] for a caller that already holds the store lock.
pub fn build_locked(
    store: &Store,
    plan: &Plan,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
) -> Result<BuildReport> {
    let started = Instant::now();
    let work = store
        .temp_dir("build-")
        .context("creating the build directory")?;
    let root = work.path().join("rootfs");
    let total = plan.layers.len();
    let mut reports = Vec::with_capacity(total);
    let mut entries = Vec::with_capacity(total);
    // Cached layers not yet extracted into `root` (lazy, see module docs).
    let mut pending: Vec<LayerDigest> = Vec::new();
    for (index, layer) in plan.layers.iter().enumerate() {
        let t = Instant::now();
        let cached = if opts.no_cache {
            None
        } else {
            store.cache_lookup(&layer.key)?
        };
        progress.layer_started(index, total, layer, cached.is_some());
        let (record, hit, pack_seconds) = match cached {
            Some(c) => {
                pending.push(c.digest);
                (c, true, 0.0)
            }
            None => {
                if !pending.is_empty() {
                    progress.activity(&Activity::Extracting {
                        layers: pending.len(),
                    });
                }
                materialize(store, &root, &mut pending)?;
                let (c, pack) = run_layer(store, plan, layer, &root, work.path(), opts, progress)
                    .with_context(|| {
                    format!("building layer {} ({})", index + 1, layer.name)
                })?;
                store.cache_record(&layer.key, &c)?;
                (c, false, pack)
            }
        };
        let report = LayerReport {
            index,
            name: layer.name.clone(),
            key: layer.key.to_string(),
            digest: record.digest.to_string(),
            size: record.size,
            cache: if hit { "hit" } else { "miss" },
            seconds: t.elapsed().as_secs_f64(),
            pack_seconds,
        };
        progress.layer_finished(total, &report);
        reports.push(report);
        entries.push(LayerEntry {
            digest: record.digest,
            size: record.size,
            created_by: layer.created_by.clone(),
            comment: layer.name.clone(),
        });
    }
    let spec = SnapshotSpec {
        image: plan.image.clone(),
        architecture: plan.base.architecture.clone(),
        source_date_epoch: plan.base.source_date_epoch,
        layers: entries,
        labels: labels(plan),
    };
    let snapshot = store.write_snapshot(&spec)?;
    store.tag(&plan.image, &snapshot, SystemTime::now())?;
    Ok(BuildReport {
        image: plan.image.clone(),
        snapshot,
        layers: reports,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn labels(plan: &Plan) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("io.compose.image".into(), plan.image.clone());
    l.insert("io.compose.suite".into(), plan.base.suite.clone());
    l.insert(
        "io.compose.layers".into(),
        plan.layers
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
    l
}

/// Extracts the pending cached layers into `root`, in order.
fn materialize(store: &Store, root: &Path, pending: &mut Vec<LayerDigest>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(root)?;
    for digest in pending.drain(..) {
        let blob = store.open_blob(&digest.digest())?;
        compose_store::apply_layer(root, std::io::BufReader::with_capacity(1 << 20, blob))
            .with_context(|| format!("extracting cached layer {digest}"))?;
    }
    Ok(())
}

/// Runs one layer in `root` and stores what it changed as a blob. Also
/// returns the seconds spent packing (everything but running the tools).
fn run_layer(
    store: &Store,
    plan: &Plan,
    layer: &PlannedLayer,
    root: &Path,
    work: &Path,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
) -> Result<(CachedLayer, f64)> {
    let epoch = plan.base.source_date_epoch;
    let selection_owner;
    let mut pack = std::time::Duration::ZERO;
    let (selection, estimate) = match &layer.work {
        Work::Base(base) => {
            let log = work.join("base.log");
            exec::run_base(base, root, &log, opts.verbose, &mut |s| {
                progress.activity(&Activity::Bootstrap(s))
            })?;
            let t = Instant::now();
            progress.activity(&Activity::Scanning);
            scrub::scrub(root)?;
            // Only for the estimate: a metadata walk, small next to the tar.
            let all = scan(root).context("scanning the root")?;
            pack += t.elapsed();
            (
                Selection::All,
                tar_estimate(&all, all.iter().map(|(p, _)| p)),
            )
        }
        Work::Layer(spec) => {
            let t = Instant::now();
            let before = scan(root).context("scanning the root before the layer")?;
            pack += t.elapsed();
            let cx = StepContext {
                root,
                work,
                image: &plan.image,
                layer: &spec.name,
                source_date_epoch: epoch,
                verbose: opts.verbose,
            };
            for (i, step) in spec.steps.iter().enumerate() {
                progress.activity(&Activity::Step {
                    index: i,
                    steps: spec.steps.len(),
                    kind: step.kind(),
                });
                exec::run_step(&cx, i, step)?;
            }
            let t = Instant::now();
            progress.activity(&Activity::Scanning);
            scrub::scrub(root)?;
            let after = scan(root).context("scanning the root after the layer")?;
            selection_owner = changes(&before, &after);
            pack += t.elapsed();
            let estimate = changes_estimate(&after, &selection_owner);
            (Selection::Changes(&selection_owner), estimate)
        }
    };
    let t = Instant::now();
    let mut writer = store.blob_writer()?;
    {
        let counted = Counted {
            inner: &mut writer,
            written: 0,
            reported: 0,
            estimate,
            progress,
        };
        let mut buf = BufWriter::with_capacity(1 << 20, counted);
        write_layer(
            root,
            selection,
            &LayerOptions {
                source_date_epoch: epoch,
            },
            &mut buf,
        )
        .context("writing the layer blob")?;
        buf.flush()?;
    }
    let (digest, size) = writer.commit()?;
    pack += t.elapsed();
    let record = CachedLayer {
        digest: LayerDigest::from(digest),
        size,
        created_by: layer.created_by.clone(),
    };
    Ok((record, pack.as_secs_f64()))
}

/// The tar size of `paths` in `scan`: a header per entry plus each file's
/// size padded to 512 bytes, and the two zero blocks at the end (PAX
/// headers for long names are left out: a display estimate).
fn tar_estimate<'a>(scan: &TreeScan, paths: impl Iterator<Item = &'a Path>) -> u64 {
    let body: u64 = paths
        .map(|p| match scan.get(p) {
            Some(e) if e.kind == EntryKind::File => 512 + e.size.div_ceil(512) * 512,
            _ => 512,
        })
        .sum();
    body + 1024
}

/// [`tar_estimate`] of a layer's changes (whiteouts are one header each).
fn changes_estimate(after: &TreeScan, set: &ChangeSet) -> u64 {
    tar_estimate(after, set.changed.iter().map(|p| p.as_path())) + 512 * set.deleted.len() as u64
}

/// A writer that reports its byte count as [`Activity::Packing`].
struct Counted<'a, W> {
    inner: W,
    written: u64,
    reported: u64,
    estimate: u64,
    progress: &'a mut dyn Progress,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if self.written - self.reported >= PACK_REPORT_BYTES {
            self.reported = self.written;
            self.progress.activity(&Activity::Packing {
                written: self.written,
                estimate: self.estimate,
            });
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records activities (the progress sink of a test).
    #[derive(Default)]
    struct Record(Vec<Activity>);
    impl Progress for Record {
        fn layer_started(&mut self, _: usize, _: usize, _: &PlannedLayer, _: bool) {}
        fn activity(&mut self, a: &Activity) {
            self.0.push(a.clone());
        }
        fn layer_finished(&mut self, _: usize, _: &LayerReport) {}
    }

    #[test]
    fn counted_writer_reports_every_few_megabytes() {
        let mut rec = Record::default();
        let mut sink = Vec::new();
        let mut w = Counted {
            inner: &mut sink,
            written: 0,
            reported: 0,
            estimate: 10 << 20,
            progress: &mut rec,
        };
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..9 {
            w.write_all(&chunk).unwrap();
        }
        assert_eq!(
            rec.0,
            [4u64, 8].map(|mb| Activity::Packing {
                written: mb << 20,
                estimate: 10 << 20
            })
        );
        assert_eq!(sink.len(), 9 << 20);
    }

    #[test]
    fn tar_estimate_pads_files_and_counts_headers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 513]).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let s = scan(dir.path()).unwrap();
        // a: header + 1024 of data; d: a header only; the end: 1024.
        assert_eq!(
            tar_estimate(&s, s.iter().map(|(p, _)| p)),
            512 + 1024 + 512 + 1024
        );
    }
}

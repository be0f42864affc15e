//! `build --verify`: two builds from scratch must give the same snapshot.
//! When they do not, the differing layers are compared entry by entry so
//! the report names the paths that are not reproducible.

use crate::build::{build_locked, BuildOptions, BuildReport, Progress};
use crate::plan::Plan;
use anyhow::{Context, Result};
use compose_store::{diff_layers, SnapshotId, Store};
use serde::Serialize;

/// One path that differs between the two builds, and how.
#[derive(Debug, Serialize)]
pub struct PathMismatch {
    pub path: String,
    pub what: String,
}

#[derive(Debug, Serialize)]
pub struct LayerMismatch {
    pub layer: String,
    pub first: String,
    pub second: String,
    pub paths: Vec<PathMismatch>,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub first: BuildReport,
    pub second: SnapshotId,
    pub reproducible: bool,
    pub mismatches: Vec<LayerMismatch>,
}

pub fn verify(
    store: &Store,
    plan: &Plan,
    verbose: bool,
    progress: &mut dyn Progress,
) -> Result<VerifyReport> {
    let opts = BuildOptions {
        no_cache: true,
        verbose,
    };
    let _lock = store.lock().context("locking the store")?;
    let first = build_locked(store, plan, &opts, progress).context("first build")?;
    // The second build goes to a private store so the first stays untouched.
    let scratch_dir = store.temp_dir("verify-")?;
    let scratch = Store::open(scratch_dir.path().join("store"))?;
    let second = build_locked(&scratch, plan, &opts, progress).context("second build")?;
    let mut mismatches = Vec::new();
    for (a, b) in first.layers.iter().zip(&second.layers) {
        if a.digest == b.digest {
            continue;
        }
        let da = a.digest.parse().context("layer digest")?;
        let db = b.digest.parse().context("layer digest")?;
        let paths = diff_layers(store.open_blob(&da)?, scratch.open_blob(&db)?)
            .with_context(|| format!("comparing the two builds of layer {}", a.name))?
            .into_iter()
            .map(|d| PathMismatch {
                path: d.path,
                what: d.what,
            })
            .collect();
        mismatches.push(LayerMismatch {
            layer: a.name.clone(),
            first: a.digest.clone(),
            second: b.digest.clone(),
            paths,
        });
    }
    Ok(VerifyReport {
        reproducible: first.snapshot == second.snapshot,
        second: second.snapshot,
        first,
        mismatches,
    })
}

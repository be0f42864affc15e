//! Garbage collection and consistency checks of the publish tree.
//!
//! GC order is crash-safe: generations are dropped first (each by one
//! rename into tmp/), then roots and checkpoints that no kept generation
//! uses (again renamed away before deletion), then the store's own gc with
//! every kept generation's snapshot pinned. A kill at any point leaves at
//! worst unreferenced data for the next run; `current` is never touched.

use super::materialize::chain_ids;
use super::{GenFile, Tree};
use anyhow::{Context, Result};
use compose_fs::IoContext;
use compose_store::{GcPolicy, SnapshotId, Store};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Serialize)]
pub struct TreeGcReport {
    pub removed_generations: Vec<String>,
    pub removed_roots: usize,
    pub removed_checkpoints: usize,
}

/// The caller holds the tree lock. Keeps, per image, the current generation, the newest `keep`, and any
/// in `pinned` (image, number); removes the rest and what only they used.
pub fn gc_tree(
    store: &Store,
    tree: &Tree,
    keep: usize,
    pinned: &BTreeSet<(String, u64)>,
    dry_run: bool,
) -> Result<(TreeGcReport, BTreeSet<SnapshotId>)> {
    let mut report = TreeGcReport::default();
    let mut live_snaps = BTreeSet::new();
    for image in tree.images()? {
        let gens = tree.generations(&image)?;
        let newest: BTreeSet<u64> = gens.iter().rev().take(keep).map(|g| g.number).collect();
        for g in gens {
            let kept = g.current
                || newest.contains(&g.number)
                || pinned.contains(&(image.clone(), g.number));
            if kept {
                live_snaps.insert(g.snapshot);
                continue;
            }
            report
                .removed_generations
                .push(format!("{image}@gen{}", g.number));
            if !dry_run {
                let dir = tree.gen_dir(&image, g.number);
                discard(tree, &dir)?;
                compose_fs::fault::point("gc:after-generation");
            }
        }
    }
    let live_roots: BTreeSet<PathBuf> = live_snaps
        .iter()
        .map(|s| tree.layout().root_dir(s))
        .collect();
    let mut live_chains = BTreeSet::new();
    for s in &live_snaps {
        for c in chain_ids(&store.layers(s)?) {
            live_chains.insert(tree.layout().chain_dir(&c));
        }
    }
    let roots = tree.layout().roots_dir();
    for entry in fs::read_dir(&roots).at("listing", &roots)?.flatten() {
        if !live_roots.contains(&entry.path()) {
            report.removed_roots += 1;
            if !dry_run {
                discard(tree, &entry.path())?;
                compose_fs::fault::point("gc:after-root");
            }
        }
    }
    let chains = tree.layout().chains_dir();
    for entry in fs::read_dir(&chains).at("listing", &chains)?.flatten() {
        if !live_chains.contains(&entry.path()) {
            report.removed_checkpoints += 1;
            if !dry_run {
                discard(tree, &entry.path())?;
            }
        }
    }
    Ok((report, live_snaps))
}

/// Runs the tree gc, then the store's with the kept snapshots pinned.
/// `node_pins` are (image, generation) pairs nodes are pinned to: never removed.
pub fn gc(
    store: &Store,
    tree: Option<&Tree>,
    keep: usize,
    node_pins: &BTreeSet<(String, u64)>,
    dry_run: bool,
) -> Result<(TreeGcReport, compose_store::GcReport)> {
    // Held across the store's gc so no publish can start using a snapshot
    // the store is about to drop.
    let _lock = tree.map(Tree::lock).transpose()?;
    let (tree_report, pinned) = match tree {
        Some(t) => gc_tree(store, t, keep, node_pins, dry_run)?,
        None => (TreeGcReport::default(), BTreeSet::new()),
    };
    let policy = GcPolicy {
        keep_per_image: keep,
        pinned,
        dry_run,
    };
    let store_report = store.gc(&policy).context("collecting the store")?;
    Ok((tree_report, store_report))
}

/// Renames `path` into tmp/ (atomic disappearance), then deletes it.
fn discard(tree: &Tree, path: &Path) -> Result<()> {
    let name = path
        .file_name()
        .context("nothing to discard")?
        .to_string_lossy()
        .into_owned();
    let trash = tree
        .layout()
        .tmp_dir()
        .join(format!("trash-{}-{name}", std::process::id()));
    fs::rename(path, &trash).with_context(|| format!("moving {} away", path.display()))?;
    fs::remove_dir_all(&trash).with_context(|| format!("removing {}", trash.display()))
}

/// Problems of the publish tree, each naming what is wrong.
pub fn fsck_tree(tree: &Tree) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for image in tree.images()? {
        let gens = match tree.generations(&image) {
            Ok(g) => g,
            Err(e) => {
                problems.push(format!("{image}: {e:#}"));
                continue;
            }
        };
        match tree.current(&image) {
            Ok(Some(n)) if !gens.iter().any(|g| g.number == n) => {
                problems.push(format!("{image}: current points at missing generation {n}"))
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("{e:#}")),
        }
        for g in gens {
            let dir = tree.gen_dir(&image, g.number);
            for f in GenFile::BOOT.map(GenFile::name) {
                if !dir.join(f).is_file() {
                    problems.push(format!("{image}@gen{}: {f} is missing", g.number));
                }
            }
            if !g.root.join("usr").is_dir() {
                problems.push(format!(
                    "{image}@gen{}: root {} is missing",
                    g.number,
                    g.root.display()
                ));
            }
        }
    }
    let default = tree.layout().pxelinux_default();
    let any_current = tree
        .images()?
        .iter()
        .any(|i| matches!(tree.current(i), Ok(Some(_))));
    if any_current && !default.exists() {
        problems.push(format!(
            "{} is missing or points at nothing: publish again to recreate it",
            default.display()
        ));
    }
    Ok(problems)
}

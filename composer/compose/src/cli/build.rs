//! `compose build`

use super::{human_size, load_recipe, short_digest};
use anyhow::Result;
use compose_store::Store;
use composer::build::{build, BuildOptions, LayerReport, Progress};
use composer::plan::{plan, PlannedLayer, Tools};
use composer::verify::verify;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Build a recipe into a snapshot.
///
/// Runs the base bootstrap and every layer whose cache key is not in the
/// store, records each layer's changes as a tar blob, writes the snapshot
/// (an OCI manifest whose digest is the snapshot id) and tags it with the
/// image name. A second build of an unchanged recipe is all cache hits.
/// Needs root (bootstrap and chroot). Progress goes to stderr: each layer
/// with hit/miss, digest, size and time.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The recipe file.
    recipe: PathBuf,
    /// Build twice from scratch and fail, listing the differing paths, if the
    /// two snapshots differ.
    #[arg(long)]
    verify: bool,
    /// Rebuild every layer, ignoring the cache.
    #[arg(long)]
    no_cache: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
    /// Show the output of apt and scripts as they run (otherwise it is
    /// logged and its tail shown on failure).
    #[arg(long, short)]
    verbose: bool,
}

/// One progress line per layer on stderr (also used by boot-test).
pub(super) struct Printer;

impl Progress for Printer {
    fn layer_started(&mut self, index: usize, total: usize, layer: &PlannedLayer, cached: bool) {
        if !cached {
            eprintln!(
                "[{}/{total}] {:<16} miss  building: {}",
                index + 1,
                layer.name,
                layer.created_by
            );
        }
    }

    fn layer_finished(&mut self, total: usize, r: &LayerReport) {
        let short = short_digest(&r.digest);
        let verb = if r.cache == "hit" { "hit " } else { "done" };
        let pack = if r.cache == "hit" {
            String::new()
        } else {
            format!(" (packing {:.1}s)", r.pack_seconds)
        };
        eprintln!(
            "[{}/{total}] {:<16} {verb}  {short}  {:>9}  {:.1}s{pack}",
            r.index + 1,
            r.name,
            human_size(r.size),
            r.seconds
        );
    }
}

/// Builds `recipe` into the store with progress on stderr (boot-test uses
/// it when handed a recipe instead of a snapshot).
pub(super) fn build_recipe(
    store_path: &Path,
    recipe: &Path,
) -> Result<composer::build::BuildReport> {
    let recipe = load_recipe(recipe)?;
    let plan = plan(&recipe, Tools::detect())?;
    let store = Store::open(store_path)?;
    eprintln!(
        "compose: building {} ({} layers) in {}",
        plan.image,
        plan.layers.len(),
        store.root().display()
    );
    build(&store, &plan, &BuildOptions::default(), &mut Printer)
}

pub fn run(store_path: &Path, args: Args) -> Result<ExitCode> {
    let recipe = load_recipe(&args.recipe)?;
    super::require_root(
        "compose build",
        "it runs mmdebstrap and chroots into the image",
    )?;
    let plan = plan(&recipe, Tools::detect())?;
    let store = Store::open(store_path)?;
    let mut printer = Printer;
    eprintln!(
        "compose: building {} ({} layers) in {}",
        plan.image,
        plan.layers.len(),
        store.root().display()
    );
    if args.verify {
        let report = verify(&store, &plan, args.verbose, &mut printer)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        if !report.reproducible {
            eprintln!(
                "compose: NOT reproducible: {} vs {}",
                report.first.snapshot, report.second
            );
            for m in &report.mismatches {
                eprintln!("  layer {}: {} vs {}", m.layer, m.first, m.second);
                for p in &m.paths {
                    eprintln!("    {}: {}", p.path, p.what);
                }
            }
            return Ok(ExitCode::from(3));
        }
        eprintln!(
            "compose: reproducible: both builds gave {} (tagged {})",
            report.first.snapshot, plan.image
        );
        return Ok(ExitCode::SUCCESS);
    }
    let opts = BuildOptions {
        no_cache: args.no_cache,
        verbose: args.verbose,
    };
    let report = build(&store, &plan, &opts, &mut printer)?;
    let hits = report.layers.iter().filter(|l| l.cache == "hit").count();
    eprintln!(
        "compose: snapshot {} tagged {} ({hits} cached, {} built, {:.1}s)",
        report.snapshot,
        report.image,
        report.layers.len() - hits,
        report.seconds
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}

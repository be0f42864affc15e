//! `compose gc`

use super::human_size;
use anyhow::Result;
use compose_cli::inventory::load_nodes;
use compose_publish::{gc::gc, Tree};
use compose_store::Store;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Free what nothing refers to.
///
/// Per image, keeps the current generation, the newest --keep ones, those a
/// node of the inventory is pinned to (and
/// the newest --keep snapshots in the store); removes older generations, the
/// roots and checkpoints only they used, snapshots beyond --keep that no kept
/// generation uses, and every blob no remaining snapshot references. Safe to
/// interrupt: a killed gc leaves only more garbage for the next one.
#[derive(clap::Args)]
pub struct Args {
    /// How many generations (and snapshots) to keep per image.
    #[arg(long, default_value_t = 5)]
    keep: usize,
    /// The node inventory: generations nodes are pinned to are kept
    /// (default /etc/compose/nodes.toml when it exists).
    #[arg(long)]
    nodes: Option<PathBuf>,
    /// Show what would be removed without removing anything.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(store_path: &Path, root: &Path, args: Args) -> Result<ExitCode> {
    let store = Store::open_existing(store_path)?;
    let tree = Tree::open_existing(root).ok();
    let nodes_path = args.nodes.clone().or_else(|| {
        let default = Path::new("/etc/compose/nodes.toml");
        default.exists().then(|| default.to_path_buf())
    });
    let pins: BTreeSet<(String, u64)> = match &nodes_path {
        Some(p) => load_nodes(p)?
            .into_iter()
            .filter_map(|n| Some((n.image, n.generation?)))
            .collect(),
        None => BTreeSet::new(),
    };
    let (t, s) = gc(&store, tree.as_ref(), args.keep.max(1), &pins, args.dry_run)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    eprintln!(
        "compose gc: {verb} {} generations, {} roots, {} checkpoints, {} snapshots, {} blobs ({})",
        t.removed_generations.len(),
        t.removed_roots,
        t.removed_checkpoints,
        s.removed_snapshots.len(),
        s.removed_blobs,
        human_size(s.freed_bytes)
    );
    if args.json {
        let v = serde_json::json!({ "tree": t, "store": s });
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(ExitCode::SUCCESS)
}

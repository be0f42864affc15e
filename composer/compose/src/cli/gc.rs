//! `compose gc`

use super::human_size;
use anyhow::Result;
use compose_store::Store;
use composer::publish::{gc::gc, Tree};
use std::path::Path;
use std::process::ExitCode;

/// Free what nothing refers to.
///
/// Per image, keeps the current generation and the newest --keep ones (and
/// the newest --keep snapshots in the store); removes older generations, the
/// roots and checkpoints only they used, snapshots beyond --keep that no kept
/// generation uses, and every blob no remaining snapshot references. Safe to
/// interrupt: a killed gc leaves only more garbage for the next one.
#[derive(clap::Args)]
pub struct Args {
    /// How many generations (and snapshots) to keep per image.
    #[arg(long, default_value_t = 5)]
    keep: usize,
    /// Show what would be removed without removing anything.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(store_path: &Path, root: &Path, args: Args) -> Result<ExitCode> {
    let store = Store::open_existing(store_path)?;
    let tree = Tree::open_existing(root).ok();
    let (t, s) = gc(&store, tree.as_ref(), args.keep.max(1), args.dry_run)?;
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

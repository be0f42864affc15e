//! `compose diff`

use anyhow::Result;
use compose_cli::diff::{diff_snapshots, render_text, DiffOptions};
use compose_publish::{resolve_ref, Tree};
use compose_store::Store;
use std::path::Path;
use std::process::ExitCode;

/// Show what differs between two snapshots or generations.
///
/// Files added, removed and changed (type, mode, owner, size, content,
/// symlink target), Debian packages added, removed, upgraded or downgraded
/// (from dpkg's status), and unified diffs of changed text files under /etc.
/// Layers the two share are read headers-only, so diffs of large images that
/// differ in their last layers are fast.
///
/// A side is IMAGE (its newest snapshot), IMAGE@genN (a published
/// generation), IMAGE@sha256:..., or a digest (or unique prefix). Exits 0
/// whether or not they differ; use --json for machines.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    from: String,
    to: String,
    /// JSON on stdout: {from, to, shared_layers, files, packages, etc_diffs}.
    #[arg(long)]
    json: bool,
    /// Leave out the /etc text diffs.
    #[arg(long)]
    no_text: bool,
}

pub fn run(store_path: &Path, root: &Path, args: Args) -> Result<ExitCode> {
    let store = Store::open_existing(store_path)?;
    let tree = Tree::open_existing(root).ok();
    let a = resolve_ref(&store, tree.as_ref(), &args.from)?;
    let b = resolve_ref(&store, tree.as_ref(), &args.to)?;
    let opts = DiffOptions {
        etc_text_diffs: !args.no_text,
        ..DiffOptions::default()
    };
    let d = diff_snapshots(&store, &a, &b, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", render_text(&d));
    }
    Ok(ExitCode::SUCCESS)
}

//! `compose rollback`

use anyhow::Result;
use compose_publish::{rollback, Tree};
use std::path::Path;
use std::process::ExitCode;

/// Switch an image back to an earlier generation, instantly.
///
/// One symlink rename, whatever the image's size: new boots get the chosen
/// generation; running nodes are not disturbed. Without --to, goes to the
/// generation before the current one.
#[derive(clap::Args)]
pub struct Args {
    image: String,
    /// The generation number to make current.
    #[arg(long)]
    to: Option<u64>,
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let tree = Tree::open_existing(root)?;
    let r = rollback(&tree, &args.image, args.to)?;
    let from = r
        .from
        .map(|n| format!("gen{n}"))
        .unwrap_or_else(|| "none".into());
    eprintln!(
        "compose: {} now boots gen{} ({}), was {from}",
        r.image, r.to, r.snapshot
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    Ok(ExitCode::SUCCESS)
}

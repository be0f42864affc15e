//! `compose snapshots`

use super::{human_size, short_digest};
use anyhow::Result;
use compose_store::Store;
use std::path::Path;
use std::process::ExitCode;

/// List the snapshots in the store, per image, oldest first.
///
/// The newest snapshot of each image (the one its name resolves to) is
/// marked with `*`.
#[derive(clap::Args)]
pub struct Args {
    /// Only this image.
    image: Option<String>,
    /// JSON on stdout: [{image, id, built, layers, size, newest}].
    #[arg(long)]
    json: bool,
}

pub fn run(store_path: &Path, args: Args) -> Result<ExitCode> {
    let store = Store::open_existing(store_path)?;
    let snaps: Vec<_> = store
        .snapshots()?
        .into_iter()
        .filter(|s| args.image.as_ref().is_none_or(|i| &s.image == i))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&snaps)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<21} {:<20} {:>6} {:>10}",
        "IMAGE", "SNAPSHOT", "BUILT", "LAYERS", "SIZE"
    );
    for s in &snaps {
        let id = s.id.to_string();
        let built = humantime::format_rfc3339_seconds(s.built).to_string();
        println!(
            "{:<20} {:<19}{} {:<20} {:>6} {:>10}",
            s.image,
            short_digest(&id),
            if s.newest { " *" } else { "  " },
            built.trim_end_matches('Z').replace('T', " "),
            s.layers,
            human_size(s.size)
        );
    }
    Ok(ExitCode::SUCCESS)
}

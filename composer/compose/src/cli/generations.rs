//! `compose generations`

use super::short_digest;
use anyhow::Result;
use compose_publish::Tree;
use std::path::Path;
use std::process::ExitCode;

/// List the published generations of an image (or of every image).
///
/// The current generation, the one new boots get, is marked with `*`.
#[derive(clap::Args)]
pub struct Args {
    /// Only this image.
    image: Option<String>,
    /// JSON on stdout: [{image, number, snapshot, kernel_version, published, cmdline, root, current}].
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let tree = Tree::open_existing(root)?;
    let images = match args.image {
        Some(i) => vec![i],
        None => tree.images()?,
    };
    let mut all = Vec::new();
    for image in images {
        all.extend(tree.generations(&image)?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:>4}  {:<21} {:<24} {:<20}",
        "IMAGE", "GEN", "SNAPSHOT", "KERNEL", "PUBLISHED"
    );
    for g in &all {
        let id = g.snapshot.to_string();
        println!(
            "{:<16} {:>4}{} {:<21} {:<24} {:<20}",
            g.image,
            g.number,
            if g.current { "*" } else { " " },
            short_digest(&id),
            g.kernel_version,
            g.published.trim_end_matches('Z').replace('T', " ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

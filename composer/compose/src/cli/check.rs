//! `compose check`

use anyhow::Result;
use compose_recipe::{load_recipe, LoadOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// Validate recipes without building (no root, no network).
///
/// Reports every problem with file, line and key, and what to write
/// instead; exits non-zero if any recipe is invalid.
#[derive(clap::Args)]
pub struct Args {
    /// Recipe files.
    #[arg(required = true)]
    recipes: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut failed = false;
    for path in &args.recipes {
        match load_recipe(path, &LoadOptions::default()) {
            Ok(r) => println!(
                "ok {}: image {}, {} layers",
                path.display(),
                r.image.name,
                r.layers.len()
            ),
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

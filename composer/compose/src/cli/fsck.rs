//! `compose fsck`

use anyhow::Result;
use compose_publish::{gc::fsck_tree, Tree};
use compose_store::Store;
use std::path::Path;
use std::process::ExitCode;

/// Check every blob against its digest, and the publish tree.
///
/// Re-hashes every blob in the store, checks that every snapshot's
/// manifest, config and layers are present, and that every published
/// generation has its root, kernel, initrd and pxelinux entry. Names each
/// problem and exits non-zero if there is any.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

pub fn run(store_path: &Path, root: &Path, args: Args) -> Result<ExitCode> {
    let store = Store::open_existing(store_path)?;
    let report = store.fsck()?;
    let tree_problems = match Tree::open_existing(root) {
        Ok(t) => fsck_tree(&t)?,
        Err(_) => Vec::new(),
    };
    let clean = report.is_clean() && tree_problems.is_empty();
    if args.json {
        let v = serde_json::json!({ "store": report, "tree": tree_problems, "clean": clean });
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    for p in &report.problems {
        eprintln!("compose fsck: {p}");
    }
    for w in &report.warnings {
        eprintln!("compose fsck: warning: {w}");
    }
    for p in &tree_problems {
        eprintln!("compose fsck: {p}");
    }
    eprintln!(
        "compose fsck: {} blobs ({} bytes) checked, {} problems",
        report.blobs_checked,
        report.bytes_checked,
        report.problems.len() + tree_problems.len()
    );
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! `compose publish`

use anyhow::Result;
use compose_store::Store;
use composer::publish::{publish, PublishOptions, Tree};
use std::path::Path;
use std::process::ExitCode;

/// Publish a snapshot as the next generation of its image.
///
/// The snapshot's root is materialized under ROOT/roots/<digest> (hard-linked
/// from earlier generations wherever files are shared), its kernel and initrd
/// are paired and linked into the TFTP tree with a pxelinux entry whose
/// command line points at that root, everything is synced, and then one
/// rename switches the image's `current` generation. Nodes that booted an
/// older generation keep working: nothing they use is rewritten.
///
/// REFERENCE is IMAGE (its newest snapshot), IMAGE@sha256:..., or a digest.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// What to publish.
    reference: String,
    /// NFS server address to put in nfsroot= (default: the DHCP server's).
    #[arg(long)]
    server: Option<String>,
    /// Extra kernel argument (repeatable).
    #[arg(long = "cmdline", value_name = "ARG")]
    cmdline: Vec<String>,
    /// Print the new generation as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(store_path: &Path, root: &Path, args: Args) -> Result<ExitCode> {
    super::require_root(
        "compose publish",
        "it restores file owners and device nodes",
    )?;
    let store = Store::open_existing(store_path)?;
    let snap = store.resolve(&args.reference)?;
    let tree = Tree::open(root)?;
    let opts = PublishOptions {
        server: args.server,
        cmdline: args.cmdline,
    };
    let report = publish(&store, &tree, &snap, &opts)?;
    let g = &report.generation;
    if report.unchanged {
        eprintln!(
            "compose: {} is already the current generation {} of {}",
            snap.id, g.number, g.image
        );
    } else {
        let m = &report.materialized;
        let how = if m.reused {
            "root reused".to_string()
        } else {
            format!(
                "{} layers extracted, {} from a checkpoint",
                m.layers_applied, m.layers_from_checkpoint
            )
        };
        eprintln!(
            "compose: published {} as {}@gen{} (kernel {}, {how}, {:.1}s)",
            snap.id, g.image, g.number, g.kernel_version, report.seconds
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}

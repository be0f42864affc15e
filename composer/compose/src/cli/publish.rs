//! `compose publish`

use anyhow::{Context, Result};
use compose_cluster::InventoryFile;
use compose_publish::{materialize::Extracting, publish_with, PublishOptions, Tree};
use compose_store::Store;
use indicatif::{ProgressBar, ProgressDrawTarget};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
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
/// With --nodes SET (a canary rollout) the generation is written but
/// `current` stays: the nodes of SET are pinned to it in the inventory and
/// their per-MAC pxelinux entries point at it, so only they boot it (at
/// their next reboot). `compose status` shows who runs what. To promote it
/// to every node: `compose rollback IMAGE --to N` and `compose nodes unpin
/// SET`; to abandon it: `compose nodes unpin SET`.
///
/// REFERENCE is IMAGE (its newest snapshot), IMAGE@sha256:..., or a digest.
///
/// Examples:
///     compose publish hpc-node
///     compose publish hpc-node --nodes 'node[01-02]'     # canary
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
    /// Canary: only these nodes (a node set of the inventory) boot the new
    /// generation; `current` does not change.
    #[arg(long = "nodes", value_name = "NODESET")]
    canary: Option<String>,
    /// The node inventory (for --nodes).
    #[arg(long, env = "COMPOSE_NODES", default_value = "/etc/compose/nodes.toml")]
    inventory: PathBuf,
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
    // A canary's node set is checked before anything is written.
    let canary = match &args.canary {
        Some(expr) => {
            let file = InventoryFile::load(&args.inventory)
                .with_context(|| "--nodes needs the inventory (--inventory)")?;
            let set = file.inventory().select_existing(expr)?;
            let others: Vec<&str> = file
                .inventory()
                .nodes
                .iter()
                .filter(|n| set.contains(&n.hostname) && n.image != snap.image)
                .map(|n| n.hostname.as_str())
                .collect();
            if !others.is_empty() {
                anyhow::bail!(
                    "{} run another image than {}: a canary takes nodes of the image it publishes",
                    compose_nodeset::fold(&others),
                    snap.image
                );
            }
            Some((file, set))
        }
        None => None,
    };
    let tree = Tree::open(root)?;
    let opts = PublishOptions {
        server: args.server,
        cmdline: args.cmdline,
        no_switch: canary.is_some(),
    };
    // A bar per extracted layer on a terminal; otherwise (and with --json)
    // only the summary line below.
    let bars = !args.json && std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut on_progress = |e: Extracting| {
        if !bars {
            return;
        }
        let b = bar.get_or_insert_with(|| {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                .with_style(super::build::Look::Bytes.style())
        });
        // Position first: a new layer's first report never shows the last
        // layer's position against the new length.
        b.set_position(e.bytes);
        b.set_length(e.total.max(e.bytes));
        b.set_prefix(format!("[{}/{}] extracting", e.layer, e.layers));
        b.set_message("layer");
    };
    let report = publish_with(&store, &tree, &snap, &opts, &mut on_progress);
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    let report = report?;
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
    if let Some((mut file, set)) = canary {
        if !report.unchanged {
            file.set_pin(&set, Some(g.number))?;
            file.save()?;
            compose_cluster::pxelinux_links(root, &file.inventory().nodes)?;
            let current = tree.current(&g.image)?.unwrap_or_default();
            eprintln!(
                "compose: canary: {set} pinned to generation {} (reboot them to try it); every other node stays on generation {current}. Promote: compose rollback {} --to {} && compose nodes unpin '{set}'",
                g.number, g.image, g.number
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}

//! `compose status`

use super::short_digest;
use anyhow::{Context, Result};
use compose_cli::inventory::load_nodes;
use compose_publish::Tree;
use compose_serve::status;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Which generation each node booted, and when, as `compose serve` saw it.
///
/// For every node of the inventory: the generation it should boot (its pin,
/// else its image's current one), the generation whose kernel it fetched at
/// its last boot, the snapshot it mounted and when. STATE is `current` when
/// the node runs what it should, `behind` when it booted another generation
/// (reboot it to move it), `booting` when it fetched a kernel but has not
/// mounted its root since, and `unseen` when compose serve never saw it.
///
/// The record is ROOT/state/boots.json, written by `compose serve`.
///
/// Examples:
///     compose status
///     compose status --json | jq '.[] | select(.state != "current") | .hostname'
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The node inventory.
    #[arg(long, default_value = "/etc/compose/nodes.toml")]
    nodes: PathBuf,
    /// JSON on stdout: [{hostname, ip, image, want, booted, snapshot, state,
    /// dhcp_at, kernel_at, mount_at}].
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let nodes = load_nodes(&args.nodes)
        .with_context(|| "compose status lists the nodes of the inventory (--nodes)")?;
    let tree = Tree::open_existing(root)?;
    let rows = status::report(&tree, &nodes)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let when = |s: &Option<String>| {
        s.as_deref()
            .map(|t| t.trim_end_matches('Z').replace('T', " "))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "{:<16} {:<15} {:<20} {:<20} {:<8} {:<19} {:<23}",
        "NODE", "IP", "WANT", "BOOTED", "STATE", "SNAPSHOT", "MOUNTED AT"
    );
    for r in &rows {
        let want = match (&r.want, r.pinned) {
            (Some(w), true) => format!("{w} (pin)"),
            (w, _) => dash(w),
        };
        println!(
            "{:<16} {:<15} {:<20} {:<20} {:<8} {:<19} {:<23}",
            r.hostname,
            r.ip,
            want,
            dash(&r.booted),
            r.state,
            r.snapshot.as_deref().map(short_digest).unwrap_or("-"),
            when(&r.mount_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

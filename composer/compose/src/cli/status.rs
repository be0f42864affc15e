//! `compose status`

use super::short_digest;
use anyhow::{Context, Result};
use composer::inventory::load_nodes;
use composer::publish::Tree;
use composer::serve::status::{self, BootRecord};
use serde::Serialize;
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

#[derive(Debug, Serialize)]
struct Row {
    hostname: String,
    ip: String,
    image: String,
    /// `image/N`, or None when the image has no generation yet.
    want: Option<String>,
    pinned: bool,
    booted: Option<String>,
    snapshot: Option<String>,
    state: &'static str,
    dhcp_at: Option<String>,
    kernel_at: Option<String>,
    mount_at: Option<String>,
}

fn state(want: Option<&str>, rec: Option<&BootRecord>) -> &'static str {
    let Some(rec) = rec else { return "unseen" };
    if rec.generation.is_none() {
        return "unseen";
    }
    // A kernel fetched after the last mount: a boot in progress.
    if rec.mount_at.is_none() || rec.kernel_at > rec.mount_at {
        return "booting";
    }
    if rec.generation.as_deref() == want {
        "current"
    } else {
        "behind"
    }
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let nodes = load_nodes(&args.nodes)
        .with_context(|| "compose status lists the nodes of the inventory (--nodes)")?;
    let tree = Tree::open_existing(root)?;
    let boots = status::load(root)?;
    let mut rows = Vec::new();
    for n in &nodes {
        let want = match n.generation {
            Some(g) => Some(g),
            None => tree.current(&n.image)?,
        }
        .map(|g| format!("{}/{g}", n.image));
        let rec = boots.nodes.get(&n.hostname);
        rows.push(Row {
            hostname: n.hostname.clone(),
            ip: n.ip.to_string(),
            image: n.image.clone(),
            state: state(want.as_deref(), rec),
            want,
            pinned: n.generation.is_some(),
            booted: rec.and_then(|r| r.generation.clone()),
            snapshot: rec.and_then(|r| r.snapshot.clone()),
            dhcp_at: rec.and_then(|r| r.dhcp_at.clone()),
            kernel_at: rec.and_then(|r| r.kernel_at.clone()),
            mount_at: rec.and_then(|r| r.mount_at.clone()),
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        let booted = |g: &str, k: &str, m: Option<&str>| BootRecord {
            generation: Some(g.into()),
            kernel_at: Some(k.into()),
            mount_at: m.map(str::to_string),
            ..BootRecord::default()
        };
        assert_eq!(state(Some("x/2"), None), "unseen");
        let r = booted("x/2", "2026-01-01T00:00:01Z", Some("2026-01-01T00:00:09Z"));
        assert_eq!(state(Some("x/2"), Some(&r)), "current");
        assert_eq!(state(Some("x/3"), Some(&r)), "behind");
        let r = booted("x/3", "2026-01-01T00:00:10Z", Some("2026-01-01T00:00:09Z"));
        assert_eq!(state(Some("x/3"), Some(&r)), "booting");
    }
}

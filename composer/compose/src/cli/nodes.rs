//! `compose nodes`: the node inventory and what is regenerated from it.

use anyhow::{bail, Context, Result};
use compose_cluster::{
    apply, load_inventory, parse_mac_list, plan, pxelinux_links, Inventory, InventoryFile,
    NewNodes, NodeSet, RegenOptions,
};
use compose_tree::Layout;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const LONG_ABOUT: &str = "\
Edit the node inventory (nodes.toml) and regenerate what derives from it.

The inventory lists every node: hostname, MAC, IP, image, an optional
generation pin, groups and tags, plus an optional [cluster] table (subnet,
domain, authorized_keys, server_hostname/server_ip). `add`, `remove`, `pin`
and `unpin` edit it in place, keeping your comments, and refuse any edit
that would leave it invalid (duplicate MAC/IP/hostname, IP outside the
subnet, ...).

`regen` (compose's update-cluster) writes, under the publish tree:
  cluster/hosts, ssh_known_hosts, genders, clustershell/groups.yaml,
  dsh/group/NAME, dhcpd-hosts.conf, dnsmasq-hosts.conf, and per node
  cluster/nodes/HOST/ (etc/hostname, etc/hosts, SSH host key, known hosts,
  root's authorized_keys), switched in atomically; and the per-MAC
  pxelinux links in tftp/pxelinux.cfg/.

NODESET arguments are node sets: node[01-64], node[01-04,09], login1,
@compute (a group), @all, @image:hpc-node (the nodes of an image),
combined with , (union) ! (minus) & (intersection): @compute!node03.

Examples:
    compose nodes add node[01-04] --mac-from macs.txt --ip 10.1.0.11 \\
        --image hpc-node --group compute --tag rack=r1
    compose nodes add login1 --mac 52:54:00:00:00:09 --ip 10.1.0.2 --image login
    compose nodes list @compute
    compose nodes regen --dry-run
    compose nodes regen
    compose nodes pin node[01-02] 7      # canary: these boot generation 7
    compose nodes unpin @all
    compose nodes remove node04";

/// Edit the node inventory and regenerate hosts, SSH keys, groups and pxelinux links.
#[derive(clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    /// The node inventory.
    #[arg(
        long,
        global = true,
        env = "COMPOSE_NODES",
        default_value = "/etc/compose/nodes.toml"
    )]
    nodes: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    List(ListArgs),
    Add(AddArgs),
    Remove(RemoveArgs),
    Pin(PinArgs),
    Unpin(UnpinArgs),
    Regen(RegenArgs),
}

/// List nodes: hostname, MAC, IP, image, pinned generation, groups.
#[derive(clap::Args)]
#[command(
    after_long_help = "Examples:\n    compose nodes list\n    compose nodes list @compute!node03\n    compose nodes list @image:hpc-node --json"
)]
struct ListArgs {
    /// Only these nodes (default: all).
    nodeset: Option<String>,
    /// JSON on stdout: [{hostname, mac, ip, image, generation?, groups, tags}].
    #[arg(long)]
    json: bool,
}

/// Add nodes: names from a node set, MACs in the same (natural) order, IPs
/// consecutive from --ip.
///
/// The whole resulting inventory is validated before nodes.toml is
/// replaced. Run `compose nodes regen` afterwards.
#[derive(clap::Args)]
#[command(
    after_long_help = "Examples:\n    compose nodes add node[01-64] --mac-from macs.txt --ip 10.1.0.11 \\\n        --image hpc-node --group compute --tag rack=r1\n    compose nodes add login1 --mac 52:54:00:00:00:09 --ip 10.1.0.2 --image login"
)]
struct AddArgs {
    /// The new nodes' hostnames, e.g. node[01-04].
    nodeset: String,
    /// A file of MAC addresses, one a line in the order of the names
    /// (blank lines and # comments skipped); the count must match.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "mac",
        required_unless_present = "mac"
    )]
    mac_from: Option<PathBuf>,
    /// The MAC address (repeat it for several nodes, in order).
    #[arg(long)]
    mac: Vec<String>,
    /// The first node's IP; the next nodes get the following addresses.
    #[arg(long, value_name = "FIRST_IP")]
    ip: Ipv4Addr,
    /// The image the nodes boot.
    #[arg(long)]
    image: String,
    /// A group for every new node (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// A tag key=value for every new node (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
}

/// Remove nodes from the inventory. Run `compose nodes regen` afterwards.
#[derive(clap::Args)]
#[command(after_long_help = "Example:\n    compose nodes remove node[61-64]")]
struct RemoveArgs {
    nodeset: String,
}

/// Pin nodes to a generation of their image: they boot it whatever is
/// current (a canary rollout, or holding nodes back). Updates their
/// pxelinux links when the publish tree has them.
#[derive(clap::Args)]
#[command(
    after_long_help = "Examples:\n    compose nodes pin @canary 7        # these boot generation 7\n    compose nodes unpin @canary        # back to the current generation"
)]
struct PinArgs {
    nodeset: String,
    generation: u64,
}

/// Unpin nodes: they boot their image's current generation again.
#[derive(clap::Args)]
#[command(after_long_help = "Example:\n    compose nodes unpin @all")]
struct UnpinArgs {
    nodeset: String,
}

/// Regenerate everything derived from the inventory (update-cluster).
///
/// Prints a summary (stderr) and the unified diff of every file and link
/// that changes (stdout; private keys are named, never shown), then applies
/// it atomically: the new set is written beside the old one and switched
/// with one rename of PUBLISH_ROOT/cluster. Nothing to do: nothing changes.
#[derive(clap::Args)]
#[command(
    after_long_help = "Examples:\n    compose nodes regen --dry-run\n    compose nodes regen\n    compose nodes regen --dry-run --json | jq -r '.changes[].path'"
)]
struct RegenArgs {
    /// Show what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// The plan as JSON on stdout: {tree, set, current, changes:[{path, kind, old, new, secret}], new_host_keys, notes}.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let path = args.nodes.as_path();
    match args.command {
        Cmd::List(a) => list(path, a),
        Cmd::Add(a) => add(path, a),
        Cmd::Remove(a) => {
            let mut f = InventoryFile::load(path)?;
            let set = select(f.inventory(), &a.nodeset)?;
            let removed = f.remove(&set)?;
            f.save()?;
            eprintln!(
                "compose nodes: removed {} ({} nodes) from {}; run `compose nodes regen` to update the cluster files",
                NodeSet::from_names(&removed),
                removed.len(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Pin(a) => pin(root, path, &a.nodeset, Some(a.generation)),
        Cmd::Unpin(a) => pin(root, path, &a.nodeset, None),
        Cmd::Regen(a) => regen(root, path, a),
    }
}

fn select(inv: &Inventory, expr: &str) -> Result<NodeSet> {
    let set = inv.select_existing(expr)?;
    if set.is_empty() {
        bail!("{expr} names no node");
    }
    Ok(set)
}

fn list(path: &Path, a: ListArgs) -> Result<ExitCode> {
    let inv = load_inventory(path)?;
    let set = match &a.nodeset {
        Some(expr) => select(&inv, expr)?,
        None => NodeSet::from_names(inv.nodes.iter().map(|n| n.hostname.as_str())),
    };
    let nodes = inv.nodes_in(&set);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = nodes
        .iter()
        .map(|n| n.hostname.len())
        .max()
        .unwrap_or(0)
        .max(8);
    println!(
        "{:<width$}  {:<17}  {:<15}  {:<16}  {:>3}  GROUPS",
        "HOSTNAME", "MAC", "IP", "IMAGE", "PIN"
    );
    for n in nodes {
        println!(
            "{:<width$}  {:<17}  {:<15}  {:<16}  {:>3}  {}",
            n.hostname,
            n.mac_canonical().unwrap_or_else(|_| n.mac.clone()),
            n.ip,
            n.image,
            n.generation
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into()),
            n.groups.join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn add(path: &Path, a: AddArgs) -> Result<ExitCode> {
    let mut f = InventoryFile::load_or_new(path)?;
    let names = f.inventory().select(&a.nodeset)?;
    let macs = match &a.mac_from {
        Some(file) => parse_mac_list(
            &std::fs::read_to_string(file)
                .with_context(|| format!("reading MAC addresses from {}", file.display()))?,
        ),
        None => a.mac.clone(),
    };
    let mut tags = BTreeMap::new();
    for t in &a.tags {
        let (k, v) = t
            .split_once('=')
            .with_context(|| format!("--tag {t:?}: write KEY=VALUE, like rack=r1"))?;
        tags.insert(k.to_string(), v.to_string());
    }
    let new = NewNodes {
        names,
        macs,
        first_ip: a.ip,
        image: a.image,
        groups: a.groups,
        tags,
    }
    .nodes()?;
    f.add(&new)?;
    f.save()?;
    let (first, last) = (new.first().map(|n| n.ip), new.last().map(|n| n.ip));
    eprintln!(
        "compose nodes: added {} ({} nodes, {} - {}) to {}; run `compose nodes regen` to update the cluster files",
        NodeSet::from_names(new.iter().map(|n| n.hostname.as_str())),
        new.len(),
        first.map(|i| i.to_string()).unwrap_or_default(),
        last.map(|i| i.to_string()).unwrap_or_default(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn pin(root: &Path, path: &Path, expr: &str, generation: Option<u64>) -> Result<ExitCode> {
    let mut f = InventoryFile::load(path)?;
    let set = select(f.inventory(), expr)?;
    if let Some(g) = generation {
        check_generations(root, f.inventory(), &set, g)?;
    }
    let changed = f.set_pin(&set, generation)?;
    f.save()?;
    let what = match generation {
        Some(g) => format!("pinned to generation {g}"),
        None => "unpinned".to_string(),
    };
    eprintln!("compose nodes: {} {what} ({} changed)", set, changed.len());
    // The pin takes effect through the node's pxelinux link: update them now.
    let entries = Layout::new(root).pxelinux_dir();
    if entries.is_dir() {
        pxelinux_links(root, &f.inventory().nodes)?;
        eprintln!(
            "compose nodes: pxelinux links updated in {}",
            entries.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A pin to a generation that is not published would leave the node
/// without a boot entry: refuse it when the publish tree is at hand.
fn check_generations(root: &Path, inv: &Inventory, set: &NodeSet, g: u64) -> Result<()> {
    let layout = Layout::new(root);
    if !layout.images_dir().is_dir() {
        return Ok(());
    }
    for n in inv.nodes_in(set) {
        if !layout.gen_dir(&n.image, g).is_dir() {
            bail!(
                "{}: image {} has no generation {g} in {} (see `compose generations {}`)",
                n.hostname,
                n.image,
                root.display(),
                n.image
            );
        }
    }
    Ok(())
}

fn regen(root: &Path, path: &Path, a: RegenArgs) -> Result<ExitCode> {
    let inv = load_inventory(path)?;
    let opts = RegenOptions {
        base_dir: path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
        ..RegenOptions::default()
    };
    let p = plan(&inv, root, &opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print!("{}", p.render_diff());
    }
    for note in &p.notes {
        eprintln!("compose nodes: note: {note}");
    }
    if a.dry_run || p.is_empty() {
        eprintln!(
            "compose nodes: {}{}",
            p.summary(),
            if a.dry_run && !p.is_empty() {
                " (dry run: nothing written)"
            } else {
                ""
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    apply(&p).with_context(|| format!("regenerating the cluster files in {}", root.display()))?;
    eprintln!("compose nodes: {}: applied", p.summary());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn cli_definition_is_consistent() {
        Wrapper::command().debug_assert();
    }

    fn run_args(root: &Path, argv: &[&str]) -> Result<ExitCode> {
        let w = Wrapper::try_parse_from(std::iter::once("nodes").chain(argv.iter().copied()))?;
        run(root, w.args)
    }

    #[test]
    fn add_pin_remove_and_regen_through_the_cli() {
        let d = tempfile::tempdir().unwrap();
        let nodes = d.path().join("nodes.toml");
        let n = nodes.to_str().unwrap();
        let tree = d.path().join("srv");
        std::fs::create_dir_all(tree.join("tftp/pxelinux.cfg")).unwrap();
        std::fs::create_dir_all(tree.join("images/hpc-node/gen/2")).unwrap();
        std::fs::write(&nodes, "[cluster]\nsubnet = \"10.1.0.0/24\"\n").unwrap();
        let macs = d.path().join("macs.txt");
        std::fs::write(
            &macs,
            "52:54:00:00:00:01\n52:54:00:00:00:02\n52:54:00:00:00:03\n",
        )
        .unwrap();
        let m = macs.to_str().unwrap();
        run_args(
            &tree,
            &[
                "add",
                "node[01-03]",
                "--mac-from",
                m,
                "--ip",
                "10.1.0.11",
                "--image",
                "hpc-node",
                "--group",
                "compute",
                "--nodes",
                n,
            ],
        )
        .unwrap();
        let inv = load_inventory(&nodes).unwrap();
        assert_eq!(inv.nodes.len(), 3);
        assert_eq!(inv.nodes[2].ip, Ipv4Addr::new(10, 1, 0, 13));

        let err = run_args(
            &tree,
            &[
                "add",
                "node[04-05]",
                "--mac",
                "52:54:00:00:00:04",
                "--ip",
                "10.1.0.14",
                "--image",
                "hpc-node",
                "--nodes",
                n,
            ],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("2 names (node[04-05]) but 1 MAC"),
            "{err}"
        );
        let err = run_args(&tree, &["pin", "node01", "9", "--nodes", n]).unwrap_err();
        assert!(err.to_string().contains("has no generation 9"), "{err}");

        run_args(&tree, &["pin", "@compute!node03", "2", "--nodes", n]).unwrap();
        let link = std::fs::read_link(tree.join("tftp/pxelinux.cfg/01-52-54-00-00-00-02")).unwrap();
        assert_eq!(link, Path::new("../images/hpc-node/gen/2/pxelinux.cfg"));
        run_args(&tree, &["regen", "--dry-run", "--nodes", n]).unwrap();
        assert!(!tree.join("cluster").exists());
        run_args(&tree, &["regen", "--nodes", n]).unwrap();
        assert!(tree.join("cluster/nodes/node03/etc/hostname").is_file());
        run_args(&tree, &["remove", "node03", "--nodes", n]).unwrap();
        run_args(&tree, &["regen", "--nodes", n]).unwrap();
        assert!(!tree.join("cluster/nodes/node03").exists());
        let inv = load_inventory(&nodes).unwrap();
        assert_eq!(
            inv.nodes.iter().filter(|n| n.generation == Some(2)).count(),
            2
        );
        let err = run_args(&tree, &["unpin", "node07", "--nodes", n]).unwrap_err();
        assert!(
            err.to_string().contains("node07: not in the inventory"),
            "{err}"
        );
    }
}

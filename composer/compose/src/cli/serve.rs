//! `compose serve`

use anyhow::{bail, Result};
use compose_cli::inventory::load_nodes;
use compose_publish::Tree;
use compose_serve::{
    harden, interface_address, load_config, log::Record, regen_pxelinux_links, run, Plan,
    ServeConfig,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DEFAULT_CONFIG: &str = "/etc/compose/serve.toml";
const DEFAULT_NODES: &str = "/etc/compose/nodes.toml";

/// Serve the published generations: DHCP, TFTP and NFS in one process.
///
/// DHCP (port 67, bound to --interface) gives every node in the inventory
/// its address and hostname and sends PXE clients to their loader by
/// firmware (option 93): BIOS to pxelinux.0, UEFI x64 to syslinux.efi; both
/// read the same pxelinux.cfg entries (with --proxy-dhcp it leaves
/// addresses to the site's DHCP server and only answers PXE clients, on 67
/// and 4011). On its own network it also answers IPv6 router solicitations
/// with an advertisement that configures nothing: iPXE otherwise waits
/// ~15 s for an IPv6 router on every boot (ipv6_ra = false turns it off).
/// TFTP (port 69) serves ROOT/tftp and the generations it links to under
/// ROOT/images, world-readable files only, with per-client and global caps.
/// HTTP (port 80) serves the same files (ranges, ETags, cache headers),
/// each node's overlay.cpio to that node only, /status.json (what `compose
/// status --json` prints) and /metrics (Prometheus text). NFS (NFSv3, MOUNT
/// and the portmapper on TCP port 111) exports every published root
/// read-only at its own path, to reserved source ports only (as knfsd's
/// `secure`). Every service listens on the boot network only: the address
/// (--server-ip, default the interface's) and the interface itself. At
/// start the descriptor limit is raised to the hard limit and every
/// capability but CAP_NET_BIND_SERVICE, CAP_NET_RAW and CAP_DAC_READ_SEARCH
/// is dropped. See SECURITY.md.
/// Per-MAC pxelinux entries are regenerated from the inventory at start.
/// Stops cleanly on SIGINT or SIGTERM. Every lease, transfer and mount is
/// logged to stderr.
///
/// Configuration: /etc/compose/serve.toml (keys: interface, server_ip,
/// netmask, router, dns, domain, proxy_dhcp, lease_secs, nodes, tftp_port,
/// nfs_port, http_port, ipv6_ra), overridden by flags. Inventory: /etc/compose/nodes.toml
/// ([[node]] hostname, mac, ip, image, generation, groups).
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The interface to serve DHCP on.
    #[arg(long)]
    interface: Option<String>,
    /// Answer PXE clients only; leave addresses to the site's DHCP server.
    #[arg(long)]
    proxy_dhcp: bool,
    /// The node inventory.
    #[arg(long)]
    nodes: Option<PathBuf>,
    #[arg(long)]
    no_dhcp: bool,
    #[arg(long)]
    no_tftp: bool,
    #[arg(long)]
    no_nfs: bool,
    /// Serve no HTTP (boot files, /status.json, /metrics).
    #[arg(long)]
    no_http: bool,
    #[arg(long)]
    tftp_port: Option<u16>,
    #[arg(long)]
    nfs_port: Option<u16>,
    /// The HTTP port (default 80).
    #[arg(long)]
    http_port: Option<u16>,
    /// The address every service binds to (default: --interface's first
    /// IPv4 address). Nothing listens on other addresses, so a server on
    /// several networks serves only the boot network.
    #[arg(long)]
    server_ip: Option<std::net::Ipv4Addr>,
}

pub fn run_cli(root: &Path, args: Args) -> Result<ExitCode> {
    super::require_root("compose serve", "it binds ports 67, 69 and 111")?;
    let mut config = match &args.config {
        Some(p) => load_config(p)?,
        None if Path::new(DEFAULT_CONFIG).exists() => load_config(Path::new(DEFAULT_CONFIG))?,
        None => ServeConfig::default(),
    };
    config.proxy_dhcp |= args.proxy_dhcp;
    config.tftp_port = args.tftp_port.or(config.tftp_port);
    config.nfs_port = args.nfs_port.or(config.nfs_port);
    config.http_port = args.http_port.or(config.http_port);
    config.server_ip = args.server_ip.or(config.server_ip);
    let nodes_path = args.nodes.clone().or(config.nodes.clone()).or_else(|| {
        Path::new(DEFAULT_NODES)
            .exists()
            .then(|| PathBuf::from(DEFAULT_NODES))
    });
    let nodes = match &nodes_path {
        Some(p) => load_nodes(p)?,
        None => Vec::new(),
    };
    let interface = args.interface.clone().or(config.interface.clone());
    let dhcp = !args.no_dhcp;
    let (server_ip, netmask) = match (&interface, config.server_ip) {
        (Some(i), ip) => {
            let (found, mask) = interface_address(i)?;
            (ip.unwrap_or(found), config.netmask.unwrap_or(mask))
        }
        (None, _) if dhcp => bail!("DHCP needs an interface: pass --interface IF (or --no-dhcp)"),
        (None, Some(ip)) => (ip, config.netmask.unwrap_or([255, 255, 255, 0].into())),
        (None, None) => bail!(
            "compose serve binds every service to the boot network's address only: pass \
             --interface IF or --server-ip IP (or set interface/server_ip in serve.toml)"
        ),
    };
    if server_ip.is_unspecified() {
        bail!("server_ip 0.0.0.0 would serve every network: give the boot network's address");
    }
    // Before the runtime starts any thread (capabilities are per thread).
    let nofile = harden::raise_fd_limit()?;
    let kept = harden::drop_capabilities()?;
    eprintln!(
        "compose serve: every service bound to {server_ip}; {nofile} file descriptors; \
         capabilities kept: {}",
        if kept.is_empty() {
            "none".to_string()
        } else {
            kept.join(",")
        }
    );
    let tree = Tree::open(root)?;
    let links = regen_pxelinux_links(&tree, &nodes)?;
    eprintln!(
        "compose serve: {} nodes, {links} per-MAC pxelinux entries, publish tree {}",
        nodes.len(),
        root.display()
    );
    let plan = Plan {
        tree: root.to_path_buf(),
        interface: interface.unwrap_or_default(),
        server_ip,
        netmask,
        config,
        nodes,
        dhcp,
        tftp: !args.no_tftp,
        nfs: !args.no_nfs,
        http: !args.no_http,
    };
    run(plan, log_event)?;
    eprintln!("compose serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// One logfmt line per event on stderr (journald adds its own timestamp,
/// but the line keeps its own for plain log files).
fn log_event(r: &Record) {
    eprintln!("{r}");
}

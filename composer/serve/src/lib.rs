//! `compose serve`: DHCP, TFTP and NFS for the published generations, in
//! one tokio process.
//!
//! DHCP hands each inventory node its address and hostname and points PXE
//! clients at pxelinux.0; TFTP serves the publish tree's `tftp/` and the
//! generations under `images/` it links to, nothing else; NFS
//! exports every root under `roots/` read-only at its own path, re-read on
//! every mount so new generations appear without a restart. Per-MAC pxelinux
//! entries are regenerated from the inventory at start.

pub mod harden;
mod http;
pub mod log;
pub mod status;

use anyhow::{bail, Context, Result};
use compose_cluster::inventory::Node;
use compose_publish::Tree;
use compose_tree::Layout;
use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// `/etc/compose/serve.toml`. Every key is optional; flags override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    pub interface: Option<String>,
    /// Default: the interface's first IPv4 address.
    pub server_ip: Option<Ipv4Addr>,
    /// Default: from the interface's prefix length.
    pub netmask: Option<Ipv4Addr>,
    pub router: Option<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    #[serde(default)]
    pub proxy_dhcp: bool,
    pub lease_secs: Option<u32>,
    pub nodes: Option<PathBuf>,
    pub tftp_port: Option<u16>,
    pub nfs_port: Option<u16>,
    /// HTTP for boot files, `/status.json` and `/metrics` (default 80).
    pub http_port: Option<u16>,
    /// Answer IPv6 router solicitations with an advertisement that
    /// configures nothing, so iPXE stops waiting ~15 s for an IPv6 router
    /// (see compose_dhcp::ra). Default: on, except in proxyDHCP mode, where
    /// the network is the site's.
    pub ipv6_ra: Option<bool>,
}

pub fn load_config(path: &Path) -> Result<ServeConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{}: invalid serve configuration", path.display()))
}

/// What one `compose serve` runs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tree: PathBuf,
    pub interface: String,
    pub server_ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub config: ServeConfig,
    pub nodes: Vec<Node>,
    pub dhcp: bool,
    pub tftp: bool,
    pub nfs: bool,
    pub http: bool,
}

/// Everything the servers report, for the caller to log.
#[derive(Debug)]
pub enum Event {
    Started(String),
    Dhcp(compose_dhcp::DhcpEvent),
    Tftp(compose_tftp::TftpEvent),
    Nfs(compose_nfs::NfsEvent),
    Ra(compose_dhcp::RaEvent),
    Http(compose_http::HttpEvent),
}

/// The first IPv4 address and netmask of `interface` (from `ip -j addr`).
pub fn interface_address(interface: &str) -> Result<(Ipv4Addr, Ipv4Addr)> {
    let out = std::process::Command::new("ip")
        .args(["-j", "-4", "addr", "show", "dev", interface])
        .output()
        .context("running `ip addr` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "no interface {interface}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing `ip -j addr`")?;
    let info = v
        .get(0)
        .and_then(|i| i["addr_info"].as_array())
        .and_then(|a| a.iter().find(|x| x["family"] == "inet"))
        .with_context(|| {
            format!("interface {interface} has no IPv4 address: give it one or set server_ip")
        })?;
    let ip: Ipv4Addr = info["local"].as_str().unwrap_or_default().parse()?;
    let prefix = info["prefixlen"].as_u64().unwrap_or(24).min(32) as u32;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Ok((ip, Ipv4Addr::from(mask)))
}

/// Points `tftp/pxelinux.cfg/01-<mac>` of every node at its image's current
/// generation (or its pinned one), and removes entries of unknown MACs
/// (the same links `compose nodes regen` and `nodes pin` maintain).
pub fn regen_pxelinux_links(tree: &Tree, nodes: &[Node]) -> Result<usize> {
    compose_cluster::pxelinux_links(tree.path(), nodes)
}

fn dhcp_config(plan: &Plan) -> compose_dhcp::DhcpConfig {
    let c = &plan.config;
    let leases = plan
        .nodes
        .iter()
        .filter_map(|n| {
            Some(compose_dhcp::StaticLease {
                mac: n.mac_bytes().ok()?,
                ip: n.ip,
                hostname: n.hostname.clone(),
            })
        })
        .collect();
    compose_dhcp::DhcpConfig {
        interface: plan.interface.clone(),
        server_ip: plan.server_ip,
        netmask: plan.netmask,
        router: c.router,
        dns: c.dns.clone(),
        domain: c.domain.clone(),
        lease_secs: c.lease_secs.unwrap_or(3600),
        leases,
        boot: compose_dhcp::BootFiles {
            bios: "pxelinux.0".into(),
            // Installed by every publish (serve may start before the first).
            efi_x64: Some(compose_publish::EFI_X64_LOADER.into()),
            ipxe: None,
        },
        next_server: plan.server_ip,
        proxy: c.proxy_dhcp,
    }
}

/// The NFS exports: every published root, at its own absolute path, open
/// to all; and each inventory node's own files (`TREE/cluster/boot/HOST`,
/// written by `compose nodes regen`), open to that node's address only.
/// Listed afresh on every mount, so new generations and a new regen appear
/// without a restart. A listing that fails for another reason than "no
/// roots yet" (out of descriptors) is an error: the NFS server then keeps
/// what it has open instead of forgetting every export.
fn exports(
    tree: &Path,
    nodes: &[(String, std::net::IpAddr)],
) -> std::io::Result<Vec<compose_nfs::Export>> {
    let layout = Layout::new(tree);
    let mut out: Vec<compose_nfs::Export> = match std::fs::read_dir(layout.roots_dir()) {
        Ok(dir) => dir
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| compose_nfs::Export::new(e.path().to_string_lossy(), e.path()))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    for (host, ip) in nodes {
        let path = layout.node_boot_dir(host);
        // Resolved now: `cluster` is a symlink a regen swaps.
        if let Ok(dir) = std::fs::canonicalize(&path) {
            if dir.is_dir() {
                out.push(compose_nfs::Export {
                    clients: vec![*ip],
                    ..compose_nfs::Export::new(path.to_string_lossy(), dir)
                });
            }
        }
    }
    Ok(out)
}

/// A channel for one server's events, each handed on to the serve log as
/// `wrap(event)` by a small task (the servers know nothing of `Event`).
fn forward<E: Send + 'static>(
    to: &mpsc::UnboundedSender<Event>,
    wrap: fn(E) -> Event,
) -> mpsc::UnboundedSender<E> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let to = to.clone();
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            let _ = to.send(wrap(e));
        }
    });
    tx
}

/// What the start lines say about interface binding.
fn device_note(interface: &str) -> String {
    if interface.is_empty() {
        " (no --interface: bound to the address only)".into()
    } else {
        format!(" on {interface} only")
    }
}

/// Runs the servers until SIGINT or SIGTERM. Every event becomes a log
/// record (handed to `on_log`), and the boot steps of inventory nodes are
/// kept in `TREE/state/boots.json` for `compose status`.
pub fn run(plan: Plan, mut on_log: impl FnMut(&log::Record) + Send + 'static) -> Result<()> {
    let index = log::NodeIndex::new(&plan.nodes);
    let mut boots = status::Saver::new(&plan.tree, status::load(&plan.tree).unwrap_or_default());
    // Every event is logged (lines about strangers at most 50 a second, see
    // log::Limiter); the boot record is saved at most once a second
    // (a storm of ACKs must not become a storm of rewrites), and on a tick
    // and at stop so the last step is never lost.
    let mut limiter = log::Limiter::new();
    let counters = http::SharedCounters::default();
    let counted = counters.clone();
    let mut on_event = move |e: Option<Event>, now: std::time::Instant| {
        let r = e.map(|e| log::record(&e, &index, std::time::SystemTime::now()));
        if let Err(err) = boots.observe(r.as_ref(), now) {
            on_log(&log::Record {
                at: std::time::SystemTime::now(),
                event: "serve.status_failed",
                fields: vec![("error", format!("{err:#}"))],
            });
        }
        if let Some(r) = &r {
            counted.lock().unwrap_or_else(|p| p.into_inner()).observe(r);
        }
        for line in limiter.filter(r, now) {
            on_log(&line);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut tasks = tokio::task::JoinSet::new();
        if plan.nfs {
            let port = plan.config.nfs_port.unwrap_or(111);
            let bind = SocketAddr::from((plan.server_ip, port));
            let tree = plan.tree.clone();
            let private: Vec<(String, std::net::IpAddr)> = plan
                .nodes
                .iter()
                .map(|n| (n.hostname.clone(), std::net::IpAddr::V4(n.ip)))
                .collect();
            let source: Arc<dyn compose_nfs::ExportSource> =
                Arc::new(compose_nfs::TryExportFn(move || exports(&tree, &private)));
            let server = compose_nfs::NfsServer::bind_dynamic(bind, source).await?;
            if !plan.interface.is_empty() {
                server.bind_to_device(&plan.interface)?;
            }
            let tx = forward(&ev_tx, Event::Nfs);
            let _ = ev_tx.send(Event::Started(format!(
                "nfs on tcp {}{}",
                server.local_addr(),
                device_note(&plan.interface)
            )));
            let stop = stopped(stop_rx.clone());
            tasks.spawn(async move { server.run(tx, stop).await.context("nfs server") });
        }
        if plan.tftp {
            let port = plan.config.tftp_port.unwrap_or(69);
            let layout = Layout::new(&plan.tree);
            let mut cfg = compose_tftp::TftpConfig::new(
                layout.tftp_dir(),
                SocketAddr::from((plan.server_ip, port)),
            );
            cfg.confine = plan.tree.clone();
            // Only the TFTP root and the generations it links to: never
            // roots/, cluster/ or state/ through a symlink (security #11).
            let rel = Layout::relative();
            cfg.subtrees = vec![rel.tftp_dir(), rel.images_dir()];
            let (server, addr) = compose_tftp::TftpServer::bind(cfg).await?;
            if !plan.interface.is_empty() {
                server.bind_to_device(&plan.interface)?;
            }
            let tx = forward(&ev_tx, Event::Tftp);
            let _ = ev_tx.send(Event::Started(format!(
                "tftp on udp {addr}{}, root {}",
                device_note(&plan.interface),
                layout.tftp_dir().display()
            )));
            let stop = stopped(stop_rx.clone());
            tasks.spawn(async move { server.run(tx, stop).await.context("tftp server") });
        }
        if plan.http {
            let port = plan.config.http_port.unwrap_or(80);
            let (server, addr) = http::start(&plan, port, counters.clone()).await?;
            let tx = forward(&ev_tx, Event::Http);
            let _ = ev_tx.send(Event::Started(format!(
                "http on tcp {addr}{}: boot files, /status.json, /metrics",
                device_note(&plan.interface)
            )));
            let stop = stopped(stop_rx.clone());
            tasks.spawn(async move { server.run(tx, stop).await.context("http server") });
        }
        if plan.dhcp {
            let cfg = dhcp_config(&plan);
            let tx = forward(&ev_tx, Event::Dhcp);
            let mode = if cfg.proxy { "proxyDHCP" } else { "DHCP" };
            let _ = ev_tx.send(Event::Started(format!(
                "{mode} on {} ({}, {} static leases), boot files: BIOS {}, UEFI x64 {}",
                plan.interface,
                plan.server_ip,
                cfg.leases.len(),
                cfg.boot.bios,
                cfg.boot.efi_x64.as_deref().unwrap_or("none")
            )));
            for file in [cfg.boot.bios.as_str(), compose_publish::EFI_X64_LOADER] {
                if !Layout::new(&plan.tree).tftp_dir().join(file).is_file() {
                    let _ = ev_tx.send(Event::Started(format!(
                        "warning: tftp/{file} is missing: clients asking for it fail until `compose publish` installs it"
                    )));
                }
            }
            let stop = stopped(stop_rx.clone());
            let proxy = cfg.proxy;
            tasks.spawn(async move {
                compose_dhcp::serve(cfg, tx, stop)
                    .await
                    .context("dhcp server")
            });
            if plan.config.ipv6_ra.unwrap_or(!proxy) {
                let tx = forward(&ev_tx, Event::Ra);
                let stop = stopped(stop_rx.clone());
                let interface = plan.interface.clone();
                tasks.spawn(async move {
                    compose_dhcp::serve_ra(interface, tx, stop).await;
                    Ok(())
                });
            }
        }
        drop(ev_tx);
        let (flush_tx, mut flush_rx) = tokio::sync::oneshot::channel::<()>();
        let logger = tokio::spawn(async move {
            let mut tick = tokio::time::interval(status::SAVE_EVERY);
            loop {
                tokio::select! {
                    e = ev_rx.recv() => match e {
                        Some(e) => on_event(Some(e), std::time::Instant::now()),
                        None => break,
                    },
                    _ = tick.tick() => on_event(None, std::time::Instant::now()),
                    _ = &mut flush_rx => break,
                }
            }
            // Whatever is still queued, then the last save.
            while let Ok(e) = ev_rx.try_recv() {
                on_event(Some(e), std::time::Instant::now());
            }
            on_event(None, std::time::Instant::now() + status::SAVE_EVERY);
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let result = tokio::select! {
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = term.recv() => Ok(()),
            Some(done) = tasks.join_next() => match done {
                Ok(Ok(())) => Err(anyhow::anyhow!("a server stopped unexpectedly")),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::anyhow!("a server task failed: {e}")),
            },
        };
        let _ = stop_tx.send(true);
        let drain = async {
            while let Some(r) = tasks.join_next().await {
                if let Ok(Err(e)) = r {
                    return Err(e);
                }
            }
            Ok(())
        };
        let drained = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
        let _ = flush_tx.send(());
        if tokio::time::timeout(std::time::Duration::from_secs(2), logger)
            .await
            .is_err()
        {
            eprintln!("compose serve: the log did not drain within 2 s");
        }
        result?;
        drained.context("servers did not stop within 5 s")?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_examples_parse() {
        let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose/dist");
        let cfg = load_config(&dist.join("serve.toml")).unwrap();
        assert_eq!(cfg.interface.as_deref(), Some("eth1"));
        let nodes = compose_cluster::inventory::load_nodes(&dist.join("nodes.toml")).unwrap();
        assert_eq!(nodes[1].generation, Some(3));
    }

    #[test]
    fn per_mac_links_follow_current_or_a_pin_and_drop_strangers() {
        let d = tempfile::tempdir().unwrap();
        let tree = Tree::open(d.path()).unwrap();
        let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose/dist");
        let nodes = compose_cluster::inventory::load_nodes(&dist.join("nodes.toml")).unwrap();
        let cfg = d.path().join("tftp/pxelinux.cfg");
        std::fs::write(cfg.join("01-00-00-00-00-00-99"), "stale").unwrap();
        assert_eq!(regen_pxelinux_links(&tree, &nodes).unwrap(), 2);
        let link = |n: &str| {
            std::fs::read_link(cfg.join(n))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(
            link("01-52-54-00-00-00-01"),
            "../images/hpc-node/current/pxelinux.cfg"
        );
        assert_eq!(
            link("01-52-54-00-00-00-02"),
            "../images/hpc-node/gen/3/pxelinux.cfg"
        );
        assert!(!cfg.join("01-00-00-00-00-00-99").exists());
    }

    #[test]
    fn roots_are_public_and_node_files_private() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path();
        std::fs::create_dir_all(t.join("roots/ab")).unwrap();
        std::fs::create_dir_all(t.join("cluster.d/h1/boot/node01")).unwrap();
        std::os::unix::fs::symlink("cluster.d/h1", t.join("cluster")).unwrap();
        let ip: std::net::IpAddr = "10.1.0.11".parse().unwrap();
        let nodes = vec![("node01".to_string(), ip), ("node02".to_string(), ip)];
        let ex = exports(t, &nodes).unwrap();
        assert_eq!(ex.len(), 2, "{ex:?}");
        assert!(ex[0].path.ends_with("roots/ab") && ex[0].clients.is_empty());
        assert_eq!(ex[1].path, t.join("cluster/boot/node01").to_string_lossy());
        assert_eq!(ex[1].dir, t.join("cluster.d/h1/boot/node01"));
        assert_eq!(ex[1].clients, vec![ip]);
    }
}

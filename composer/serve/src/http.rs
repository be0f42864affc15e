//! compose serve's HTTP side (compose-http): the boot files of the TFTP tree
//! over HTTP (kernel and initrd at wire speed instead of lock-step TFTP),
//! each node's own `overlay.cpio` to that node's address only (as the NFS
//! export is), `/status.json` (what `compose status --json` prints) and
//! `/metrics` (Prometheus text: what serve saw, and nodes by boot state).

use super::log::Record;
use super::{status, Plan};
use anyhow::{Context, Result};
use compose_publish::Tree;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// What serve saw, by log event, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    events: BTreeMap<&'static str, u64>,
    /// Payload bytes of finished transfers, by protocol.
    bytes: BTreeMap<&'static str, u64>,
}

/// Shared between the logger (which counts) and the HTTP hook (which reads).
pub type SharedCounters = Arc<Mutex<Counters>>;

impl Counters {
    pub fn observe(&mut self, r: &Record) {
        *self.events.entry(r.event).or_default() += 1;
        let proto = match r.event {
            "tftp.done" => "tftp",
            "http.done" => "http",
            _ => return,
        };
        let n: u64 = r.get("bytes").and_then(|b| b.parse().ok()).unwrap_or(0);
        *self.bytes.entry(proto).or_default() += n;
    }

    /// Prometheus text exposition (format 0.0.4).
    pub fn render(&self, nodes: &[status::NodeStatus]) -> String {
        let mut out = String::new();
        out.push_str("# HELP compose_serve_events_total Log events by kind (leases, transfers, mounts, refusals).\n");
        out.push_str("# TYPE compose_serve_events_total counter\n");
        for (event, n) in &self.events {
            out.push_str(&format!(
                "compose_serve_events_total{{event=\"{event}\"}} {n}\n"
            ));
        }
        out.push_str(
            "# HELP compose_serve_transfer_bytes_total Payload bytes of finished transfers.\n",
        );
        out.push_str("# TYPE compose_serve_transfer_bytes_total counter\n");
        for proto in ["tftp", "http"] {
            let n = self.bytes.get(proto).copied().unwrap_or(0);
            out.push_str(&format!(
                "compose_serve_transfer_bytes_total{{proto=\"{proto}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP compose_nodes Inventory nodes by boot state.\n");
        out.push_str("# TYPE compose_nodes gauge\n");
        for state in [
            status::BootState::Current,
            status::BootState::Behind,
            status::BootState::Booting,
            status::BootState::Unseen,
        ] {
            let n = nodes.iter().filter(|s| s.state == state).count();
            out.push_str(&format!("compose_nodes{{state=\"{state}\"}} {n}\n"));
        }
        out
    }
}

/// Binds the HTTP server on the serve address (and interface) with the
/// hooks and every node's private overlay.
pub async fn start(
    plan: &Plan,
    port: u16,
    counters: SharedCounters,
) -> Result<(compose_http::HttpServer, SocketAddr)> {
    let tree = plan.tree.clone();
    let layout = compose_tree::Layout::new(&tree);
    let mut cfg =
        compose_http::HttpConfig::new(layout.tftp_dir(), SocketAddr::from((plan.server_ip, port)));
    // `tftp/images -> ../images`: the boundary is the tree, and only the
    // generations besides tftp/ itself are served (never roots/ or cluster/).
    cfg.confine = tree.clone();
    cfg.allow = vec![layout.images_dir()];
    let (mut server, addr) = compose_http::HttpServer::bind(cfg)
        .await
        .with_context(|| format!("binding HTTP on {}:{port}", plan.server_ip))?;
    if !plan.interface.is_empty() {
        server.bind_to_device(&plan.interface)?;
    }
    let private = server.private_files();
    for n in &plan.nodes {
        // Through the `cluster` symlink, so a regen's new set is what is read.
        private.insert(
            &format!("nodes/{}/overlay.cpio", n.hostname),
            layout.node_overlay(&n.hostname),
            IpAddr::V4(n.ip),
        );
    }
    let nodes = Arc::new(plan.nodes.clone());
    let (status_tree, status_nodes) = (tree.clone(), nodes.clone());
    server.set_status(move || match report(&status_tree, &status_nodes) {
        Ok(rows) => serde_json::to_vec_pretty(&rows).unwrap_or_default(),
        Err(e) => serde_json::to_vec(&serde_json::json!({ "error": format!("{e:#}") }))
            .unwrap_or_default(),
    });
    server.set_metrics(move || {
        let rows = report(&tree, &nodes).unwrap_or_default();
        counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .render(&rows)
    });
    Ok((server, addr))
}

fn report(
    tree: &std::path::Path,
    nodes: &[compose_cluster::inventory::Node],
) -> Result<Vec<status::NodeStatus>> {
    status::report(&Tree::open_existing(tree)?, nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn metrics_count_events_bytes_and_states() {
        let mut c = Counters::default();
        for (event, bytes) in [
            ("tftp.done", "100"),
            ("http.done", "4000"),
            ("http.done", "1"),
        ] {
            c.observe(&Record {
                at: UNIX_EPOCH,
                event,
                fields: vec![("bytes", bytes.into())],
            });
        }
        let text = c.render(&[]);
        for want in [
            "compose_serve_events_total{event=\"http.done\"} 2\n",
            "compose_serve_transfer_bytes_total{proto=\"http\"} 4001\n",
            "compose_serve_transfer_bytes_total{proto=\"tftp\"} 100\n",
            "compose_nodes{state=\"unseen\"} 0\n",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
    }
}

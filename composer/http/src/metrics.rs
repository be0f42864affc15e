//! The server's own counters, rendered in the Prometheus text exposition
//! format (version 0.0.4) ahead of whatever text the caller adds.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, status) -> count; a handful of keys, so a map under a lock.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    bytes_sent: AtomicU64,
    connections_active: AtomicU64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    transfers_active: AtomicU64,
    transfers_total: AtomicU64,
}

impl Metrics {
    pub fn request(&self, method: &str, status: u16) {
        // Methods are free text from clients: anything unusual is one bucket,
        // so a client cannot grow the map.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((method.to_owned(), status)).or_default() += 1;
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_active.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_active.fetch_sub(1, Relaxed);
    }

    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    pub fn transfer_started(&self) {
        self.transfers_active.fetch_add(1, Relaxed);
        self.transfers_total.fetch_add(1, Relaxed);
    }

    pub fn transfer_ended(&self) {
        self.transfers_active.fetch_sub(1, Relaxed);
    }

    /// The library's metrics, then `extra` (the caller's), one document.
    pub fn render(&self, extra: &str) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP compose_http_requests_total HTTP requests answered, by method and status.\n",
        );
        out.push_str("# TYPE compose_http_requests_total counter\n");
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, status), n) in map.iter() {
            let _ = writeln!(
                out,
                "compose_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        drop(map);
        let scalar = |out: &mut String, name: &str, kind: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", v.load(Relaxed));
        };
        let rows: [(&str, &str, &str, &AtomicU64); 6] = [
            (
                "compose_http_sent_bytes_total",
                "counter",
                "Body bytes handed to the connections.",
                &self.bytes_sent,
            ),
            (
                "compose_http_connections_active",
                "gauge",
                "Open client connections.",
                &self.connections_active,
            ),
            (
                "compose_http_connections_total",
                "counter",
                "Client connections accepted.",
                &self.connections_total,
            ),
            (
                "compose_http_connections_refused_total",
                "counter",
                "Connections closed at once: global or per-peer cap.",
                &self.connections_refused,
            ),
            (
                "compose_http_transfers_active",
                "gauge",
                "File bodies being sent.",
                &self.transfers_active,
            ),
            (
                "compose_http_transfers_total",
                "counter",
                "File bodies started.",
                &self.transfers_total,
            ),
        ];
        for (name, kind, help, v) in rows {
            scalar(&mut out, name, kind, help, v);
        }
        out.push_str(extra);
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

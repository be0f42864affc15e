//! The serve log: one `key=value` line per lease, transfer and mount
//! (logfmt), stable enough for grep, journald and `compose boot-test`'s
//! phase split. Every line carries a timestamp and, when the peer is in the
//! inventory, the node's hostname; transfers of generation files carry the
//! image and generation, mounts the snapshot digest.
//!
//! ```text
//! t=2026-11-25T16:20:01.123Z event=dhcp.ack host=node01 mac=52:54:00:c0:00:01 ip=10.78.0.11
//! t=2026-11-25T16:20:03.801Z event=tftp.done host=node01 peer=10.78.0.11:2070 file=images/minimal/gen/1/vmlinuz image=minimal gen=1 bytes=8123456 secs=1.20
//! t=2026-11-25T16:20:31.002Z event=nfs.mount host=node01 peer=10.78.0.11:800 export=/srv/compose/roots/ab.. snapshot=sha256:ab..
//! ```

use super::Event;
use compose_cluster::inventory::Node;
use compose_dhcp::{mac_string, DhcpEvent, RaEvent};
use compose_http::HttpEvent;
use compose_nfs::NfsEvent;
use compose_tftp::TftpEvent;
use compose_tree::Layout;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::SystemTime;

/// One log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub at: SystemTime,
    /// `dhcp.ack`, `tftp.done`, `nfs.mount`, ...
    pub event: &'static str,
    pub fields: Vec<(&'static str, String)>,
}

impl Record {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={} event={}",
            humantime::format_rfc3339_millis(self.at),
            self.event
        )?;
        for (k, v) in &self.fields {
            write!(f, " {k}={}", quote(v))?;
        }
        Ok(())
    }
}

/// The longest value a line carries, in characters. Values come from
/// clients (file names, hostnames, error texts): without a cap one request
/// could write kilobytes per line into the journal.
pub const MAX_VALUE: usize = 200;

/// logfmt quoting: bare when safe, else a double-quoted Rust-style escape
/// (control characters, quotes and non-ASCII escaped, so a client cannot
/// forge a line or a field). Values over [`MAX_VALUE`] characters are cut,
/// marked with `...(N more bytes)`.
fn quote(v: &str) -> String {
    let cut;
    let v = match v.char_indices().nth(MAX_VALUE) {
        Some((at, _)) => {
            cut = format!("{}...({} more bytes)", &v[..at], v.len() - at);
            cut.as_str()
        }
        None => v,
    };
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if bare {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// A parsed log line (for boot-test and tests): `t`, `event` and the fields.
pub fn parse_line(line: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = &rest[..eq];
        if key.is_empty() || key.contains(' ') {
            return None;
        }
        rest = &rest[eq + 1..];
        let value = if let Some(q) = rest.strip_prefix('"') {
            // Find the closing quote, honouring backslash escapes.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in q.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end?;
            let raw = &q[..end];
            rest = &q[end + 1..];
            raw.replace("\\\"", "\"").replace("\\\\", "\\")
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            let v = rest[..end].to_string();
            rest = &rest[end..];
            v
        };
        out.insert(key.to_string(), value);
        rest = rest.trim_start();
    }
    out.contains_key("event").then_some(out)
}

/// Lines about peers outside the inventory (no `host=`) logged per second,
/// at most. A flood of spoofed requests is one line per packet otherwise
/// (tens of thousands a second into the journal); lines about inventory
/// nodes and the server's own lines are never held back.
pub const STRANGER_LINES_PER_SEC: u32 = 50;

/// Holds back stranger lines beyond [`STRANGER_LINES_PER_SEC`] and says how
/// many it held back, once per second, in a `serve.suppressed` line.
#[derive(Debug)]
pub struct Limiter {
    window: Option<std::time::Instant>,
    admitted: u32,
    suppressed: u64,
}

impl Limiter {
    pub fn new() -> Limiter {
        Limiter {
            window: None,
            admitted: 0,
            suppressed: 0,
        }
    }

    /// The lines to write for `r` (none when it is held back) at `now`; a
    /// call without a record only closes the window (a tick).
    pub fn filter(&mut self, r: Option<Record>, now: std::time::Instant) -> Vec<Record> {
        let mut out = Vec::new();
        let elapsed = self
            .window
            .is_none_or(|w| now.saturating_duration_since(w) >= std::time::Duration::from_secs(1));
        if elapsed {
            if self.suppressed > 0 {
                out.push(Record {
                    at: SystemTime::now(),
                    event: "serve.suppressed",
                    fields: vec![
                        ("lines", self.suppressed.to_string()),
                        (
                            "why",
                            "over 50 lines a second about peers outside the inventory".into(),
                        ),
                    ],
                });
            }
            self.window = Some(now);
            self.admitted = 0;
            self.suppressed = 0;
        }
        if let Some(r) = r {
            let stranger = r.get("host").is_none() && !r.event.starts_with("serve.");
            if !stranger || self.admitted < STRANGER_LINES_PER_SEC {
                self.admitted += stranger as u32;
                out.push(r);
            } else {
                self.suppressed += 1;
            }
        }
        out
    }
}

impl Default for Limiter {
    fn default() -> Limiter {
        Limiter::new()
    }
}

/// Who is who: the inventory by MAC and by IP.
#[derive(Debug, Default, Clone)]
pub struct NodeIndex {
    by_mac: BTreeMap<[u8; 6], String>,
    by_ip: BTreeMap<Ipv4Addr, String>,
}

impl NodeIndex {
    pub fn new(nodes: &[Node]) -> NodeIndex {
        let mut idx = NodeIndex::default();
        for n in nodes {
            if let Ok(mac) = n.mac_bytes() {
                idx.by_mac.insert(mac, n.hostname.clone());
            }
            idx.by_ip.insert(n.ip, n.hostname.clone());
        }
        idx
    }

    fn mac(&self, mac: &[u8; 6]) -> Option<&str> {
        self.by_mac.get(mac).map(String::as_str)
    }

    fn peer(&self, peer: &SocketAddr) -> Option<&str> {
        match peer.ip() {
            IpAddr::V4(ip) => self.by_ip.get(&ip).map(String::as_str),
            IpAddr::V6(_) => None,
        }
    }
}

/// Renders a server event as a log record.
pub fn record(e: &Event, nodes: &NodeIndex, at: SystemTime) -> Record {
    let mut f: Vec<(&'static str, String)> = Vec::new();
    let host_mac = |f: &mut Vec<(&'static str, String)>, mac: &[u8; 6]| {
        if let Some(h) = nodes.mac(mac) {
            f.push(("host", h.to_string()));
        }
        f.push(("mac", mac_string(mac)));
    };
    let host_peer = |f: &mut Vec<(&'static str, String)>, peer: &SocketAddr| {
        if let Some(h) = nodes.peer(peer) {
            f.push(("host", h.to_string()));
        }
        f.push(("peer", peer.to_string()));
    };
    let file = |f: &mut Vec<(&'static str, String)>, path: &str| {
        f.push(("file", path.to_string()));
        if let Some((image, n)) = Layout::parse_gen_path(path) {
            f.push(("image", image));
            f.push(("gen", n.to_string()));
        }
    };
    let event = match e {
        Event::Started(what) => {
            f.push(("what", what.clone()));
            "serve.started"
        }
        Event::Dhcp(d) => match d {
            DhcpEvent::Offer { mac, ip } => {
                host_mac(&mut f, mac);
                f.push(("ip", ip.to_string()));
                "dhcp.offer"
            }
            DhcpEvent::Ack { mac, ip, hostname } => {
                host_mac(&mut f, mac);
                f.push(("ip", ip.to_string()));
                if nodes.mac(mac) != Some(hostname.as_str()) {
                    f.push(("hostname", hostname.clone()));
                }
                "dhcp.ack"
            }
            DhcpEvent::Inform { mac, ip } => {
                host_mac(&mut f, mac);
                f.push(("ip", ip.to_string()));
                "dhcp.inform"
            }
            DhcpEvent::Nak {
                mac,
                requested,
                reason,
            } => {
                host_mac(&mut f, mac);
                if let Some(r) = requested {
                    f.push(("requested", r.to_string()));
                }
                f.push(("reason", format!("{reason:?}")));
                "dhcp.nak"
            }
            DhcpEvent::Ignored { mac, reason } => {
                if let Some(m) = mac {
                    host_mac(&mut f, m);
                }
                f.push(("reason", format!("{reason:?}")));
                "dhcp.ignored"
            }
            DhcpEvent::ProxyBoot { mac, file, stage } => {
                host_mac(&mut f, mac);
                f.push(("file", file.clone()));
                f.push(("stage", format!("{stage:?}")));
                "dhcp.proxy"
            }
            DhcpEvent::Malformed { from, error } => {
                f.push(("peer", from.to_string()));
                f.push(("error", error.to_string()));
                "dhcp.malformed"
            }
            DhcpEvent::SendFailed { to, error } => {
                f.push(("peer", to.to_string()));
                f.push(("error", error.clone()));
                "dhcp.send_failed"
            }
        },
        Event::Ra(r) => match r {
            RaEvent::Started { interface } => {
                f.push(("interface", interface.clone()));
                "ra.started"
            }
            RaEvent::Advertised { to, mac } => {
                if let Some(m) = mac {
                    host_mac(&mut f, m);
                }
                f.push(("to", to.to_string()));
                "ra.advert"
            }
            RaEvent::Unavailable { interface, error } => {
                f.push(("interface", interface.clone()));
                f.push(("error", error.clone()));
                "ra.unavailable"
            }
            RaEvent::SendFailed { to, error } => {
                f.push(("to", to.to_string()));
                f.push(("error", error.clone()));
                "ra.send_failed"
            }
        },
        Event::Tftp(t) => match t {
            TftpEvent::Started {
                peer,
                path,
                size,
                blksize,
                windowsize,
            } => {
                host_peer(&mut f, peer);
                file(&mut f, path);
                f.push(("size", size.to_string()));
                f.push(("blksize", blksize.to_string()));
                f.push(("windowsize", windowsize.to_string()));
                "tftp.start"
            }
            TftpEvent::Finished {
                peer,
                path,
                bytes,
                elapsed,
            } => {
                host_peer(&mut f, peer);
                file(&mut f, path);
                f.push(("bytes", bytes.to_string()));
                f.push(("secs", format!("{:.3}", elapsed.as_secs_f64())));
                "tftp.done"
            }
            TftpEvent::Failed { peer, path, reason } => {
                host_peer(&mut f, peer);
                file(&mut f, path);
                f.push(("reason", reason.clone()));
                "tftp.failed"
            }
            TftpEvent::Refused { peer, path, reason } => {
                host_peer(&mut f, peer);
                f.push(("file", path.clone()));
                f.push(("reason", reason.clone()));
                "tftp.refused"
            }
            TftpEvent::Malformed { peer, error } => {
                f.push(("peer", peer.to_string()));
                f.push(("error", error.to_string()));
                "tftp.malformed"
            }
        },
        Event::Http(h) => match h {
            HttpEvent::Finished {
                peer,
                path,
                bytes,
                status,
                elapsed,
            } => {
                host_peer(&mut f, peer);
                file(&mut f, path.trim_start_matches('/'));
                f.push(("status", status.to_string()));
                f.push(("bytes", bytes.to_string()));
                f.push(("secs", format!("{:.3}", elapsed.as_secs_f64())));
                "http.done"
            }
            HttpEvent::Failed {
                peer,
                path,
                bytes,
                reason,
            } => {
                host_peer(&mut f, peer);
                file(&mut f, path.trim_start_matches('/'));
                f.push(("bytes", bytes.to_string()));
                f.push(("reason", reason.clone()));
                "http.failed"
            }
            HttpEvent::Refused {
                peer,
                path,
                status,
                reason,
            } => {
                host_peer(&mut f, peer);
                f.push(("file", path.clone()));
                f.push(("status", status.to_string()));
                f.push(("reason", reason.clone()));
                "http.refused"
            }
            HttpEvent::AcceptError { reason } => {
                f.push(("reason", reason.clone()));
                "http.accept_error"
            }
        },
        Event::Nfs(n) => match n {
            NfsEvent::Mount { peer, export } => {
                host_peer(&mut f, peer);
                f.push(("export", export.clone()));
                if let Some(s) = Layout::parse_export(export) {
                    f.push(("snapshot", s.to_string()));
                }
                "nfs.mount"
            }
            NfsEvent::Unmount { peer, export } => {
                host_peer(&mut f, peer);
                f.push(("export", export.clone()));
                "nfs.umount"
            }
            NfsEvent::Refused {
                peer,
                export,
                reason,
            } => {
                host_peer(&mut f, peer);
                f.push(("export", export.clone()));
                f.push(("reason", reason.clone()));
                "nfs.refused"
            }
            NfsEvent::Error { peer, message } => {
                if let Some(p) = peer {
                    host_peer(&mut f, p);
                }
                f.push(("error", message.clone()));
                "nfs.error"
            }
        },
    };
    Record {
        at,
        event,
        fields: f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn index() -> NodeIndex {
        let nodes = compose_cluster::inventory::parse_nodes(
            "[[node]]\nhostname = \"node01\"\nmac = \"52:54:00:c0:00:01\"\nip = \"10.78.0.11\"\nimage = \"minimal\"\n",
            std::path::Path::new("nodes.toml"),
        )
        .unwrap();
        NodeIndex::new(&nodes)
    }

    #[test]
    fn lines_name_the_node_the_generation_and_the_snapshot() {
        let at = UNIX_EPOCH + Duration::from_millis(1_764_087_601_123);
        let idx = index();
        let peer: SocketAddr = "10.78.0.11:2070".parse().unwrap();
        let done = record(
            &Event::Tftp(TftpEvent::Finished {
                peer,
                path: "images/minimal/gen/3/vmlinuz".into(),
                bytes: 8_000_000,
                elapsed: Duration::from_millis(1200),
            }),
            &idx,
            at,
        );
        assert_eq!(
            done.to_string(),
            "t=2025-11-25T16:20:01.123Z event=tftp.done host=node01 peer=10.78.0.11:2070 \
             file=images/minimal/gen/3/vmlinuz image=minimal gen=3 bytes=8000000 secs=1.200"
        );
        let hex = "ab".repeat(32);
        let mount = record(
            &Event::Nfs(NfsEvent::Mount {
                peer,
                export: format!("/srv/compose/roots/{hex}"),
            }),
            &idx,
            at,
        );
        assert_eq!(
            mount.get("snapshot"),
            Some(format!("sha256:{hex}").as_str())
        );
        let stranger = record(
            &Event::Dhcp(DhcpEvent::Ignored {
                mac: Some([2, 0, 0, 0, 0, 9]),
                reason: compose_dhcp::IgnoreReason::UnknownMac,
            }),
            &idx,
            at,
        );
        assert_eq!(stranger.get("host"), None);
        assert_eq!(stranger.get("mac"), Some("02:00:00:00:00:09"));
    }

    #[test]
    fn values_with_spaces_are_quoted_and_parse_back() {
        let r = Record {
            at: UNIX_EPOCH,
            event: "tftp.refused",
            fields: vec![
                ("file", "../etc/shadow".into()),
                ("reason", "escapes the \"root\" = no".into()),
                ("empty", String::new()),
            ],
        };
        let line = r.to_string();
        assert!(
            line.contains(r#"reason="escapes the \"root\" = no""#),
            "{line}"
        );
        let back = parse_line(&line).unwrap();
        assert_eq!(back["event"], "tftp.refused");
        assert_eq!(back["reason"], "escapes the \"root\" = no");
        assert_eq!(back["empty"], "");
        assert_eq!(back["t"], "1970-01-01T00:00:00.000Z");
        assert!(parse_line("compose serve: stopped").is_none());
    }

    #[test]
    fn client_strings_are_capped_and_cannot_forge_lines() {
        let long = "A".repeat(60_000);
        let r = Record {
            at: UNIX_EPOCH,
            event: "tftp.refused",
            fields: vec![
                ("file", long),
                ("host", "x\nt=1970 event=dhcp.ack host=node01".into()),
            ],
        };
        let line = r.to_string();
        assert!(line.len() < 400, "{} bytes", line.len());
        assert!(!line.contains('\n'), "{line}");
        let back = parse_line(&line).unwrap();
        assert_eq!(
            back["file"],
            format!("{}...(59800 more bytes)", "A".repeat(200))
        );
        // The newline stays escaped: the field is one value, not a new line.
        assert_eq!(back["host"], r"x\nt=1970 event=dhcp.ack host=node01");
        assert_eq!(back["event"], "tftp.refused");
    }

    #[test]
    fn a_flood_of_stranger_lines_is_held_back_and_counted() {
        let t0 = std::time::Instant::now();
        let line = |host: Option<&str>| Record {
            at: UNIX_EPOCH,
            event: "tftp.refused",
            fields: host
                .map(|h| vec![("host", h.to_string())])
                .unwrap_or_default(),
        };
        let mut l = Limiter::new();
        let mut written = 0;
        for i in 0..10_000u64 {
            let at = t0 + std::time::Duration::from_micros(50 * i); // 0.5 s
            written += l.filter(Some(line(None)), at).len();
        }
        assert_eq!(written, STRANGER_LINES_PER_SEC as usize);
        // A node's line goes through even now.
        assert_eq!(l.filter(Some(line(Some("node01"))), t0).len(), 1);
        // The tick after the second says how many were held back.
        let tick = l.filter(None, t0 + std::time::Duration::from_millis(1100));
        assert_eq!(tick.len(), 1);
        assert_eq!(tick[0].event, "serve.suppressed");
        assert_eq!(tick[0].get("lines"), Some("9950"));
        assert!(l
            .filter(None, t0 + std::time::Duration::from_millis(2200))
            .is_empty());
    }
}

//! What `compose serve` saw of each node's last boot, kept in
//! `TREE/state/boots.json` for `compose status`: the last DHCP lease, the
//! generation whose kernel and initrd it fetched, and the snapshot it
//! mounted, each with a time.
//!
//! The file is rewritten (temp + rename) at most once a second while boot
//! steps of inventory nodes arrive ([`Saver`]): a storm of hundreds of ACKs
//! a second must not become as many rewrites. It is not fsynced: losing the last second of status on a
//! power cut is fine, and a boot storm of hundreds of nodes must not queue
//! behind fsyncs.

use super::log::Record;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One node's last boot as the servers saw it. Times are RFC 3339 (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootRecord {
    pub mac: Option<String>,
    pub ip: Option<String>,
    /// The last DHCP ACK.
    pub dhcp_at: Option<String>,
    /// The generation whose kernel the node fetched last: `image/N`.
    pub generation: Option<String>,
    pub kernel_at: Option<String>,
    /// The last completed initrd transfer (kernel + initrd loaded).
    pub initrd_at: Option<String>,
    /// The snapshot whose root it mounted last.
    pub snapshot: Option<String>,
    pub mount_at: Option<String>,
}

/// All nodes' records, by hostname.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boots {
    pub nodes: BTreeMap<String, BootRecord>,
}

pub fn path(tree: &Path) -> PathBuf {
    compose_tree::Layout::new(tree).boots_json()
}

/// Reads the record; a missing file is an empty one.
pub fn load(tree: &Path) -> Result<Boots> {
    let p = path(tree);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a compose boot record", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Boots::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

impl Boots {
    /// Folds one log record in; true when something changed.
    pub fn observe(&mut self, r: &Record) -> bool {
        let Some(host) = r.get("host") else {
            return false;
        };
        let at = humantime::format_rfc3339_millis(r.at).to_string();
        let entry = self.nodes.entry(host.to_string()).or_default();
        let before = entry.clone();
        match r.event {
            "dhcp.ack" => {
                entry.dhcp_at = Some(at);
                entry.mac = r.get("mac").map(str::to_string);
                entry.ip = r.get("ip").map(str::to_string);
            }
            // The kernel pair over TFTP (pxelinux) or HTTP (iPXE, curl).
            "tftp.done" | "http.done" => {
                let file = r.get("file").unwrap_or_default();
                if let (Some(image), Some(g)) = (r.get("image"), r.get("gen")) {
                    if file.ends_with("/vmlinuz") {
                        entry.generation = Some(format!("{image}/{g}"));
                        entry.kernel_at = Some(at);
                    } else if file.ends_with("/initrd.img") {
                        entry.initrd_at = Some(at);
                    }
                }
            }
            "nfs.mount" => {
                if let Some(s) = r.get("snapshot") {
                    entry.snapshot = Some(s.to_string());
                    entry.mount_at = Some(at);
                }
            }
            _ => {}
        }
        *entry != before
    }

    /// Writes the record (temp + rename, see the module comment).
    pub fn save(&self, tree: &Path) -> Result<()> {
        let p = path(tree);
        let dir = p.parent().expect("state/ has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(".boots.json.{}", std::process::id()));
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("renaming to {}", p.display()))
    }
}

/// Where a node stands, from what it should boot and what serve saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BootState {
    /// It runs what it should.
    Current,
    /// It booted another generation: reboot it to move it.
    Behind,
    /// It fetched a kernel but has not mounted its root since.
    Booting,
    /// compose serve never saw it boot.
    Unseen,
}

impl BootState {
    /// `want` is `image/N` (its pin, else its image's current generation).
    pub fn of(want: Option<&str>, rec: Option<&BootRecord>) -> BootState {
        let Some(rec) = rec else {
            return BootState::Unseen;
        };
        if rec.generation.is_none() {
            return BootState::Unseen;
        }
        // A kernel fetched after the last mount: a boot in progress.
        if rec.mount_at.is_none() || rec.kernel_at > rec.mount_at {
            return BootState::Booting;
        }
        if rec.generation.as_deref() == want {
            BootState::Current
        } else {
            BootState::Behind
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BootState::Current => "current",
            BootState::Behind => "behind",
            BootState::Booting => "booting",
            BootState::Unseen => "unseen",
        }
    }
}

impl std::fmt::Display for BootState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One inventory node's status: what `compose status` prints (and what a
/// status endpoint serves).
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub hostname: String,
    pub ip: String,
    pub image: String,
    /// `image/N`, or None when the image has no generation yet.
    pub want: Option<String>,
    pub pinned: bool,
    pub booted: Option<String>,
    pub snapshot: Option<String>,
    pub state: BootState,
    pub dhcp_at: Option<String>,
    pub kernel_at: Option<String>,
    pub mount_at: Option<String>,
}

/// The status of every node of `nodes`, from the tree's generations and
/// its boot record.
pub fn report(
    tree: &compose_publish::Tree,
    nodes: &[compose_cluster::inventory::Node],
) -> Result<Vec<NodeStatus>> {
    let boots = load(tree.path())?;
    let mut rows = Vec::new();
    for n in nodes {
        let want = match n.generation {
            Some(g) => Some(g),
            None => tree.current(&n.image)?,
        }
        .map(|g| format!("{}/{g}", n.image));
        let rec = boots.nodes.get(&n.hostname);
        rows.push(NodeStatus {
            hostname: n.hostname.clone(),
            ip: n.ip.to_string(),
            image: n.image.clone(),
            state: BootState::of(want.as_deref(), rec),
            want,
            pinned: n.generation.is_some(),
            booted: rec.and_then(|r| r.generation.clone()),
            snapshot: rec.and_then(|r| r.snapshot.clone()),
            dhcp_at: rec.and_then(|r| r.dhcp_at.clone()),
            kernel_at: rec.and_then(|r| r.kernel_at.clone()),
            mount_at: rec.and_then(|r| r.mount_at.clone()),
        });
    }
    Ok(rows)
}

/// How often the record may be rewritten.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// The record and when it was last written: changes are saved at most once
/// per [`SAVE_EVERY`].
pub struct Saver {
    tree: PathBuf,
    boots: Boots,
    dirty: bool,
    saved: Option<Instant>,
}

impl Saver {
    pub fn new(tree: &Path, boots: Boots) -> Saver {
        Saver {
            tree: tree.to_path_buf(),
            boots,
            dirty: false,
            saved: None,
        }
    }

    /// Folds `r` in (if any) and saves when something changed and the last
    /// save is at least [`SAVE_EVERY`] before `now`. True when it wrote.
    pub fn observe(&mut self, r: Option<&Record>, now: Instant) -> Result<bool> {
        if let Some(r) = r {
            self.dirty |= self.boots.observe(r);
        }
        let due = self
            .saved
            .is_none_or(|t| now.saturating_duration_since(t) >= SAVE_EVERY);
        if !(self.dirty && due) {
            return Ok(false);
        }
        self.saved = Some(now);
        self.dirty = false;
        self.boots.save(&self.tree)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn rec(event: &'static str, fields: &[(&'static str, &str)], ms: u64) -> Record {
        Record {
            at: UNIX_EPOCH + Duration::from_millis(ms),
            event,
            fields: fields.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }

    #[test]
    fn a_boot_is_followed_step_by_step_and_saved() {
        let mut b = Boots::default();
        let ack = rec(
            "dhcp.ack",
            &[
                ("host", "node01"),
                ("mac", "52:54:00:c0:00:01"),
                ("ip", "10.78.0.11"),
            ],
            1000,
        );
        assert!(b.observe(&ack));
        let kernel = [
            ("host", "node01"),
            ("file", "images/minimal/gen/2/vmlinuz"),
            ("image", "minimal"),
            ("gen", "2"),
        ];
        assert!(b.observe(&rec("tftp.done", &kernel, 2000)));
        assert!(!b.observe(&rec("tftp.start", &kernel, 2500)));
        assert!(b.observe(&rec(
            "nfs.mount",
            &[("host", "node01"), ("snapshot", "sha256:ab")],
            3000
        )));
        // Strangers (no host=) are not recorded.
        assert!(!b.observe(&rec("dhcp.ack", &[("mac", "02:00:00:00:00:01")], 4000)));
        let n = &b.nodes["node01"];
        assert_eq!(n.generation.as_deref(), Some("minimal/2"));
        assert_eq!(n.snapshot.as_deref(), Some("sha256:ab"));
        assert_eq!(n.kernel_at.as_deref(), Some("1970-01-01T00:00:02.000Z"));

        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()).unwrap(), Boots::default());
        b.save(d.path()).unwrap();
        assert_eq!(load(d.path()).unwrap(), b);
        std::fs::write(path(d.path()), "{").unwrap();
        let err = format!("{:#}", load(d.path()).unwrap_err());
        assert!(err.contains("boots.json"), "{err}");
    }

    #[test]
    fn boot_states() {
        let booted = |g: &str, k: &str, m: Option<&str>| BootRecord {
            generation: Some(g.into()),
            kernel_at: Some(k.into()),
            mount_at: m.map(str::to_string),
            ..BootRecord::default()
        };
        assert_eq!(BootState::of(Some("x/2"), None), BootState::Unseen);
        let r = booted("x/2", "2026-01-01T00:00:01Z", Some("2026-01-01T00:00:09Z"));
        assert_eq!(BootState::of(Some("x/2"), Some(&r)), BootState::Current);
        assert_eq!(BootState::of(Some("x/3"), Some(&r)), BootState::Behind);
        let r = booted("x/3", "2026-01-01T00:00:10Z", Some("2026-01-01T00:00:09Z"));
        assert_eq!(BootState::of(Some("x/3"), Some(&r)), BootState::Booting);
        assert_eq!(
            serde_json::to_string(&BootState::Booting).unwrap(),
            "\"booting\""
        );
    }

    #[test]
    fn a_storm_of_steps_is_saved_at_most_once_a_second() {
        let d = tempfile::tempdir().unwrap();
        let mut saver = Saver::new(d.path(), Boots::default());
        let t0 = Instant::now();
        let mut writes = 0;
        // 200 nodes ACKed within 0.5 s, then ticks every 0.25 s.
        for i in 0..200u64 {
            let host = format!("node{i:03}");
            let r = rec("dhcp.ack", &[("host", &host), ("ip", "10.0.0.1")], i);
            writes += saver
                .observe(Some(&r), t0 + Duration::from_micros(2500 * i))
                .unwrap() as u32;
        }
        assert_eq!(writes, 1, "only the first step is written at once");
        assert_eq!(load(d.path()).unwrap().nodes.len(), 1);
        for tick in 1..=8u64 {
            writes += saver
                .observe(None, t0 + Duration::from_millis(250 * tick))
                .unwrap() as u32;
        }
        assert_eq!(writes, 2, "the tick after a second writes the rest, once");
        assert_eq!(load(d.path()).unwrap().nodes.len(), 200);
    }
}

//! The node inventory (`nodes.toml`): which machines exist, their MAC, IP,
//! image, optional generation pin and groups. `compose serve` reads it for
//! DHCP reservations and per-MAC pxelinux entries.
//!
//! ```toml
//! [[node]]
//! hostname = "node01"
//! mac = "52:54:00:00:00:01"
//! ip = "10.1.0.11"
//! image = "hpc-node"
//! generation = 3        # optional pin
//! groups = ["compute"]
//! ```

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub hostname: String,
    pub mac: String,
    pub ip: Ipv4Addr,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesToml {
    #[serde(default)]
    node: Vec<Node>,
}

impl Node {
    pub fn mac_bytes(&self) -> Result<[u8; 6]> {
        parse_mac(&self.mac)
    }

    /// pxelinux's per-MAC config name: `01-aa-bb-cc-dd-ee-ff`.
    pub fn pxelinux_name(&self) -> Result<String> {
        let m = self.mac_bytes()?;
        Ok(format!(
            "01-{}",
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join("-")
        ))
    }
}

pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let bad = || format!("malformed MAC address {s:?}: write six hex pairs like 52:54:00:12:34:56");
    if parts.len() != 6 {
        bail!(bad());
    }
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(parts) {
        if p.len() != 2 {
            bail!(bad());
        }
        *o = u8::from_str_radix(p, 16).with_context(bad)?;
    }
    Ok(out)
}

/// Parses and validates an inventory: hostnames, MACs and IPs unique,
/// MACs well-formed. `origin` names the file in errors.
pub fn parse_nodes(text: &str, origin: &Path) -> Result<Vec<Node>> {
    let parsed: NodesToml = toml::from_str(text)
        .with_context(|| format!("{}: not a valid node inventory", origin.display()))?;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (i, n) in parsed.node.iter().enumerate() {
        let at = format!("{}: node[{}] ({})", origin.display(), i + 1, n.hostname);
        n.mac_bytes().with_context(|| at.clone())?;
        if n.hostname.is_empty()
            || !n.hostname.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        {
            bail!("{at}: hostname {:?} is not a valid host name", n.hostname);
        }
        for (kind, key) in [
            ("hostname", n.hostname.to_lowercase()),
            ("MAC", n.mac.to_lowercase().replace('-', ":")),
            ("IP", n.ip.to_string()),
        ] {
            if let Some(other) = seen.insert(format!("{kind} {key}"), n.hostname.clone()) {
                bail!("{at}: {kind} {key} is already used by {other}: each node needs its own");
            }
        }
    }
    Ok(parsed.node)
}

pub fn load_nodes(path: &Path) -> Result<Vec<Node>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_nodes(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "[[node]]\nhostname = \"node01\"\nmac = \"52:54:00:00:00:01\"\nip = \"10.1.0.11\"\nimage = \"minimal\"\n";

    #[test]
    fn parses_and_names_pxelinux_files() {
        let nodes = parse_nodes(ONE, Path::new("nodes.toml")).unwrap();
        assert_eq!(nodes[0].pxelinux_name().unwrap(), "01-52-54-00-00-00-01");
        assert_eq!(nodes[0].generation, None);
    }

    #[test]
    fn validation_errors_name_the_node_and_problem() {
        let dup = format!("{ONE}{}", ONE.replace("node01", "node02"));
        let cases = [
            (
                ONE.replace("52:54:00:00:00:01", "52:54:00:00:01"),
                "malformed MAC",
            ),
            (
                ONE.replace("52:54:00:00:00:01", "zz:54:00:00:00:01"),
                "malformed MAC",
            ),
            (
                ONE.replace("10.1.0.11", "10.1.0.300"),
                "not a valid node inventory",
            ),
            (ONE.replace("node01", "node_01"), "not a valid host name"),
            (dup, "already used by node01"),
            (format!("{ONE}colour = \"red\"\n"), "unknown field"),
        ];
        for (text, want) in cases {
            let err = format!(
                "{:#}",
                parse_nodes(&text, Path::new("nodes.toml")).unwrap_err()
            );
            assert!(err.contains(want), "{want}: {err}");
            assert!(err.contains("nodes.toml"), "{err}");
        }
    }
}

//! The node inventory (`nodes.toml`): which machines exist, their MAC, IP,
//! image, optional generation pin, groups and tags, plus an optional
//! `[cluster]` table of cluster-wide settings. `compose serve` reads it for
//! DHCP reservations and per-MAC pxelinux entries; `compose nodes regen`
//! turns it into hosts files, SSH keys and group files (see `regen`).
//!
//! ```toml
//! [cluster]
//! subnet = "10.1.0.0/24"
//! domain = "cluster.example"
//! authorized_keys = "/root/.ssh/id_ed25519.pub"
//!
//! [[node]]
//! hostname = "node01"
//! mac = "52:54:00:00:00:01"
//! ip = "10.1.0.11"
//! image = "hpc-node"
//! generation = 3        # optional pin
//! groups = ["compute"]
//! tags = { rack = "r1" }
//! ```
//!
//! Node sets name nodes by hostname (`node[01-04]`) and by group: `@NAME`
//! for a group of `groups`, `@all` for every node, `@image:NAME` for the
//! nodes booting image NAME.

use crate::validate::{validate, Problem};
use anyhow::{bail, Context, Result};
use compose_nodeset::{ErrorKind, NodeSet, NodeSetError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use crate::subnet::Subnet;

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

/// `[cluster]`: settings shared by every node. All optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Every node IP (and the server's) must lie inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Subnet>,
    /// DNS domain: hosts files list `node01.DOMAIN node01`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Public keys for the nodes' `/root/.ssh/authorized_keys`: each entry
    /// is a key itself (`ssh-ed25519 AAAA...`) or the path of a file of keys.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub authorized_keys: Vec<String>,
    /// The compose server as the nodes know it (both or neither): listed in
    /// every hosts file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ip: Option<Ipv4Addr>,
}

/// A validated inventory.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inventory {
    pub cluster: Cluster,
    pub nodes: Vec<Node>,
}

/// Why an inventory was rejected: the file, and every problem found (not
/// just the first, so a hand-edited file is fixed in one pass).
#[derive(Debug, Clone, thiserror::Error)]
pub enum InventoryError {
    #[error("{}: not a valid node inventory: {message}", origin.display())]
    Syntax { origin: PathBuf, message: String },
    #[error("{}", render_problems(origin, problems))]
    Invalid {
        origin: PathBuf,
        problems: Vec<Problem>,
    },
}

fn render_problems(origin: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}:{p}", origin.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A node set that does not fit the inventory.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Syntax(NodeSetError),
    #[error("unknown group @{group}: the inventory has {known}")]
    UnknownGroup { group: String, known: String },
    #[error("{names}: not in the inventory (see `compose nodes list`)")]
    UnknownNodes { names: String },
}

/// How `@image:NAME` reaches the node-set parser (group names never hold
/// a dot, so this cannot collide with a group).
const IMAGE_ALIAS: &str = "image.";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesToml {
    #[serde(default)]
    cluster: Option<toml::Spanned<Cluster>>,
    #[serde(default)]
    node: Vec<toml::Spanned<Node>>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Node {
    pub fn mac_bytes(&self) -> Result<[u8; 6]> {
        parse_mac(&self.mac)
    }

    /// pxelinux's per-MAC config name: `01-aa-bb-cc-dd-ee-ff`.
    pub fn pxelinux_name(&self) -> Result<compose_tree::MacEntry> {
        Ok(compose_tree::MacEntry::new(self.mac_bytes()?))
    }

    /// The MAC in canonical form: lowercase, colon-separated.
    pub fn mac_canonical(&self) -> Result<String> {
        Ok(hex_join(&self.mac_bytes()?, ":"))
    }

    /// `node01.DOMAIN`, or the hostname when there is no domain or the
    /// hostname is already qualified.
    pub fn fqdn(&self, domain: Option<&str>) -> String {
        match domain {
            Some(d) if !self.hostname.contains('.') => format!("{}.{d}", self.hostname),
            _ => self.hostname.clone(),
        }
    }
}

fn hex_join(bytes: &[u8], sep: &str) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(sep)
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

/// Parses and validates an inventory. `origin` names the file in errors.
pub fn parse_inventory(text: &str, origin: &Path) -> Result<Inventory, InventoryError> {
    let parsed: NodesToml = toml::from_str(text).map_err(|e| InventoryError::Syntax {
        origin: origin.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let line_of = |span: std::ops::Range<usize>| {
        text.get(..span.start)
            .map(|t| t.matches('\n').count() + 1)
            .unwrap_or(0)
    };
    let cluster_line = parsed.cluster.as_ref().map(|c| line_of(c.span()));
    let lines: Vec<usize> = parsed.node.iter().map(|n| line_of(n.span())).collect();
    let inventory = Inventory {
        cluster: parsed.cluster.map(|c| c.into_inner()).unwrap_or_default(),
        nodes: parsed.node.into_iter().map(|n| n.into_inner()).collect(),
    };
    let problems = validate(&inventory, cluster_line, &lines);
    if !problems.is_empty() {
        return Err(InventoryError::Invalid {
            origin: origin.to_path_buf(),
            problems,
        });
    }
    Ok(inventory)
}

pub fn load_inventory(path: &Path) -> Result<Inventory> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(parse_inventory(&text, path)?)
}

/// Parses and validates an inventory, returning its nodes only.
pub fn parse_nodes(text: &str, origin: &Path) -> Result<Vec<Node>> {
    Ok(parse_inventory(text, origin)?.nodes)
}

pub fn load_nodes(path: &Path) -> Result<Vec<Node>> {
    Ok(load_inventory(path)?.nodes)
}

impl Inventory {
    pub fn node(&self, hostname: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.hostname == hostname)
    }

    /// Every group of `groups`, with its members in inventory order.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in &self.nodes {
            for g in &n.groups {
                out.entry(g.clone()).or_default().push(n.hostname.clone());
            }
        }
        out
    }

    /// Every image some node boots, with its nodes.
    pub fn images(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in &self.nodes {
            out.entry(n.image.clone())
                .or_default()
                .push(n.hostname.clone());
        }
        out
    }

    /// Resolves `@NAME` in a node set: `all`, `image:IMAGE`, or a group.
    /// None for a name that matches no node.
    pub fn group(&self, name: &str) -> Option<Vec<String>> {
        if name == "all" {
            return Some(self.nodes.iter().map(|n| n.hostname.clone()).collect());
        }
        let image = name
            .strip_prefix("image:")
            .or_else(|| name.strip_prefix(IMAGE_ALIAS));
        let members: Vec<String> = match image {
            Some(image) => self.images().remove(image).unwrap_or_default(),
            None => self.groups().remove(name).unwrap_or_default(),
        };
        (!members.is_empty()).then_some(members)
    }

    /// Parses a node set, resolving groups against this inventory. Names
    /// need not exist (`compose nodes add` names new nodes).
    pub fn select(&self, expr: &str) -> Result<NodeSet, SelectError> {
        // The node-set grammar has no `:` in group names; `@image.` says the
        // same in it, and keeps every column where the user typed it.
        let translated = expr.replace("@image:", &format!("@{IMAGE_ALIAS}"));
        NodeSet::parse_with(&translated, &|g| self.group(g)).map_err(|e| match &e.kind {
            ErrorKind::UnknownGroup(group) => SelectError::UnknownGroup {
                group: group.replacen(IMAGE_ALIAS, "image:", 1),
                known: self.known_groups(),
            },
            _ => SelectError::Syntax(e),
        })
    }

    /// Like [`select`](Self::select), but every name must be a node.
    pub fn select_existing(&self, expr: &str) -> Result<NodeSet, SelectError> {
        let set = self.select(expr)?;
        self.check_known(&set)?;
        Ok(set)
    }

    /// Fails naming the members of `set` that are not nodes.
    pub fn check_known(&self, set: &NodeSet) -> Result<(), SelectError> {
        let unknown: Vec<&str> = set.iter().filter(|h| self.node(h).is_none()).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(SelectError::UnknownNodes {
                names: compose_nodeset::fold(unknown),
            })
        }
    }

    /// The nodes of `set`, in the set's (natural) order.
    pub fn nodes_in(&self, set: &NodeSet) -> Vec<&Node> {
        set.iter().filter_map(|h| self.node(h)).collect()
    }

    fn known_groups(&self) -> String {
        let mut names: BTreeSet<String> = BTreeSet::from(["@all".to_string()]);
        names.extend(self.groups().into_keys().map(|g| format!("@{g}")));
        names.extend(self.images().into_keys().map(|i| format!("@image:{i}")));
        names.into_iter().collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.hostname, self.mac, self.ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "[[node]]\nhostname = \"node01\"\nmac = \"52:54:00:00:00:01\"\nip = \"10.1.0.11\"\nimage = \"minimal\"\n";

    #[test]
    fn parses_and_names_pxelinux_files() {
        let nodes = parse_nodes(ONE, Path::new("nodes.toml")).unwrap();
        assert_eq!(
            nodes[0].pxelinux_name().unwrap().to_string(),
            "01-52-54-00-00-00-01"
        );
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

    #[test]
    fn cluster_table_and_line_numbers() {
        let text = format!(
            "[cluster]\nsubnet = \"10.1.0.0/24\"\ndomain = \"c.example\"\nauthorized_keys = \"/k.pub\"\n\n{ONE}\n{}",
            ONE.replace("node01", "node02")
                .replace("10.1.0.11", "10.2.0.12")
                .replace(":01", ":02")
        );
        let err = parse_inventory(&text, Path::new("/etc/compose/nodes.toml")).unwrap_err();
        let InventoryError::Invalid { problems, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), 1, "{err}");
        assert_eq!(problems[0].line, Some(12), "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("/etc/compose/nodes.toml:12: node02: ip 10.2.0.12 is outside"),
            "{msg}"
        );
        let ok = text.replace("10.2.0.12", "10.1.0.12");
        let inv = parse_inventory(&ok, Path::new("nodes.toml")).unwrap();
        assert_eq!(inv.cluster.authorized_keys, ["/k.pub"]);
        assert_eq!(
            inv.nodes[1].fqdn(inv.cluster.domain.as_deref()),
            "node02.c.example"
        );
    }

    fn sample() -> Inventory {
        let text = format!(
            "{ONE}groups = [\"compute\"]\n{}{}",
            ONE.replace("node01", "node02")
                .replace(".11", ".12")
                .replace(":01", ":02")
                + "groups = [\"compute\", \"canary\"]\n",
            ONE.replace("node01", "login1")
                .replace(".11", ".2")
                .replace(":01", ":09")
                .replace("minimal", "login"),
        );
        parse_inventory(&text, Path::new("nodes.toml")).unwrap()
    }

    #[test]
    fn groups_resolve_in_node_sets() {
        let inv = sample();
        let names = |expr: &str| inv.select(expr).unwrap().to_vec();
        assert_eq!(names("@compute"), ["node01", "node02"]);
        assert_eq!(names("@canary"), ["node02"]);
        assert_eq!(names("@all"), ["login1", "node01", "node02"]);
        assert_eq!(names("@image:login"), ["login1"]);
        assert_eq!(names("@compute,login1"), ["login1", "node01", "node02"]);
        let err = inv.select("@image:gpu").unwrap_err().to_string();
        assert!(err.starts_with("unknown group @image:gpu"), "{err}");
        let err = inv.select("@gpu").unwrap_err().to_string();
        assert!(err.contains("unknown group @gpu"), "{err}");
        assert!(err.contains("@canary, @compute, @image:login"), "{err}");
        let err = inv.select_existing("node[01-04]").unwrap_err().to_string();
        assert_eq!(
            err,
            "node[03-04]: not in the inventory (see `compose nodes list`)"
        );
    }
}

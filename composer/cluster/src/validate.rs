//! Inventory checks. Everything a regenerated file or a DHCP reservation
//! depends on is checked here, once, so the renderers can trust the model:
//! unique hostnames, MACs and IPs; addresses inside the subnet; names that
//! are valid as hostnames, genders attributes, dsh file names and node-set
//! `@group` references.

use crate::inventory::{parse_mac, Inventory, Node};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// One thing wrong with an inventory, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// 1-based line of the `[[node]]` (or `[cluster]`) header.
    pub line: Option<usize>,
    pub node: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "{l}:")?;
        }
        if let Some(n) = &self.node {
            write!(f, " {n}:")?;
        }
        write!(f, " {}", self.message)
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner
/// hyphens.
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Group names and tag keys end up as `@name` in node sets, genders
/// attributes, ClusterShell group keys and `dsh/group/<name>` file names.
pub fn is_group_name(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Image names become path components of pxelinux link targets.
fn is_image_name(s: &str) -> bool {
    s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Tag values go into genders (`key=value`, comma-separated attributes).
fn is_tag_value(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, ',' | '=' | '#'))
}

pub fn validate(inv: &Inventory, cluster_line: Option<usize>, lines: &[usize]) -> Vec<Problem> {
    let mut out = Vec::new();
    check_cluster(inv, cluster_line, &mut out);
    let group_names: Vec<&str> = inv
        .nodes
        .iter()
        .flat_map(|n| n.groups.iter().map(String::as_str))
        .collect();
    // kind + key -> (hostname, line) of the first node that used it.
    let mut seen: BTreeMap<(&str, String), (&str, Option<usize>)> = BTreeMap::new();
    for (i, n) in inv.nodes.iter().enumerate() {
        let line = lines.get(i).copied();
        let mut problem = |message: String| {
            out.push(Problem {
                line,
                node: Some(if n.hostname.is_empty() {
                    format!("node[{}]", i + 1)
                } else {
                    n.hostname.clone()
                }),
                message,
            })
        };
        check_node(inv, n, &group_names, &mut problem);
        let mut keys = vec![
            ("hostname", n.hostname.to_lowercase()),
            ("ip", n.ip.to_string()),
        ];
        if let Ok(m) = n.mac_canonical() {
            keys.push(("MAC", m));
        }
        for (kind, key) in keys {
            match seen.get(&(kind, key.clone())) {
                Some((other, other_line)) => problem(format!(
                    "{kind} {key} is already used by {other}{}: each node needs its own",
                    other_line
                        .map(|l| format!(" (line {l})"))
                        .unwrap_or_default()
                )),
                None => {
                    seen.insert((kind, key), (&n.hostname, line));
                }
            }
        }
    }
    out
}

fn check_node(inv: &Inventory, n: &Node, group_names: &[&str], problem: &mut impl FnMut(String)) {
    if !is_hostname(&n.hostname) {
        problem(format!(
            "hostname {:?} is not a valid host name: use letters, digits and inner hyphens, like node01",
            n.hostname
        ));
    }
    if let Err(e) = parse_mac(&n.mac) {
        problem(e.to_string());
    }
    if let Some(subnet) = inv.cluster.subnet {
        if !subnet.is_host_address(n.ip) {
            problem(format!(
                "ip {} is outside [cluster] subnet {subnet} (or is its network or broadcast address): pick a host address inside it",
                n.ip
            ));
        }
    }
    if inv.cluster.server_ip == Some(n.ip) {
        problem(format!("ip {} is the server's ([cluster] server_ip)", n.ip));
    }
    if inv.cluster.server_hostname.as_deref() == Some(n.hostname.as_str()) {
        problem("hostname is the server's ([cluster] server_hostname)".into());
    }
    if !is_image_name(&n.image) {
        problem(format!(
            "image {:?} is not an image name: use letters, digits, '-', '_' and '.', like hpc-node",
            n.image
        ));
    }
    for g in &n.groups {
        if !is_group_name(g) {
            problem(format!(
                "group {g:?} is not a valid group name: use letters, digits, '-' and '_', like compute"
            ));
        } else if g == "all" || g == "image" {
            problem(format!(
                "group {g:?} is reserved (@all is every node, @image:NAME the nodes of an image): pick another name"
            ));
        }
    }
    for (k, v) in &n.tags {
        if !is_group_name(k) || k == "image" {
            problem(format!(
                "tag key {k:?} is not valid: use letters, digits, '-' and '_' (and not \"image\", which genders already uses)"
            ));
        } else if group_names.contains(&k.as_str()) {
            problem(format!(
                "tag key {k:?} is also a group name: genders would see the attribute twice, rename one"
            ));
        }
        if !is_tag_value(v) {
            problem(format!(
                "tag {k} = {v:?}: values must be non-empty, without spaces, ',', '=' or '#' (genders syntax)"
            ));
        }
    }
}

fn check_cluster(inv: &Inventory, line: Option<usize>, out: &mut Vec<Problem>) {
    let c = &inv.cluster;
    let mut problem = |message: String| {
        out.push(Problem {
            line,
            node: Some("[cluster]".into()),
            message,
        })
    };
    if let Some(d) = &c.domain {
        if !is_hostname(d) {
            problem(format!(
                "domain {d:?} is not a valid DNS domain, like cluster.example"
            ));
        }
    }
    match (&c.server_hostname, c.server_ip) {
        (Some(h), Some(ip)) => {
            if !is_hostname(h) {
                problem(format!("server_hostname {h:?} is not a valid host name"));
            }
            if let Some(s) = c.subnet {
                if !s.is_host_address(ip) {
                    problem(format!("server_ip {ip} is outside subnet {s}"));
                }
            }
        }
        (None, None) => {}
        _ => problem(
            "set both server_hostname and server_ip (the server's entry in the hosts files), or neither".into(),
        ),
    }
    for k in &c.authorized_keys {
        if k.trim().is_empty() {
            problem(
                "authorized_keys has an empty entry: give a key or the path of a .pub file".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::parse_inventory;
    use std::path::Path;

    const NODE: &str = "[[node]]\nhostname = \"node01\"\nmac = \"52:54:00:00:00:01\"\nip = \"10.1.0.11\"\nimage = \"hpc-node\"\n";

    #[test]
    fn each_rule_has_a_clear_message() {
        let cluster = "[cluster]\nsubnet = \"10.1.0.0/24\"\n";
        let cases: Vec<(String, &str)> = vec![
            (
                format!("{NODE}groups = [\"all\"]\n"),
                "group \"all\" is reserved",
            ),
            (
                format!("{NODE}groups = [\"a b\"]\n"),
                "not a valid group name",
            ),
            (
                format!("{NODE}groups = [\"image:x\"]\n"),
                "not a valid group name",
            ),
            (
                format!("{NODE}tags = {{ rack = \"r 1\" }}\n"),
                "without spaces",
            ),
            (
                format!("{NODE}groups = [\"rack\"]\ntags = {{ rack = \"r1\" }}\n"),
                "also a group name",
            ),
            (NODE.replace("hpc-node", "../etc"), "not an image name"),
            (NODE.replace("node01", "-node01"), "not a valid host name"),
            (
                format!("{cluster}{}", NODE.replace(".11", ".0")),
                "network or broadcast",
            ),
            (
                format!("[cluster]\nserver_hostname = \"head\"\n{NODE}"),
                "set both server_hostname and server_ip",
            ),
            (
                format!("[cluster]\nserver_hostname = \"head\"\nserver_ip = \"10.1.0.11\"\n{NODE}"),
                "is the server's",
            ),
            (
                format!("[cluster]\ndomain = \"a..b\"\n{NODE}"),
                "not a valid DNS domain",
            ),
            (
                format!("[cluster]\nsubnet = \"10.1.0.1/24\"\n{NODE}"),
                "host bits set",
            ),
            (format!("[cluster]\ncolour = 1\n{NODE}"), "unknown field"),
        ];
        for (text, want) in cases {
            let err = parse_inventory(&text, Path::new("n.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
            assert!(err.starts_with("n.toml"), "{err}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = format!(
            "{NODE}\n{}\n{}",
            NODE.replace("node01", "node02"),
            NODE.replace("node01", "node03")
                .replace(":01", ":0x")
                .replace(".11", ".13")
        );
        let err = parse_inventory(&text, Path::new("n.toml"))
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "n.toml:7: node02: ip 10.1.0.11 is already used by node01 (line 1): each node needs its own",
                "n.toml:7: node02: MAC 52:54:00:00:00:01 is already used by node01 (line 1): each node needs its own",
                "n.toml:13: node03: malformed MAC address \"52:54:00:00:00:0x\": write six hex pairs like 52:54:00:12:34:56",
            ]
        );
    }
}

#[cfg(test)]
mod proptests {
    use crate::inventory::parse_inventory;
    use proptest::prelude::*;
    use std::path::Path;

    proptest! {
        /// Hand-edited files are untrusted input: any text gives Ok or a
        /// located error, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse_inventory(&text, Path::new("n.toml"));
        }

        /// Inventories built from arbitrary field values either validate or
        /// name the file; duplicates are always caught.
        #[test]
        fn arbitrary_nodes_never_panic(
            nodes in proptest::collection::vec(
                ("[a-z0-9_.-]{0,12}", "[0-9a-fA-F:-]{0,20}", any::<[u8; 4]>(), "[a-z._/-]{0,8}", "[a-z:_ -]{0,6}"),
                0..6,
            )
        ) {
            let mut text = String::from("[cluster]\nsubnet = \"10.0.0.0/8\"\n");
            for (h, m, ip, img, g) in &nodes {
                let ip = std::net::Ipv4Addr::from(*ip);
                text.push_str(&format!(
                    "[[node]]\nhostname = {h:?}\nmac = {m:?}\nip = \"{ip}\"\nimage = {img:?}\ngroups = [{g:?}]\n"
                ));
            }
            match parse_inventory(&text, Path::new("n.toml")) {
                Ok(inv) => {
                    let mut names: Vec<String> = inv.nodes.iter().map(|n| n.hostname.to_lowercase()).collect();
                    names.sort();
                    names.dedup();
                    prop_assert_eq!(names.len(), inv.nodes.len());
                    prop_assert!(inv.nodes.iter().all(|n| n.ip.octets()[0] == 10));
                }
                Err(e) => prop_assert!(e.to_string().starts_with("n.toml")),
            }
        }
    }
}

//! Editing `nodes.toml` in place: add nodes, remove a node set, pin or
//! unpin a node set to a generation. Edits go through toml_edit so the
//! admin's comments, blank lines and key order survive; every edit is
//! validated as a whole inventory before it is accepted, and `save`
//! replaces the file atomically.

use crate::inventory::{parse_inventory, Inventory, Node};
use anyhow::{bail, Context, Result};
use compose_nodeset::NodeSet;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

const NEW_FILE: &str = "\
# The compose node inventory: see `compose nodes --help` and
# composer/cluster/README.md. `compose nodes add|remove|pin` edit this file
# and keep your comments.
";

/// An inventory file loaded for editing.
pub struct InventoryFile {
    path: PathBuf,
    /// The bytes read at load (None: there was no file), to refuse saving
    /// over someone else's edit made meanwhile.
    original: Option<Vec<u8>>,
    doc: DocumentMut,
    inventory: Inventory,
}

impl InventoryFile {
    pub fn load(path: &Path) -> Result<InventoryFile> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_bytes(path, Some(bytes))
    }

    /// Loads `path`, or starts an empty inventory if it does not exist.
    pub fn load_or_new(path: &Path) -> Result<InventoryFile> {
        match std::fs::read(path) {
            Ok(bytes) => Self::from_bytes(path, Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::from_bytes(path, None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn from_bytes(path: &Path, bytes: Option<Vec<u8>>) -> Result<InventoryFile> {
        let text = match &bytes {
            Some(b) => std::str::from_utf8(b)
                .with_context(|| format!("{}: not UTF-8 text", path.display()))?
                .to_string(),
            None => String::new(),
        };
        let inventory = parse_inventory(&text, path)?;
        let doc: DocumentMut = text
            .parse()
            .with_context(|| format!("{}: not valid TOML", path.display()))?;
        Ok(InventoryFile {
            path: path.to_path_buf(),
            original: bytes,
            doc,
            inventory,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The file as it would be saved.
    pub fn text(&self) -> String {
        let mut text = match self.original {
            Some(_) => self.doc.to_string(),
            // toml_edit would put a lone comment after the tables.
            None => format!("{NEW_FILE}\n{}", self.doc),
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }

    /// Appends `nodes`; fails (changing nothing) unless the resulting
    /// inventory is valid.
    pub fn add(&mut self, nodes: &[Node]) -> Result<()> {
        let mut doc = self.doc.clone();
        let tables = node_tables(&mut doc, &self.path)?;
        for n in nodes {
            tables.push(node_table(n)?);
        }
        self.commit(doc)
    }

    /// Removes the nodes of `set`; every name must be a node. Returns the
    /// hostnames removed.
    pub fn remove(&mut self, set: &NodeSet) -> Result<Vec<String>> {
        self.inventory.check_known(set)?;
        let mut doc = self.doc.clone();
        node_tables(&mut doc, &self.path)?.retain(|t| {
            !t.get("hostname")
                .and_then(Item::as_str)
                .is_some_and(|h| set.contains(h))
        });
        self.commit(doc)?;
        Ok(set.to_vec())
    }

    /// Pins the nodes of `set` to `generation` (None: unpins them, they
    /// boot the image's current generation). Every name must be a node.
    /// Returns the hostnames whose pin changed.
    pub fn set_pin(&mut self, set: &NodeSet, generation: Option<u64>) -> Result<Vec<String>> {
        self.inventory.check_known(set)?;
        let mut doc = self.doc.clone();
        let mut changed = Vec::new();
        for t in node_tables(&mut doc, &self.path)?.iter_mut() {
            let Some(host) = t.get("hostname").and_then(Item::as_str).map(str::to_string) else {
                continue;
            };
            if !set.contains(&host)
                || self.inventory.node(&host).map(|n| n.generation) == Some(generation)
            {
                continue;
            }
            match generation {
                Some(g) => set_keeping_decor(t, "generation", toml_int(g)?),
                None => {
                    t.remove("generation");
                }
            }
            changed.push(host);
        }
        self.commit(doc)?;
        Ok(changed)
    }

    fn commit(&mut self, doc: DocumentMut) -> Result<()> {
        self.inventory = parse_inventory(&doc.to_string(), &self.path)?;
        self.doc = doc;
        Ok(())
    }

    /// Replaces the file atomically (temp file in the same directory,
    /// fsync, rename, fsync the directory), keeping its mode. Fails if the
    /// file changed since it was loaded.
    pub fn save(&self) -> Result<()> {
        let now = match std::fs::read(&self.path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        if now != self.original {
            bail!(
                "{} changed while this command ran: run it again",
                self.path.display()
            );
        }
        let mode = std::fs::metadata(&self.path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(compose_fs::replace_file(
            &self.path,
            self.text().as_bytes(),
            mode,
        )?)
    }
}

/// The `[[node]]` array of `doc`, created if absent.
fn node_tables<'a>(doc: &'a mut DocumentMut, path: &Path) -> Result<&'a mut ArrayOfTables> {
    let item = doc
        .entry("node")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    match item {
        Item::ArrayOfTables(a) => Ok(a),
        _ => bail!(
            "{}: `node` is not written as [[node]] tables: compose nodes edits only that form, rewrite the file with one [[node]] table per node",
            path.display()
        ),
    }
}

fn toml_int(n: u64) -> Result<Value> {
    Ok(Value::from(
        i64::try_from(n).with_context(|| format!("{n} is too large for TOML"))?,
    ))
}

/// Replaces `key`'s value, keeping the comment after it on its line.
fn set_keeping_decor(t: &mut Table, key: &str, mut v: Value) {
    if let Some(old) = t.get(key).and_then(Item::as_value) {
        *v.decor_mut() = old.decor().clone();
    }
    t[key] = Item::Value(v);
}

fn node_table(n: &Node) -> Result<Table> {
    let mut t = Table::new();
    t["hostname"] = value(&n.hostname);
    t["mac"] = value(&n.mac);
    t["ip"] = value(n.ip.to_string());
    t["image"] = value(&n.image);
    if let Some(g) = n.generation {
        t["generation"] = Item::Value(toml_int(g)?);
    }
    if !n.groups.is_empty() {
        t["groups"] = value(n.groups.iter().collect::<Array>());
    }
    if !n.tags.is_empty() {
        let mut tags = InlineTable::new();
        for (k, v) in &n.tags {
            tags.insert(k, v.into());
        }
        t["tags"] = value(tags);
    }
    Ok(t)
}

/// What `compose nodes add` asks for.
#[derive(Debug, Clone)]
pub struct NewNodes {
    /// Hostnames, in natural order.
    pub names: NodeSet,
    /// One MAC per name, in the same order.
    pub macs: Vec<String>,
    /// The first name's IP; the others follow consecutively.
    pub first_ip: Ipv4Addr,
    pub image: String,
    pub groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

impl NewNodes {
    /// The nodes, checked for count and address overflow (the rest is
    /// checked when they are added to an inventory).
    pub fn nodes(&self) -> Result<Vec<Node>> {
        if self.macs.len() != self.names.len() {
            bail!(
                "{} names ({}) but {} MAC addresses: give one MAC per node, in the order of the names",
                self.names.len(),
                self.names,
                self.macs.len()
            );
        }
        let first = u32::from(self.first_ip);
        self.names
            .iter()
            .zip(&self.macs)
            .enumerate()
            .map(|(i, (name, mac))| {
                let ip = u32::try_from(i)
                    .ok()
                    .and_then(|i| first.checked_add(i))
                    .with_context(|| {
                        format!("{name}: no IPv4 address follows {}", self.first_ip)
                    })?;
                Ok(Node {
                    hostname: name.to_string(),
                    mac: mac.trim().to_string(),
                    ip: Ipv4Addr::from(ip),
                    image: self.image.clone(),
                    generation: None,
                    groups: self.groups.clone(),
                    tags: self.tags.clone(),
                })
            })
            .collect()
    }
}

/// MACs from a file: one per line; blank lines and `#` comments skipped.
pub fn parse_mac_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
#[path = "edit_tests.rs"]
mod tests;

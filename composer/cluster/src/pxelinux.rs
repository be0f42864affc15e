//! Per-MAC pxelinux entries: `TREE/tftp/pxelinux.cfg/01-aa-bb-..` is a
//! symlink to the node's image (`../images/IMG/current/pxelinux.cfg`, or
//! `gen/N/` when the node is pinned). compose owns every `01-*` entry:
//! entries for MACs no longer in the inventory are removed. Each link is
//! replaced atomically; the set of links as a whole is not (a crash leaves
//! some nodes on the old entry until the next regen or `compose serve`).
//!
//! [`apply_links`] is the only code that writes these entries, and it takes
//! the tree's lock as an argument: regen (holding it for its whole apply)
//! and [`pxelinux_links`] (serve at start, `nodes pin`, a canary publish)
//! both come through it.

use crate::inventory::Node;
use anyhow::{Context, Result};
use compose_tree::{Layout, MacEntry, TreeLock};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The link target for `node`, relative to `tftp/pxelinux.cfg/`.
pub fn pxelinux_target(node: &Node) -> String {
    Layout::entry_target(&node.image, node.generation)
}

/// One entry to create, repoint or remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkChange {
    /// `01-52-54-00-00-00-01`
    pub name: String,
    /// The current target (`(regular file)` for a non-link); None: absent.
    pub old: Option<String>,
    /// None: to be removed.
    pub new: Option<String>,
}

/// What must change in `TREE/tftp/pxelinux.cfg` for `nodes`; None when
/// that directory does not exist (nothing published yet).
pub fn plan_links(tree: &Layout, nodes: &[Node]) -> Result<Option<Vec<LinkChange>>> {
    let dir = tree.pxelinux_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut wanted = BTreeMap::new();
    for n in nodes {
        wanted.insert(n.pxelinux_name()?.to_string(), pxelinux_target(n));
    }
    let mut current = BTreeMap::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !MacEntry::is_owned_name(&name) {
            continue;
        }
        let target = match std::fs::read_link(entry.path()) {
            Ok(t) => t.to_string_lossy().into_owned(),
            Err(_) => "(regular file)".to_string(),
        };
        current.insert(name, target);
    }
    let mut changes = Vec::new();
    for (name, old) in &current {
        if !wanted.contains_key(name) {
            changes.push(LinkChange {
                name: name.clone(),
                old: Some(old.clone()),
                new: None,
            });
        }
    }
    for (name, new) in wanted {
        let old = current.get(&name).cloned();
        if old.as_deref() != Some(new.as_str()) {
            changes.push(LinkChange {
                name,
                old,
                new: Some(new),
            });
        }
    }
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(changes))
}

/// Applies `changes`, each entry replaced atomically, under the tree's lock.
pub fn apply_links(_lock: &TreeLock, tree: &Layout, changes: &[LinkChange]) -> Result<()> {
    let dir = tree.pxelinux_dir();
    for c in changes {
        let path = dir.join(&c.name);
        match &c.new {
            Some(target) => compose_fs::replace_symlink(target, &path)?,
            None => match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
            },
        }
        compose_fs::fault::point("cluster:mid-links");
    }
    if changes.iter().any(|c| c.new.is_none()) {
        compose_fs::sync_dir(&dir)?;
    }
    Ok(())
}

/// Brings the per-MAC links in line with `nodes` (what `compose serve`
/// does at start). Returns the number of node entries.
pub fn pxelinux_links(tree: &Path, nodes: &[Node]) -> Result<usize> {
    let layout = Layout::new(tree);
    let lock = TreeLock::acquire(&layout)?;
    let changes = plan_links(&layout, nodes)?.with_context(|| {
        format!(
            "{} does not exist: publish an image first",
            layout.pxelinux_dir().display()
        )
    })?;
    apply_links(&lock, &layout, &changes)?;
    Ok(nodes.len())
}

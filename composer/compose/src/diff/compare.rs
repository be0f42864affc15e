//! Comparing the two final trees at the paths either side's own layers
//! touched (everywhere else both hold the shared base's node).

use std::collections::BTreeSet;

use anyhow::Result;

use super::content::Contents;
use super::tree::{Kind, Node, Tree};
use super::{ChangeKind, FileChange};

/// The changed paths, sorted by path bytes.
pub(super) fn files(
    a: &Tree,
    b: &Tree,
    touched: &BTreeSet<Vec<u8>>,
    contents: &mut Contents,
) -> Result<Vec<FileChange>> {
    let mut out = Vec::new();
    for path in touched {
        let (change, details) = match (a.get(path), b.get(path)) {
            (None, None) => continue,
            (None, Some(n)) => (ChangeKind::Added, vec![n.kind.name().to_string()]),
            (Some(n), None) => (ChangeKind::Removed, vec![n.kind.name().to_string()]),
            (Some(x), Some(y)) => {
                let details = details(x, y, contents)?;
                if details.is_empty() {
                    continue;
                }
                (ChangeKind::Changed, details)
            }
        };
        out.push(FileChange {
            path: shown(path),
            change,
            details,
        });
    }
    Ok(out)
}

/// `/` + the relative path (lossy for non-UTF-8 names).
pub(super) fn shown(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

/// How two nodes at one path differ; empty when they do not.
fn details(a: &Node, b: &Node, contents: &mut Contents) -> Result<Vec<String>> {
    if a.kind != b.kind {
        // Everything else about a different kind of entry is noise.
        return Ok(vec![format!("type {} -> {}", a.kind.name(), b.kind.name())]);
    }
    let mut out = Vec::new();
    if a.mode != b.mode {
        out.push(format!("mode {:04o} -> {:04o}", a.mode, b.mode));
    }
    if a.owner != b.owner {
        out.push(format!(
            "owner {}:{} -> {}:{}",
            a.owner.0, a.owner.1, b.owner.0, b.owner.1
        ));
    }
    if a.kind == Kind::File {
        if a.size != b.size {
            out.push(format!("size {} -> {}", a.size, b.size));
            out.push("content".into());
        } else if !same_content(a, b, contents)? {
            out.push("content".into());
        }
    }
    if a.target != b.target {
        out.push(format!(
            "target {} -> {}",
            String::from_utf8_lossy(&a.target),
            String::from_utf8_lossy(&b.target)
        ));
    }
    if a.dev != b.dev {
        out.push(format!(
            "device {}:{} -> {}:{}",
            a.dev.0, a.dev.1, b.dev.0, b.dev.1
        ));
    }
    if a.xattrs != b.xattrs {
        out.push("xattrs".into());
    }
    // Directory mtimes change whenever a child does: not a difference.
    if a.kind != Kind::Dir && a.mtime != b.mtime {
        out.push("mtime".into());
    }
    Ok(out)
}

/// Same-size files: equal when stored at the same place, else by sha256.
pub(super) fn same_content(a: &Node, b: &Node, contents: &mut Contents) -> Result<bool> {
    match (a.data, b.data) {
        (Some(x), Some(y)) if x == y || a.size == 0 => Ok(true),
        (Some(x), Some(y)) => Ok(contents.digest(x, a.size)? == contents.digest(y, b.size)?),
        _ => Ok(a.data == b.data),
    }
}

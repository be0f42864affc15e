//! Unified diffs of the /etc text files whose content differs.

use anyhow::Result;
use similar::TextDiff as Lines;

use super::content::Contents;
use super::tree::{Kind, Node, Tree};
use super::{ChangeKind, DiffOptions, FileChange, TextDiff};

/// One diff per added, removed or content-changed regular file under /etc
/// that is UTF-8 text within `opts.max_text_bytes` on both sides.
pub(super) fn text_diffs(
    files: &[FileChange],
    a: &Tree,
    b: &Tree,
    opts: &DiffOptions,
    contents: &mut Contents,
) -> Result<Vec<TextDiff>> {
    let mut out = Vec::new();
    for f in files.iter().filter(|f| f.path.starts_with("/etc/")) {
        let rel = &f.path.as_bytes()[1..];
        let file = |t: &Tree| t.get(rel).filter(|n| n.kind == Kind::File).cloned();
        let (before, after) = (file(a), file(b));
        let wanted = match f.change {
            ChangeKind::Added => after.is_some(),
            ChangeKind::Removed => before.is_some(),
            ChangeKind::Changed => {
                before.is_some() && after.is_some() && f.details.iter().any(|d| d == "content")
            }
        };
        if !wanted {
            continue;
        }
        let (Some(old), Some(new)) = (
            text(before.as_ref(), opts, contents)?,
            text(after.as_ref(), opts, contents)?,
        ) else {
            continue; // binary or too large: listed as changed only
        };
        let header = |side: &str, n: &Option<Node>| match n {
            Some(_) => format!("{side}{}", f.path),
            None => "/dev/null".to_string(),
        };
        let unified = Lines::from_lines(old.as_str(), new.as_str())
            .unified_diff()
            .context_radius(3)
            .header(&header("a", &before), &header("b", &after))
            .to_string();
        out.push(TextDiff {
            path: f.path.clone(),
            unified,
        });
    }
    Ok(out)
}

/// The file's text; "" for a missing side; None when not diffable.
fn text(
    node: Option<&Node>,
    opts: &DiffOptions,
    contents: &mut Contents,
) -> Result<Option<String>> {
    let Some(node) = node else {
        return Ok(Some(String::new()));
    };
    let Some(loc) = node.data.filter(|_| node.size <= opts.max_text_bytes) else {
        return Ok(None);
    };
    let bytes = contents.bytes(loc, node.size)?;
    if bytes.contains(&0) {
        return Ok(None); // valid UTF-8, but binary all the same
    }
    Ok(String::from_utf8(bytes).ok())
}

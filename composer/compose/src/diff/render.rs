//! The human-readable form of a diff (the CLI prints it as is).

use std::fmt::Write;

use super::{ChangeKind, PkgChangeKind, SnapshotDiff};

/// Sections `files:`, `packages:` and `/etc:` (empty ones left out), or
/// `no differences`. Deterministic: the diff's lists are already sorted.
pub fn render_text(d: &SnapshotDiff) -> String {
    if d.is_empty() {
        return "no differences\n".to_string();
    }
    let mut out = String::new();
    if !d.files.is_empty() {
        out.push_str("files:\n");
        for f in &d.files {
            let kind = match f.change {
                ChangeKind::Added => "added",
                ChangeKind::Removed => "removed",
                ChangeKind::Changed => "changed",
            };
            let _ = writeln!(out, "  {kind:<8} {} ({})", f.path, f.details.join(", "));
        }
    }
    if !d.packages.is_empty() {
        out.push_str("packages:\n");
        for p in &d.packages {
            let kind = match p.change {
                PkgChangeKind::Added => "added",
                PkgChangeKind::Removed => "removed",
                PkgChangeKind::Upgraded => "upgraded",
                PkgChangeKind::Downgraded => "downgraded",
                PkgChangeKind::Changed => "changed",
            };
            let versions = match (&p.from, &p.to) {
                (Some(from), Some(to)) => format!("{from} -> {to}"),
                (Some(v), None) | (None, Some(v)) => v.clone(),
                (None, None) => String::new(),
            };
            let _ = writeln!(out, "  {kind:<10} {} {versions}", p.name);
        }
    }
    if !d.etc_diffs.is_empty() {
        out.push_str("/etc:\n");
        for t in &d.etc_diffs {
            out.push_str(&t.unified);
            if !t.unified.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

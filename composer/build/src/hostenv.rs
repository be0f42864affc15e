//! What the build needs to know about the host: its Debian architecture and
//! the mirror its apt sources name (the default mirror of a recipe).

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::Path;
use std::process::Command;

/// The host's dpkg architecture (`amd64`, `arm64`, …).
pub fn host_architecture() -> Result<String> {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .context("running dpkg --print-architecture (is this a Debian host?)")?;
    if !out.status.success() {
        bail!("dpkg --print-architecture failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The first Debian (non-security) mirror named by the host's apt sources.
pub fn host_mirror() -> Result<String> {
    let mut texts = Vec::new();
    if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
        texts.push((false, t));
    }
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let deb822 = p.extension().is_some_and(|e| e == "sources");
            let list = p.extension().is_some_and(|e| e == "list");
            if deb822 || list {
                if let Ok(t) = fs::read_to_string(&p) {
                    texts.push((deb822, t));
                }
            }
        }
    }
    texts
        .iter()
        .find_map(|(deb822, t)| {
            if *deb822 {
                parse_deb822_mirror(t)
            } else {
                parse_list_mirror(t)
            }
        })
        .context(
            "no Debian mirror found in /etc/apt/sources.list{,.d}: set `mirror` in the recipe's [base]",
        )
}

fn is_debian_archive(uri: &str) -> bool {
    let u = uri.trim_end_matches('/');
    (u.ends_with("/debian") || u.contains("/archive/debian/")) && !u.contains("security")
}

/// `deb [opts] URI SUITE COMPONENTS` lines.
pub fn parse_list_mirror(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "deb" {
            return None;
        }
        let mut uri = words.next()?;
        if uri.starts_with('[') {
            // skip the [option=value ...] block
            while !uri.ends_with(']') {
                uri = words.next()?;
            }
            uri = words.next()?;
        }
        is_debian_archive(uri).then(|| uri.to_string())
    })
}

/// deb822 `.sources` stanzas: `Types: deb` and `URIs: …`.
pub fn parse_deb822_mirror(text: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let types = field("Types")?;
        if !types.split_whitespace().any(|t| t == "deb") {
            return None;
        }
        if field("Enabled").is_some_and(|e| e == "no") {
            return None;
        }
        field("URIs")?
            .split_whitespace()
            .find(|u| is_debian_archive(u))
            .map(str::to_string)
    })
}

/// True when `path` names an executable program on PATH.
pub fn have_program(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(name)))
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_picks_the_debian_archive_not_security() {
        let text = "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n\
                    Types: deb deb-src\n# a comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n";
        assert_eq!(
            parse_deb822_mirror(text).as_deref(),
            Some("http://deb.debian.org/debian")
        );
    }

    #[test]
    fn deb822_skips_disabled_and_source_only_stanzas() {
        let text = "Types: deb-src\nURIs: http://a/debian\n\nTypes: deb\nEnabled: no\nURIs: http://b/debian\n\n\
                    Types: deb\nURIs: http://c/debian/\n";
        assert_eq!(
            parse_deb822_mirror(text).as_deref(),
            Some("http://c/debian/")
        );
    }

    #[test]
    fn list_lines_with_options() {
        let cases = [
            ("deb http://m/debian bookworm main", Some("http://m/debian")),
            (
                "deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main",
                Some("http://m/debian"),
            ),
            (
                "deb https://packages.cloud.google.com/apt cloud-sdk main",
                None,
            ),
            ("# deb http://m/debian bookworm main", None),
            ("deb-src http://m/debian bookworm main", None),
            (
                "deb http://snapshot.debian.org/archive/debian/20250520T000000Z bookworm main",
                Some("http://snapshot.debian.org/archive/debian/20250520T000000Z"),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_list_mirror(line).as_deref(), want, "{line}");
        }
    }
}

//! Installed Debian packages, from each side's `var/lib/dpkg/status`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};

use super::content::Contents;
use super::debver::compare_versions;
use super::tree::{Kind, Tree};
use super::{PackageChange, PkgChangeKind};

const STATUS: &[u8] = b"var/lib/dpkg/status";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pkg {
    pub version: String,
    pub arch: String,
}

/// The package changes, sorted by name. Nothing to do (and nothing read)
/// when neither side's own layers touched the status file.
pub(super) fn changes(
    a: &Tree,
    b: &Tree,
    touched: &BTreeSet<Vec<u8>>,
    contents: &mut Contents,
) -> Result<Vec<PackageChange>> {
    if !touched.contains(STATUS) {
        return Ok(Vec::new());
    }
    let before = installed(a, contents).context("reading the first snapshot's dpkg status")?;
    let after = installed(b, contents).context("reading the second snapshot's dpkg status")?;
    Ok(compare(&before, &after))
}

fn installed(tree: &Tree, contents: &mut Contents) -> Result<BTreeMap<String, Pkg>> {
    let bytes = match tree.get(STATUS) {
        Some(n) if n.kind == Kind::File => match n.data {
            Some(loc) => contents.bytes(loc, n.size)?,
            None => Vec::new(),
        },
        _ => Vec::new(), // no dpkg (or not a file): no packages
    };
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

/// Installed packages by name; `name:arch` for a name installed for
/// several architectures (multiarch).
pub(super) fn parse(status: &str) -> BTreeMap<String, Pkg> {
    let mut found: Vec<(String, Pkg)> = Vec::new();
    let mut stanza: BTreeMap<&str, &str> = BTreeMap::new();
    for line in status.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            found.extend(package(&stanza));
            stanza.clear();
        } else if !line.starts_with([' ', '\t']) {
            // Continuation lines (descriptions, conffiles) are not needed.
            if let Some((key, value)) = line.split_once(':') {
                stanza.insert(key.trim(), value.trim());
            }
        }
    }
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, _) in &found {
        *count.entry(name.as_str()).or_default() += 1;
    }
    let mut out = BTreeMap::new();
    for (name, pkg) in &found {
        let key = match count[name.as_str()] {
            1 => name.clone(),
            _ => format!("{name}:{}", pkg.arch),
        };
        out.insert(key, pkg.clone());
    }
    out
}

/// The package of one stanza, if installed: any selection (install, hold)
/// with status `ok installed`, as dpkg-query counts it.
fn package(stanza: &BTreeMap<&str, &str>) -> Option<(String, Pkg)> {
    let status: Vec<&str> = stanza.get("Status")?.split_whitespace().collect();
    if status.get(1..) != Some(&["ok", "installed"][..]) {
        return None;
    }
    let pkg = Pkg {
        version: stanza.get("Version")?.to_string(),
        arch: stanza.get("Architecture").unwrap_or(&"").to_string(),
    };
    Some((stanza.get("Package")?.to_string(), pkg))
}

pub(super) fn compare(a: &BTreeMap<String, Pkg>, b: &BTreeMap<String, Pkg>) -> Vec<PackageChange> {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        let (change, from, to) = match (a.get(name), b.get(name)) {
            (None, None) => continue,
            (None, Some(y)) => (PkgChangeKind::Added, None, Some(y.version.clone())),
            (Some(x), None) => (PkgChangeKind::Removed, Some(x.version.clone()), None),
            (Some(x), Some(y)) => match compare_versions(&x.version, &y.version) {
                Ordering::Less => (
                    PkgChangeKind::Upgraded,
                    Some(x.version.clone()),
                    Some(y.version.clone()),
                ),
                Ordering::Greater => (
                    PkgChangeKind::Downgraded,
                    Some(x.version.clone()),
                    Some(y.version.clone()),
                ),
                Ordering::Equal if x == y => continue,
                Ordering::Equal if x.arch == y.arch => (
                    PkgChangeKind::Changed,
                    Some(x.version.clone()),
                    Some(y.version.clone()),
                ),
                Ordering::Equal => (
                    PkgChangeKind::Changed,
                    Some(format!("{} ({})", x.version, x.arch)),
                    Some(format!("{} ({})", y.version, y.arch)),
                ),
            },
        };
        out.push(PackageChange {
            name: name.clone(),
            change,
            from,
            to,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS_A: &str = "\
Package: base-files
Status: install ok installed
Priority: required
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.
 .
 Version: 99 (a continuation line, not a field)

Package: removed-but-configured
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: held
Status: hold ok installed
Architecture: all
Version: 2.0

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9
";

    #[test]
    fn parses_installed_packages() {
        let got = parse(STATUS_A);
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(names, ["base-files", "held", "libc6"]);
        assert_eq!(got["base-files"].version, "12.4+deb12u5");
        assert_eq!(got["held"].arch, "all");
    }

    #[test]
    fn multiarch_names_carry_the_architecture() {
        let status = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n\n\
                      Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36-9\n";
        let names: Vec<String> = parse(status).into_keys().collect();
        assert_eq!(names, ["libc6:amd64", "libc6:i386"]);
    }

    #[test]
    fn compares_by_debian_version() {
        let pkgs = |list: &[(&str, &str, &str)]| -> BTreeMap<String, Pkg> {
            list.iter()
                .map(|(n, v, a)| {
                    (
                        n.to_string(),
                        Pkg {
                            version: v.to_string(),
                            arch: a.to_string(),
                        },
                    )
                })
                .collect()
        };
        let a = pkgs(&[
            ("same", "1.0", "amd64"),
            ("gone", "1.0", "amd64"),
            ("up", "1.0~rc1", "amd64"),
            ("down", "1:0.9", "amd64"),
            ("respelled", "1.0", "amd64"),
            ("rearched", "1.0", "amd64"),
        ]);
        let b = pkgs(&[
            ("same", "1.0", "amd64"),
            ("new", "2.0", "all"),
            ("up", "1.0", "amd64"),
            ("down", "2.0", "amd64"),
            ("respelled", "1.0-0", "amd64"),
            ("rearched", "1.0", "all"),
        ]);
        let got: Vec<String> = compare(&a, &b)
            .into_iter()
            .map(|c| format!("{} {:?} {:?} {:?}", c.name, c.change, c.from, c.to))
            .collect();
        let want = [
            r#"down Downgraded Some("1:0.9") Some("2.0")"#,
            r#"gone Removed Some("1.0") None"#,
            r#"new Added None Some("2.0")"#,
            r#"rearched Changed Some("1.0 (amd64)") Some("1.0 (all)")"#,
            r#"respelled Changed Some("1.0") Some("1.0-0")"#,
            r#"up Upgraded Some("1.0~rc1") Some("1.0")"#,
        ];
        assert_eq!(got, want);
    }
}

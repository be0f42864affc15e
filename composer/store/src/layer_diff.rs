//! Comparing two layer tars entry by entry (for `build --verify`).

use std::collections::BTreeMap;
use std::io::Read;

use crate::digest::{Digest, Hasher};
use crate::error::StoreError;
use crate::layer_write::xattr_allowed;
use crate::tarread::{read_members, Member};

/// One difference between two layers at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDiff {
    /// The entry name, without leading `./` or trailing `/`.
    pub path: String,
    /// What differs: "only in first", "only in second", "type", "content",
    /// "mode 0644 -> 0755", "owner 0:0 -> 1000:1000", "mtime 1 -> 2",
    /// "link target", "xattrs", "device".
    pub what: String,
}

#[derive(Debug, PartialEq, Eq)]
struct Summary {
    kind: tar::EntryType,
    mode: u32,
    owner: (u64, u64),
    mtime: u64,
    content: Digest,
    link: Option<Vec<u8>>,
    device: (u32, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The differences between layer tars `a` and `b`, sorted by path.
pub fn diff_layers<A: Read, B: Read>(a: A, b: B) -> Result<Vec<PathDiff>, StoreError> {
    let a = summarize(a, "first")?;
    let b = summarize(b, "second")?;
    let mut out = Vec::new();
    for (path, sa) in &a {
        match b.get(path) {
            None => out.push(diff(path, "only in first".into())),
            Some(sb) => out.extend(compare(sa, sb).into_iter().map(|w| diff(path, w))),
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(diff(path, "only in second".into()));
    }
    out.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(out)
}

fn diff(path: &str, what: String) -> PathDiff {
    PathDiff {
        path: path.to_string(),
        what,
    }
}

fn compare(a: &Summary, b: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    if a.kind != b.kind {
        out.push(format!("type {:?} -> {:?}", a.kind, b.kind));
    }
    if a.content != b.content {
        out.push("content".into());
    }
    if a.mode != b.mode {
        out.push(format!("mode {:04o} -> {:04o}", a.mode, b.mode));
    }
    if a.owner != b.owner {
        out.push(format!(
            "owner {}:{} -> {}:{}",
            a.owner.0, a.owner.1, b.owner.0, b.owner.1
        ));
    }
    if a.mtime != b.mtime {
        out.push(format!("mtime {} -> {}", a.mtime, b.mtime));
    }
    if a.link != b.link {
        out.push("link target".into());
    }
    if a.device != b.device {
        out.push("device".into());
    }
    if a.xattrs != b.xattrs {
        out.push("xattrs".into());
    }
    out
}

fn summarize<R: Read>(r: R, which: &str) -> Result<BTreeMap<String, Summary>, StoreError> {
    let mut out = BTreeMap::new();
    read_members(r, |m, data| {
        let raw = m.shown();
        let path = raw
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let s = summary(m, data).map_err(|e| StoreError::BadTar {
            entry: format!("{raw} (in the {which} layer)"),
            reason: e.to_string(),
        })?;
        out.insert(path, s);
        Ok(())
    })
    .map_err(|e| match e {
        StoreError::BadTar { entry, reason } => StoreError::BadTar {
            entry: format!("{entry} (in the {which} layer)"),
            reason,
        },
        other => other,
    })?;
    Ok(out)
}

fn summary(m: &Member, data: &mut dyn Read) -> std::io::Result<Summary> {
    let mut xattrs: Vec<_> = m
        .xattrs
        .iter()
        .filter(|(k, _)| xattr_allowed(k))
        .cloned()
        .collect();
    xattrs.sort();
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = data.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Summary {
        kind: m.kind,
        mode: m.mode & 0o7777,
        owner: (m.uid, m.gid),
        mtime: m.mtime,
        content: hasher.finish(),
        link: m.link.clone(),
        device: m.dev,
        xattrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{raw_tar, Raw};

    fn file<'a>(name: &'a [u8], data: &'a [u8]) -> Raw<'a> {
        Raw {
            name,
            kind: b'0',
            data,
            link: b"",
        }
    }

    #[test]
    fn reports_each_kind_of_difference() {
        let a = raw_tar(&[
            file(b"same", b"x"),
            file(b"content", b"1"),
            file(b"only-a", b""),
            Raw {
                name: b"link",
                kind: b'2',
                data: b"",
                link: b"/a",
            },
            Raw {
                name: b"kind",
                kind: b'5',
                data: b"",
                link: b"",
            },
        ]);
        let b = raw_tar(&[
            file(b"same", b"x"),
            file(b"content", b"2"),
            file(b"only-b", b""),
            Raw {
                name: b"link",
                kind: b'2',
                data: b"",
                link: b"/b",
            },
            file(b"kind/", b""),
        ]);
        let got: Vec<(String, String)> = diff_layers(a.as_slice(), b.as_slice())
            .unwrap()
            .into_iter()
            .map(|d| (d.path, d.what))
            .collect();
        let want = [
            ("content", "content"),
            ("kind", "type Directory -> Regular"),
            ("kind", "mode 0755 -> 0644"),
            ("link", "link target"),
            ("only-a", "only in first"),
            ("only-b", "only in second"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(p, w)| (p.to_string(), w.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_tar_names_the_layer() {
        let err = diff_layers(&b"not a tar at all"[..], &[][..]).unwrap_err();
        assert!(err.to_string().contains("first layer"), "{err}");
    }
}

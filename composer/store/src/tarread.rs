//! Reading tar members with their PAX / GNU extensions applied.
//!
//! The tar crate is used in raw mode (headers, checksums, data framing);
//! the extensions are handled here because its PAX parser splits records at
//! newlines, which breaks binary xattr values such as security.capability.

use std::io::{Read, Seek};

use crate::error::StoreError;
use crate::tarfmt::Xattrs;

/// Largest extension header we read into memory (untrusted input).
const MAX_EXTENSION: u64 = 1 << 20;

/// One tar member, extensions applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub dev: (u32, u32),
    pub size: u64,
    /// All `SCHILY.xattr.*` records (unfiltered), in archive order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Member {
    /// The name for messages.
    pub fn shown(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

#[derive(Default)]
struct Pending {
    pax: Vec<(Vec<u8>, Vec<u8>)>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

fn bad(entry: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::BadTar {
        entry: entry.to_string(),
        reason: format!("{reason}; the layer may be truncated or not a tar"),
    }
}

/// Calls `f` with each member and a reader of its data.
pub(crate) fn read_members<R: Read>(
    r: R,
    mut f: impl FnMut(&Member, &mut dyn Read) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut archive = tar::Archive::new(r);
    let entries = archive
        .entries()
        .map_err(|e| bad("<start of archive>", e))?;
    walk(entries, |m, entry| f(m, entry))
}

/// Calls `f` with each member and the archive offset of its data, without
/// reading any data: it is skipped by seeking, so a pass over a large layer
/// costs its headers only. The data of a member is the `size` bytes at the
/// offset (members are never sparse in layers compose writes).
pub fn read_headers<R: Read + Seek>(
    r: R,
    mut f: impl FnMut(&Member, u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut archive = tar::Archive::new(r);
    let entries = archive
        .entries_with_seek()
        .map_err(|e| bad("<start of archive>", e))?;
    walk(entries, |m, entry| f(m, entry.raw_file_position()))
}

fn walk<R: Read>(
    entries: tar::Entries<'_, R>,
    mut f: impl FnMut(&Member, &mut tar::Entry<'_, R>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut pending = Pending::default();
    let mut last = String::from("<start of archive>");
    for entry in entries.raw(true) {
        let mut entry = entry.map_err(|e| bad(&format!("entry after {last}"), e))?;
        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::XHeader => {
                let data = read_extension(&mut entry, &last)?;
                pending
                    .pax
                    .extend(parse_pax(&data).map_err(|r| bad(&last, r))?);
            }
            T::XGlobalHeader => {
                read_extension(&mut entry, &last)?; // global defaults: not used by layers
            }
            T::GNULongName => {
                pending.long_name = Some(strip_nul(read_extension(&mut entry, &last)?))
            }
            T::GNULongLink => {
                pending.long_link = Some(strip_nul(read_extension(&mut entry, &last)?))
            }
            _ => {
                let m = member(&entry, std::mem::take(&mut pending))?;
                last = m.shown();
                f(&m, &mut entry)?;
            }
        }
    }
    Ok(())
}

fn read_extension<R: Read>(entry: &mut tar::Entry<R>, last: &str) -> Result<Vec<u8>, StoreError> {
    if entry.size() > MAX_EXTENSION {
        return Err(bad(
            &format!("entry after {last}"),
            "extension header larger than 1 MiB",
        ));
    }
    let mut data = Vec::new();
    entry.read_to_end(&mut data).map_err(|e| bad(last, e))?;
    Ok(data)
}

fn strip_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Parses `"<len> <key>=<value>\n"` records, trusting `len` (values may
/// contain newlines).
pub(crate) fn parse_pax(mut data: &[u8]) -> Result<Xattrs, String> {
    let mut out = Vec::new();
    while !data.is_empty() && data[0] != 0 {
        let space = data
            .iter()
            .position(|b| *b == b' ')
            .ok_or("pax record without length")?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("pax record with a bad length")?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("pax record length does not match its content".into());
        }
        let record = &data[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or("pax record without `=`")?;
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

fn member<R: Read>(entry: &tar::Entry<R>, p: Pending) -> Result<Member, StoreError> {
    let h = entry.header();
    let pax = |key: &[u8]| {
        p.pax
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let name = pax(b"path")
        .or(p.long_name)
        .unwrap_or_else(|| h.path_bytes().into_owned());
    let shown = String::from_utf8_lossy(&name).into_owned();
    let num = |key: &[u8], header: std::io::Result<u64>| -> Result<u64, StoreError> {
        match pax(key) {
            Some(v) => pax_number(&v)
                .ok_or_else(|| bad(&shown, format!("bad pax {}", String::from_utf8_lossy(key)))),
            None => header.map_err(|e| bad(&shown, e)),
        }
    };
    let size = entry.size();
    if num(b"size", Ok(size))? != size {
        return Err(bad(
            &shown,
            "pax size disagrees with the header size (unsupported)",
        ));
    }
    Ok(Member {
        link: pax(b"linkpath")
            .or(p.long_link)
            .or_else(|| h.link_name_bytes().map(|l| l.into_owned())),
        kind: h.entry_type(),
        mode: h.mode().map_err(|e| bad(&shown, e))?,
        uid: num(b"uid", h.uid())?,
        gid: num(b"gid", h.gid())?,
        mtime: num(b"mtime", h.mtime())?,
        dev: (
            h.device_major().ok().flatten().unwrap_or(0),
            h.device_minor().ok().flatten().unwrap_or(0),
        ),
        size,
        xattrs: p
            .pax
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(b"SCHILY.xattr.")
                    .map(|n| (n.to_vec(), v.clone()))
            })
            .collect(),
        name,
    })
}

/// A decimal PAX number; fractional seconds are dropped, negatives are 0.
fn pax_number(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    let int = s.split('.').next()?;
    if let Some(neg) = int.strip_prefix('-') {
        return neg.parse::<u64>().ok().map(|_| 0);
    }
    int.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_parsing() {
        type Records = Vec<(Vec<u8>, Vec<u8>)>;
        let ok: Records = vec![(b"k".to_vec(), b"a\nb".to_vec())];
        let cases: Vec<(&[u8], Result<Records, ()>)> = vec![
            (b"", Ok(vec![])),
            (b"8 k=a\nb\n", Ok(ok)),
            (b"9 k=ab\n", Err(())),
            (b"x k=a\n", Err(())),
            (b"99 k=a\n", Err(())),
            (b"6 kab\n", Err(())),
            (b"1 ", Err(())),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_pax(input).map_err(|_| ()),
                want,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn pax_numbers() {
        let cases: [(&[u8], Option<u64>); 5] = [
            (b"12", Some(12)),
            (b"12.5", Some(12)),
            (b"-3", Some(0)),
            (b"x", None),
            (b"", None),
        ];
        for (input, want) in cases {
            assert_eq!(pax_number(input), want);
        }
    }
}

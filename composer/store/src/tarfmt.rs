//! Tar headers written by hand (ustar + PAX extended headers), so that every
//! byte is ours to decide: numeric owners, exact modes, no user/group names,
//! no host-dependent fields.

use std::io::{self, Write};

pub(crate) const BLOCK: usize = 512;
const NAME_LEN: usize = 100;
const MAX_OCTAL_8: u64 = 0o7777777;
const MAX_OCTAL_12: u64 = 0o77777777777;

/// Entry type flags.
pub(crate) mod kind {
    pub const FILE: u8 = b'0';
    pub const LINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR: u8 = b'3';
    pub const BLOCK: u8 = b'4';
    pub const DIR: u8 = b'5';
    pub const FIFO: u8 = b'6';
    pub const PAX: u8 = b'x';
}

/// Extended attributes as (name, value) pairs.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything that goes in one entry's header.
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    pub name: &'a [u8],
    pub kind: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub link: &'a [u8],
    pub dev_major: u64,
    pub dev_minor: u64,
    /// (name, value), already filtered and sorted.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Largest mtime a header can hold.
pub(crate) const MAX_MTIME: u64 = MAX_OCTAL_12;

/// Writes the headers for one entry (a PAX header first when a value does
/// not fit ustar); returns the bytes written. The caller writes the data
/// and then [`padding`].
pub(crate) fn write_headers<W: Write>(out: &mut W, f: &Fields) -> io::Result<u64> {
    let records = pax_records(f);
    let mut written = 0;
    if !records.is_empty() {
        let pax = Fields {
            name: &pax_name(f.name),
            kind: kind::PAX,
            mode: 0o644,
            size: records.len() as u64,
            mtime: f.mtime,
            ..Fields::default()
        };
        out.write_all(&ustar_block(&pax))?;
        out.write_all(&records)?;
        out.write_all(padding(records.len() as u64))?;
        written += (BLOCK + records.len() + padding(records.len() as u64).len()) as u64;
    }
    out.write_all(&ustar_block(f))?;
    Ok(written + BLOCK as u64)
}

/// Zero bytes to pad `size` bytes of data to a whole block.
pub(crate) fn padding(size: u64) -> &'static [u8] {
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    let rem = (size % BLOCK as u64) as usize;
    &ZEROS[..(BLOCK - rem) % BLOCK]
}

/// The end-of-archive marker: two zero blocks.
pub(crate) const TRAILER: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

fn pax_records(f: &Fields) -> Vec<u8> {
    let mut out = Vec::new();
    if f.name.len() > NAME_LEN {
        record(&mut out, b"path", f.name);
    }
    if f.link.len() > NAME_LEN {
        record(&mut out, b"linkpath", f.link);
    }
    if f.size > MAX_OCTAL_12 {
        record(&mut out, b"size", f.size.to_string().as_bytes());
    }
    if f.uid > MAX_OCTAL_8 {
        record(&mut out, b"uid", f.uid.to_string().as_bytes());
    }
    if f.gid > MAX_OCTAL_8 {
        record(&mut out, b"gid", f.gid.to_string().as_bytes());
    }
    for (name, value) in f.xattrs {
        record(
            &mut out,
            &[b"SCHILY.xattr.", name.as_slice()].concat(),
            value,
        );
    }
    out
}

/// One `"<len> <key>=<value>\n"` record; `len` counts its own digits.
fn record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// `PaxHeader/<basename>`, as libarchive names them; only informative.
fn pax_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let base = trimmed.rsplit(|b| *b == b'/').next().unwrap_or(trimmed);
    let mut out = b"PaxHeader/".to_vec();
    out.extend_from_slice(base);
    out.truncate(NAME_LEN);
    out
}

fn ustar_block(f: &Fields) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    copy_trunc(&mut b[0..100], f.name);
    octal(&mut b[100..108], u64::from(f.mode & 0o7777));
    octal(&mut b[108..116], f.uid);
    octal(&mut b[116..124], f.gid);
    octal(&mut b[124..136], f.size);
    octal(&mut b[136..148], f.mtime);
    b[156] = f.kind;
    copy_trunc(&mut b[157..257], f.link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    if f.kind == kind::CHAR || f.kind == kind::BLOCK {
        octal(&mut b[329..337], f.dev_major);
        octal(&mut b[337..345], f.dev_minor);
    }
    b[148..156].fill(b' ');
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let ck = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(ck.as_bytes());
    b
}

fn copy_trunc(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Zero-padded octal with a NUL terminator. A value too big for the field
/// is written as 0: a PAX record carries the real value.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let max = (1u64 << (3 * digits)) - 1;
    let s = format!("{:0digits$o}", if value > max { 0 } else { value });
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let cases: &[(&[u8], &[u8], &[u8])] = &[
            (b"path", b"a", b"9 path=a\n"),
            (b"uid", b"1234567", b"15 uid=1234567\n"),
            // 4 + 93 + 3 = 100, plus 3 length digits: 103 bytes
            (b"path", &[b'x'; 93], b"103 path="),
        ];
        for (key, value, want) in cases {
            let mut out = Vec::new();
            record(&mut out, key, value);
            assert!(out.starts_with(want), "{}", String::from_utf8_lossy(&out));
            let len: usize = String::from_utf8_lossy(&out)
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, out.len());
        }
    }

    #[test]
    fn header_parses_with_tar_crate() {
        let long = "d/".repeat(60) + "file";
        let mut buf = Vec::new();
        let xattrs = vec![(b"user.k".to_vec(), b"v\0\n".to_vec())];
        let f = Fields {
            name: long.as_bytes(),
            kind: kind::FILE,
            mode: 0o4755,
            uid: 3_000_000,
            gid: 7,
            size: 3,
            mtime: 42,
            xattrs: &xattrs,
            ..Fields::default()
        };
        write_headers(&mut buf, &f).unwrap();
        buf.extend_from_slice(b"abc");
        buf.extend_from_slice(padding(3));
        buf.extend_from_slice(&TRAILER);
        let mut members = Vec::new();
        crate::tarread::read_members(buf.as_slice(), |m, data| {
            let mut content = Vec::new();
            data.read_to_end(&mut content).unwrap();
            members.push((m.clone(), content));
            Ok(())
        })
        .unwrap();
        assert_eq!(members.len(), 1);
        let (m, content) = &members[0];
        assert_eq!(m.name, long.as_bytes());
        assert_eq!((m.mode, m.uid, m.gid, m.mtime), (0o4755, 3_000_000, 7, 42));
        assert_eq!(m.xattrs, xattrs);
        assert_eq!(content, b"abc");
        // The tar crate agrees on everything but the binary xattr value.
        let mut ar = tar::Archive::new(buf.as_slice());
        let e = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path_bytes().as_ref(), long.as_bytes());
        assert_eq!(e.header().uid().unwrap(), 3_000_000);
    }
}

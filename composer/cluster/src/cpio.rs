//! A minimal writer for the cpio "newc" format (the initramfs format), so a
//! node's private files reach it as one archive that the netboot layer's
//! initramfs unpacks with klibc's `cpio -i` (the only copy tool it has)
//! into the tmpfs upper layer of its root overlay.
//!
//! Entries are written in the order given, parents first (klibc's cpio does
//! not create missing directories). Times are zero: the archive's bytes
//! depend on its entries only, so an unchanged node gives an unchanged file.

use std::fmt::Write as _;

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        data: Vec<u8>,
    },
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, uid: u32, gid: u32, size: usize, name: &str) {
    let namesize = name.len() + 1;
    let mut h = String::from("070701");
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    for v in [
        ino,
        mode,
        uid,
        gid,
        1,
        0,
        size as u32,
        0,
        0,
        0,
        0,
        namesize as u32,
        0,
    ] {
        let _ = write!(h, "{v:08X}");
    }
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

/// The archive: every entry, then the trailer. Paths are relative
/// (`etc/hosts`); a leading `/` is dropped.
pub fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match e {
            Entry::Dir {
                path,
                mode,
                uid,
                gid,
            } => header(
                &mut out,
                ino,
                S_IFDIR | (mode & 0o7777),
                *uid,
                *gid,
                0,
                path.trim_start_matches('/'),
            ),
            Entry::File {
                path,
                mode,
                uid,
                gid,
                data,
            } => {
                header(
                    &mut out,
                    ino,
                    S_IFREG | (mode & 0o7777),
                    *uid,
                    *gid,
                    data.len(),
                    path.trim_start_matches('/'),
                );
                out.extend_from_slice(data);
                pad4(&mut out);
            }
        }
    }
    header(&mut out, 0, 0, 0, 0, 0, "TRAILER!!!");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout_is_exact() {
        let a = archive(&[
            Entry::Dir {
                path: "etc".into(),
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
            Entry::File {
                path: "/etc/hostname".into(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                data: b"node01\n".to_vec(),
            },
        ]);
        // header(110) + "etc\0" (4) = 114 -> padded to 116
        assert_eq!(&a[..6], b"070701");
        assert_eq!(&a[6..14], b"00000001");
        assert_eq!(&a[14..22], b"000041ED"); // dir | 0755
        assert_eq!(&a[110..114], b"etc\0");
        let f = 116;
        assert_eq!(&a[f + 14..f + 22], b"000081A4"); // file | 0644
        assert_eq!(&a[f + 54..f + 62], b"00000007"); // size
        assert_eq!(&a[f + 110..f + 123], b"etc/hostname\0");
        // header + 13-byte name = 123 -> 124, then 7 data bytes -> 8
        assert_eq!(&a[f + 124..f + 131], b"node01\n");
        let t = f + 132;
        assert_eq!(&a[t + 110..t + 121], b"TRAILER!!!\0");
        assert_eq!(a.len() % 4, 0);
    }
}

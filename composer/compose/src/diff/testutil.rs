//! Building snapshots for the diff tests: layer tars written entry by entry
//! (fixed owners and mtimes, so digests and golden output do not depend on
//! who runs the tests), or from a directory with the store's own writer.

use std::collections::BTreeMap;
use std::path::Path;

use compose_store::{
    write_layer, LayerEntry, LayerOptions, Selection, SnapshotId, SnapshotSpec, Store,
};

pub const SDE: i64 = 1_700_000_000;
pub const MTIME: u64 = 1_600_000_000;

/// A layer tar built entry by entry (owner 0:0 and mtime [`MTIME`] unless
/// said otherwise).
pub struct TarLayer {
    b: tar::Builder<Vec<u8>>,
}

/// One entry's header fields.
pub struct Spec<'a> {
    pub path: &'a str,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub owner: (u64, u64),
    pub mtime: u64,
    pub data: &'a [u8],
    pub link: &'a str,
    pub xattrs: &'a [(&'a str, &'a [u8])],
    pub dev: (u32, u32),
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            path: "",
            kind: tar::EntryType::Regular,
            mode: 0o644,
            owner: (0, 0),
            mtime: MTIME,
            data: b"",
            link: "",
            xattrs: &[],
            dev: (0, 0),
        }
    }
}

impl TarLayer {
    pub fn new() -> Self {
        TarLayer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn entry(mut self, s: Spec) -> Self {
        if !s.xattrs.is_empty() {
            self.pax(s.xattrs);
        }
        let mut h = tar::Header::new_ustar();
        h.set_path(s.path).unwrap();
        h.set_entry_type(s.kind);
        h.set_mode(s.mode);
        h.set_uid(s.owner.0);
        h.set_gid(s.owner.1);
        h.set_mtime(s.mtime);
        h.set_size(s.data.len() as u64);
        if !s.link.is_empty() {
            h.set_link_name(s.link).unwrap();
        }
        if s.dev != (0, 0) {
            h.set_device_major(s.dev.0).unwrap();
            h.set_device_minor(s.dev.1).unwrap();
        }
        h.set_cksum();
        self.b.append(&h, s.data).unwrap();
        self
    }

    /// A PAX header with `SCHILY.xattr.*` records (values may be binary).
    fn pax(&mut self, xattrs: &[(&str, &[u8])]) {
        let mut records = Vec::new();
        for (k, v) in xattrs {
            let body = [b" SCHILY.xattr.", k.as_bytes(), b"=", v, b"\n"].concat();
            // The length counts its own digits.
            let mut len = body.len() + 1;
            while format!("{len}").len() + body.len() != len {
                len += 1;
            }
            records.extend_from_slice(format!("{len}").as_bytes());
            records.extend_from_slice(&body);
        }
        let mut h = tar::Header::new_ustar();
        h.set_path("PaxHeaders/entry").unwrap();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(records.len() as u64);
        h.set_cksum();
        self.b.append(&h, records.as_slice()).unwrap();
    }

    pub fn dir(self, path: &str) -> Self {
        self.dir_mode(path, 0o755)
    }

    pub fn dir_mode(self, path: &str, mode: u32) -> Self {
        self.entry(Spec {
            path,
            kind: tar::EntryType::Directory,
            mode,
            ..Spec::default()
        })
    }

    pub fn file(self, path: &str, data: &[u8]) -> Self {
        self.entry(Spec {
            path,
            data,
            ..Spec::default()
        })
    }

    pub fn file_mode(self, path: &str, mode: u32, data: &[u8]) -> Self {
        self.entry(Spec {
            path,
            mode,
            data,
            ..Spec::default()
        })
    }

    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.entry(Spec {
            path,
            kind: tar::EntryType::Symlink,
            mode: 0o777,
            link: target,
            ..Spec::default()
        })
    }

    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.entry(Spec {
            path,
            kind: tar::EntryType::Link,
            link: target,
            ..Spec::default()
        })
    }

    /// `.wh.NAME` next to `path`.
    pub fn whiteout(self, path: &str) -> Self {
        let (parent, base) = path.rsplit_once('/').unwrap_or(("", path));
        let name = match parent {
            "" => format!(".wh.{base}"),
            p => format!("{p}/.wh.{base}"),
        };
        self.entry(Spec {
            path: &name,
            mtime: SDE as u64,
            mode: 0,
            ..Spec::default()
        })
    }

    pub fn opaque(self, dir: &str) -> Self {
        self.entry(Spec {
            path: &format!("{dir}/.wh..wh..opq"),
            mode: 0,
            ..Spec::default()
        })
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.b.finish().unwrap();
        self.b.into_inner().unwrap()
    }
}

/// A snapshot of `layers` (base first).
pub fn snapshot(store: &Store, layers: &[&[u8]]) -> SnapshotId {
    snapshot_labeled(store, layers, "")
}

/// A snapshot whose id also depends on `label` (same layers, other id).
pub fn snapshot_labeled(store: &Store, layers: &[&[u8]], label: &str) -> SnapshotId {
    let entries = layers
        .iter()
        .enumerate()
        .map(|(i, bytes)| LayerEntry {
            digest: store.put_blob(bytes).unwrap().into(),
            size: bytes.len() as u64,
            created_by: format!("layer {i}"),
            comment: String::new(),
        })
        .collect();
    write(store, entries, label)
}

fn write(store: &Store, layers: Vec<LayerEntry>, label: &str) -> SnapshotId {
    let mut labels = BTreeMap::new();
    if !label.is_empty() {
        labels.insert("org.example.label".to_string(), label.to_string());
    }
    let spec = SnapshotSpec {
        image: "node".into(),
        architecture: "amd64".into(),
        source_date_epoch: SDE,
        layers,
        labels,
    };
    store.write_snapshot(&spec).unwrap()
}

/// A layer written by the store's writer from `root` (like a build does).
pub fn dir_layer(store: &Store, root: &Path, sel: Selection) -> LayerEntry {
    let opts = LayerOptions {
        source_date_epoch: SDE,
    };
    let mut w = store.blob_writer().unwrap();
    write_layer(root, sel, &opts, &mut w).unwrap();
    let (digest, size) = w.commit().unwrap();
    LayerEntry {
        digest: digest.into(),
        size,
        created_by: "dir".into(),
        comment: String::new(),
    }
}

/// A snapshot of already stored layers.
pub fn snapshot_of(store: &Store, layers: &[LayerEntry]) -> SnapshotId {
    write(store, layers.to_vec(), "")
}

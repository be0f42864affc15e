//! Reading layer blobs: header passes (data skipped by seeking) and, on
//! demand, the bytes of single files by their location.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result};
use compose_store::{read_headers, Digest, Hasher, LayerDigest, SnapshotId, Store, StoreError};

use super::tree::{LayerApply, Loc, Tree};

/// What a diff read (tests check the fast path with it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Stats {
    /// Layer blobs read header by header.
    pub layers_read: usize,
    /// Bytes read from blobs during header passes (buffered reads included).
    pub header_bytes: u64,
    /// Bytes of file contents read (hashed or compared as text).
    pub content_bytes: u64,
}

/// Blob access for one diff: open files and content hashes are cached.
pub(super) struct Contents<'s> {
    store: &'s Store,
    files: HashMap<LayerDigest, File>,
    hashes: HashMap<Loc, Digest>,
    pub stats: Stats,
}

/// Small reads between seeks: headers are 512 bytes and most files are
/// small, so one buffer fill often covers several entries.
const HEADER_BUF: usize = 16 * 1024;

impl<'s> Contents<'s> {
    pub fn new(store: &'s Store) -> Self {
        Contents {
            store,
            files: HashMap::new(),
            hashes: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// Applies `layers` (in order) onto `tree`, reading headers only.
    pub fn apply_layers(
        &mut self,
        tree: &mut Tree,
        layers: &[LayerDigest],
        mut touched: Option<&mut BTreeSet<Vec<u8>>>,
        snapshot: &SnapshotId,
    ) -> Result<()> {
        for layer in layers {
            self.apply_layer(tree, *layer, touched.as_deref_mut())
                .with_context(|| format!("reading layer {layer} of snapshot {snapshot}"))?;
        }
        Ok(())
    }

    fn apply_layer(
        &mut self,
        tree: &mut Tree,
        layer: LayerDigest,
        touched: Option<&mut BTreeSet<Vec<u8>>>,
    ) -> Result<()> {
        let file = self.store.open_blob(&layer.digest())?;
        let mut reader = SeekBuf {
            inner: BufReader::with_capacity(HEADER_BUF, Counted { file, bytes: 0 }),
            pos: 0,
        };
        let mut apply = LayerApply::new(tree, layer, touched);
        read_headers(&mut reader, |m, offset| {
            apply
                .member(m, offset)
                .map_err(|reason| StoreError::BadTar {
                    entry: m.shown(),
                    reason,
                })
        })?;
        self.stats.layers_read += 1;
        self.stats.header_bytes += reader.inner.get_ref().bytes;
        Ok(())
    }

    /// The sha256 of `size` bytes at `loc`.
    pub fn digest(&mut self, loc: Loc, size: u64) -> Result<Digest> {
        if let Some(d) = self.hashes.get(&loc) {
            return Ok(*d);
        }
        let mut hasher = Hasher::new();
        self.read_at(loc, size, |chunk| hasher.update(chunk))?;
        let d = hasher.finish();
        self.hashes.insert(loc, d);
        Ok(d)
    }

    /// The `size` bytes at `loc`.
    pub fn bytes(&mut self, loc: Loc, size: u64) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        self.read_at(loc, size, |chunk| out.extend_from_slice(chunk))?;
        Ok(out)
    }

    fn read_at(&mut self, loc: Loc, size: u64, mut f: impl FnMut(&[u8])) -> Result<()> {
        let file = match self.files.entry(loc.layer) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(self.store.open_blob(&loc.layer.digest())?)
            }
        };
        let mut buf = vec![0u8; 64 * 1024];
        let (mut pos, end) = (loc.offset, loc.offset + size);
        while pos < end {
            let n = buf
                .len()
                .min(usize::try_from(end - pos).unwrap_or(usize::MAX));
            file.read_exact_at(&mut buf[..n], pos).with_context(|| {
                format!(
                    "reading {size} bytes at offset {} of layer {}: the blob may be truncated",
                    loc.offset, loc.layer
                )
            })?;
            f(&buf[..n]);
            pos += n as u64;
        }
        self.stats.content_bytes += size;
        Ok(())
    }
}

/// Counts the bytes actually read from the blob.
struct Counted {
    file: File,
    bytes: u64,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

impl Seek for Counted {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.file.seek(pos)
    }
}

/// A buffered reader whose relative seeks stay inside the buffer when they
/// can (`BufReader::seek` always drops it) and which knows its position
/// without asking the kernel.
struct SeekBuf {
    inner: BufReader<Counted>,
    pos: u64,
}

impl Read for SeekBuf {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SeekBuf {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        match pos {
            SeekFrom::Current(delta) => {
                self.inner.seek_relative(delta)?;
                self.pos = self.pos.checked_add_signed(delta).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek out of range")
                })?;
            }
            other => self.pos = self.inner.seek(other)?,
        }
        Ok(self.pos)
    }
}

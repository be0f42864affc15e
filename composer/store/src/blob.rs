//! Content-addressed blobs under `blobs/sha256/`.

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use crate::digest::{Digest, Hasher};
use crate::error::{IoContext, StoreError};
use crate::fsutil::{make_private, sync_dir};
use crate::layout::Store;

/// Streams a new blob into the store. The bytes go to a temp file in
/// `compose/tmp` and are hashed on the way; `commit` renames the file to its
/// digest. Dropping the writer without committing removes the temp file, so a
/// half-written blob is never visible under `blobs/`.
pub struct BlobWriter {
    file: BufWriter<tempfile::NamedTempFile>,
    hasher: Hasher,
    size: u64,
    blobs_dir: PathBuf,
}

impl BlobWriter {
    /// Finishes the blob: fsync, rename into `blobs/sha256/<hex>` (or drop the
    /// temp file if that blob already exists), fsync the directory.
    pub fn commit(self) -> Result<(Digest, u64), StoreError> {
        let BlobWriter {
            file,
            hasher,
            size,
            blobs_dir,
        } = self;
        let tmp = file
            .into_inner()
            .map_err(|e| StoreError::io("flushing blob", blobs_dir.clone(), e.into_error()))?;
        let digest = hasher.finish();
        let dest = blobs_dir.join(digest.hex());
        if dest.exists() {
            return Ok((digest, size));
        }
        make_private(tmp.as_file()).at("setting mode of", tmp.path().to_path_buf())?;
        tmp.as_file()
            .sync_all()
            .at("syncing", tmp.path().to_path_buf())?;
        tmp.persist(&dest)
            .map_err(|e| StoreError::io("renaming blob into", &dest, e.error))?;
        sync_dir(&blobs_dir)?;
        Ok((digest, size))
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// What `blobs/sha256` holds: blobs named by their digest, and anything else.
#[derive(Debug, Default)]
pub(crate) struct BlobListing {
    pub(crate) blobs: Vec<Digest>,
    /// Entries whose name is not 64 lowercase hex, or that are not regular files.
    pub(crate) strays: Vec<PathBuf>,
}

impl Store {
    /// Every blob in the store, sorted (by file name: contents are not
    /// verified, see [`Store::fsck`]).
    pub fn blob_digests(&self) -> Result<Vec<Digest>, StoreError> {
        Ok(self.list_blobs()?.blobs)
    }

    pub(crate) fn list_blobs(&self) -> Result<BlobListing, StoreError> {
        let dir = self.blobs_dir();
        let mut out = BlobListing::default();
        for entry in std::fs::read_dir(&dir).at("listing", &dir)? {
            let entry = entry.at("listing", &dir)?;
            let is_file = match entry.file_type() {
                Ok(t) => t.is_file(),
                // Removed since the listing (a concurrent gc): not ours to report.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("reading type of", entry.path(), e)),
            };
            let name = entry.file_name();
            match name.to_str().map(Digest::from_hex) {
                Some(Ok(d)) if is_file => out.blobs.push(d),
                _ => out.strays.push(entry.path()),
            }
        }
        out.blobs.sort();
        out.strays.sort();
        Ok(out)
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Starts a new blob; see [`BlobWriter`].
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        let tmp_dir = self.tmp_dir();
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .at("creating temp file in", tmp_dir)?;
        Ok(BlobWriter {
            file: BufWriter::with_capacity(256 * 1024, tmp),
            hasher: Hasher::new(),
            size: 0,
            blobs_dir: self.blobs_dir(),
        })
    }

    /// Stores `bytes`, returning their digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let mut w = self.blob_writer()?;
        w.write_all(bytes).at("writing blob to", self.tmp_dir())?;
        Ok(w.commit()?.0)
    }

    /// Reads a whole blob and checks it against its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::new();
        self.open_blob(d)?
            .read_to_end(&mut bytes)
            .at("reading", self.blob_path(d))?;
        let actual = Digest::of(&bytes);
        if actual != *d {
            return Err(StoreError::Corrupt {
                digest: *d,
                path: self.blob_path(d),
                reason: format!("content hashes to {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Opens a blob for streaming (not verified: layers are large; the
    /// caller hashes if it needs to).
    pub fn open_blob(&self, d: &Digest) -> Result<std::fs::File, StoreError> {
        let path = self.blob_path(d);
        match std::fs::File::open(&path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::MissingBlob { digest: *d, path })
            }
            Err(e) => Err(StoreError::io("opening", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn count(dir: PathBuf) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let (_d, store) = store();
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"half a blob").unwrap();
        assert_eq!(count(store.tmp_dir()), 1);
        drop(w);
        assert_eq!(count(store.tmp_dir()), 0);
        assert_eq!(count(store.blobs_dir()), 0);
    }

    #[test]
    fn commit_twice_same_content() {
        let (_d, store) = store();
        let a = store.put_blob(b"hello").unwrap();
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"hel").unwrap();
        w.write_all(b"lo").unwrap();
        assert_eq!(w.commit().unwrap(), (a, 5));
        assert_eq!(a, Digest::of(b"hello"));
        assert!(store.has_blob(&a));
        assert_eq!(store.read_blob(&a).unwrap(), b"hello");
        assert_eq!(count(store.blobs_dir()), 1);
        assert_eq!(count(store.tmp_dir()), 0);
    }

    #[test]
    fn read_blob_detects_corruption_and_absence() {
        let (_d, store) = store();
        let a = store.put_blob(b"hello").unwrap();
        std::fs::write(store.blob_path(&a), b"jello").unwrap();
        let err = store.read_blob(&a).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        assert!(err.to_string().contains(&a.hex()), "{err}");
        let missing = Digest::of(b"nope");
        let err = store.read_blob(&missing).unwrap_err();
        assert!(matches!(err, StoreError::MissingBlob { .. }), "{err}");
    }
}

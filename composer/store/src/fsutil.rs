//! Atomic file writes and canonical JSON.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{IoContext, StoreError};

/// Writes `bytes` to `path` so that readers see either the old or the new
/// file, never a torn one: temp file in the same directory, fsync, rename,
/// fsync the directory (so the rename survives a crash).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    // `.` for a bare file name, whose parent is the empty path.
    let dir = compose_fs::parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .at("creating temp file in", dir)?;
    tmp.write_all(bytes)
        .at("writing", tmp.path().to_path_buf())?;
    make_private(tmp.as_file()).at("setting mode of", tmp.path().to_path_buf())?;
    tmp.as_file()
        .sync_all()
        .at("syncing", tmp.path().to_path_buf())?;
    tmp.persist(path)
        .map_err(|e| StoreError::io("renaming into place", path, e.error))?;
    sync_dir(dir)
}

/// Store files are private to the store's owner (0600, and the store's
/// top directory 0700, see `Store::open`): layer tars hold every file of
/// every image, /etc/shadow and private keys included. Tools reading the
/// store (skopeo) run as the same user as compose. Not part of any digest:
/// the modes of the store's own files are not content.
pub(crate) fn make_private(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

/// The mode of the store's top directory: nobody but its owner may
/// traverse it (see [`make_private`]).
pub(crate) const STORE_DIR_MODE: u32 = 0o700;

/// Takes group and other permissions off the store's top directory (a
/// store made by an older compose was 0755). Returns whether it changed.
pub(crate) fn restrict_dir(dir: &Path) -> Result<bool, StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)
        .at("inspecting", dir)?
        .permissions()
        .mode();
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(STORE_DIR_MODE))
        .at("restricting the mode of", dir)?;
    Ok(true)
}

/// fsyncs a directory so entries renamed into it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    Ok(compose_fs::sync_dir(dir)?)
}

/// Creates a directory and its parents; fine if it exists.
pub(crate) fn mkdir_p(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).at("creating directory", dir)
}

/// Serializes to canonical JSON: object keys sorted by bytes, no whitespace.
/// Sorting here (not relying on struct order or map types) keeps digests
/// stable whatever serde_json features other crates switch on.
pub(crate) fn canonical_json<T: Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    let v = serde_json::to_value(value)?;
    let mut out = Vec::new();
    write_value(&v, &mut out)?;
    Ok(out)
}

fn write_value(v: &serde_json::Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write_value(&map[k.as_str()], out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_recursively() {
        let v = serde_json::json!({"b": 1, "a": {"d": [true, null], "c": "x\"y"}});
        let out = canonical_json(&v).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"c":"x\"y","d":[true,null]},"b":1}"#
        );
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

//! Writing into an image root safely.
//!
//! Built-in layers (serial console, hostname, files) never touch the image
//! through host paths: they describe their changes as a small tar and hand
//! it to the store's extractor, which resolves every path inside the root
//! (openat2 RESOLVE_IN_ROOT). An image's own absolute symlink, say
//! `/etc/systemd -> /etc`, can therefore never steer a write onto the host.

use anyhow::{Context, Result};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

pub struct Edit {
    tar: tar::Builder<std::fs::File>,
    mtime: u64,
}

impl Edit {
    /// `mtime` is the build's SOURCE_DATE_EPOCH, so edits are reproducible.
    pub fn new(mtime: i64) -> Result<Edit> {
        let file = tempfile::tempfile().context("creating a temporary file")?;
        Ok(Edit {
            tar: tar::Builder::new(file),
            mtime: mtime.max(0) as u64,
        })
    }

    fn header(
        &self,
        kind: tar::EntryType,
        mode: u32,
        uid: u32,
        gid: u32,
        size: u64,
    ) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h.set_size(size);
        h.set_mtime(self.mtime);
        h
    }

    /// `path` is absolute in the image (`/etc/hostname`).
    pub fn file(
        &mut self,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        content: &[u8],
    ) -> Result<()> {
        let mut h = self.header(
            tar::EntryType::Regular,
            mode,
            uid,
            gid,
            content.len() as u64,
        );
        self.tar
            .append_data(&mut h, rel(path), content)
            .with_context(|| format!("adding {path}"))
    }

    /// Streams a host file's content (for `files` layers).
    pub fn file_from(
        &mut self,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        src: &Path,
    ) -> Result<()> {
        let f = std::fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
        let len = f.metadata()?.len();
        let mut h = self.header(tar::EntryType::Regular, mode, uid, gid, len);
        self.tar
            .append_data(&mut h, rel(path), f)
            .with_context(|| format!("adding {}", src.display()))
    }

    pub fn dir(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<()> {
        let mut h = self.header(tar::EntryType::Directory, mode, uid, gid, 0);
        self.tar
            .append_data(&mut h, format!("{}/", rel(path)), std::io::empty())
            .with_context(|| format!("adding {path}"))
    }

    pub fn symlink(&mut self, path: &str, target: &str, uid: u32, gid: u32) -> Result<()> {
        let mut h = self.header(tar::EntryType::Symlink, 0o777, uid, gid, 0);
        self.tar
            .append_link(&mut h, rel(path), target)
            .with_context(|| format!("adding symlink {path}"))
    }

    /// Deletes `path` when applied (an OCI whiteout).
    pub fn remove(&mut self, path: &str) -> Result<()> {
        let p = Path::new(rel(path));
        let name = p
            .file_name()
            .context("cannot remove the root")?
            .to_string_lossy();
        let wh = match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => {
                format!("{}/.wh.{name}", parent.display())
            }
            _ => format!(".wh.{name}"),
        };
        self.file(&wh, 0, 0, 0, b"")
    }

    /// Applies everything added so far to `root`.
    pub fn apply(self, root: &Path) -> Result<()> {
        let mut file = self.tar.into_inner().context("finishing the edit")?;
        file.flush()?;
        file.seek(SeekFrom::Start(0))?;
        compose_store::apply_layer(root, std::io::BufReader::new(file))
            .with_context(|| format!("writing into {}", root.display()))?;
        Ok(())
    }
}

fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// Reads a file of the image without following a symlink out of it: the
/// path's components must all be real (non-symlink) entries.
pub fn read_image_file(root: &Path, path: &str) -> Result<Option<Vec<u8>>> {
    let mut p = root.to_path_buf();
    for comp in Path::new(rel(path)).components() {
        p.push(comp);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }
    std::fs::read(&p)
        .map(Some)
        .with_context(|| format!("reading {}", p.display()))
}

/// Looks a user or group name up in the image's /etc/passwd or /etc/group
/// (the image's ids, not the host's). Numeric strings pass through.
pub fn image_id(root: &Path, db: &str, name: &str) -> Result<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    let text = read_image_file(root, db)?.unwrap_or_default();
    lookup_id(&String::from_utf8_lossy(&text), name).with_context(|| {
        format!("no entry {name:?} in the image's {db}: create it in an earlier layer or use a numeric id")
    })
}

pub fn lookup_id(db_text: &str, name: &str) -> Option<u32> {
    db_text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_in_passwd_and_group_text() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(lookup_id(passwd, "root"), Some(0));
        assert_eq!(lookup_id(passwd, "_apt"), Some(42));
        assert_eq!(lookup_id(passwd, "ro"), None);
        assert_eq!(lookup_id("broken", "broken"), None);
        let group = "root:x:0:\ntty:x:5:\n";
        assert_eq!(lookup_id(group, "tty"), Some(5));
    }
}

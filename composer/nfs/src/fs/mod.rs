//! The served tree: one [`ExportFs`] per export root and every
//! file-system call the protocol needs; file handles and the inode -> path
//! index behind them in `index`, cached directory listings in `listing`.
//!
//! Every path is opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
//! relative to the export's root descriptor, and the last component is
//! examined with fstatat(AT_SYMLINK_NOFOLLOW) or readlinkat on its parent:
//! the server never follows a symlink and never leaves the export.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};

mod index;
mod listing;

use index::Index;
pub use index::*;
use listing::Listing;

use crate::files::OpenFiles;
use crate::sys;
use crate::xdr::Enc;

// nfsstat3 values (RFC 1813 section 2.6).
pub const NFS3_OK: u32 = 0;
pub const NFS3ERR_NOENT: u32 = 2;
pub const NFS3ERR_IO: u32 = 5;
pub const NFS3ERR_ACCES: u32 = 13;
pub const NFS3ERR_NOTDIR: u32 = 20;
pub const NFS3ERR_ISDIR: u32 = 21;
pub const NFS3ERR_INVAL: u32 = 22;
pub const NFS3ERR_ROFS: u32 = 30;
pub const NFS3ERR_NAMETOOLONG: u32 = 63;
pub const NFS3ERR_STALE: u32 = 70;
pub const NFS3ERR_BADHANDLE: u32 = 10001;
pub const NFS3ERR_BAD_COOKIE: u32 = 10003;
pub const NFS3ERR_TOOSMALL: u32 = 10005;
pub const NFS3ERR_SERVERFAULT: u32 = 10006;
pub const NFS3ERR_JUKEBOX: u32 = 10008;

/// fattr3, straight from stat(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ftype: u32,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub used: u64,
    pub rdev: (u32, u32),
    pub fsid: u64,
    pub fileid: u64,
    pub atime: (u32, u32),
    pub mtime: (u32, u32),
    pub ctime: (u32, u32),
}

// ftype3
pub const NF3REG: u32 = 1;
pub const NF3DIR: u32 = 2;
pub const NF3BLK: u32 = 3;
pub const NF3CHR: u32 = 4;
pub const NF3LNK: u32 = 5;
pub const NF3SOCK: u32 = 6;
pub const NF3FIFO: u32 = 7;

pub fn ftype(mode: u32) -> u32 {
    match mode & 0o170000 {
        0o100000 => NF3REG,
        0o040000 => NF3DIR,
        0o060000 => NF3BLK,
        0o020000 => NF3CHR,
        0o120000 => NF3LNK,
        0o140000 => NF3SOCK,
        _ => NF3FIFO,
    }
}

fn time(sec: i64, nsec: i64) -> (u32, u32) {
    (
        sec.clamp(0, i64::from(u32::MAX)) as u32,
        nsec.clamp(0, 999_999_999) as u32,
    )
}

impl Attr {
    pub fn from_stat(st: &FileStat, fsid: u64) -> Attr {
        let mode = st.st_mode;
        let ftype = ftype(mode);
        let rdev = if ftype == NF3CHR || ftype == NF3BLK {
            (libc::major(st.st_rdev), libc::minor(st.st_rdev))
        } else {
            (0, 0)
        };
        Attr {
            ftype,
            mode: mode & 0o7777,
            nlink: st.st_nlink.min(u64::from(u32::MAX)) as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size.max(0) as u64,
            used: (st.st_blocks.max(0) as u64).saturating_mul(512),
            rdev,
            fsid,
            fileid: st.st_ino,
            atime: time(st.st_atime, st.st_atime_nsec),
            mtime: time(st.st_mtime, st.st_mtime_nsec),
            ctime: time(st.st_ctime, st.st_ctime_nsec),
        }
    }

    /// Full st_mode (type bits included), for the permission checks.
    pub fn full_mode(&self) -> u32 {
        let t = match self.ftype {
            NF3REG => 0o100000,
            NF3DIR => 0o040000,
            NF3BLK => 0o060000,
            NF3CHR => 0o020000,
            NF3LNK => 0o120000,
            NF3SOCK => 0o140000,
            _ => 0o010000,
        };
        t | self.mode
    }

    pub fn encode(&self, e: &mut Enc) {
        e.u32(self.ftype).u32(self.mode).u32(self.nlink);
        e.u32(self.uid).u32(self.gid);
        e.u64(self.size).u64(self.used);
        e.u32(self.rdev.0).u32(self.rdev.1);
        e.u64(self.fsid).u64(self.fileid);
        for t in [self.atime, self.mtime, self.ctime] {
            e.u32(t.0).u32(t.1);
        }
    }
}

/// Out of descriptors or memory: the call may well succeed later.
pub fn transient_errno(e: Errno) -> bool {
    matches!(
        e,
        Errno::EMFILE
            | Errno::ENFILE
            | Errno::ENOMEM
            | Errno::ENOBUFS
            | Errno::EAGAIN
            | Errno::EINTR
    )
}

/// [`transient_errno`] of an `io::Error`.
pub fn is_transient(e: &std::io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|n| transient_errno(Errno::from_raw(n)))
}

/// Maps an errno to the closest nfsstat3; a transient one is JUKEBOX (the
/// client waits and retries), never STALE (which a booted node cannot
/// recover from).
pub fn errno_stat(e: Errno) -> u32 {
    match e {
        e if transient_errno(e) => NFS3ERR_JUKEBOX,
        Errno::ENOENT => NFS3ERR_NOENT,
        Errno::ENOTDIR => NFS3ERR_NOTDIR,
        Errno::EACCES | Errno::EPERM => NFS3ERR_ACCES,
        Errno::EISDIR => NFS3ERR_ISDIR,
        Errno::ENAMETOOLONG => NFS3ERR_NAMETOOLONG,
        // a symlink or escape where an indexed path had a directory
        Errno::ELOOP | Errno::EXDEV => NFS3ERR_STALE,
        Errno::EINVAL => NFS3ERR_INVAL,
        _ => NFS3ERR_IO,
    }
}

/// A resolved object: its path below the export root and its stat.
#[derive(Debug, Clone)]
pub struct Obj {
    pub rel: Arc<PathBuf>,
    pub st: FileStat,
}

/// One export root, opened once.
#[derive(Debug)]
pub struct ExportFs {
    pub key: u64,
    /// Who may use it (see `Export::clients`); empty: everyone.
    pub clients: Vec<std::net::IpAddr>,
    /// Calls from unprivileged ports served too (see `Export::insecure`).
    pub insecure: bool,
    /// The path clients mount it as (to forget it once unpublished).
    pub path: String,
    root: OwnedFd,
    root_id: (u64, u64),
    index: Mutex<Index>,
    walk_lock: Mutex<()>,
    listings: Mutex<HashMap<(u64, u64), Listing>>,
    /// Descriptors of the files being read (see files.rs).
    files: OpenFiles,
}

fn dot(rel: &Path) -> &OsStr {
    if rel.as_os_str().is_empty() {
        OsStr::from_bytes(b".")
    } else {
        rel.as_os_str()
    }
}

impl ExportFs {
    /// Opens `dir`; the export key hashes the export path with the root's
    /// device, inode and birth time, so a root deleted and re-created at the
    /// same path gets a new key (old handles go STALE) while a restarted
    /// server computes the same key for the same root.
    pub fn open(path: &str, dir: &Path) -> std::io::Result<ExportFs> {
        let root: OwnedFd = nix::fcntl::open(
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let st = fstat(root.as_fd())?;
        let birth = std::fs::metadata(dir)
            .and_then(|m| m.created())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos().to_be_bytes())
            .unwrap_or_default();
        let key = fnv1a(&[
            path.as_bytes(),
            &st.st_dev.to_be_bytes(),
            &st.st_ino.to_be_bytes(),
            &birth,
        ]);
        Ok(ExportFs {
            key,
            clients: Vec::new(),
            insecure: false,
            path: path.to_owned(),
            root,
            root_id: (st.st_dev, st.st_ino),
            index: Mutex::new(Index::default()),
            walk_lock: Mutex::new(()),
            listings: Mutex::new(HashMap::new()),
            files: OpenFiles::default(),
        })
    }

    pub fn fsid(&self) -> u64 {
        self.key
    }

    pub fn handle(&self, st: &FileStat) -> Handle {
        Handle {
            export: self.key,
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }

    pub fn attr(&self, st: &FileStat) -> Attr {
        Attr::from_stat(st, self.fsid())
    }

    fn open_beneath(&self, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(Mode::empty())
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        openat2(self.root.as_fd(), dot(rel), how)
    }

    fn dir_fd(&self, rel: &Path) -> nix::Result<OwnedFd> {
        self.open_beneath(rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
    }

    /// stat of `rel` without following a final symlink.
    pub fn stat_rel(&self, rel: &Path) -> nix::Result<FileStat> {
        match (rel.parent(), rel.file_name()) {
            (Some(parent), Some(name)) => {
                let pfd = self.dir_fd(parent)?;
                fstatat(pfd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            }
            _ => fstat(self.root.as_fd()),
        }
    }

    pub fn root_obj(&self) -> nix::Result<Obj> {
        Ok(Obj {
            rel: Arc::new(PathBuf::new()),
            st: fstat(self.root.as_fd())?,
        })
    }

    /// LOOKUP of one name in `dir`; `..` of the root is the root.
    pub fn lookup(&self, dir: &Obj, name: &[u8]) -> Result<Obj, u32> {
        if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
            return Err(NFS3ERR_NOENT);
        }
        if name.len() > 255 {
            return Err(NFS3ERR_NAMETOOLONG);
        }
        if dir.st.st_mode & 0o170000 != 0o040000 {
            return Err(NFS3ERR_NOTDIR);
        }
        if name == b"." {
            return Ok(dir.clone());
        }
        if name == b".." {
            return self.parent(dir);
        }
        let rel = Arc::new(dir.rel.join(OsStr::from_bytes(name)));
        let dfd = self.dir_fd(&dir.rel).map_err(errno_stat)?;
        let st = fstatat(
            dfd.as_fd(),
            OsStr::from_bytes(name),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno_stat)?;
        self.remember(&st, &rel);
        Ok(Obj { rel, st })
    }

    pub fn parent(&self, dir: &Obj) -> Result<Obj, u32> {
        let prel = dir.rel.parent().map(Path::to_path_buf).unwrap_or_default();
        let st = self.stat_rel(&prel).map_err(errno_stat)?;
        Ok(Obj {
            rel: Arc::new(prel),
            st,
        })
    }

    /// The target of a symlink, unresolved.
    pub fn readlink(&self, obj: &Obj) -> Result<Vec<u8>, u32> {
        if obj.st.st_mode & 0o170000 != 0o120000 {
            return Err(NFS3ERR_INVAL);
        }
        let (Some(parent), Some(name)) = (obj.rel.parent(), obj.rel.file_name()) else {
            return Err(NFS3ERR_INVAL);
        };
        let pfd = self.dir_fd(parent).map_err(errno_stat)?;
        let target = nix::fcntl::readlinkat(pfd.as_fd(), name).map_err(errno_stat)?;
        Ok(target.as_bytes().to_vec())
    }

    /// Whether `client` may use this export (an empty list: anyone), as
    /// [`crate::Export::allows`] decides for the configured export.
    pub fn allows(&self, client: std::net::IpAddr) -> bool {
        self.clients.is_empty() || self.clients.contains(&client)
    }

    /// Whether a call from `peer` passes the source port check, as
    /// [`crate::Export::port_ok`] decides for the configured export.
    pub fn port_ok(&self, peer: std::net::SocketAddr) -> bool {
        self.insecure || crate::privileged(peer)
    }

    /// The kept descriptor of a file being read, by handle alone: no path
    /// is walked. `None` when it is not kept (or no longer that file).
    pub fn kept_file(&self, h: &Handle) -> Option<(Arc<OwnedFd>, FileStat)> {
        self.files.get((h.dev, h.ino))
    }

    /// A descriptor of the regular file `obj` (kept for the next READs)
    /// and its current stat.
    pub fn read_file(&self, obj: &Obj) -> Result<(Arc<OwnedFd>, FileStat), u32> {
        match obj.st.st_mode & 0o170000 {
            0o100000 => {}
            0o040000 => return Err(NFS3ERR_ISDIR),
            _ => return Err(NFS3ERR_INVAL),
        }
        let id = (obj.st.st_dev, obj.st.st_ino);
        if let Some(kept) = self.files.get(id) {
            return Ok(kept);
        }
        let fd = self
            .open_beneath(
                &obj.rel,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            )
            .map_err(errno_stat)?;
        let st = fstat(fd.as_fd()).map_err(errno_stat)?;
        if (st.st_dev, st.st_ino) != id {
            return Err(NFS3ERR_STALE);
        }
        let fd = Arc::new(fd);
        self.files.insert(id, Arc::clone(&fd));
        Ok((fd, st))
    }

    /// pread of a regular file, appended to `out` (the reply being built,
    /// so a 1 MiB READ is copied once, by the kernel): (bytes, eof).
    pub fn read_into(
        &self,
        obj: &Obj,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(usize, bool), u32> {
        let (fd, st) = self.read_file(obj)?;
        let size = st.st_size.max(0) as u64;
        let want = u64::from(count).min(size.saturating_sub(offset)) as usize;
        let start = out.len();
        while out.len() - start < want {
            let got = out.len() - start;
            match sys::pread_append(&fd, out, want - got, offset + got as u64, false) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    out.truncate(start);
                    return Err(errno_stat(Errno::from_raw(e.raw_os_error().unwrap_or(0))));
                }
            }
        }
        let got = out.len() - start;
        Ok((got, offset + got as u64 >= size))
    }

    pub fn statvfs(&self) -> Result<nix::sys::statvfs::Statvfs, u32> {
        nix::sys::statvfs::fstatvfs(self.root.as_fd()).map_err(errno_stat)
    }

    /// An O_PATH descriptor of a directory, for [`ExportFs::child`].
    pub fn open_dir(&self, dir: &Obj) -> Result<OwnedFd, u32> {
        self.dir_fd(&dir.rel).map_err(errno_stat)
    }

    /// Stat of an entry of `dir` (open as `dfd`) for READDIRPLUS; indexes it.
    pub fn child(&self, dfd: &OwnedFd, dir: &Obj, name: &[u8]) -> Result<Obj, u32> {
        if name == b"." || name == b".." {
            return self.lookup(dir, name);
        }
        let st = fstatat(
            dfd.as_fd(),
            OsStr::from_bytes(name),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno_stat)?;
        let rel = Arc::new(dir.rel.join(OsStr::from_bytes(name)));
        self.remember(&st, &rel);
        Ok(Obj { rel, st })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_stay_inside_and_dotdot_of_root_is_root() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("d/esc")).unwrap();
        let fs = ExportFs::open("/x", t.path()).unwrap();
        let root = fs.root_obj().unwrap();
        let up = fs.lookup(&root, b"..").unwrap();
        assert_eq!(up.st.st_ino, root.st.st_ino);
        let d = fs.lookup(&root, b"d").unwrap();
        let esc = fs.lookup(&d, b"esc").unwrap();
        assert_eq!(esc.st.st_mode & 0o170000, 0o120000, "symlink itself");
        assert_eq!(fs.readlink(&esc).unwrap(), b"/etc");
        // through the symlink: it is not a directory on the server side
        assert_eq!(fs.lookup(&esc, b"passwd").unwrap_err(), NFS3ERR_NOTDIR);
        assert_eq!(fs.lookup(&root, b"a/b").unwrap_err(), NFS3ERR_NOENT);
    }
}

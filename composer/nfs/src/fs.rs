//! The served tree: one [`ExportFs`] per export root, file handles, the
//! inode -> path index, and every file-system call the protocol needs.
//!
//! Every path is opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
//! relative to the export's root descriptor, and the last component is
//! examined with fstatat(AT_SYMLINK_NOFOLLOW) or readlinkat on its parent:
//! the server never follows a symlink and never leaves the export.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};

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

/// Bytes in every handle this server issues.
pub const HANDLE_LEN: usize = 32;
const HANDLE_MAGIC: u32 = 0x634e_4631; // "cNF1"

/// At most this many entries are indexed by one walk of an export.
pub const MAX_WALK_ENTRIES: usize = 4_000_000;

/// A decoded file handle: which export, which inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle {
    pub export: u64,
    pub dev: u64,
    pub ino: u64,
}

impl Handle {
    pub fn encode(&self) -> [u8; HANDLE_LEN] {
        let mut out = [0u8; HANDLE_LEN];
        out[0..4].copy_from_slice(&HANDLE_MAGIC.to_be_bytes());
        // bytes 4..8: reserved, zero
        out[8..16].copy_from_slice(&self.export.to_be_bytes());
        out[16..24].copy_from_slice(&self.dev.to_be_bytes());
        out[24..32].copy_from_slice(&self.ino.to_be_bytes());
        out
    }

    /// `None` for anything this server cannot have issued (BADHANDLE).
    pub fn decode(b: &[u8]) -> Option<Handle> {
        if b.len() != HANDLE_LEN || b[0..4] != HANDLE_MAGIC.to_be_bytes() || b[4..8] != [0; 4] {
            return None;
        }
        let word = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or_default());
        Some(Handle {
            export: word(8),
            dev: word(16),
            ino: word(24),
        })
    }
}

/// FNV-1a: a stable hash (std's hasher may change between Rust releases,
/// and handles must survive a rebuilt server).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // separator so ("ab","c") != ("a","bc")
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

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

#[derive(Debug, Default)]
struct Index {
    paths: HashMap<(u64, u64), Arc<PathBuf>>,
    walked: bool,
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

/// A directory's sorted entries, as of one state of the directory.
/// READDIR pages through a directory with cookies (positions), one call per
/// few hundred entries; without this cache every call re-read and re-sorted
/// the whole directory, so listing 20,000 entries took 30x longer than
/// nfs-ganesha (ci/bench/serve.sh, BENCHMARKS.md).
#[derive(Debug)]
struct Listing {
    /// mtime and ctime (s, ns) and size: any change to the entries moves
    /// at least the mtime, and then the listing is read again.
    state: [i64; 5],
    entries: Arc<Entries>,
}

/// (name, inode) of each entry, `.` and `..` first, then sorted by name.
pub type Entries = Vec<(Vec<u8>, u64)>;

/// Directories whose listings are kept; past that the cache starts over
/// (a boot reads a handful of directories, not thousands).
const LISTINGS: usize = 64;
/// Age (of mtime and ctime) before a directory's listing is cached.
const SETTLED_SECS: i64 = 2;

fn dir_state(st: &FileStat) -> [i64; 5] {
    [
        st.st_mtime,
        st.st_mtime_nsec,
        st.st_ctime,
        st.st_ctime_nsec,
        st.st_size,
    ]
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

    fn remember(&self, st: &FileStat, rel: &Arc<PathBuf>) {
        if let Ok(mut ix) = self.index.lock() {
            ix.paths.insert((st.st_dev, st.st_ino), Arc::clone(rel));
        }
    }

    fn indexed(&self, h: &Handle) -> Option<Arc<PathBuf>> {
        self.index.lock().ok()?.paths.get(&(h.dev, h.ino)).cloned()
    }

    /// Handle -> object. Misses after a restart rebuild the index by walking
    /// the export once; a handle still unknown after that is STALE.
    pub fn resolve(&self, h: &Handle) -> Result<Obj, u32> {
        if (h.dev, h.ino) == self.root_id {
            return self.root_obj().map_err(errno_stat);
        }
        let rel = match self.indexed(h) {
            Some(rel) => rel,
            None => {
                self.walk()?;
                self.indexed(h).ok_or(NFS3ERR_STALE)?
            }
        };
        match self.stat_rel(&rel) {
            Ok(st) if (st.st_dev, st.st_ino) == (h.dev, h.ino) => Ok(Obj { rel, st }),
            Err(e) if transient_errno(e) => Err(NFS3ERR_JUKEBOX),
            _ => Err(NFS3ERR_STALE),
        }
    }

    /// Indexes the whole export (bounded), once per export and server run:
    /// exports are immutable, so a later miss is a stale handle. A walk cut
    /// short by a transient error (out of descriptors) indexes what it
    /// found, is not marked done, and answers JUKEBOX: the next miss walks
    /// again.
    fn walk(&self) -> Result<(), u32> {
        let Ok(_guard) = self.walk_lock.lock() else {
            return Err(NFS3ERR_SERVERFAULT);
        };
        if self.index.lock().map(|ix| ix.walked).unwrap_or(true) {
            return Ok(());
        }
        let mut found: Vec<((u64, u64), Arc<PathBuf>)> = Vec::new();
        let outcome = self.walk_into(&mut found);
        if let Ok(mut ix) = self.index.lock() {
            for (k, v) in found {
                ix.paths.entry(k).or_insert(v);
            }
            ix.walked = outcome.is_ok();
        }
        outcome
    }

    /// Breadth-first from the root; `Err(JUKEBOX)` on a transient error.
    fn walk_into(&self, found: &mut Vec<((u64, u64), Arc<PathBuf>)>) -> Result<(), u32> {
        let cut = |e: Errno| -> Result<(), u32> {
            if transient_errno(e) {
                Err(NFS3ERR_JUKEBOX)
            } else {
                Ok(())
            }
        };
        let mut queue: VecDeque<(PathBuf, u64)> = VecDeque::new();
        queue.push_back((PathBuf::new(), self.root_id.0));
        while let Some((dir, dev)) = queue.pop_front() {
            let fd = match self.open_beneath(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(e) => {
                    cut(e)?;
                    continue;
                }
            };
            let mut d = match Dir::from_fd(fd) {
                Ok(d) => d,
                Err(e) => {
                    cut(e)?;
                    continue;
                }
            };
            let mut subdirs = Vec::new();
            for entry in d.iter() {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        cut(e)?;
                        break;
                    }
                };
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let rel = dir.join(OsStr::from_bytes(name));
                let is_dir = match entry.file_type() {
                    Some(t) => t == Type::Directory,
                    None => match self.stat_rel(&rel) {
                        Ok(st) => st.st_mode & 0o170000 == 0o040000,
                        Err(e) => {
                            cut(e)?;
                            false
                        }
                    },
                };
                if is_dir {
                    subdirs.push(rel.clone());
                }
                found.push(((dev, entry.ino()), Arc::new(rel)));
                if found.len() >= MAX_WALK_ENTRIES {
                    return Ok(());
                }
            }
            for sub in subdirs {
                // A mount point inside the export has another st_dev.
                let sdev = match self.stat_rel(&sub) {
                    Ok(st) => st.st_dev,
                    Err(e) => {
                        cut(e)?;
                        dev
                    }
                };
                queue.push_back((sub, sdev));
            }
        }
        Ok(())
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

    /// Directory entries sorted by name, `.` and `..` first:
    /// (name, inode). Sorted so cookies (positions) are stable.
    /// Cached while the directory's mtime, ctime and size stay the same.
    pub fn list(&self, dir: &Obj) -> Result<Arc<Entries>, u32> {
        if dir.st.st_mode & 0o170000 != 0o040000 {
            return Err(NFS3ERR_NOTDIR);
        }
        let id = (dir.st.st_dev, dir.st.st_ino);
        let state = dir_state(&dir.st);
        let lock = || self.listings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = lock().get(&id).filter(|l| l.state == state) {
            return Ok(l.entries.clone());
        }
        let entries = Arc::new(self.read_listing(dir)?);
        // Timestamps tick coarsely (jiffies): a directory changed in the
        // same tick as this read would keep its mtime. Cache only listings
        // of directories left alone for a while (exports are immutable
        // published roots, so that is nearly all of them).
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if now - dir.st.st_mtime.max(dir.st.st_ctime) < SETTLED_SECS {
            return Ok(entries);
        }
        let mut cache = lock();
        if cache.len() >= LISTINGS {
            cache.clear();
        }
        let listing = Listing {
            state,
            entries: entries.clone(),
        };
        cache.insert(id, listing);
        Ok(entries)
    }

    fn read_listing(&self, dir: &Obj) -> Result<Entries, u32> {
        let fd = self
            .open_beneath(&dir.rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(errno_stat)?;
        let mut d = Dir::from_fd(fd).map_err(errno_stat)?;
        let mut names: Vec<(Vec<u8>, u64)> = Vec::new();
        for entry in d.iter() {
            let entry = entry.map_err(errno_stat)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push((name.to_vec(), entry.ino()));
            }
        }
        names.sort();
        let parent = self.parent(dir)?;
        let mut out = Vec::with_capacity(names.len() + 2);
        out.push((b".".to_vec(), dir.st.st_ino));
        out.push((b"..".to_vec(), parent.st.st_ino));
        out.extend(names);
        Ok(out)
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
    fn handle_round_trip_and_rejects() {
        let h = Handle {
            export: 1,
            dev: 2,
            ino: u64::MAX,
        };
        assert_eq!(Handle::decode(&h.encode()), Some(h));
        assert_eq!(Handle::decode(&[0; 32]), None);
        assert_eq!(Handle::decode(&h.encode()[..31]), None);
    }

    #[test]
    fn fnv_is_stable() {
        // A changed constant would make every handle in the field STALE.
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }

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

    #[test]
    fn listing_is_cached_until_the_directory_changes() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("b"), b"").unwrap();
        let fs = ExportFs::open("/x", t.path()).unwrap();
        let fresh = fs.list(&fs.root_obj().unwrap()).unwrap();
        let again = fs.list(&fs.root_obj().unwrap()).unwrap();
        assert!(!Arc::ptr_eq(&fresh, &again), "just changed: not cached");
        // ctime cannot be set back, so let the directory settle for real.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let names = |l: &[(Vec<u8>, u64)]| l.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
        let first = fs.list(&fs.root_obj().unwrap()).unwrap();
        assert_eq!(names(&first), [&b"."[..], b"..", b"b"]);
        let again = fs.list(&fs.root_obj().unwrap()).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "unchanged directory: cached");
        std::fs::write(t.path().join("a"), b"").unwrap();
        let changed = fs.list(&fs.root_obj().unwrap()).unwrap();
        assert_eq!(names(&changed), [&b"."[..], b"..", b"a", b"b"]);
    }

    #[test]
    fn resolve_after_fresh_open_walks() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::fs::write(t.path().join("a/b/f"), b"x").unwrap();
        let fs = ExportFs::open("/x", t.path()).unwrap();
        let st = fs.stat_rel(Path::new("a/b/f")).unwrap();
        let h = fs.handle(&st);
        let fs2 = ExportFs::open("/x", t.path()).unwrap();
        assert_eq!(fs2.key, fs.key);
        let obj = fs2.resolve(&h).unwrap();
        assert_eq!(obj.rel.as_path(), Path::new("a/b/f"));
        let bogus = Handle { ino: 1, ..h };
        assert_eq!(fs2.resolve(&bogus).unwrap_err(), NFS3ERR_STALE);
    }
}

//! The RPC programs: PMAP v2, MOUNT v3 and NFS v3 (read-only).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;

use crate::exports::Misses;
use crate::fast::{read_result, Reply};
use crate::fs::*;
use crate::perm;
use crate::rpc::{self, Call, Cred};
use crate::xdr::{pad, Dec, Enc, XdrError};
use crate::{NfsEvent, Source, MOUNT_PROG, NFSACL_PROG, NFS_PROG, PMAP_PROG};

/// Largest READ / READDIR reply payload (FSINFO rtmax, dtpref).
pub const RTMAX: u32 = 1 << 20;
const DTPREF: u32 = 64 * 1024;

const IPPROTO_TCP: u32 = 6;

/// Shared server state.
pub struct Ctx {
    pub source: Source,
    pub port: u16,
    pub events: UnboundedSender<NfsEvent>,
    /// Open exports by key (exports.rs).
    pub(crate) exports: Mutex<HashMap<u64, Arc<ExportFs>>>,
    pub(crate) misses: Misses,
}

impl Ctx {
    pub fn new(source: Source, port: u16, events: UnboundedSender<NfsEvent>) -> Ctx {
        Ctx {
            source,
            port,
            events,
            exports: Mutex::new(HashMap::new()),
            misses: Misses::default(),
        }
    }

    fn event(&self, ev: NfsEvent) {
        let _ = self.events.send(ev);
    }

    fn resolve(&self, fh: &[u8], peer: SocketAddr) -> Result<(Arc<ExportFs>, Obj), u32> {
        let h = Handle::decode(fh).ok_or(NFS3ERR_BADHANDLE)?;
        let ex = self.export_of(h.export)?;
        // A private export's handles are no use to other clients either.
        if !ex.allows(peer.ip()) {
            return Err(NFS3ERR_ACCES);
        }
        let obj = ex.resolve(&h)?;
        Ok((ex, obj))
    }

    /// Answers one call; `None` means no reply at all (not a call).
    pub fn handle(&self, record: &[u8], peer: SocketAddr) -> Option<Reply> {
        self.answer(record, peer).map(Reply::bytes)
    }

    fn answer(&self, record: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
        let call = match rpc::parse_call(record) {
            Ok(c) => c,
            Err(e) => {
                self.event(NfsEvent::Error {
                    peer: Some(peer),
                    message: e.to_string(),
                });
                return None;
            }
        };
        if call.rpcvers != 2 {
            return Some(rpc::rpc_mismatch(call.xid).buf);
        }
        let Some(cred) = call.cred.clone() else {
            return Some(rpc::auth_error(call.xid, rpc::AUTH_BADCRED).buf);
        };
        if matches!(call.prog, NFS_PROG | NFSACL_PROG) && self.too_weak(&call, peer) {
            return Some(rpc::auth_error(call.xid, rpc::AUTH_TOOWEAK).buf);
        }
        let out = match call.prog {
            PMAP_PROG => self.pmap(&call),
            MOUNT_PROG => self.mount(&call, &cred, peer),
            NFS_PROG => self.nfs(&call, &cred, peer),
            NFSACL_PROG => self.nfsacl(&call, peer),
            _ => Ok(rpc::accepted(call.xid, rpc::PROG_UNAVAIL)),
        };
        Some(match out {
            Ok(e) => e.buf,
            Err(_) => rpc::accepted(call.xid, rpc::GARBAGE_ARGS).buf,
        })
    }

    /// An NFS or NFSACL call from an unprivileged port on a handle of an
    /// export that is not `insecure` (as knfsd's `secure`): the AUTH_UNIX
    /// credential is the client's word, and only root on the client can
    /// bind a port below 1024, so from any other port "uid 0" is anyone.
    /// NULL (a ping) stays open, as does everything of PMAP. A handle that
    /// names no export is left to the procedure (BADHANDLE or STALE, as
    /// knfsd answers it): it reaches no file.
    fn too_weak(&self, call: &Call, peer: SocketAddr) -> bool {
        if crate::privileged(peer) || call.proc_ == 0 {
            return false;
        }
        let key = Dec::new(call.args)
            .opaque(64)
            .ok()
            .and_then(Handle::decode)
            .map(|h| h.export);
        match key.and_then(|k| self.export_of(k).ok()) {
            Some(ex) => !ex.port_ok(peer),
            None => false,
        }
    }

    fn pmap(&self, call: &Call) -> Result<Enc, XdrError> {
        if call.vers != 2 {
            return Ok(rpc::prog_mismatch(call.xid, 2, 2));
        }
        let mut d = Dec::new(call.args);
        let mut e = rpc::accepted(call.xid, rpc::SUCCESS);
        let port = u32::from(self.port);
        match call.proc_ {
            0 => {}
            // SET / UNSET: nobody registers with us.
            1 | 2 => {
                e.bool(false);
            }
            3 => {
                let (prog, vers, prot) = (d.u32()?, d.u32()?, d.u32()?);
                let _port = d.u32()?;
                let ours = prot == IPPROTO_TCP
                    && match prog {
                        PMAP_PROG => vers == 2,
                        NFS_PROG => vers == 3,
                        MOUNT_PROG => vers == 3,
                        NFSACL_PROG => vers == 3,
                        _ => false,
                    };
                e.u32(if ours { port } else { 0 });
            }
            4 => {
                for (prog, vers) in [(PMAP_PROG, 2), (NFS_PROG, 3), (MOUNT_PROG, 3)] {
                    e.bool(true).u32(prog).u32(vers).u32(IPPROTO_TCP).u32(port);
                }
                e.bool(false);
            }
            _ => return Ok(rpc::accepted(call.xid, rpc::PROC_UNAVAIL)),
        }
        Ok(e)
    }

    fn mount(&self, call: &Call, cred: &Cred, peer: SocketAddr) -> Result<Enc, XdrError> {
        if call.vers != 3 {
            return Ok(rpc::prog_mismatch(call.xid, 3, 3));
        }
        let mut d = Dec::new(call.args);
        let mut e = rpc::accepted(call.xid, rpc::SUCCESS);
        match call.proc_ {
            0 | 4 => {}
            1 => {
                let path = String::from_utf8_lossy(d.opaque(1024)?).into_owned();
                match self.mnt(&path, cred, peer) {
                    Ok(h) => {
                        e.u32(0).opaque(&h.encode());
                        // auth flavors: AUTH_UNIX, AUTH_NONE
                        e.u32(2).u32(rpc::AUTH_UNIX).u32(rpc::AUTH_NONE);
                        self.event(NfsEvent::Mount { peer, export: path });
                    }
                    Err((stat, reason)) => {
                        e.u32(stat);
                        self.event(NfsEvent::Refused {
                            peer,
                            export: path,
                            reason,
                        });
                    }
                }
            }
            2 => {
                e.bool(false);
            }
            3 => {
                let path = String::from_utf8_lossy(d.opaque(1024)?).into_owned();
                self.event(NfsEvent::Unmount { peer, export: path });
            }
            5 => {
                // A node's private export is its business: listed to it
                // alone (showmount -e from elsewhere does not learn the
                // cluster's host names).
                let listed = self.source.exports().unwrap_or_default();
                for ex in listed.iter().filter(|ex| ex.allows(peer.ip())) {
                    e.bool(true).opaque(ex.path.as_bytes()).bool(false);
                }
                e.bool(false);
            }
            _ => return Ok(rpc::accepted(call.xid, rpc::PROC_UNAVAIL)),
        }
        Ok(e)
    }

    /// MNT: an export path, or a directory below one (libnfs mounts the
    /// directory holding the file it is asked for).
    fn mnt(&self, path: &str, cred: &Cred, peer: SocketAddr) -> Result<Handle, (u32, String)> {
        let want = path.trim_end_matches('/');
        let exports = self
            .source
            .exports()
            .map_err(|e| (10006, format!("listing the exports: {e}")))?;
        let found = exports.iter().find_map(|ex| {
            let base = ex.path.trim_end_matches('/');
            let rest = want.strip_prefix(base)?;
            (rest.is_empty() || rest.starts_with('/')).then_some((ex, rest))
        });
        let Some((ex, rest)) = found else {
            return Err((2, "not exported".into()));
        };
        if !ex.allows(peer.ip()) {
            return Err((13, format!("not exported to {}", peer.ip())));
        }
        // Opened first: a changed rule (client list, `insecure`) then holds
        // for the handles already issued too.
        let fs = self
            .open_export(ex)
            .map_err(|e| (10006, format!("{}: {e}", ex.dir.display())))?;
        if !fs.port_ok(peer) {
            // MNT3ERR_PERM, what mountd answers an insecure port
            return Err((1, format!("unprivileged source port {}", peer.port())));
        }
        let mut obj = fs.root_obj().map_err(|e| (10006, e.to_string()))?;
        for comp in rest.split('/').filter(|c| !c.is_empty()) {
            if comp == ".." {
                return Err((13, "`..` in mount path".into()));
            }
            // As a path walk would: the caller must be allowed to search
            // every directory above what it mounts.
            let a = fs.attr(&obj.st);
            if !perm::may_search(cred, a.full_mode(), a.uid, a.gid) {
                return Err((13, format!("{comp}: search permission denied")));
            }
            obj = fs
                .lookup(&obj, comp.as_bytes())
                .map_err(|s| (s, format!("{comp}: nfsstat {s}")))?;
        }
        if obj.st.st_mode & 0o170000 != 0o040000 {
            return Err((20, "not a directory".into()));
        }
        Ok(fs.handle(&obj.st))
    }

    /// NFSACL v3: every file's ACL is its mode bits, so GETACL answers
    /// "no ACL entries" (access and default) and the client falls back to
    /// the mode. Without this program the Linux client reports EOPNOTSUPP
    /// for ACL lookups, and overlayfs, which asks for the lower file's ACL
    /// on every permission check by a non-root user, then refuses exec and
    /// open to everyone but root on a node whose root is an overlay over
    /// our export (found by compose boot-test). SETACL: read-only.
    fn nfsacl(&self, call: &Call, peer: SocketAddr) -> Result<Enc, XdrError> {
        if call.vers != 3 {
            return Ok(rpc::prog_mismatch(call.xid, 3, 3));
        }
        let mut d = Dec::new(call.args);
        let mut e = rpc::accepted(call.xid, rpc::SUCCESS);
        match call.proc_ {
            0 => {}
            1 => {
                let fh = d.opaque(64)?;
                let mask = d.u32()?;
                match self.resolve(fh, peer) {
                    Ok((ex, obj)) => {
                        e.u32(NFS3_OK);
                        post_op(&mut e, Some(&ex.attr(&obj.st)));
                        // NFS_ACL | NFS_ACLCNT | NFS_DFACL | NFS_DFACLCNT
                        e.u32(mask & 0xf);
                        // access then default ACL: 0 entries, empty array
                        e.u32(0).u32(0).u32(0).u32(0);
                    }
                    Err(stat) => {
                        e.u32(stat);
                        e.bool(false);
                    }
                }
            }
            2 => {
                e.u32(NFS3ERR_ROFS);
                e.bool(false);
            }
            _ => return Ok(rpc::accepted(call.xid, rpc::PROC_UNAVAIL)),
        }
        Ok(e)
    }

    fn nfs(&self, call: &Call, cred: &Cred, peer: SocketAddr) -> Result<Enc, XdrError> {
        if call.vers != 3 {
            return Ok(rpc::prog_mismatch(call.xid, 3, 3));
        }
        let mut d = Dec::new(call.args);
        let mut e = rpc::accepted(call.xid, rpc::SUCCESS);
        if call.proc_ == 0 {
            return Ok(e);
        }
        // Write procedures: ROFS with empty wcc data, arguments unread.
        let empty_bools = match call.proc_ {
            2 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 21 => 2,
            14 => 4,
            15 => 3,
            _ => 0,
        };
        if empty_bools > 0 {
            e.u32(NFS3ERR_ROFS);
            for _ in 0..empty_bools {
                e.bool(false);
            }
            return Ok(e);
        }
        if call.proc_ > 21 {
            return Ok(rpc::accepted(call.xid, rpc::PROC_UNAVAIL));
        }
        let fh = d.opaque(64)?;
        // Arguments are decoded before the handle is resolved, so garbage is
        // GARBAGE_ARGS whatever the handle.
        let args = Args::decode(call.proc_, &mut d)?;
        // The reply is built on a copy of the (short) RPC header, so a
        // 1 MiB READ body is not copied again; a failed procedure's partial
        // body is dropped and `e` gets the status instead.
        let res = self.resolve(fh, peer).and_then(|(ex, obj)| {
            let mut body = Enc::with_capacity(256);
            body.buf.extend_from_slice(&e.buf);
            body.u32(NFS3_OK);
            self.nfs_proc(&ex, &obj, cred, &args, &mut body)?;
            Ok(body)
        });
        match res {
            Ok(body) => Ok(body),
            Err(stat) => {
                e.u32(stat);
                if call.proc_ != 1 {
                    e.bool(false); // post_op_attr / dir attributes: none
                }
                Ok(e)
            }
        }
    }

    fn nfs_proc(
        &self,
        ex: &ExportFs,
        obj: &Obj,
        cred: &Cred,
        args: &Args,
        e: &mut Enc,
    ) -> Result<(), u32> {
        let attr = ex.attr(&obj.st);
        match *args {
            Args::None => return Err(NFS3ERR_SERVERFAULT),
            Args::GetAttr => attr.encode(e),
            Args::Lookup(ref name) => {
                if !perm::may_search(cred, attr.full_mode(), attr.uid, attr.gid) {
                    return Err(NFS3ERR_ACCES);
                }
                let child = ex.lookup(obj, name)?;
                e.opaque(&ex.handle(&child.st).encode());
                post_op(e, Some(&ex.attr(&child.st)));
                post_op(e, Some(&attr));
            }
            Args::Access(req) => {
                post_op(e, Some(&attr));
                e.u32(perm::access3(
                    cred,
                    attr.full_mode(),
                    attr.uid,
                    attr.gid,
                    req,
                ));
            }
            Args::ReadLink => {
                let target = ex.readlink(obj)?;
                post_op(e, Some(&attr));
                e.opaque(&target);
            }
            Args::Read { offset, count } => {
                if attr.ftype == NF3REG
                    && !perm::may_read_file(cred, attr.full_mode(), attr.uid, attr.gid)
                {
                    return Err(NFS3ERR_ACCES);
                }
                // The data is read straight into the reply; count, eof and
                // the opaque's length are patched in after the read.
                let count = count.min(RTMAX);
                e.buf.reserve(128 + count as usize);
                post_op(e, Some(&attr));
                let at = e.len();
                read_result(e, 0, false);
                let (n, eof) = ex.read_into(obj, offset, count, &mut e.buf)?;
                e.buf.resize(e.len() + pad(n), 0);
                let mut fixed = Enc::with_capacity(12);
                read_result(&mut fixed, n, eof);
                e.buf[at..at + 12].copy_from_slice(&fixed.buf);
            }
            Args::ReadDir {
                cookie,
                verf,
                maxcount,
                plus,
            } => {
                if attr.ftype != NF3DIR {
                    return Err(NFS3ERR_NOTDIR);
                }
                if !perm::may_list(cred, attr.full_mode(), attr.uid, attr.gid) {
                    return Err(NFS3ERR_ACCES);
                }
                self.readdir(ex, obj, &attr, cookie, verf, maxcount, plus, e)?;
            }
            Args::FsStat => {
                let s = ex.statvfs()?;
                let frsize = s.fragment_size();
                post_op(e, Some(&attr));
                e.u64(s.blocks().saturating_mul(frsize));
                e.u64(s.blocks_free().saturating_mul(frsize));
                e.u64(s.blocks_available().saturating_mul(frsize));
                e.u64(s.files())
                    .u64(s.files_free())
                    .u64(s.files_available());
                e.u32(0);
            }
            Args::FsInfo => {
                post_op(e, Some(&attr));
                e.u32(RTMAX).u32(RTMAX).u32(4096);
                e.u32(RTMAX).u32(RTMAX).u32(4096);
                e.u32(DTPREF).u64(u64::MAX).u32(0).u32(1);
                // FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME
                e.u32(0x1 | 0x2 | 0x8 | 0x10);
            }
            Args::PathConf => {
                post_op(e, Some(&attr));
                e.u32(65000).u32(255);
                e.bool(true).bool(true).bool(false).bool(true);
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn readdir(
        &self,
        ex: &ExportFs,
        dir: &Obj,
        attr: &Attr,
        cookie: u64,
        verf: [u8; 8],
        maxcount: u32,
        plus: bool,
        e: &mut Enc,
    ) -> Result<(), u32> {
        let cur_verf = cookie_verf(&dir.st);
        if cookie != 0 && verf != [0; 8] && verf != cur_verf {
            return Err(NFS3ERR_BAD_COOKIE);
        }
        let entries = ex.list(dir)?;
        let start = usize::try_from(cookie).map_err(|_| NFS3ERR_BAD_COOKIE)?;
        if start > entries.len() {
            return Err(NFS3ERR_BAD_COOKIE);
        }
        let limit = maxcount.min(RTMAX) as usize;
        // post_op_attr + verifier + list end + eof
        let mut size = 88 + 8 + 4 + 4;
        let mut body = Enc::with_capacity(limit.min(64 * 1024));
        let mut n = 0;
        let mut eof = true;
        let dfd = if plus { Some(ex.open_dir(dir)?) } else { None };
        for (i, (name, ino)) in entries.iter().enumerate().skip(start) {
            let mut entry = Enc::with_capacity(160);
            entry.bool(true).u64(*ino).opaque(name).u64(i as u64 + 1);
            if let Some(dfd) = &dfd {
                match ex.child(dfd, dir, name) {
                    Ok(child) => {
                        post_op(&mut entry, Some(&ex.attr(&child.st)));
                        entry.bool(true).opaque(&ex.handle(&child.st).encode());
                    }
                    // vanished meanwhile: list it without attributes
                    Err(_) => {
                        entry.bool(false).bool(false);
                    }
                }
            }
            debug_assert!(entry.len() >= 24 + name.len() + pad(name.len()));
            if size + entry.len() > limit {
                eof = false;
                break;
            }
            size += entry.len();
            body.buf.extend_from_slice(&entry.buf);
            n += 1;
        }
        if n == 0 && !eof {
            return Err(NFS3ERR_TOOSMALL);
        }
        post_op(e, Some(attr));
        e.fixed(&cur_verf);
        e.buf.extend_from_slice(&body.buf);
        e.bool(false).bool(eof);
        Ok(())
    }
}

pub(crate) fn post_op(e: &mut Enc, a: Option<&Attr>) {
    match a {
        Some(a) => {
            e.bool(true);
            a.encode(e);
        }
        None => {
            e.bool(false);
        }
    }
}

/// A directory's cookie verifier: changes when the directory does.
fn cookie_verf(st: &nix::sys::stat::FileStat) -> [u8; 8] {
    let v = fnv1a(&[
        &st.st_ino.to_be_bytes(),
        &st.st_mtime.to_be_bytes(),
        &st.st_mtime_nsec.to_be_bytes(),
        &st.st_size.to_be_bytes(),
    ]);
    (v | 1).to_be_bytes()
}

/// Decoded arguments after the leading file handle.
enum Args {
    None,
    GetAttr,
    Lookup(Vec<u8>),
    Access(u32),
    ReadLink,
    Read {
        offset: u64,
        count: u32,
    },
    ReadDir {
        cookie: u64,
        verf: [u8; 8],
        maxcount: u32,
        plus: bool,
    },
    FsStat,
    FsInfo,
    PathConf,
}

impl Args {
    fn decode(proc_: u32, d: &mut Dec) -> Result<Args, XdrError> {
        Ok(match proc_ {
            1 => Args::GetAttr,
            3 => Args::Lookup(d.opaque(1024)?.to_vec()),
            4 => Args::Access(d.u32()?),
            5 => Args::ReadLink,
            6 => Args::Read {
                offset: d.u64()?,
                count: d.u32()?,
            },
            16 | 17 => {
                let cookie = d.u64()?;
                let mut verf = [0u8; 8];
                verf.copy_from_slice(d.fixed(8)?);
                let first = d.u32()?;
                let maxcount = if proc_ == 17 { d.u32()? } else { first };
                Args::ReadDir {
                    cookie,
                    verf,
                    maxcount,
                    plus: proc_ == 17,
                }
            }
            18 => Args::FsStat,
            19 => Args::FsInfo,
            20 => Args::PathConf,
            _ => Args::None,
        })
    }
}

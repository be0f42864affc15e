//! Helpers shared by the integration tests: a server on its own runtime
//! thread, a minimal RPC client, the libnfs command-line clients.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use compose_nfs::rpc::{encode_call, Cred};
use compose_nfs::xdr::{Dec, Enc};
use compose_nfs::{ExportSource, Limits, NfsEvent, NfsServer};
use tokio::sync::{mpsc, oneshot};

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub events: std::sync::mpsc::Receiver<NfsEvent>,
}

impl Running {
    pub fn start(source: Arc<dyn ExportSource>) -> Running {
        Running::start_with(source, None)
    }

    /// With `limits` instead of the defaults.
    pub fn start_with(source: Arc<dyn ExportSource>, limits: Option<Limits>) -> Running {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (ev_tx, ev_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = NfsServer::bind_dynamic("127.0.0.1:0".parse().unwrap(), source)
                    .await
                    .unwrap();
                let server = match limits {
                    Some(l) => server.limits(l),
                    None => server,
                };
                addr_tx.send(server.local_addr()).unwrap();
                let (tx, mut rx) = mpsc::unbounded_channel();
                tokio::spawn(async move {
                    while let Some(ev) = rx.recv().await {
                        let _ = ev_tx.send(ev);
                    }
                });
                server
                    .run(tx, async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Running {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            events: ev_rx,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn events(&self) -> Vec<NfsEvent> {
        self.events.try_iter().collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fails (never skips) a privileged-tier test run without root.
pub fn require_root(why: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root ({why}): run `sudo cargo test -p compose-nfs -- --ignored`"
    );
}

/// Runs a libnfs client binary (bounded by `timeout`), failing clearly when
/// it is not installed.
pub fn libnfs(bin: &str, args: &[&str]) -> Output {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{bin} not found: install libnfs-utils (ci/setup does)"
    );
    Command::new("timeout")
        .arg("30")
        .arg(bin)
        .args(args)
        .output()
        .unwrap()
}

pub fn url(r: &Running, path: &str, extra: &str) -> String {
    let p = r.port();
    format!("nfs://127.0.0.1{path}?nfsport={p}&mountport={p}&version=3{extra}")
}

/// A minimal synchronous RPC client over one TCP connection.
pub struct Client {
    s: TcpStream,
    xid: u32,
    pub cred: Option<Cred>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            s,
            xid: 1,
            cred: Some(Cred::root()),
        }
    }

    /// Sends a call; returns the reply after the accept_stat (asserted 0).
    pub fn call(&mut self, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let (stat, body) = self.call_raw(prog, vers, proc_, args);
        assert_eq!(stat, 0, "accept_stat");
        body
    }

    /// From a reserved source port (below 1024, as root's NFS clients
    /// use): needs root (CAP_NET_BIND_SERVICE). Tries a few ports, since
    /// one may be taken or in TIME_WAIT.
    pub fn connect_privileged(addr: SocketAddr) -> Client {
        use socket2::{Domain, Socket, Type};
        for port in (600..1000).rev().step_by(7).take(40) {
            let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let local = SocketAddr::from(([127, 0, 0, 1], port));
            if sock.bind(&local.into()).is_err() {
                continue;
            }
            sock.connect(&addr.into()).unwrap();
            let s: TcpStream = sock.into();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            return Client {
                s,
                xid: 1,
                cred: Some(Cred::root()),
            };
        }
        panic!("no reserved port could be bound: run as root (the privileged tier)");
    }

    /// Sends a call; returns the whole reply record (xid checked).
    pub fn reply(&mut self, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        self.xid += 1;
        let rec = encode_call(self.xid, prog, vers, proc_, self.cred.as_ref(), args);
        let mut out = ((rec.len() as u32) | 0x8000_0000).to_be_bytes().to_vec();
        out.extend_from_slice(&rec);
        self.s.write_all(&out).unwrap();
        let mut mark = [0u8; 4];
        self.s.read_exact(&mut mark).unwrap();
        let len = (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize;
        let mut body = vec![0u8; len];
        self.s.read_exact(&mut body).unwrap();
        assert_eq!(Dec::new(&body).u32().unwrap(), self.xid);
        body
    }

    /// (accept_stat, rest) for an accepted reply.
    pub fn call_raw(&mut self, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> (u32, Vec<u8>) {
        let body = self.reply(prog, vers, proc_, args);
        let mut d = Dec::new(&body);
        d.u32().unwrap();
        assert_eq!(d.u32().unwrap(), 1, "reply");
        assert_eq!(d.u32().unwrap(), 0, "accepted");
        d.u32().unwrap();
        d.opaque(400).unwrap();
        let stat = d.u32().unwrap();
        (stat, d.rest().to_vec())
    }

    pub fn mnt(&mut self, path: &str) -> Result<Vec<u8>, u32> {
        let mut a = Enc::new();
        a.opaque(path.as_bytes());
        let r = self.call(100005, 3, 1, &a.buf);
        let mut d = Dec::new(&r);
        match d.u32().unwrap() {
            0 => Ok(d.opaque(64).unwrap().to_vec()),
            s => Err(s),
        }
    }

    /// GETATTR: Ok(fattr3 fields as u32/u64 words) or the nfsstat3.
    pub fn getattr(&mut self, fh: &[u8]) -> Result<Fattr, u32> {
        let mut a = Enc::new();
        a.opaque(fh);
        let r = self.call(100003, 3, 1, &a.buf);
        let mut d = Dec::new(&r);
        match d.u32().unwrap() {
            0 => Ok(Fattr::decode(&mut d)),
            s => Err(s),
        }
    }

    pub fn lookup(&mut self, dir: &[u8], name: &str) -> Result<(Vec<u8>, Fattr), u32> {
        let mut a = Enc::new();
        a.opaque(dir).opaque(name.as_bytes());
        let r = self.call(100003, 3, 3, &a.buf);
        let mut d = Dec::new(&r);
        match d.u32().unwrap() {
            0 => {
                let fh = d.opaque(64).unwrap().to_vec();
                assert!(d.bool().unwrap());
                Ok((fh, Fattr::decode(&mut d)))
            }
            s => Err(s),
        }
    }

    pub fn walk(&mut self, root: &[u8], path: &str) -> Vec<u8> {
        let mut fh = root.to_vec();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            fh = self
                .lookup(&fh, c)
                .unwrap_or_else(|s| panic!("lookup {c}: {s}"))
                .0;
        }
        fh
    }

    pub fn access(&mut self, fh: &[u8], want: u32) -> Result<u32, u32> {
        let mut a = Enc::new();
        a.opaque(fh).u32(want);
        let r = self.call(100003, 3, 4, &a.buf);
        let mut d = Dec::new(&r);
        match d.u32().unwrap() {
            0 => {
                if d.bool().unwrap() {
                    Fattr::decode(&mut d);
                }
                Ok(d.u32().unwrap())
            }
            s => Err(s),
        }
    }

    pub fn read(&mut self, fh: &[u8], offset: u64, count: u32) -> Result<(Vec<u8>, bool), u32> {
        let mut a = Enc::new();
        a.opaque(fh).u64(offset).u32(count);
        let r = self.call(100003, 3, 6, &a.buf);
        let mut d = Dec::new(&r);
        match d.u32().unwrap() {
            0 => {
                if d.bool().unwrap() {
                    Fattr::decode(&mut d);
                }
                let _n = d.u32().unwrap();
                let eof = d.bool().unwrap();
                Ok((d.opaque(u32::MAX).unwrap().to_vec(), eof))
            }
            s => Err(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fattr {
    pub ftype: u32,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub rdev: (u32, u32),
    pub fileid: u64,
}

impl Fattr {
    pub fn decode(d: &mut Dec) -> Fattr {
        let (ftype, mode, nlink, uid, gid) = (
            d.u32().unwrap(),
            d.u32().unwrap(),
            d.u32().unwrap(),
            d.u32().unwrap(),
            d.u32().unwrap(),
        );
        let size = d.u64().unwrap();
        let _used = d.u64().unwrap();
        let rdev = (d.u32().unwrap(), d.u32().unwrap());
        let _fsid = d.u64().unwrap();
        let fileid = d.u64().unwrap();
        for _ in 0..6 {
            d.u32().unwrap();
        }
        Fattr {
            ftype,
            mode,
            nlink,
            uid,
            gid,
            size,
            rdev,
            fileid,
        }
    }
}

/// Deterministic pseudo-random bytes.
pub fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The standard test tree. Returns its root.
pub fn tree(base: &Path) -> PathBuf {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let root = base.join("root");
    std::fs::create_dir_all(root.join("dir/nested")).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello world\n").unwrap();
    std::fs::write(root.join("dir/nested/deep.txt"), b"deep\n").unwrap();
    std::fs::hard_link(root.join("hello.txt"), root.join("dir/hardlink.txt")).unwrap();
    symlink("hello.txt", root.join("link")).unwrap();
    symlink("/etc/passwd", root.join("abs")).unwrap();
    std::fs::write(root.join("big.bin"), noise(5 * 1024 * 1024 + 123)).unwrap();
    std::fs::write(root.join("secret"), b"root only\n").unwrap();
    std::fs::set_permissions(root.join("secret"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::write(root.join("suid"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::create_dir(root.join("sticky")).unwrap();
    std::fs::set_permissions(root.join("sticky"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    root
}

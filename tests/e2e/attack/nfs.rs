//! Attacks: nfs (see SECURITY.md). Each runs a real `compose serve` in a
//! server namespace and attacks its NFS server from the client namespace.

use super::usage;
use crate::fixture;
use crate::serve::published_tree;
use compose_e2e::netns::*;
use compose_e2e::*;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A published tree with node01's own files (`compose nodes regen`), serve
/// running on it in `net`'s server namespace, the client at 10.77.0.11.
/// Returns (scratch dir, tree, root, serve).
fn serving(net: &Net, prefix: &str) -> (tempfile::TempDir, PathBuf, PathBuf, Serve) {
    let f = fixture();
    let (dir, tree, root, nodes) = published_tree(prefix);
    let out = Command::new(compose_bin())
        .arg("--store")
        .arg(&f.store)
        .arg("--root")
        .arg(&tree)
        .args(["nodes", "regen"])
        .env("COMPOSE_NODES", &nodes)
        .output()
        .unwrap();
    ok(&out);
    net.client_address("10.77.0.11/24");
    let log = dir.path().join("serve.log");
    let serve = Serve::start(net, &tree, &nodes, &[], &log);
    wait_for(&log, "nfs on tcp", 20);
    (dir, tree, root, serve)
}

/// `nfs-cat` of `path` on the server (absolute, export path included),
/// claiming uid 0, run in the client namespace, as `user` (None: root).
fn nfs_cat(net: &Net, path: &Path, user: Option<u32>) -> Output {
    let url = format!("nfs://10.77.0.1{}?version=3&uid=0&gid=0", path.display());
    let mut args: Vec<String> = vec!["timeout".into(), "30".into()];
    if let Some(id) = user {
        args.extend([
            "setpriv".into(),
            format!("--reuid={id}"),
            format!("--regid={id}"),
            "--clear-groups".into(),
        ]);
    }
    args.extend(["nfs-cat".into(), url]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    net.in_cli(&args)
}

/// A user on a node (no root, so no port below 1024) runs libnfs claiming
/// uid 0: the image's /etc/shadow and the node's private ssh host key
/// (its overlay.cpio, from its own address) stay unread. Root on the node
/// (libnfs binds a reserved port) still reads both.
#[test]
fn attack_nfs_unprivileged_port_claims_root() {
    require_program("nfs-cat", "libnfs-utils");
    require_program("setpriv", "util-linux");
    let net = Net::new("na");
    let (dir, tree, root, serve) = serving(&net, "compose-attack-nfs-port-");
    let shadow = root.join("etc/shadow");
    let cpio = tree.join("cluster/boot/node01/overlay.cpio");

    for target in [&shadow, &cpio] {
        let out = nfs_cat(&net, target, Some(65534));
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "nobody read {} through a uid-0 claim ({} bytes): {}",
            target.display(),
            out.stdout.len(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let log = wait_for(
        &dir.path().join("serve.log"),
        "unprivileged source port",
        10,
    );
    assert!(log.contains("event=nfs.refused"), "{log}");

    // The legitimate path: root on the node, from a reserved port.
    let out = nfs_cat(&net, &shadow, None);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("root:"),
        "root could not read /etc/shadow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = nfs_cat(&net, &cpio, None);
    assert!(
        out.stdout.starts_with(b"070701") && out.stdout == fs::read(&cpio).unwrap(),
        "root could not read its overlay.cpio: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop_clean(serve);
}

/// SIGTERM, and a clean exit.
fn stop_clean(serve: Serve) {
    let status = serve.stop();
    assert!(status.success(), "serve exited with {status}");
}

/// `now` is at most `extra` above `before`.
fn bounded(what: &str, before: usize, now: usize, extra: usize) {
    assert!(
        now <= before + extra,
        "serve's {what} grew from {before} to {now}"
    );
}

/// Runs `f` on a thread inside network namespace `ns`: the sockets it
/// opens live there (and stay there when handed back).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = fs::File::open(&path).unwrap();
        // SAFETY: setns(2) with a namespace descriptor we hold open; it
        // moves only this (fresh, short-lived) thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// A TCP connection to the server's port 111 from `local` (an address of
/// the client namespace; port 0: any), made in the calling thread's
/// namespace.
fn connect_from(local: SocketAddrV4) -> std::io::Result<TcpStream> {
    let sa = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket(2) returns a new descriptor or -1; on success it is
    // owned by the OwnedFd at once, so every path closes it.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let (me, server) = (
        sa(local),
        sa(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 111)),
    );
    // SAFETY: bind/connect read `len` bytes of the sockaddr_in we pass.
    if unsafe { libc::bind(fd, std::ptr::addr_of!(me).cast(), len) } != 0
        || unsafe { libc::connect(fd, std::ptr::addr_of!(server).cast(), len) } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(TcpStream::from(owned))
}

/// One RPC call record, framed, with an AUTH_UNIX root credential.
fn rpc_call(xid: u32, prog: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut put = |v: u32| body.extend_from_slice(&v.to_be_bytes());
    // xid, CALL, RPC 2, program, version 3, procedure
    for v in [xid, 0, 2, prog, 3, proc_] {
        put(v);
    }
    // AUTH_UNIX: stamp, machine "", uid 0, gid 0, no groups; verifier none
    for v in [1, 20, 0, 0, 0, 0, 0, 0, 0] {
        put(v);
    }
    body.extend_from_slice(args);
    let mut rec = (0x8000_0000 | body.len() as u32).to_be_bytes().to_vec();
    rec.extend_from_slice(&body);
    rec
}

/// XDR opaque<>: length, bytes, padding.
fn opaque(b: &[u8]) -> Vec<u8> {
    let mut out = (b.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(b);
    out.resize(out.len() + (4 - b.len() % 4) % 4, 0);
    out
}

/// Sends one call and returns the results after a successful accepted
/// reply's header: the procedure's status first.
fn rpc(s: &mut TcpStream, prog: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    s.write_all(&rpc_call(1, prog, proc_, args)).unwrap();
    let mut mark = [0u8; 4];
    s.read_exact(&mut mark).unwrap();
    let mut body = vec![0u8; (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize];
    s.read_exact(&mut body).unwrap();
    // xid, REPLY, MSG_ACCEPTED, verifier (AUTH_NONE, 0), SUCCESS
    assert_eq!(
        &body[4..24],
        &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    body.split_off(24)
}

/// The handle in a MNT or LOOKUP result (status 0, then the handle).
fn handle_in(res: &[u8]) -> Vec<u8> {
    assert_eq!(&res[..4], &[0, 0, 0, 0], "status OK");
    let len = u32::from_be_bytes(res[4..8].try_into().unwrap()) as usize;
    res[8..8 + len].to_vec()
}

/// The biggest regular file of `root` reached through real directories
/// only (what LOOKUP walks), as its path below `root`.
fn biggest_file(root: &Path) -> PathBuf {
    let mut best = (0, PathBuf::new());
    let mut dirs = vec![PathBuf::new()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(root.join(&d)).unwrap().flatten() {
            let md = e.path().symlink_metadata().unwrap();
            let rel = d.join(e.file_name());
            if md.is_dir() {
                dirs.push(rel);
            } else if md.is_file() && md.len() > best.0 && md.mode() & 0o004 != 0 {
                best = (md.len(), rel);
            }
        }
    }
    best.1
}

/// Every address but the node's: other machines on the boot LAN.
const ATTACKERS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 77, 0, 12), Ipv4Addr::new(10, 77, 0, 13)];

/// [`serving`], with the [`ATTACKERS`]' addresses in the client namespace
/// too: (net, scratch dir, root, serve).
fn under_attack(tag: &str, prefix: &str) -> (Net, tempfile::TempDir, PathBuf, Serve) {
    require_program("nfs-cat", "libnfs-utils");
    let net = Net::new(tag);
    let (dir, _tree, root, serve) = serving(&net, prefix);
    for a in ATTACKERS {
        net.client_address(&format!("{a}/24"));
    }
    (net, dir, root, serve)
}

/// 1100 connections that never send a call (what exhausted the 1024
/// descriptors before): each attacking address gets its per-address
/// share, the rest are closed at once, the server's descriptors stay
/// bounded, and the node still reads files as root.
#[test]
fn attack_nfs_connection_flood() {
    let (net, _dir, root, serve) = under_attack("nf", "compose-attack-nfs-flood-");
    let pid = serve.0.id();
    let before = usage(pid);
    let held = in_netns(&net.cli, || {
        let mut held = Vec::new();
        for i in 0..1100 {
            let from = SocketAddrV4::new(ATTACKERS[i % 2], 0);
            if let Ok(s) = connect_from(from) {
                held.push(s);
            }
        }
        held
    });
    // The server sees the last ones a moment later: poll (bounded).
    let mut during = usage(pid);
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        during = usage(pid);
    }
    let out = nfs_cat(&net, &root.join("etc/motd"), None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "minimal compose node\n",
        "the node's read failed during the flood: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "flood: {} connections made; serve fds {} -> {}, threads {} -> {}, RSS {} -> {} KiB",
        held.len(),
        before.fds,
        during.fds,
        before.threads,
        during.threads,
        before.rss_kib,
        during.rss_kib
    );
    // 32 per address (compose_nfs::Limits) for the two attackers.
    bounded("descriptors", before.fds, during.fds, 2 * 32 + 8);
    drop(held);
    stop_clean(serve);
}

/// 40 connections (from two other machines, root there: reserved ports)
/// pipeline 1 MiB READs of the image's biggest file and never read a
/// reply. The node reads the same file whole meanwhile; serve's threads
/// and memory stay bounded (they grew to ~1000 threads and 1.1 GB before).
#[test]
fn attack_nfs_slow_readers() {
    let (net, _dir, root, serve) = under_attack("ns", "compose-attack-nfs-slow-");
    let big = biggest_file(&root);
    let size = fs::metadata(root.join(&big)).unwrap().len();
    assert!(size >= 1 << 20, "{} is only {size} bytes", big.display());
    let pid = serve.0.id();
    let before = usage(pid);
    let export = root.to_string_lossy().into_owned();
    let comps: Vec<String> = big
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let writers = in_netns(&net.cli, move || {
        let mut writers = Vec::new();
        for i in 0..40u16 {
            let from = SocketAddrV4::new(ATTACKERS[usize::from(i % 2)], 600 + i);
            let mut s = connect_from(from).unwrap();
            let mut fh = handle_in(&rpc(&mut s, 100_005, 1, &opaque(export.as_bytes())));
            for c in &comps {
                let mut args = opaque(&fh);
                args.extend(opaque(c.as_bytes()));
                fh = handle_in(&rpc(&mut s, 100_003, 3, &args));
            }
            s.set_write_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            writers.push(std::thread::spawn(move || {
                let mut sent = 0u32;
                for n in 0..100_000u32 {
                    let mut args = opaque(&fh);
                    args.extend(((u64::from(n) % (size >> 20)) << 20).to_be_bytes());
                    args.extend((1u32 << 20).to_be_bytes());
                    if s.write_all(&rpc_call(n, 100_003, 6, &args)).is_err() {
                        break;
                    }
                    sent += 1;
                }
                (s, sent)
            }));
        }
        writers
    });
    // The node reads the whole file while they wait.
    let out = nfs_cat(&net, &root.join(&big), None);
    assert!(
        out.stdout == fs::read(root.join(&big)).unwrap(),
        "the node's read of {} failed ({} bytes): {}",
        big.display(),
        out.stdout.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    let during = usage(pid);
    let stalled: Vec<(TcpStream, u32)> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let after = usage(pid);
    eprintln!(
        "slow readers: calls sent {:?}; serve threads {} -> {} -> {}, RSS {} -> {} -> {} KiB, fds {} -> {}",
        stalled.iter().map(|s| s.1).collect::<Vec<_>>(),
        before.threads,
        during.threads,
        after.threads,
        before.rss_kib,
        during.rss_kib,
        after.rss_kib,
        before.fds,
        after.fds
    );
    assert!(
        stalled.iter().all(|s| s.1 < 100_000),
        "serve kept reading calls it could not answer"
    );
    for u in [during, after] {
        bounded("threads", before.threads, u.threads, 24);
        // A 4 MiB reply budget per connection: 160 MiB at most for 40.
        bounded(
            "RSS (KiB)",
            before.rss_kib as usize,
            u.rss_kib as usize,
            200 * 1024,
        );
    }
    drop(stalled);
    stop_clean(serve);
}

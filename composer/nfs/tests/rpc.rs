//! Protocol-level tests with the minimal client in `common`: stable handles
//! across restarts, exact attributes, permission checks, PMAP, MOUNT.

mod common;

use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use common::*;
use compose_nfs::rpc::Cred;
use compose_nfs::xdr::{Dec, Enc};
use compose_nfs::{Export, ExportFn, NfsEvent};

const EXPORT: &str = "/srv/compose/roots/abc123";
const ACCES: u32 = 13;
const NOTDIR: u32 = 20;
const ROFS: u32 = 30;
const STALE: u32 = 70;
const BADHANDLE: u32 = 10001;

fn export(root: &std::path::Path) -> Arc<Vec<Export>> {
    Arc::new(vec![Export::new(EXPORT, root).insecure()])
}

#[test]
fn restart_keeps_handles() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let (root_fh, deep_fh, attr) = {
        let r = Running::start(export(&root));
        let mut c = Client::connect(r.addr);
        let root_fh = c.mnt(EXPORT).unwrap();
        let deep = c.walk(&root_fh, "dir/nested/deep.txt");
        let attr = c.getattr(&deep).unwrap();
        (root_fh, deep, attr)
    }; // server stopped here
    let r = Running::start(export(&root));
    let mut c = Client::connect(r.addr);
    // No MNT, no LOOKUP: the handles from the previous run still work.
    assert_eq!(c.getattr(&deep_fh).unwrap(), attr);
    assert_eq!(
        c.read(&deep_fh, 0, 100).unwrap(),
        (b"deep\n".to_vec(), true)
    );
    assert_eq!(c.getattr(&root_fh).unwrap().ftype, 2);
    assert_eq!(
        attr.fileid,
        std::fs::metadata(root.join("dir/nested/deep.txt"))
            .unwrap()
            .ino()
    );
    // A handle for an inode not in the export is STALE, garbage is BADHANDLE.
    let mut bogus = deep_fh.clone();
    bogus[31] ^= 0xff;
    bogus[30] ^= 0xff;
    assert_eq!(c.getattr(&bogus), Err(STALE));
    assert_eq!(c.getattr(&[1, 2, 3]), Err(BADHANDLE));
    // A deleted file's handle goes STALE.
    std::fs::remove_file(root.join("dir/nested/deep.txt")).unwrap();
    assert_eq!(c.getattr(&deep_fh), Err(STALE));
}

#[test]
fn attributes_as_stored() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let r = Running::start(export(&root));
    let mut c = Client::connect(r.addr);
    let fh = c.mnt(EXPORT).unwrap();
    let get = |c: &mut Client, p: &str| c.lookup(&fh, p).unwrap().1;
    let suid = get(&mut c, "suid");
    assert_eq!((suid.ftype, suid.mode), (1, 0o4755));
    let sticky = get(&mut c, "sticky");
    assert_eq!((sticky.ftype, sticky.mode), (2, 0o1777));
    assert_eq!(get(&mut c, "fifo").ftype, 7);
    let link = get(&mut c, "link");
    assert_eq!((link.ftype, link.size), (5, 9));
    let hello = get(&mut c, "hello.txt");
    assert_eq!(hello.nlink, 2);
    let dir = c.walk(&fh, "dir");
    let hard = c.lookup(&dir, "hardlink.txt").unwrap().1;
    assert_eq!(hard.fileid, hello.fileid);
    let secret = get(&mut c, "secret");
    let md = std::fs::symlink_metadata(root.join("secret")).unwrap();
    assert_eq!(
        (secret.uid, secret.gid, secret.mode),
        (md.uid(), md.gid(), 0o640)
    );
    assert_eq!(get(&mut c, "big.bin").size, 5 * 1024 * 1024 + 123);
    // READLINK returns the target unresolved.
    let link_fh = c.lookup(&fh, "abs").unwrap().0;
    let mut a = Enc::new();
    a.opaque(&link_fh);
    let rep = c.call(100003, 3, 5, &a.buf);
    let mut d = Dec::new(&rep);
    assert_eq!(d.u32().unwrap(), 0);
    if d.bool().unwrap() {
        d.fixed(84).unwrap();
    }
    assert_eq!(d.opaque(1024).unwrap(), b"/etc/passwd");
}

#[test]
fn lookups_never_escape() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let r = Running::start(export(&root));
    let mut c = Client::connect(r.addr);
    let fh = c.mnt(EXPORT).unwrap();
    let root_id = c.getattr(&fh).unwrap().fileid;
    assert_eq!(c.lookup(&fh, "..").unwrap().1.fileid, root_id);
    let abs = c.lookup(&fh, "abs").unwrap().0;
    assert_eq!(c.lookup(&abs, "passwd"), Err(NOTDIR));
    assert_eq!(c.mnt(&format!("{EXPORT}/../..")), Err(ACCES));
    assert_eq!(c.mnt("/etc"), Err(2));
}

#[test]
fn permissions_follow_credentials() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let r = Running::start(export(&root));
    let mut c = Client::connect(r.addr);
    let fh = c.mnt(EXPORT).unwrap();
    let secret = c.lookup(&fh, "secret").unwrap().0;
    let suid = c.lookup(&fh, "suid").unwrap().0;
    let hello = c.lookup(&fh, "hello.txt").unwrap().0;
    let (read, exec) = (0x01, 0x20);
    assert_eq!(c.read(&secret, 0, 100).unwrap().0, b"root only\n");
    assert_eq!(c.access(&suid, 0x3f), Ok(read | exec));
    assert_eq!(c.access(&hello, 0x3f), Ok(read), "root gets no x on 0644");

    c.cred = Some(Cred {
        uid: 4242,
        gid: 4242,
        gids: vec![],
    });
    assert_eq!(c.access(&secret, 0x3f), Ok(0));
    assert_eq!(c.read(&secret, 0, 100), Err(ACCES));
    assert_eq!(
        c.access(&suid, 0x3f),
        Ok(read | exec),
        "setuid stays executable"
    );
    assert_eq!(c.read(&hello, 0, 100).unwrap().0, b"hello world\n");
    // The owning group reads it through a supplementary gid.
    let gid = std::fs::metadata(root.join("secret")).unwrap().gid();
    c.cred = Some(Cred {
        uid: 4242,
        gid: 4242,
        gids: vec![gid],
    });
    assert_eq!(c.read(&secret, 0, 100).unwrap().0, b"root only\n");
    // AUTH_NONE is nobody.
    c.cred = None;
    assert_eq!(c.read(&secret, 0, 100), Err(ACCES));
    assert_eq!(c.access(&hello, 0x3f), Ok(read));
}

#[test]
fn writes_are_rofs() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let r = Running::start(export(&root));
    let mut c = Client::connect(r.addr);
    let fh = c.mnt(EXPORT).unwrap();
    for proc_ in [2, 7, 8, 9, 10, 11, 12, 13, 14, 15, 21] {
        let mut a = Enc::new();
        a.opaque(&fh).opaque(b"x");
        let rep = c.call(100003, 3, proc_, &a.buf);
        assert_eq!(Dec::new(&rep).u32().unwrap(), ROFS, "proc {proc_}");
    }
}

#[test]
fn pmap_and_mount_on_one_port() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let r = Running::start(export(&root));
    let mut c = Client::connect(r.addr);
    let getport = |c: &mut Client, prog: u32, vers: u32, prot: u32| {
        let mut a = Enc::new();
        a.u32(prog).u32(vers).u32(prot).u32(0);
        Dec::new(&c.call(100000, 2, 3, &a.buf)).u32().unwrap()
    };
    let port = u32::from(r.port());
    assert_eq!(getport(&mut c, 100005, 3, 6), port);
    assert_eq!(getport(&mut c, 100003, 3, 6), port);
    assert_eq!(getport(&mut c, 100003, 3, 17), 0, "no UDP");
    assert_eq!(getport(&mut c, 100003, 4, 6), 0, "no NFSv4");
    // EXPORT lists the export.
    let rep = c.call(100005, 3, 5, &[]);
    let mut d = Dec::new(&rep);
    assert!(d.bool().unwrap());
    assert_eq!(d.opaque(1024).unwrap(), EXPORT.as_bytes());
    // Unknown program / version.
    assert_eq!(c.call_raw(100099, 1, 0, &[]).0, 1);
    assert_eq!(c.call_raw(100003, 2, 0, &[]).0, 2);
}

#[test]
fn exports_are_reread_on_mount() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let list: Arc<Mutex<Vec<Export>>> = Arc::default();
    let l2 = Arc::clone(&list);
    let r = Running::start(Arc::new(ExportFn(move || l2.lock().unwrap().clone())));
    let mut c = Client::connect(r.addr);
    assert_eq!(c.mnt(EXPORT), Err(2));
    list.lock()
        .unwrap()
        .push(Export::new(EXPORT, root.clone()).insecure());
    let fh = c.mnt(EXPORT).unwrap();
    assert_eq!(c.getattr(&fh).unwrap().ftype, 2);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let ev = r.events();
    assert!(
        matches!(&ev[0], NfsEvent::Refused { export, .. } if export == EXPORT),
        "{ev:?}"
    );
    assert!(
        matches!(&ev[1], NfsEvent::Mount { export, .. } if export == EXPORT),
        "{ev:?}"
    );
}

#[test]
#[ignore = "privileged tier: needs root for mknod; run `sudo cargo test -p compose-nfs -- --ignored` (ci/test does)"]
fn privileged_device_nodes_keep_type_and_rdev() {
    require_root("mknod of a char device");
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    nix::sys::stat::mknod(
        &root.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        libc::makedev(1, 3),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &root.join("sda"),
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o660),
        libc::makedev(8, 0),
    )
    .unwrap();
    // mknod applied the umask: set the modes exactly.
    use std::os::unix::fs::PermissionsExt;
    for (n, m) in [("null", 0o666), ("sda", 0o660)] {
        std::fs::set_permissions(root.join(n), std::fs::Permissions::from_mode(m)).unwrap();
    }
    let r = Running::start(export(&root));
    let mut c = Client::connect(r.addr);
    let fh = c.mnt(EXPORT).unwrap();
    let null = c.lookup(&fh, "null").unwrap().1;
    assert_eq!((null.ftype, null.mode, null.rdev), (4, 0o666, (1, 3)));
    let sda = c.lookup(&fh, "sda").unwrap().1;
    assert_eq!((sda.ftype, sda.mode, sda.rdev), (3, 0o660, (8, 0)));
    // Reading a device through NFS is refused: the server never opens it.
    let null_fh = c.lookup(&fh, "null").unwrap().0;
    assert_eq!(c.read(&null_fh, 0, 10), Err(22));
}

/// READDIR (plain) in small pages: cookies chain, every name once, `.` and
/// `..` included, a wrong verifier is BAD_COOKIE; FSINFO advertises 1 MiB.
#[test]
fn readdir_pages_and_fsinfo() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    for i in 0..200 {
        std::fs::write(root.join(format!("f{i:03}")), b"").unwrap();
    }
    let r = Running::start(export(&root));
    let mut c = Client::connect(r.addr);
    let fh = c.mnt(EXPORT).unwrap();
    let (mut cookie, mut verf, mut names) = (0u64, [0u8; 8], Vec::new());
    for _ in 0..1000 {
        let mut a = Enc::new();
        a.opaque(&fh).u64(cookie).fixed(&verf).u32(1024);
        let rep = c.call(100003, 3, 16, &a.buf);
        let mut d = Dec::new(&rep);
        assert_eq!(d.u32().unwrap(), 0);
        assert!(d.bool().unwrap());
        d.fixed(84).unwrap();
        verf.copy_from_slice(d.fixed(8).unwrap());
        while d.bool().unwrap() {
            d.u64().unwrap();
            names.push(String::from_utf8(d.opaque(255).unwrap().to_vec()).unwrap());
            cookie = d.u64().unwrap();
        }
        if d.bool().unwrap() {
            break;
        }
    }
    let mut want: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .chain([".".to_string(), "..".to_string()])
        .collect();
    want.sort();
    names.sort();
    assert_eq!(names, want);
    let mut a = Enc::new();
    a.opaque(&fh).u64(5).fixed(&[9; 8]).u32(1024);
    assert_eq!(
        Dec::new(&c.call(100003, 3, 16, &a.buf)).u32().unwrap(),
        10003
    );

    let mut a = Enc::new();
    a.opaque(&fh);
    let rep = c.call(100003, 3, 19, &a.buf);
    let mut d = Dec::new(&rep);
    assert_eq!(d.u32().unwrap(), 0);
    assert!(d.bool().unwrap());
    d.fixed(84).unwrap();
    assert_eq!(d.u32().unwrap(), 1 << 20, "rtmax");
    // Reading the 5 MB file in 1 MiB pieces matches.
    let big = c.lookup(&fh, "big.bin").unwrap().0;
    let (mut off, mut data) = (0u64, Vec::new());
    loop {
        let (chunk, eof) = c.read(&big, off, 1 << 20).unwrap();
        off += chunk.len() as u64;
        data.extend_from_slice(&chunk);
        if eof {
            break;
        }
    }
    assert!(data == std::fs::read(root.join("big.bin")).unwrap());
}

#[test]
fn private_exports_serve_only_their_clients() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let mine = Export {
        clients: vec!["127.0.0.1".parse().unwrap()],
        ..Export::new("/srv/compose/cluster/boot/node01", root.clone()).insecure()
    };
    let theirs = Export {
        clients: vec!["10.9.9.9".parse().unwrap()],
        ..Export::new("/srv/compose/cluster/boot/node02", root.clone()).insecure()
    };
    let r = Running::start(Arc::new(vec![mine, theirs]));
    let mut c = Client::connect(r.addr);
    let fh = c.mnt("/srv/compose/cluster/boot/node01").unwrap();
    assert_eq!(c.getattr(&fh).unwrap().ftype, 2);
    assert_eq!(c.mnt("/srv/compose/cluster/boot/node02"), Err(ACCES));
    // Events arrive through a channel: wait for the refusal (bounded).
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.extend(r.events());
        if seen.iter().any(|e| {
            matches!(e, NfsEvent::Refused { reason, .. } if reason.contains("not exported to 127.0.0.1"))
        }) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no refusal event: {seen:?}");
}

/// NFSACL GETACL: "no ACL entries" with the file's attributes, so the Linux
/// client (and overlayfs above it) falls back to the mode bits.
#[test]
fn nfsacl_getacl_reports_no_entries() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let r = Running::start(export(&root));
    let mut c = Client::connect(r.addr);
    let fh = c.mnt(EXPORT).unwrap();
    let mut a = Enc::new();
    a.opaque(&fh).u32(0xf);
    let reply = c.call(100_227, 3, 1, &a.buf);
    let mut d = Dec::new(&reply);
    assert_eq!(d.u32().unwrap(), 0, "NFS3_OK");
    assert!(d.bool().unwrap(), "post_op_attr present");
    let attr = Fattr::decode(&mut d);
    assert_eq!(attr, c.getattr(&fh).unwrap());
    assert_eq!(d.u32().unwrap(), 0xf, "mask echoed");
    for _ in 0..4 {
        assert_eq!(d.u32().unwrap(), 0);
    }
    assert_eq!(d.remaining(), 0);
    // SETACL on a read-only server.
    let mut a = Enc::new();
    a.opaque(&fh).u32(0);
    let reply = c.call(100_227, 3, 2, &a.buf);
    assert_eq!(Dec::new(&reply).u32().unwrap(), ROFS);
}

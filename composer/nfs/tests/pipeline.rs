//! Many calls in flight on one connection, as the Linux client sends them:
//! every call answered once, each reply matched by xid, every byte right.
//! Also the kept descriptors (files.rs) against files that change.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use compose_nfs::rpc::{encode_call, Cred};
use compose_nfs::xdr::{Dec, Enc};
use compose_nfs::Export;

const EXPORT: &str = "/srv/compose/roots/pipe";
const BIG_LEN: usize = 5 * 1024 * 1024 + 123;
const STALE: u32 = 70;

/// What a call should get back.
#[derive(Debug, Clone)]
enum Want {
    /// READ: these bytes and this eof flag.
    Data(Vec<u8>, bool),
    /// GETATTR of a file this size.
    Size(u64),
    /// This nfsstat3.
    Status(u32),
}

fn read_args(fh: &[u8], offset: u64, count: u32) -> Vec<u8> {
    let mut a = Enc::new();
    a.opaque(fh).u64(offset).u32(count);
    a.buf
}

/// Sends every call at once from one thread while another reads the
/// replies (so neither side's buffers can stall the other); returns the
/// replies by xid, after the accept_stat (asserted SUCCESS).
fn pipelined(addr: std::net::SocketAddr, calls: &[(u32, u32, Vec<u8>)]) -> HashMap<u32, Vec<u8>> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    for (xid, proc_, args) in calls {
        let rec = encode_call(*xid, 100003, 3, *proc_, Some(&Cred::root()), args);
        out.extend_from_slice(&((rec.len() as u32) | 0x8000_0000).to_be_bytes());
        out.extend_from_slice(&rec);
    }
    let mut w = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || w.write_all(&out).unwrap());
    let mut r = s;
    let mut replies = HashMap::new();
    for _ in 0..calls.len() {
        let mut mark = [0u8; 4];
        r.read_exact(&mut mark).unwrap();
        let m = u32::from_be_bytes(mark);
        assert!(m & 0x8000_0000 != 0, "one fragment per reply");
        let mut body = vec![0u8; (m & 0x7fff_ffff) as usize];
        r.read_exact(&mut body).unwrap();
        let mut d = Dec::new(&body);
        let xid = d.u32().unwrap();
        assert_eq!(d.u32().unwrap(), 1, "reply");
        assert_eq!(d.u32().unwrap(), 0, "accepted");
        d.u32().unwrap();
        d.opaque(400).unwrap();
        assert_eq!(d.u32().unwrap(), 0, "accept_stat of {xid}");
        assert!(
            replies.insert(xid, d.rest().to_vec()).is_none(),
            "xid {xid} answered twice"
        );
    }
    sender.join().unwrap();
    replies
}

fn check(reply: &[u8], want: &Want, xid: u32) {
    let mut d = Dec::new(reply);
    let stat = d.u32().unwrap();
    match want {
        Want::Status(s) => assert_eq!(stat, *s, "xid {xid}"),
        Want::Size(size) => {
            assert_eq!(stat, 0, "xid {xid}");
            assert_eq!(Fattr::decode(&mut d).size, *size, "xid {xid}");
        }
        Want::Data(bytes, eof) => {
            assert_eq!(stat, 0, "xid {xid}");
            assert!(d.bool().unwrap(), "xid {xid}: attributes");
            Fattr::decode(&mut d);
            let n = d.u32().unwrap() as usize;
            assert_eq!(d.bool().unwrap(), *eof, "xid {xid}: eof");
            let data = d.opaque(u32::MAX).unwrap();
            assert_eq!(n, data.len(), "xid {xid}: count");
            assert!(data == &bytes[..], "xid {xid}: {} bytes differ", data.len());
            assert_eq!(d.remaining(), 0, "xid {xid}: trailing bytes");
        }
    }
}

#[test]
fn pipelined_reads_all_answered_by_xid() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let r = Running::start(Arc::new(vec![Export::new(EXPORT, &root).insecure()]));
    let mut c = Client::connect(r.addr);
    let root_fh = c.mnt(EXPORT).unwrap();
    let big = c.walk(&root_fh, "big.bin");
    let hello = c.walk(&root_fh, "hello.txt");
    let data = noise(BIG_LEN);
    let mib = 1u64 << 20;
    let mut calls = Vec::new();
    let mut wants = HashMap::new();
    let mut xid = 1000;
    let mut add = |proc_: u32, args: Vec<u8>, want: Want| {
        xid += 1;
        calls.push((xid, proc_, args));
        wants.insert(xid, want);
    };
    // Twice over the file: the first pass opens it (blocking pool), the
    // second finds its descriptor kept (answered by the connection).
    for pass in 0..2u64 {
        for i in 0..6u64 {
            let off = i * mib;
            let end = (off + mib).min(BIG_LEN as u64);
            let eof = end == BIG_LEN as u64;
            add(
                6,
                read_args(&big, off, mib as u32),
                Want::Data(data[off as usize..end as usize].to_vec(), eof),
            );
            // odd offsets and lengths: XDR padding after the data
            let (o, n) = (off + 7 + pass, 1001 + i as u32);
            let e = (o + u64::from(n)).min(BIG_LEN as u64);
            add(
                6,
                read_args(&big, o, n),
                Want::Data(data[o as usize..e as usize].to_vec(), e == BIG_LEN as u64),
            );
            let mut a = Enc::new();
            a.opaque(&big);
            add(1, a.buf, Want::Size(BIG_LEN as u64));
            add(
                6,
                read_args(&hello, 0, 4096),
                Want::Data(b"hello world\n".to_vec(), true),
            );
        }
        // past the end, zero bytes, more than rtmax (clamped to 1 MiB)
        add(
            6,
            read_args(&big, BIG_LEN as u64 + 10, 100),
            Want::Data(Vec::new(), true),
        );
        add(6, read_args(&big, 0, 0), Want::Data(Vec::new(), false));
        add(
            6,
            read_args(&big, 0, 4 << 20),
            Want::Data(data[..mib as usize].to_vec(), false),
        );
        add(6, read_args(&[1, 2, 3], 0, 10), Want::Status(10001));
    }
    let replies = pipelined(r.addr, &calls);
    assert_eq!(replies.len(), calls.len());
    for (xid, want) in &wants {
        check(&replies[xid], want, *xid);
    }
    // and again, on several connections at once
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (addr, calls) = (r.addr, calls.clone());
            std::thread::spawn(move || pipelined(addr, &calls))
        })
        .collect();
    for th in threads {
        let replies = th.join().unwrap();
        for (xid, want) in &wants {
            check(&replies[xid], want, *xid);
        }
    }
    let errors: Vec<_> = r
        .events()
        .into_iter()
        .filter(|e| matches!(e, compose_nfs::NfsEvent::Error { .. }))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn kept_files_follow_truncation_and_deletion() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("f"), noise(300_000)).unwrap();
    let r = Running::start(Arc::new(vec![Export::new(EXPORT, &root).insecure()]));
    let mut c = Client::connect(r.addr);
    let root_fh = c.mnt(EXPORT).unwrap();
    let fh = c.walk(&root_fh, "f");
    for _ in 0..2 {
        // the second READ comes from the kept descriptor
        assert_eq!(c.read(&fh, 0, 200_000).unwrap(), (noise(200_000), false));
    }
    // Shorter now: the next READ sees the new size, not the old one.
    std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("f"))
        .unwrap()
        .set_len(1000)
        .unwrap();
    assert_eq!(c.read(&fh, 0, 200_000).unwrap(), (noise(1000), true));
    assert_eq!(c.read(&fh, 5000, 10).unwrap(), (Vec::new(), true));
    // Deleted: STALE, although its descriptor was kept.
    std::fs::remove_file(root.join("f")).unwrap();
    assert_eq!(c.read(&fh, 0, 10), Err(STALE));
}

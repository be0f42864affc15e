//! Property tests over the whole call path, run by `cargo test`: whatever a
//! client sends, the dispatcher (run for every call of every client) never
//! panics, and every answer is a reply to the call's xid. Calls are drawn
//! both as raw bytes and as well-formed headers of every program, version
//! and procedure around valid, foreign and malformed handles, from
//! privileged and unprivileged ports.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use crate::fast::Reply;
use crate::proto::Ctx;
use crate::rpc::{encode_call, Cred};
use crate::xdr::{Dec, Enc};
use crate::{Export, MOUNT_PROG, NFSACL_PROG, NFS_PROG, PMAP_PROG};

/// One export (a file, a directory, a symlink, a 0600 file) and the
/// handles of its objects, shared by every case.
struct Fixture {
    _dir: tempfile::TempDir,
    ctx: Ctx,
    handles: Vec<Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), vec![7u8; 70_000]).unwrap();
        std::fs::write(root.join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("l")).unwrap();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let ctx = Ctx::new(Arc::new(vec![Export::new("/e", root)]), 111, tx);
        let peer: SocketAddr = "127.0.0.1:700".parse().unwrap();
        let call = |prog, proc_, args: &Enc| {
            let rec = encode_call(1, prog, 3, proc_, Some(&Cred::root()), &args.buf);
            match ctx.handle(&rec, peer).unwrap() {
                Reply::Bytes(b) => b,
                Reply::Framed(b) => b[4..].to_vec(),
            }
        };
        let fh_of = |reply: Vec<u8>| {
            let mut d = Dec::new(&reply[24..]);
            assert_eq!(d.u32().unwrap(), 0);
            d.opaque(64).unwrap().to_vec()
        };
        let mut a = Enc::new();
        a.opaque(b"/e");
        let root_fh = fh_of(call(MOUNT_PROG, 1, &a));
        let mut handles = vec![root_fh.clone()];
        for (dir, name) in [(0, "d"), (1, "f"), (0, "secret"), (0, "l")] {
            let mut a = Enc::new();
            a.opaque(&handles[dir]).opaque(name.as_bytes());
            handles.push(fh_of(call(NFS_PROG, 3, &a)));
        }
        Fixture {
            _dir: dir,
            ctx,
            handles,
        }
    })
}

/// The reply, if any, answers `xid`.
fn check(reply: Option<Reply>, xid: Option<u32>) -> Result<(), TestCaseError> {
    let Some(reply) = reply else {
        return Ok(());
    };
    let body = match &reply {
        Reply::Bytes(b) => &b[..],
        Reply::Framed(b) => &b[4..],
    };
    let mut d = Dec::new(body);
    let got = d.u32().map_err(|e| TestCaseError::fail(e.to_string()))?;
    if let Some(xid) = xid {
        prop_assert_eq!(got, xid);
    }
    prop_assert_eq!(d.u32().ok(), Some(1), "a REPLY");
    Ok(())
}

fn arb_prog() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(PMAP_PROG),
        Just(NFS_PROG),
        Just(MOUNT_PROG),
        Just(NFSACL_PROG),
        any::<u32>(),
    ]
}

/// A handle: one the server issued, one with a foreign export key, or
/// any bytes.
fn arb_handle() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0usize..5).prop_map(|i| fixture().handles[i].clone()),
        any::<[u8; 8]>().prop_map(|k| {
            let mut h = fixture().handles[1].clone();
            h[8..16].copy_from_slice(&k);
            h
        }),
        proptest::collection::vec(any::<u8>(), 0..70),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn any_well_formed_call_is_answered_without_panic(
        xid in any::<u32>(), prog in arb_prog(), vers in 0u32..5, proc_ in 0u32..25,
        fh in arb_handle(), tail in proptest::collection::vec(any::<u8>(), 0..48),
        privileged in any::<bool>(), uid in prop_oneof![Just(0u32), Just(1000), any::<u32>()],
    ) {
        let f = fixture();
        let mut args = Enc::new();
        args.opaque(&fh);
        args.buf.extend_from_slice(&tail);
        let cred = Cred { uid, gid: uid, gids: vec![] };
        let rec = encode_call(xid, prog, vers, proc_, Some(&cred), &args.buf);
        let port = if privileged { 700 } else { 40_000 };
        let peer = SocketAddr::from(([127, 0, 0, 1], port));
        let _ = crate::server::reply_cost(&rec, 4 << 20);
        check(f.ctx.try_read(&rec, peer), Some(xid))?;
        check(f.ctx.handle(&rec, peer), Some(xid))?;
    }

    #[test]
    fn any_bytes_as_a_record_never_panic(rec in proptest::collection::vec(any::<u8>(), 0..300)) {
        let f = fixture();
        let peer = SocketAddr::from(([127, 0, 0, 1], 700));
        let _ = crate::server::reply_cost(&rec, 4 << 20);
        check(f.ctx.try_read(&rec, peer), None)?;
        check(f.ctx.handle(&rec, peer), None)?;
    }

    #[test]
    fn any_byte_stream_reads_as_records_or_an_error(
        stream in proptest::collection::vec(any::<u8>(), 0..600),
        marks in proptest::collection::vec((any::<bool>(), 0u32..64), 0..8),
    ) {
        // Random bytes, and the same behind plausible fragment marks.
        let mut framed = Vec::new();
        let mut rest = &stream[..];
        for (last, len) in marks {
            let n = (len as usize).min(rest.len());
            let mark = n as u32 | if last { 0x8000_0000 } else { 0 };
            framed.extend_from_slice(&mark.to_be_bytes());
            framed.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for bytes in [&stream[..], &framed[..]] {
            rt.block_on(async {
                let mut r = bytes;
                let mut reasm = crate::rpc::Reassembler::default();
                // Each record takes at least its 4-byte mark: bounded.
                for _ in 0..=bytes.len() / 4 {
                    match crate::server::read_record(&mut r, &mut reasm).await {
                        Ok(Some(rec)) => prop_assert!(rec.len() <= bytes.len()),
                        _ => break,
                    }
                }
                Ok(())
            })?;
        }
    }
}

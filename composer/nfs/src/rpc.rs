//! ONC RPC v2 (RFC 5531): call headers, AUTH_UNIX credentials, reply headers
//! and TCP record marking. Pure code, no I/O.

use crate::xdr::{Dec, Enc, XdrError};

pub const AUTH_NONE: u32 = 0;
pub const AUTH_UNIX: u32 = 1;

pub const MSG_CALL: u32 = 0;
pub const MSG_REPLY: u32 = 1;

/// accept_stat values.
pub const SUCCESS: u32 = 0;
pub const PROG_UNAVAIL: u32 = 1;
pub const PROG_MISMATCH: u32 = 2;
pub const PROC_UNAVAIL: u32 = 3;
pub const GARBAGE_ARGS: u32 = 4;
pub const SYSTEM_ERR: u32 = 5;

/// auth_stat values.
pub const AUTH_BADCRED: u32 = 1;
/// The credential is not trusted enough: a call from an unprivileged port.
pub const AUTH_TOOWEAK: u32 = 5;

/// The uid/gid AUTH_NONE callers get (the kernel's default anonuid).
pub const NOBODY: u32 = 65534;

/// Largest record a client may send (a full 1 MiB WRITE plus headers fits);
/// anything bigger closes the connection.
pub const MAX_RECORD: usize = (1 << 20) + 64 * 1024;

/// The caller's identity for permission checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl Cred {
    pub fn nobody() -> Self {
        Cred {
            uid: NOBODY,
            gid: NOBODY,
            gids: Vec::new(),
        }
    }
    pub fn root() -> Self {
        Cred {
            uid: 0,
            gid: 0,
            gids: Vec::new(),
        }
    }
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.gids.contains(&gid)
    }
}

/// A decoded call header; `args` is the procedure's argument bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<'a> {
    pub xid: u32,
    pub rpcvers: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    /// `None` when the credential flavor is neither AUTH_NONE nor AUTH_UNIX
    /// or the AUTH_UNIX body is malformed.
    pub cred: Option<Cred>,
    pub args: &'a [u8],
}

/// Why a record could not even be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("malformed RPC header: {0}")]
    Xdr(#[from] XdrError),
    #[error("not an RPC call (message type {0})")]
    NotCall(u32),
}

fn parse_auth_unix(body: &[u8]) -> Result<Cred, XdrError> {
    let mut d = Dec::new(body);
    let _stamp = d.u32()?;
    let _machine = d.opaque(255)?;
    let uid = d.u32()?;
    let gid = d.u32()?;
    let n = d.u32()?;
    if n > 16 {
        return Err(XdrError::TooLong { len: n, max: 16 });
    }
    let mut gids = Vec::with_capacity(n as usize);
    for _ in 0..n {
        gids.push(d.u32()?);
    }
    Ok(Cred { uid, gid, gids })
}

/// Parses a call. An error means the record is not an answerable call
/// (no xid or not a CALL); the connection drops it.
pub fn parse_call(record: &[u8]) -> Result<Call<'_>, RpcError> {
    let mut d = Dec::new(record);
    let xid = d.u32()?;
    let mtype = d.u32()?;
    if mtype != MSG_CALL {
        return Err(RpcError::NotCall(mtype));
    }
    let rpcvers = d.u32()?;
    let prog = d.u32()?;
    let vers = d.u32()?;
    let proc_ = d.u32()?;
    let flavor = d.u32()?;
    let body = d.opaque(400)?;
    let _verf_flavor = d.u32()?;
    let _verf = d.opaque(400)?;
    let cred = match flavor {
        AUTH_NONE => Some(Cred::nobody()),
        AUTH_UNIX => parse_auth_unix(body).ok(),
        _ => None,
    };
    Ok(Call {
        xid,
        rpcvers,
        prog,
        vers,
        proc_,
        cred,
        args: d.rest(),
    })
}

/// Starts an accepted reply with `accept_stat`; the caller appends results.
pub fn accepted(xid: u32, stat: u32) -> Enc {
    let mut e = Enc::with_capacity(128);
    e.u32(xid).u32(MSG_REPLY).u32(0); // MSG_ACCEPTED
    e.u32(AUTH_NONE).u32(0); // verifier
    e.u32(stat);
    e
}

pub fn prog_mismatch(xid: u32, low: u32, high: u32) -> Enc {
    let mut e = accepted(xid, PROG_MISMATCH);
    e.u32(low).u32(high);
    e
}

/// MSG_DENIED / RPC_MISMATCH (only version 2 is spoken).
pub fn rpc_mismatch(xid: u32) -> Enc {
    let mut e = Enc::new();
    e.u32(xid).u32(MSG_REPLY).u32(1).u32(0).u32(2).u32(2);
    e
}

/// MSG_DENIED / AUTH_ERROR.
pub fn auth_error(xid: u32, stat: u32) -> Enc {
    let mut e = Enc::new();
    e.u32(xid).u32(MSG_REPLY).u32(1).u32(1).u32(stat);
    e
}

/// Frames a reply as one last fragment.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(0x8000_0000 | body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Incremental record-marking reassembly (RFC 5531 section 11).
#[derive(Debug, Default)]
pub struct Reassembler {
    record: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RPC record larger than {MAX_RECORD} bytes")]
pub struct RecordTooLarge;

impl Reassembler {
    /// Adds one fragment (`header` is the 4-byte mark); returns the complete
    /// record when this was the last fragment.
    pub fn push(&mut self, last: bool, fragment: &[u8]) -> Result<Option<Vec<u8>>, RecordTooLarge> {
        if self.record.len() + fragment.len() > MAX_RECORD {
            return Err(RecordTooLarge);
        }
        self.record.extend_from_slice(fragment);
        Ok(last.then(|| std::mem::take(&mut self.record)))
    }
}

/// Splits a fragment mark into (last fragment, length).
pub fn fragment_header(mark: [u8; 4]) -> (bool, usize) {
    let v = u32::from_be_bytes(mark);
    (v & 0x8000_0000 != 0, (v & 0x7fff_ffff) as usize)
}

/// Splits a byte stream into records; used by tests and the property test
/// (the server reads the socket incrementally with the same logic).
pub fn split_records(mut stream: &[u8]) -> Result<Vec<Vec<u8>>, RecordTooLarge> {
    let mut out = Vec::new();
    let mut r = Reassembler::default();
    while stream.len() >= 4 {
        let (last, len) = fragment_header([stream[0], stream[1], stream[2], stream[3]]);
        stream = &stream[4..];
        if len > MAX_RECORD {
            return Err(RecordTooLarge);
        }
        let n = len.min(stream.len());
        if let Some(rec) = r.push(last, &stream[..n])? {
            out.push(rec);
        }
        stream = &stream[n..];
    }
    Ok(out)
}

/// Encodes a call (used by the tests' minimal client).
pub fn encode_call(
    xid: u32,
    prog: u32,
    vers: u32,
    proc_: u32,
    cred: Option<&Cred>,
    args: &[u8],
) -> Vec<u8> {
    let mut e = Enc::new();
    e.u32(xid)
        .u32(MSG_CALL)
        .u32(2)
        .u32(prog)
        .u32(vers)
        .u32(proc_);
    match cred {
        None => {
            e.u32(AUTH_NONE).u32(0);
        }
        Some(c) => {
            let mut b = Enc::new();
            b.u32(0)
                .opaque(b"test")
                .u32(c.uid)
                .u32(c.gid)
                .u32(c.gids.len() as u32);
            for g in &c.gids {
                b.u32(*g);
            }
            e.u32(AUTH_UNIX).opaque(&b.buf);
        }
    }
    e.u32(AUTH_NONE).u32(0);
    e.fixed(args);
    e.buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_cred() -> impl Strategy<Value = Option<Cred>> {
        proptest::option::of(
            (
                any::<u32>(),
                any::<u32>(),
                proptest::collection::vec(any::<u32>(), 0..16),
            )
                .prop_map(|(uid, gid, gids)| Cred { uid, gid, gids }),
        )
    }

    proptest! {
        #[test]
        fn parse_call_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_call(&bytes);
            let _ = split_records(&bytes);
        }

        #[test]
        fn call_round_trip(xid in any::<u32>(), prog in any::<u32>(), vers in any::<u32>(),
                           p in any::<u32>(), cred in arb_cred(),
                           args in proptest::collection::vec(any::<u8>(), 0..64)) {
            let args: Vec<u8> = args.iter().copied().take(args.len() / 4 * 4).collect();
            let rec = encode_call(xid, prog, vers, p, cred.as_ref(), &args);
            let c = parse_call(&rec).unwrap();
            prop_assert_eq!(c.xid, xid);
            prop_assert_eq!(c.prog, prog);
            prop_assert_eq!(c.vers, vers);
            prop_assert_eq!(c.proc_, p);
            prop_assert_eq!(c.rpcvers, 2);
            prop_assert_eq!(c.cred.unwrap(), cred.unwrap_or_else(Cred::nobody));
            prop_assert_eq!(c.args, &args[..]);
        }

        #[test]
        fn records_split_in_fragments(recs in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..100), 0..5), cut in 1usize..50) {
            let mut stream = Vec::new();
            for r in &recs {
                // Send every record as fragments of at most `cut` bytes.
                let chunks: Vec<&[u8]> = if r.is_empty() { vec![&r[..]] } else { r.chunks(cut).collect() };
                for (i, c) in chunks.iter().enumerate() {
                    let last = i + 1 == chunks.len();
                    let mark = (c.len() as u32) | if last { 0x8000_0000 } else { 0 };
                    stream.extend_from_slice(&mark.to_be_bytes());
                    stream.extend_from_slice(c);
                }
            }
            prop_assert_eq!(split_records(&stream).unwrap(), recs);
        }
    }

    #[test]
    fn unknown_flavor_has_no_cred() {
        let mut e = Enc::new();
        e.u32(7).u32(0).u32(2).u32(100003).u32(3).u32(0);
        e.u32(6).opaque(&[0; 8]).u32(0).u32(0);
        let c = parse_call(&e.buf).unwrap();
        assert_eq!(c.cred, None);
        let mut reply = Enc::new();
        reply.u32(1).u32(MSG_REPLY);
        assert_eq!(parse_call(&reply.buf), Err(RpcError::NotCall(1)));
    }

    #[test]
    fn oversized_record_rejected() {
        let mark = (0x8000_0000u32 | (MAX_RECORD as u32 + 1)).to_be_bytes();
        assert_eq!(split_records(&mark), Err(RecordTooLarge));
    }
}

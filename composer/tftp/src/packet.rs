//! The TFTP packet codec: pure parse/encode, no I/O (RFC 1350, 2347 OACK).
//!
//! Parsing never panics: every malformed datagram is a [`PacketError`], so the
//! server can answer (or ignore) it without trusting the peer.

use thiserror::Error;

/// Opcodes (RFC 1350 section 5, RFC 2347 for OACK).
const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

/// Largest RRQ/WRQ body (after the opcode) we parse. RFC 2347 limits a
/// request with options to 512 bytes, and tftpd-hpa reads requests into a
/// 516-byte buffer; no boot ROM or client sends more.
pub const MAX_REQUEST: usize = 512;
/// Most options in one request or OACK. Real clients send at most five
/// (blksize, tsize, timeout, windowsize, multicast); the cap keeps the work
/// per junk request small whatever the negotiation code does with them.
pub const MAX_OPTIONS: usize = 16;

/// Transfer mode of a request. `mail` is obsolete but still parsed, so the
/// server can refuse it with a proper error instead of "malformed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Netascii,
    Octet,
    Mail,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Netascii => "netascii",
            Mode::Octet => "octet",
            Mode::Mail => "mail",
        }
    }
}

/// An RRQ or WRQ: file name, mode and the RFC 2347 options in request order.
/// Option names keep the client's spelling; matching is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub filename: String,
    pub mode: Mode,
    pub options: Vec<(String, String)>,
}

impl Request {
    /// The value of option `name` (case-insensitive), if the client sent it.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// TFTP error codes (RFC 1350 appendix, RFC 2347 code 8). A newtype rather
/// than an enum so unknown codes from peers survive a parse/encode round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    pub const UNDEFINED: ErrorCode = ErrorCode(0);
    pub const FILE_NOT_FOUND: ErrorCode = ErrorCode(1);
    pub const ACCESS_VIOLATION: ErrorCode = ErrorCode(2);
    pub const DISK_FULL: ErrorCode = ErrorCode(3);
    pub const ILLEGAL_OPERATION: ErrorCode = ErrorCode(4);
    pub const UNKNOWN_TID: ErrorCode = ErrorCode(5);
    pub const FILE_EXISTS: ErrorCode = ErrorCode(6);
    pub const NO_SUCH_USER: ErrorCode = ErrorCode(7);
    pub const OPTION_REFUSED: ErrorCode = ErrorCode(8);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Rrq(Request),
    Wrq(Request),
    Data { block: u16, data: Vec<u8> },
    Ack { block: u16 },
    Error { code: ErrorCode, message: String },
    Oack { options: Vec<(String, String)> },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    #[error("packet too short ({0} bytes)")]
    TooShort(usize),
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    #[error("{0}: missing NUL terminator")]
    Unterminated(&'static str),
    #[error("{0}: not UTF-8")]
    NotUtf8(&'static str),
    #[error("empty file name")]
    EmptyFilename,
    #[error("unknown transfer mode {0:?}")]
    BadMode(String),
    #[error("option {0:?} has no value")]
    OptionWithoutValue(String),
    #[error("empty option name")]
    EmptyOptionName,
    #[error("{0} packet has trailing bytes")]
    Trailing(&'static str),
    #[error("{0} contains a NUL byte and cannot be encoded")]
    EmbeddedNul(&'static str),
    #[error("request of {0} bytes exceeds {MAX_REQUEST}")]
    RequestTooLong(usize),
    #[error("more than {MAX_OPTIONS} options")]
    TooManyOptions,
}

/// Reads NUL-terminated strings off the front of a byte slice.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next(&mut self, what: &'static str) -> Result<&'a str, PacketError> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or(PacketError::Unterminated(what))?;
        let s = std::str::from_utf8(&self.0[..end]).map_err(|_| PacketError::NotUtf8(what))?;
        self.0 = &self.0[end + 1..];
        Ok(s)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_request(body: &[u8]) -> Result<Request, PacketError> {
    if body.len() > MAX_REQUEST {
        return Err(PacketError::RequestTooLong(body.len()));
    }
    let mut f = Fields(body);
    let filename = f.next("file name")?;
    if filename.is_empty() {
        return Err(PacketError::EmptyFilename);
    }
    let mode = f.next("mode")?;
    let mode = if mode.eq_ignore_ascii_case("octet") {
        Mode::Octet
    } else if mode.eq_ignore_ascii_case("netascii") {
        Mode::Netascii
    } else if mode.eq_ignore_ascii_case("mail") {
        Mode::Mail
    } else {
        return Err(PacketError::BadMode(mode.to_owned()));
    };
    let options = parse_options(&mut f)?;
    Ok(Request {
        filename: filename.to_owned(),
        mode,
        options,
    })
}

fn parse_options(f: &mut Fields) -> Result<Vec<(String, String)>, PacketError> {
    let mut options = Vec::new();
    // Bounded by the datagram: every pass consumes at least two bytes.
    while !f.is_empty() {
        if options.len() == MAX_OPTIONS {
            return Err(PacketError::TooManyOptions);
        }
        let name = f.next("option name")?;
        if name.is_empty() {
            return Err(PacketError::EmptyOptionName);
        }
        let value = f
            .next("option value")
            .map_err(|_| PacketError::OptionWithoutValue(name.to_owned()))?;
        options.push((name.to_owned(), value.to_owned()));
    }
    Ok(options)
}

/// Parses one datagram.
pub fn parse(buf: &[u8]) -> Result<Packet, PacketError> {
    if buf.len() < 2 {
        return Err(PacketError::TooShort(buf.len()));
    }
    let opcode = u16::from_be_bytes([buf[0], buf[1]]);
    let body = &buf[2..];
    let block = || -> Result<u16, PacketError> {
        match body {
            [a, b, ..] => Ok(u16::from_be_bytes([*a, *b])),
            _ => Err(PacketError::TooShort(buf.len())),
        }
    };
    match opcode {
        RRQ => parse_request(body).map(Packet::Rrq),
        WRQ => parse_request(body).map(Packet::Wrq),
        DATA => Ok(Packet::Data {
            block: block()?,
            data: body[2..].to_vec(),
        }),
        ACK => {
            let block = block()?;
            if body.len() > 2 {
                return Err(PacketError::Trailing("ACK"));
            }
            Ok(Packet::Ack { block })
        }
        ERROR => {
            let code = ErrorCode(block()?);
            // Lenient: some clients omit the final NUL or send Latin-1; the
            // message is only informational, so take what is there.
            let rest = &body[2..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            Ok(Packet::Error {
                code,
                message: String::from_utf8_lossy(&rest[..end]).into_owned(),
            })
        }
        OACK => Ok(Packet::Oack {
            options: parse_options(&mut Fields(body))?,
        }),
        other => Err(PacketError::UnknownOpcode(other)),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), PacketError> {
    if s.as_bytes().contains(&0) {
        return Err(PacketError::EmbeddedNul(what));
    }
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Ok(())
}

fn put_options(out: &mut Vec<u8>, options: &[(String, String)]) -> Result<(), PacketError> {
    for (name, value) in options {
        if name.is_empty() {
            return Err(PacketError::EmptyOptionName);
        }
        put_str(out, name, "option name")?;
        put_str(out, value, "option value")?;
    }
    Ok(())
}

/// Encodes a packet. Fails only for values a datagram cannot carry (NUL
/// inside a string, empty file or option name).
pub fn encode(p: &Packet) -> Result<Vec<u8>, PacketError> {
    let mut out = Vec::with_capacity(32);
    match p {
        Packet::Rrq(r) | Packet::Wrq(r) => {
            let op = if matches!(p, Packet::Rrq(_)) {
                RRQ
            } else {
                WRQ
            };
            out.extend_from_slice(&op.to_be_bytes());
            if r.filename.is_empty() {
                return Err(PacketError::EmptyFilename);
            }
            put_str(&mut out, &r.filename, "file name")?;
            put_str(&mut out, r.mode.as_str(), "mode")?;
            put_options(&mut out, &r.options)?;
        }
        Packet::Data { block, data } => encode_data(&mut out, *block, data),
        Packet::Ack { block } => {
            out.extend_from_slice(&ACK.to_be_bytes());
            out.extend_from_slice(&block.to_be_bytes());
        }
        Packet::Error { code, message } => {
            out.extend_from_slice(&ERROR.to_be_bytes());
            out.extend_from_slice(&code.0.to_be_bytes());
            put_str(&mut out, message, "error message")?;
        }
        Packet::Oack { options } => {
            out.extend_from_slice(&OACK.to_be_bytes());
            put_options(&mut out, options)?;
        }
    }
    Ok(out)
}

/// Writes a DATA packet into `out` (cleared first) without building a
/// [`Packet`]: the send path reuses one buffer per block.
pub fn encode_data(out: &mut Vec<u8>, block: u16, data: &[u8]) {
    out.clear();
    out.reserve(4 + data.len());
    out.extend_from_slice(&DATA.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
    out.extend_from_slice(data);
}

/// An ERROR packet for the server's own messages. Messages are literals or
/// formatted from sanitized text; a stray NUL is replaced rather than failing.
pub fn error_packet(code: ErrorCode, message: &str) -> Vec<u8> {
    let message = message.replace('\0', " ");
    encode(&Packet::Error { code, message }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, mode: Mode, opts: &[(&str, &str)]) -> Request {
        Request {
            filename: name.into(),
            mode,
            options: opts
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn parse_table() {
        let cases: Vec<(&[u8], Result<Packet, PacketError>)> = vec![
            (
                b"\0\x01pxelinux.0\0octet\0",
                Ok(Packet::Rrq(req("pxelinux.0", Mode::Octet, &[]))),
            ),
            (
                b"\0\x01f\0NetASCII\0BLKSIZE\x001428\0tsize\x000\0",
                Ok(Packet::Rrq(req(
                    "f",
                    Mode::Netascii,
                    &[("BLKSIZE", "1428"), ("tsize", "0")],
                ))),
            ),
            (
                b"\0\x02up\0OCTET\0",
                Ok(Packet::Wrq(req("up", Mode::Octet, &[]))),
            ),
            (
                b"\0\x01f\0mail\0",
                Ok(Packet::Rrq(req("f", Mode::Mail, &[]))),
            ),
            (
                b"\0\x03\x00\x07abc",
                Ok(Packet::Data {
                    block: 7,
                    data: b"abc".to_vec(),
                }),
            ),
            (
                b"\0\x03\xff\xff",
                Ok(Packet::Data {
                    block: 65535,
                    data: vec![],
                }),
            ),
            (b"\0\x04\x01\x00", Ok(Packet::Ack { block: 256 })),
            (
                b"\0\x05\0\x01nope\0",
                Ok(Packet::Error {
                    code: ErrorCode::FILE_NOT_FOUND,
                    message: "nope".into(),
                }),
            ),
            (
                b"\0\x05\0\x08no NUL",
                Ok(Packet::Error {
                    code: ErrorCode::OPTION_REFUSED,
                    message: "no NUL".into(),
                }),
            ),
            (
                b"\0\x06blksize\x00512\0",
                Ok(Packet::Oack {
                    options: vec![("blksize".into(), "512".into())],
                }),
            ),
            (b"", Err(PacketError::TooShort(0))),
            (b"\0", Err(PacketError::TooShort(1))),
            (b"\0\x04\x01", Err(PacketError::TooShort(3))),
            (b"\0\x03", Err(PacketError::TooShort(2))),
            (b"\0\x04\0\x01x", Err(PacketError::Trailing("ACK"))),
            (b"\0\x09", Err(PacketError::UnknownOpcode(9))),
            (b"\0\x01f", Err(PacketError::Unterminated("file name"))),
            (b"\0\x01\0octet\0", Err(PacketError::EmptyFilename)),
            (b"\0\x01f\0octet", Err(PacketError::Unterminated("mode"))),
            (
                b"\0\x01f\0binary\0",
                Err(PacketError::BadMode("binary".into())),
            ),
            (
                b"\0\x01f\0octet\0blksize\0",
                Err(PacketError::OptionWithoutValue("blksize".into())),
            ),
            (
                b"\0\x01f\0octet\0blksize",
                Err(PacketError::Unterminated("option name")),
            ),
            (b"\0\x01f\0octet\0\0x\0", Err(PacketError::EmptyOptionName)),
            (
                b"\0\x01\xff\0octet\0",
                Err(PacketError::NotUtf8("file name")),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(bytes), want, "input {bytes:?}");
        }
    }

    #[test]
    fn request_limits() {
        let with_options = |n: usize| {
            let mut b = b"\0\x01f\0octet\0".to_vec();
            for i in 0..n {
                b.extend_from_slice(format!("o{i}\0v\0").as_bytes());
            }
            b
        };
        assert!(parse(&with_options(MAX_OPTIONS)).is_ok());
        assert_eq!(
            parse(&with_options(MAX_OPTIONS + 1)),
            Err(PacketError::TooManyOptions)
        );
        // A 60 KB request of options: refused on its size before any option
        // is looked at.
        let big = with_options(10_000);
        assert_eq!(parse(&big), Err(PacketError::RequestTooLong(big.len() - 2)));
        let mut long_name = b"\0\x01".to_vec();
        long_name.extend(std::iter::repeat_n(b'a', MAX_REQUEST - 6));
        long_name.extend_from_slice(b"\0octet\0");
        assert_eq!(long_name.len() - 2, MAX_REQUEST + 1);
        assert_eq!(
            parse(&long_name),
            Err(PacketError::RequestTooLong(MAX_REQUEST + 1))
        );
        long_name.remove(2);
        assert!(parse(&long_name).is_ok());
    }

    #[test]
    fn encode_table() {
        let cases: Vec<(Packet, &[u8])> = vec![
            (
                Packet::Rrq(req("a/b", Mode::Octet, &[("blksize", "8")])),
                b"\0\x01a/b\0octet\0blksize\08\0",
            ),
            (Packet::Ack { block: 0 }, b"\0\x04\0\0"),
            (
                Packet::Error {
                    code: ErrorCode::ACCESS_VIOLATION,
                    message: "read-only".into(),
                },
                b"\0\x05\0\x02read-only\0",
            ),
            (Packet::Oack { options: vec![] }, b"\0\x06"),
        ];
        for (p, want) in cases {
            assert_eq!(encode(&p).unwrap(), want, "{p:?}");
            assert_eq!(parse(want).unwrap(), p);
        }
    }

    #[test]
    fn encode_refuses_unencodable() {
        let bad = [
            (
                Packet::Rrq(req("", Mode::Octet, &[])),
                PacketError::EmptyFilename,
            ),
            (
                Packet::Rrq(req("a\0b", Mode::Octet, &[])),
                PacketError::EmbeddedNul("file name"),
            ),
            (
                Packet::Oack {
                    options: vec![("".into(), "1".into())],
                },
                PacketError::EmptyOptionName,
            ),
        ];
        for (p, want) in bad {
            assert_eq!(encode(&p), Err(want));
        }
        assert_eq!(
            error_packet(ErrorCode::UNDEFINED, "a\0b"),
            b"\0\x05\0\0a b\0"
        );
    }

    #[test]
    fn option_lookup_is_case_insensitive() {
        let r = req("f", Mode::Octet, &[("BlkSize", "1024"), ("TSIZE", "0")]);
        assert_eq!(r.option("blksize"), Some("1024"));
        assert_eq!(r.option("tsize"), Some("0"));
        assert_eq!(r.option("windowsize"), None);
    }
}

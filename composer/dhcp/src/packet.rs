//! The DHCP/BOOTP packet codec (RFC 2131 §2, RFC 2132, RFC 3396). Pure: no I/O.
//!
//! The parsed form is canonical so that `parse(encode(p)) == p`: options
//! spread over several instances (RFC 3396 long options) or over the
//! `file`/`sname` fields (option 52, overload) are joined into one entry per
//! code, in order of first appearance; the overload option itself is consumed
//! and the overloaded fields read back empty. `encode` never overloads.

use std::net::Ipv4Addr;

/// The fixed BOOTP header up to (not including) the magic cookie.
const HEADER_LEN: usize = 236;
/// RFC 2131 §3: the first four octets of the options field.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
const SNAME_AT: usize = 44;
const SNAME_LEN: usize = 64;
const FILE_AT: usize = 108;
const FILE_LEN: usize = 128;

/// Option codes the server reads or writes (RFC 2132 unless noted).
pub mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN: u8 = 15;
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    /// RFC 3004 (iPXE sends it unframed).
    pub const USER_CLASS: u8 = 77;
    /// RFC 4578.
    pub const CLIENT_ARCH: u8 = 93;
    /// RFC 4578.
    pub const CLIENT_UUID: u8 = 97;
    pub const END: u8 = 255;
}

/// BOOTP `op`: the only two values RFC 951 defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    BootRequest = 1,
    BootReply = 2,
}

/// Option 53 values (RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    pub fn from_u8(v: u8) -> Option<Self> {
        use MessageType::*;
        Some(match v {
            1 => Discover,
            2 => Offer,
            3 => Request,
            4 => Decline,
            5 => Ack,
            6 => Nak,
            7 => Release,
            8 => Inform,
            _ => return None,
        })
    }
}

/// Where in the packet an option was being read when parsing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Options,
    File,
    Sname,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("packet is {len} bytes, shorter than the {min}-byte BOOTP header and magic cookie")]
    TooShort { len: usize, min: usize },
    #[error("op {0} is neither BOOTREQUEST (1) nor BOOTREPLY (2)")]
    BadOp(u8),
    #[error("hardware address length {0} exceeds the 16-byte chaddr field")]
    BadHlen(u8),
    #[error("magic cookie {0:02x?} is not 63:82:53:63 (not a DHCP packet)")]
    BadCookie([u8; 4]),
    #[error("option {code} in the {area:?} area at offset {at} runs past the end of the area")]
    OptionTruncated { code: u8, area: Area, at: usize },
    #[error("overload option 52 must be one byte of 1, 2 or 3, got {0:02x?}")]
    BadOverload(Vec<u8>),
}

/// One option: code and payload (joined if the packet split it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOption {
    pub code: u8,
    pub data: Vec<u8>,
}

/// A decoded DHCP packet. `sname` and `file` hold the bytes before the first
/// NUL (they are C strings on the wire); `encode` truncates them to 63/127
/// bytes so the field always keeps a terminating NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub op: Op,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    pub sname: Vec<u8>,
    pub file: Vec<u8>,
    pub options: Vec<DhcpOption>,
}

/// RFC 2131 §2: the leftmost bit of `flags`.
pub const FLAG_BROADCAST: u16 = 0x8000;

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn cstr(field: &[u8]) -> Vec<u8> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field[..end].to_vec()
}

/// Append the options of one area to `out`, joining repeated codes
/// (RFC 3396). Returns at End or when the area is exhausted: a missing End
/// is tolerated because clients in the wild omit it after padding.
fn read_options(
    area_bytes: &[u8],
    area: Area,
    out: &mut Vec<DhcpOption>,
) -> Result<(), ParseError> {
    let mut i = 0;
    while i < area_bytes.len() {
        let code = area_bytes[i];
        match code {
            code::PAD => i += 1,
            code::END => return Ok(()),
            _ => {
                let len = *area_bytes.get(i + 1).ok_or(ParseError::OptionTruncated {
                    code,
                    area,
                    at: i,
                })? as usize;
                let data = area_bytes
                    .get(i + 2..i + 2 + len)
                    .ok_or(ParseError::OptionTruncated { code, area, at: i })?;
                match out.iter_mut().find(|o| o.code == code) {
                    Some(o) => o.data.extend_from_slice(data),
                    None => out.push(DhcpOption {
                        code,
                        data: data.to_vec(),
                    }),
                }
                i += 2 + len;
            }
        }
    }
    Ok(())
}

impl Packet {
    /// A BOOTREQUEST/BOOTREPLY with zeroed fields and no options.
    pub fn new(op: Op, xid: u32, mac: [u8; 6]) -> Packet {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&mac);
        Packet {
            op,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            sname: Vec::new(),
            file: Vec::new(),
            options: Vec::new(),
        }
    }

    pub fn parse(b: &[u8]) -> Result<Packet, ParseError> {
        let min = HEADER_LEN + MAGIC_COOKIE.len();
        if b.len() < min {
            return Err(ParseError::TooShort { len: b.len(), min });
        }
        let op = match b[0] {
            1 => Op::BootRequest,
            2 => Op::BootReply,
            other => return Err(ParseError::BadOp(other)),
        };
        if b[2] > 16 {
            return Err(ParseError::BadHlen(b[2]));
        }
        let cookie: [u8; 4] = b[HEADER_LEN..min].try_into().expect("4 bytes");
        if cookie != MAGIC_COOKIE {
            return Err(ParseError::BadCookie(cookie));
        }
        let mut options = Vec::new();
        read_options(&b[min..], Area::Options, &mut options)?;
        let sname_raw = &b[SNAME_AT..SNAME_AT + SNAME_LEN];
        let file_raw = &b[FILE_AT..FILE_AT + FILE_LEN];
        let (mut sname, mut file) = (cstr(sname_raw), cstr(file_raw));
        if let Some(pos) = options.iter().position(|o| o.code == code::OVERLOAD) {
            let ov = options.remove(pos).data;
            let which = match ov.as_slice() {
                [v @ 1..=3] => *v,
                _ => return Err(ParseError::BadOverload(ov)),
            };
            // RFC 3396 §5: options, then file, then sname.
            if which & 1 != 0 {
                read_options(file_raw, Area::File, &mut options)?;
                file.clear();
            }
            if which & 2 != 0 {
                read_options(sname_raw, Area::Sname, &mut options)?;
                sname.clear();
            }
            // Overload is only meaningful in the options field (RFC 2131
            // §4.1); one inside an overloaded field is noise, and keeping it
            // would make the packet's own encoding unparseable (found by
            // fuzz_arbitrary_options_never_panic).
            options.retain(|o| o.code != code::OVERLOAD);
        }
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(&b[28..44]);
        Ok(Packet {
            op,
            htype: b[1],
            hlen: b[2],
            hops: b[3],
            xid: u32::from_be_bytes(b[4..8].try_into().expect("4 bytes")),
            secs: u16::from_be_bytes([b[8], b[9]]),
            flags: u16::from_be_bytes([b[10], b[11]]),
            ciaddr: ip_at(b, 12),
            yiaddr: ip_at(b, 16),
            siaddr: ip_at(b, 20),
            giaddr: ip_at(b, 24),
            chaddr,
            sname,
            file,
            options,
        })
    }

    /// Wire form. Options longer than 255 bytes are split into consecutive
    /// instances (RFC 3396); pad and end codes in `options` are skipped
    /// because they carry no data and would corrupt the stream. The result is
    /// padded to the 300-byte BOOTP minimum that some PXE ROMs insist on.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(576);
        b.extend_from_slice(&[self.op as u8, self.htype, self.hlen, self.hops]);
        b.extend_from_slice(&self.xid.to_be_bytes());
        b.extend_from_slice(&self.secs.to_be_bytes());
        b.extend_from_slice(&self.flags.to_be_bytes());
        for ip in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            b.extend_from_slice(&ip.octets());
        }
        b.extend_from_slice(&self.chaddr);
        for (field, len) in [(&self.sname, SNAME_LEN), (&self.file, FILE_LEN)] {
            let n = cstr(field).len().min(len - 1);
            b.extend_from_slice(&field[..n]);
            b.resize(b.len() + len - n, 0);
        }
        b.extend_from_slice(&MAGIC_COOKIE);
        for o in &self.options {
            if o.code == code::PAD || o.code == code::END {
                continue;
            }
            if o.data.is_empty() {
                b.extend_from_slice(&[o.code, 0]);
            }
            for chunk in o.data.chunks(255) {
                b.extend_from_slice(&[o.code, chunk.len() as u8]);
                b.extend_from_slice(chunk);
            }
        }
        b.push(code::END);
        if b.len() < 300 {
            b.resize(300, 0);
        }
        b
    }

    /// The client's MAC when the hardware is Ethernet (htype 1, hlen 6).
    pub fn mac(&self) -> Option<[u8; 6]> {
        (self.htype == 1 && self.hlen == 6).then(|| self.chaddr[..6].try_into().expect("6 bytes"))
    }

    pub fn broadcast_flag(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }

    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|o| o.code == code)
            .map(|o| o.data.as_slice())
    }

    /// Replace or append an option (keeps the position of an existing one).
    pub fn set_option(&mut self, code: u8, data: impl Into<Vec<u8>>) {
        let data = data.into();
        match self.options.iter_mut().find(|o| o.code == code) {
            Some(o) => o.data = data,
            None => self.options.push(DhcpOption { code, data }),
        }
    }

    fn ip_option(&self, code: u8) -> Option<Ipv4Addr> {
        let d: [u8; 4] = self.option(code)?.try_into().ok()?;
        Some(Ipv4Addr::from(d))
    }

    /// Option 53; `None` when absent, empty or an unknown value.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.option(code::MESSAGE_TYPE)? {
            [v] => MessageType::from_u8(*v),
            _ => None,
        }
    }

    pub fn requested_ip(&self) -> Option<Ipv4Addr> {
        self.ip_option(code::REQUESTED_IP)
    }

    pub fn server_id(&self) -> Option<Ipv4Addr> {
        self.ip_option(code::SERVER_ID)
    }

    pub fn parameter_request_list(&self) -> Option<&[u8]> {
        self.option(code::PARAMETER_REQUEST_LIST)
    }

    pub fn hostname(&self) -> Option<&[u8]> {
        self.option(code::HOSTNAME)
    }

    pub fn vendor_class(&self) -> Option<&[u8]> {
        self.option(code::VENDOR_CLASS)
    }

    /// PXE clients announce themselves with a vendor class beginning with
    /// "PXEClient" (e.g. "PXEClient:Arch:00000:UNDI:002001").
    pub fn is_pxe_client(&self) -> bool {
        self.vendor_class()
            .is_some_and(|v| v.starts_with(b"PXEClient"))
    }

    /// Option 93 (RFC 4578 §2.1): a list of 16-bit architecture types; the
    /// first is the one the client is running.
    pub fn client_arch(&self) -> Option<u16> {
        match self.option(code::CLIENT_ARCH)? {
            [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }
    }

    /// Option 97 (RFC 4578 §2.3): type 0 followed by a 16-byte UUID.
    pub fn client_uuid(&self) -> Option<[u8; 16]> {
        match self.option(code::CLIENT_UUID)? {
            [0, rest @ ..] => rest.try_into().ok(),
            _ => None,
        }
    }

    pub fn client_id(&self) -> Option<&[u8]> {
        self.option(code::CLIENT_ID)
    }

    pub fn max_message_size(&self) -> Option<u16> {
        let d: [u8; 2] = self.option(code::MAX_MESSAGE_SIZE)?.try_into().ok()?;
        Some(u16::from_be_bytes(d))
    }

    /// Whether option 77 names `class`, either unframed (what iPXE sends) or
    /// as an RFC 3004 length-prefixed instance.
    pub fn has_user_class(&self, class: &[u8]) -> bool {
        let Some(d) = self.option(code::USER_CLASS) else {
            return false;
        };
        if d == class {
            return true;
        }
        let mut i = 0;
        while let Some(&len) = d.get(i) {
            match d.get(i + 1..i + 1 + len as usize) {
                Some(inst) if inst == class => return true,
                Some(_) => i += 1 + len as usize,
                None => return false,
            }
        }
        false
    }
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;

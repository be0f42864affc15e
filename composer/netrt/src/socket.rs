//! SO_BINDTODEVICE for a server's socket.
//!
//! Linux delivers a packet for any local address whatever interface it came
//! in on, so binding the boot address alone would still let a host on
//! another network route requests to it through its own interface. Bound
//! to the boot interface, the socket sees only what arrives there.

use std::ffi::OsString;
use std::os::fd::AsFd;

use nix::sys::socket::{setsockopt, sockopt::BindToDevice};

/// Accepts traffic on `socket` only from `interface` (needs CAP_NET_RAW).
pub fn bind_to_device(socket: &impl AsFd, interface: &str) -> std::io::Result<()> {
    setsockopt(socket, BindToDevice, &OsString::from(interface)).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_interface_is_an_error() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // ENODEV as root, EPERM without CAP_NET_RAW: an error either way.
        assert!(bind_to_device(&s, "no-such-if0").is_err());
    }
}

//! An IPv4 subnet in CIDR notation (`10.1.0.0/24`): `[cluster] subnet`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Subnet, String> {
        if prefix > 32 {
            return Err(format!("prefix /{prefix} is longer than 32 bits"));
        }
        let s = Subnet { network, prefix };
        if u32::from(network) & !s.mask() != 0 {
            return Err(format!(
                "{network}/{prefix} has host bits set: write {}/{prefix}",
                Ipv4Addr::from(u32::from(network) & s.mask())
            ));
        }
        Ok(s)
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// Whether `ip` may be given to a host: inside, and (below /31, where
    /// RFC 3021 has no such addresses) neither the network nor the
    /// broadcast address.
    pub fn is_host_address(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.network && ip != self.broadcast()))
    }
}

impl FromStr for Subnet {
    type Err = String;

    fn from_str(s: &str) -> Result<Subnet, String> {
        let bad = || format!("{s:?} is not a subnet: write it like 10.1.0.0/24");
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let network: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Subnet::new(network, prefix)
    }
}

impl TryFrom<String> for Subnet {
    type Error = String;
    fn try_from(s: String) -> Result<Subnet, String> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_membership() {
        let s: Subnet = "10.1.0.0/24".parse().unwrap();
        assert_eq!(s.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 1, 0, 255));
        assert!(s.is_host_address(Ipv4Addr::new(10, 1, 0, 11)));
        assert!(!s.is_host_address(Ipv4Addr::new(10, 1, 0, 0)));
        assert!(!s.is_host_address(Ipv4Addr::new(10, 1, 0, 255)));
        assert!(!s.contains(Ipv4Addr::new(10, 1, 1, 1)));
        let all: Subnet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(192, 168, 1, 1)));
        let p2p: Subnet = "10.0.0.0/31".parse().unwrap();
        assert!(p2p.is_host_address(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn errors_say_what_to_write() {
        for (text, want) in [
            ("10.1.0.5/24", "write 10.1.0.0/24"),
            ("10.1.0.0", "like 10.1.0.0/24"),
            ("10.1.0.0/33", "longer than 32"),
            ("10.1.0/24", "like 10.1.0.0/24"),
        ] {
            let err = text.parse::<Subnet>().unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}

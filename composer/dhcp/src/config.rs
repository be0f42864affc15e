//! Server configuration: the inventory of static leases and boot files.

use std::net::Ipv4Addr;

/// Everything the server answers with. In normal mode it hands out exactly
/// the static leases; in proxy mode (`proxy: true`) it hands out no addresses
/// and only supplies boot information to PXE clients, next to a site server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    /// Interface the sockets are bound to (SO_BINDTODEVICE).
    pub interface: String,
    /// Our address on `interface`; sent as server identifier (option 54).
    pub server_ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease_secs: u32,
    /// The inventory. In proxy mode an empty list means "boot any PXE
    /// client"; a non-empty one restricts booting to these MACs.
    pub leases: Vec<StaticLease>,
    pub boot: BootFiles,
    /// TFTP server for PXE clients (siaddr).
    pub next_server: Ipv4Addr,
    pub proxy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticLease {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub hostname: String,
}

/// Boot file names, chosen by the client's architecture (option 93).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// Legacy BIOS PXE (arch 0), e.g. "pxelinux.0".
    pub bios: String,
    /// x86-64 UEFI (arch 7 and 9).
    pub efi_x64: Option<String>,
    /// Served instead when the client is already iPXE (user class 77 "iPXE"),
    /// so a chainloaded iPXE does not loop back into itself.
    pub ipxe: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("interface name {0:?} is empty or longer than 15 bytes")]
    Interface(String),
    #[error("server_ip must be a unicast address, got {0}")]
    ServerIp(Ipv4Addr),
    #[error("boot file {0:?} is empty or longer than 127 bytes (the BOOTP file field)")]
    BootFile(String),
    #[error("{what} {value:?} is empty or longer than 255 bytes (one DHCP option)")]
    TooLong { what: &'static str, value: String },
    #[error("MAC {mac} has two static leases")]
    DuplicateMac { mac: String },
    #[error("lease {ip} for {mac} is not in {server_ip}/{netmask}")]
    OutsideSubnet {
        mac: String,
        ip: Ipv4Addr,
        server_ip: Ipv4Addr,
        netmask: Ipv4Addr,
    },
}

/// "aa:bb:cc:dd:ee:ff", for messages and events.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl DhcpConfig {
    pub fn lease_for(&self, mac: &[u8; 6]) -> Option<&StaticLease> {
        self.leases.iter().find(|l| &l.mac == mac)
    }

    pub fn in_subnet(&self, ip: Ipv4Addr) -> bool {
        let m = u32::from(self.netmask);
        u32::from(ip) & m == u32::from(self.server_ip) & m
    }

    /// Reject what could not be encoded faithfully, before binding anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interface.is_empty() || self.interface.len() > 15 {
            return Err(ConfigError::Interface(self.interface.clone()));
        }
        if self.server_ip.is_unspecified() || self.server_ip.is_broadcast() {
            return Err(ConfigError::ServerIp(self.server_ip));
        }
        let files = [
            Some(&self.boot.bios),
            self.boot.efi_x64.as_ref(),
            self.boot.ipxe.as_ref(),
        ];
        for f in files.into_iter().flatten() {
            if f.is_empty() || f.len() > 127 || f.contains('\0') {
                return Err(ConfigError::BootFile(f.clone()));
            }
        }
        let too_long = |what, v: &str| {
            (v.is_empty() || v.len() > 255).then(|| ConfigError::TooLong {
                what,
                value: v.into(),
            })
        };
        if let Some(e) = self.domain.as_deref().and_then(|d| too_long("domain", d)) {
            return Err(e);
        }
        for (i, l) in self.leases.iter().enumerate() {
            if let Some(e) = too_long("hostname", &l.hostname) {
                return Err(e);
            }
            if self.leases[..i].iter().any(|o| o.mac == l.mac) {
                return Err(ConfigError::DuplicateMac {
                    mac: mac_string(&l.mac),
                });
            }
            if !self.in_subnet(l.ip) {
                return Err(ConfigError::OutsideSubnet {
                    mac: mac_string(&l.mac),
                    ip: l.ip,
                    server_ip: self.server_ip,
                    netmask: self.netmask,
                });
            }
        }
        Ok(())
    }
}

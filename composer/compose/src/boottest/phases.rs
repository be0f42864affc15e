//! Where a boot's time goes, from compose serve's log (its logfmt lines
//! carry a timestamp and the node's hostname) plus the power-on and marker
//! times boot-test took itself:
//!
//! - dhcp: power-on to the first DHCP ACK (firmware, iPXE's DHCP); behind a
//!   site's DHCP server, whose ACKs compose does not see, to compose's
//!   proxyDHCP boot offer instead
//! - tftp: that ACK to the kernel transfer's start (pxelinux.0, ldlinux.c32,
//!   the pxelinux entry)
//! - kernel_initrd: the kernel and initrd transfers
//! - nfs_mount: initrd loaded to the root's NFS MOUNT (kernel start, the
//!   initramfs, its own DHCP, the mount)
//! - userspace: the mount to the COMPOSE-BOOTED marker (systemd to multi-user)

use compose_serve::log::parse_line;
use serde::Serialize;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Phases {
    pub dhcp: Option<f64>,
    pub tftp: Option<f64>,
    pub kernel_initrd: Option<f64>,
    pub nfs_mount: Option<f64>,
    pub userspace: Option<f64>,
}

impl Phases {
    /// `dhcp 12.0s, tftp 3.1s, ...` (a `-` for a phase not seen).
    pub fn render(&self) -> String {
        let s = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}s"));
        format!(
            "dhcp {}, tftp {}, kernel+initrd {}, nfs mount {}, userspace {}",
            s(self.dhcp),
            s(self.tftp),
            s(self.kernel_initrd),
            s(self.nfs_mount),
            s(self.userspace)
        )
    }
}

/// The phases of `host`'s boot that started at `power_on` and reached the
/// marker at `marker` (None while it has not), from the serve log text.
pub fn phases(log: &str, host: &str, power_on: SystemTime, marker: Option<SystemTime>) -> Phases {
    let mut first_ack = None;
    let mut kernel_start = None;
    let mut initrd_done = None;
    let mut mount = None;
    for line in log.lines() {
        let Some(f) = parse_line(line) else { continue };
        if f.get("host").map(String::as_str) != Some(host) {
            continue;
        }
        let Some(at) = f.get("t").and_then(|t| humantime::parse_rfc3339(t).ok()) else {
            continue;
        };
        if at < power_on || marker.is_some_and(|m| at > m) {
            continue; // another boot of the same node
        }
        let file = f.get("file").map(String::as_str).unwrap_or_default();
        match f["event"].as_str() {
            "dhcp.ack" | "dhcp.proxy" if first_ack.is_none() => first_ack = Some(at),
            "tftp.start" if kernel_start.is_none() && file.ends_with("/vmlinuz") => {
                kernel_start = Some(at)
            }
            "tftp.done" if file.ends_with("/initrd.img") => initrd_done = Some(at),
            "nfs.mount" if mount.is_none() => mount = Some(at),
            _ => {}
        }
    }
    let span = |a: Option<SystemTime>, b: Option<SystemTime>| {
        let d = b?.duration_since(a?).unwrap_or(Duration::ZERO);
        Some((d.as_secs_f64() * 10.0).round() / 10.0)
    };
    Phases {
        dhcp: span(Some(power_on), first_ack),
        tftp: span(first_ack, kernel_start),
        kernel_initrd: span(kernel_start, initrd_done),
        nfs_mount: span(initrd_done, mount),
        userspace: span(mount, marker),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_splits_into_phases_and_other_nodes_and_boots_are_ignored() {
        let log = "\
t=2026-11-25T10:00:00.000Z event=dhcp.ack host=node01 mac=52:54:00:c0:00:01 ip=10.78.0.11
compose serve: 2 nodes
t=2026-11-25T10:00:30.000Z event=dhcp.ack host=node01 mac=52:54:00:c0:00:01 ip=10.78.0.11
t=2026-11-25T10:00:31.000Z event=dhcp.ack host=node02 mac=52:54:00:c0:00:02 ip=10.78.0.12
t=2026-11-25T10:00:31.000Z event=dhcp.ack host=node01 mac=52:54:00:c0:00:01 ip=10.78.0.11
t=2026-11-25T10:00:33.500Z event=tftp.start host=node01 peer=10.78.0.11:1 file=images/m/gen/1/vmlinuz image=m gen=1 size=1 blksize=1468 windowsize=1
t=2026-11-25T10:00:35.000Z event=tftp.done host=node01 peer=10.78.0.11:1 file=images/m/gen/1/vmlinuz image=m gen=1 bytes=1 secs=1
t=2026-11-25T10:00:40.000Z event=tftp.done host=node01 peer=10.78.0.11:2 file=images/m/gen/1/initrd.img image=m gen=1 bytes=1 secs=1
t=2026-11-25T10:01:05.000Z event=nfs.mount host=node01 peer=10.78.0.11:3 export=/x/roots/ab
t=2026-11-25T10:03:00.000Z event=dhcp.ack host=node01 mac=52:54:00:c0:00:01 ip=10.78.0.11
";
        let t = |s: &str| humantime::parse_rfc3339(s).unwrap();
        let p = phases(
            log,
            "node01",
            t("2026-11-25T10:00:20Z"),
            Some(t("2026-11-25T10:01:50Z")),
        );
        assert_eq!(
            p,
            Phases {
                dhcp: Some(10.0),
                tftp: Some(3.5),
                kernel_initrd: Some(6.5),
                nfs_mount: Some(25.0),
                userspace: Some(45.0),
            }
        );
        assert!(p.render().starts_with("dhcp 10.0s, tftp 3.5s"));
        let none = phases(log, "node09", t("2026-11-25T10:00:20Z"), None);
        assert_eq!(none, Phases::default());
    }
}

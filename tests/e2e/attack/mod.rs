//! The `attack_` tier: each test performs one attack from SECURITY.md against
//! a real `compose serve` (or publish) with real clients, asserts that it
//! fails, that the server's resources stay bounded (descriptors, threads and
//! RSS read from /proc), and that a legitimate client is still served during
//! and after it.

mod listen;
mod nfs;
mod publish;
mod tftp;

use std::path::Path;

/// Descriptors, threads and resident memory (KiB) of a process, from /proc.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub fds: usize,
    pub threads: usize,
    pub rss_kib: u64,
}

/// The usage of process `pid` now.
pub fn usage(pid: u32) -> Usage {
    let proc = Path::new("/proc").join(pid.to_string());
    let fds = std::fs::read_dir(proc.join("fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(proc.join("status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Usage {
        fds,
        threads: field("Threads:") as usize,
        rss_kib: field("VmRSS:"),
    }
}

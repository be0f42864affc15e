//! What compose serve does to itself before it serves anything: more file
//! descriptors, fewer privileges.
//!
//! A boot storm holds many descriptors at once (TFTP transfers, NFS
//! connections, open exports), and the default soft limit of 1024 was
//! exhausted by ~1100 unanswered TFTP requests in the security review; the
//! hard limit (often 524288 under systemd, or the unit's `LimitNOFILE`) is
//! what the admin allowed, so the soft limit is raised to it.
//!
//! Capabilities are per thread on Linux, so they are dropped here, before
//! the async runtime starts any thread: every thread created later inherits
//! the reduced sets. What stays is what serving needs after start-up:
//! binding ports below 1024 (the servers bind in the runtime),
//! `CAP_NET_RAW` (SO_BINDTODEVICE for DHCP, the ICMPv6 socket of the RA
//! responder) and `CAP_DAC_READ_SEARCH` (reading every file of a root for
//! NFS callers whose own permissions compose-nfs checks). The bounding set
//! is cleared of everything else and no_new_privs is set, so nothing the
//! process could ever exec regains them.

use anyhow::{Context, Result};
use caps::{CapSet, Capability};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The capabilities compose serve keeps.
pub const KEEP: [Capability; 3] = [
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_NET_RAW,
    Capability::CAP_DAC_READ_SEARCH,
];

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft
/// limit.
pub fn raise_fd_limit() -> Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(RLIMIT_NOFILE)")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .with_context(|| format!("raising RLIMIT_NOFILE from {soft} to {hard}"))?;
    }
    Ok(hard)
}

/// Keeps only [`KEEP`] (of what the process has) in the effective,
/// permitted and inheritable sets, clears the ambient set, drops everything
/// else from the bounding set and sets no_new_privs. Returns the names of
/// the capabilities kept. Must run before any other thread exists.
pub fn drop_capabilities() -> Result<Vec<String>> {
    let permitted = caps::read(None, CapSet::Permitted).context("reading capabilities")?;
    let keep: caps::CapsHashSet = KEEP
        .iter()
        .copied()
        .filter(|c| permitted.contains(c))
        .collect();
    // The bounding set first: dropping from it needs CAP_SETPCAP, which the
    // permitted set is about to lose.
    if permitted.contains(&Capability::CAP_SETPCAP) {
        let bounding = caps::read(None, CapSet::Bounding).context("reading the bounding set")?;
        for cap in bounding.difference(&keep) {
            caps::drop(None, CapSet::Bounding, *cap)
                .with_context(|| format!("dropping {cap} from the bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).context("clearing the ambient capabilities")?;
    caps::set(None, CapSet::Inheritable, &caps::CapsHashSet::new())
        .context("clearing the inheritable capabilities")?;
    caps::set(None, CapSet::Effective, &keep).context("setting the effective capabilities")?;
    caps::set(None, CapSet::Permitted, &keep).context("setting the permitted capabilities")?;
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    let mut names: Vec<String> = keep.iter().map(|c| c.to_string()).collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fd_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(raise_fd_limit().unwrap(), hard);
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap().0, hard);
    }

    /// Dropping is tested in a child process (it is irreversible and per
    /// thread): the e2e tier checks /proc/PID/status of a running serve.
    #[test]
    fn keep_names_the_three_needed_capabilities() {
        let names: Vec<String> = KEEP.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            names,
            ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_DAC_READ_SEARCH"]
        );
    }
}

//! Out of descriptors for a while (a real EMFILE: this test binary lowers
//! its own RLIMIT_NOFILE, so it holds this one test alone): a running
//! client's handles answer JUKEBOX meanwhile, never STALE, and every one
//! of them resolves again afterwards. STALE is final for a booted node.

mod common;

use std::sync::Arc;

use common::*;
use compose_nfs::Export;

const EXPORT: &str = "/srv/compose/roots/abc123";
const JUKEBOX: u32 = 10008;

/// Sets the soft descriptor limit to the lowest free descriptor number, so
/// every open fails with EMFILE until [`restore`]; returns the old limit.
fn exhaust() -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
    let probe = std::fs::File::open("/dev/null").unwrap();
    let lowest = std::os::fd::AsRawFd::as_raw_fd(&probe) as libc::rlim_t;
    drop(probe);
    let low = libc::rlimit {
        rlim_cur: lowest,
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
    assert!(
        std::fs::File::open("/dev/null").is_err(),
        "descriptors still available"
    );
    old
}

fn restore(old: libc::rlimit) {
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
}

#[test]
fn handles_survive_a_descriptor_shortage() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let export = || Arc::new(vec![Export::new(EXPORT, &root).insecure()]);
    let paths = ["", "dir", "dir/nested", "hello.txt", "big.bin", "secret"];
    // Handles from a first server run, as a booted node holds them.
    let (handles, attrs) = {
        let r = Running::start(export());
        let mut c = Client::connect(r.addr);
        let root_fh = c.mnt(EXPORT).unwrap();
        let handles: Vec<Vec<u8>> = paths.iter().map(|p| c.walk(&root_fh, p)).collect();
        let attrs: Vec<_> = handles.iter().map(|h| c.getattr(h).unwrap()).collect();
        (handles, attrs)
    };
    // A restarted server: it must reopen the export and walk it.
    let r = Running::start(export());
    let mut c = Client::connect(r.addr);
    assert_eq!(c.call_raw(100_003, 3, 0, &[]).0, 0, "connected");

    // No descriptor to open the export with.
    let old = exhaust();
    let during: Vec<_> = handles.iter().map(|h| c.getattr(h)).collect();
    let mounted = c.mnt(EXPORT);
    restore(old);
    for (p, got) in paths.iter().zip(&during) {
        assert_eq!(*got, Err(JUKEBOX), "{p:?} during the shortage");
    }
    // MNT: a server fault, not "not exported" (MNT3ERR_NOENT).
    assert_eq!(mounted, Err(10006), "MNT during the shortage");
    // The root alone: the export is open now, nothing walked yet.
    assert_eq!(c.getattr(&handles[0]).unwrap(), attrs[0]);

    // No descriptor for the walk that finds the other handles.
    let old = exhaust();
    let during: Vec<_> = handles[1..].iter().map(|h| c.getattr(h)).collect();
    restore(old);
    for (p, got) in paths[1..].iter().zip(&during) {
        assert_eq!(*got, Err(JUKEBOX), "{p:?} during the shortage");
    }

    // Afterwards every handle resolves, to the same file.
    for ((p, h), want) in paths.iter().zip(&handles).zip(&attrs) {
        assert_eq!(c.getattr(h).as_ref(), Ok(want), "{p:?} after the shortage");
    }
    // And a new mount works.
    let mut fresh = Client::connect(r.addr);
    assert!(fresh.mnt(EXPORT).is_ok());
}

//! Descriptor exhaustion: with the process out of descriptors, a request is
//! answered with an ERROR (the server socket needs no new descriptor) and
//! the server keeps serving once descriptors are free again.
//!
//! Its own test binary: it lowers this process's descriptor limit.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use common::{pattern, rrq, Client, Harness};
use compose_tftp::packet::Packet;
use compose_tftp::{ErrorCode, Mode, TftpEvent};

#[tokio::test]
async fn out_of_descriptors_answers_busy_and_recovers() {
    let mut h = Harness::start();
    let mut c = Client::new(h.addr).await;
    // A first transfer: the server has started its threads and runtimes.
    assert_eq!(c.get("exact1024", &[]).await.unwrap().data, pattern(1024));
    h.wait_event(|e| matches!(e, TftpEvent::Finished { .. }));
    // Lower the soft limit so the hog below stays small, then take every
    // descriptor left (bounded by that limit).
    let lim = libc::rlimit {
        rlim_cur: 256,
        rlim_max: libc::RLIM_INFINITY,
    };
    let mut old = lim;
    // SAFETY: getrlimit/setrlimit write to / read from valid rlimit structs.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let lim = libc::rlimit {
            rlim_max: old.rlim_max,
            ..lim
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let mut hog = Vec::new();
    for _ in 0..300 {
        // SAFETY: dup of stdin; the new descriptor is owned by `hog` alone.
        let fd = unsafe { libc::dup(0) };
        if fd < 0 {
            break;
        }
        // SAFETY: `fd` was just returned by dup and is not owned elsewhere.
        hog.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    // SAFETY: as above, dup has no memory-safety preconditions.
    assert!(unsafe { libc::dup(0) } < 0, "descriptors not exhausted");
    let (p, from) = c.request(&rrq("pxelinux.0", Mode::Octet, &[])).await;
    assert!(
        matches!(&p, Packet::Error { code, .. } if *code == ErrorCode::UNDEFINED),
        "{p:?}"
    );
    assert_eq!(from, h.addr);
    let ev = h.wait_event(|e| matches!(e, TftpEvent::Refused { .. }));
    assert!(
        matches!(&ev, TftpEvent::Refused { reason, .. } if reason.contains("transfer socket")),
        "{ev:?}"
    );
    drop(hog);
    // SAFETY: restores the limit read above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) };
    let got = tokio::time::timeout(Duration::from_secs(20), c.get("pxelinux.0", &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.data, pattern(42_000));
}

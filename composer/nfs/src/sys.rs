//! The system calls READ needs that the crate's nix features do not wrap:
//! pread into a buffer's spare capacity (optionally RWF_NOWAIT: "only what
//! is in the page cache") and send(2) with MSG_MORE (nix's socket feature
//! would add a dependency for one call). The only `unsafe` in the crate is
//! here.

use std::os::fd::{AsFd, AsRawFd};

/// Reads up to `want` bytes at `offset` into `out`'s spare capacity and
/// appends them, without zero-filling first: one copy, by the kernel.
/// `nowait`: never wait for the disk; `Ok(0)` then means "not cached" as
/// well as end of file (RWF_NOWAIT's EAGAIN is folded into it).
pub fn pread_append(
    fd: impl AsFd,
    out: &mut Vec<u8>,
    want: usize,
    offset: u64,
    nowait: bool,
) -> std::io::Result<usize> {
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    out.reserve(want);
    let spare = &mut out.spare_capacity_mut()[..want];
    let iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    let flags = if nowait { libc::RWF_NOWAIT } else { 0 };
    loop {
        // SAFETY: `iov` points at `want` bytes of `out`'s allocation (just
        // reserved) that nothing else references; the kernel writes at most
        // that many and reports how many.
        let n = unsafe { libc::preadv2(fd.as_fd().as_raw_fd(), &iov, 1, offset, flags) };
        if n >= 0 {
            let n = n as usize;
            let len = out.len();
            // SAFETY: the kernel initialized the first `n` (<= want) spare bytes.
            unsafe { out.set_len(len + n) };
            return Ok(n);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) if nowait => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// send(2) of `buf` without SIGPIPE; `more`: MSG_MORE, hold the bytes back
/// for what is sent next. Never blocks on a non-blocking socket.
pub fn send(sock: impl AsFd, buf: &[u8], more: bool) -> std::io::Result<usize> {
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    loop {
        // SAFETY: `buf` is a live slice; the kernel only reads it.
        let n = unsafe {
            libc::send(
                sock.as_fd().as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                flags,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn pread_appends_without_touching_what_is_there() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789").unwrap();
        let mut out = b"head".to_vec();
        assert_eq!(pread_append(&f, &mut out, 4, 3, false).unwrap(), 4);
        assert_eq!(out, b"head3456");
        // past the end: nothing, and nothing appended
        assert_eq!(pread_append(&f, &mut out, 4, 20, false).unwrap(), 0);
        assert_eq!(out, b"head3456");
        // just written, so cached: NOWAIT reads it too
        assert_eq!(pread_append(&f, &mut out, 2, 8, true).unwrap(), 2);
        assert_eq!(out, b"head345689");
    }
}

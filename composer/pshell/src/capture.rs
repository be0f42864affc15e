//! Captured output of one stream of one node, capped so that a runaway node
//! (`yes`, `cat /dev/zero`) cannot exhaust compose's memory.

/// Most bytes kept per stream per node; the rest is read and dropped (ssh
/// must keep draining, or the remote command would block), and a marker
/// saying how much was dropped ends the kept output.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

#[derive(Debug)]
pub(crate) struct Capture {
    data: Vec<u8>,
    limit: usize,
    dropped: u64,
}

impl Capture {
    pub(crate) fn new(limit: usize) -> Self {
        Capture {
            data: Vec::new(),
            limit,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let room = self.limit.saturating_sub(self.data.len());
        let keep = room.min(bytes.len());
        self.data.extend_from_slice(&bytes[..keep]);
        self.dropped += (bytes.len() - keep) as u64;
    }

    /// The kept bytes, plus a marker line when some were dropped.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.dropped > 0 {
            if self.data.last().is_some_and(|&b| b != b'\n') {
                self.data.push(b'\n');
            }
            let marker = format!(
                "[compose: output truncated after {} bytes, {} more bytes dropped]\n",
                self.limit, self.dropped
            );
            self.data.extend_from_slice(marker.as_bytes());
        }
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_limit_everything_is_kept() {
        let mut c = Capture::new(10);
        c.push(b"hello ");
        c.push(b"you\n");
        assert_eq!(c.finish(), b"hello you\n");
    }

    #[test]
    fn exactly_the_limit_has_no_marker() {
        let mut c = Capture::new(4);
        c.push(b"abcd");
        c.push(b"");
        assert_eq!(c.finish(), b"abcd");
    }

    #[test]
    fn over_the_limit_is_cut_and_marked() {
        let mut c = Capture::new(5);
        c.push(b"abc");
        c.push(b"defgh");
        c.push(b"ijk");
        assert_eq!(
            String::from_utf8(c.finish()).unwrap(),
            "abcde\n[compose: output truncated after 5 bytes, 6 more bytes dropped]\n"
        );
    }

    #[test]
    fn cut_on_a_newline_adds_no_blank_line() {
        let mut c = Capture::new(3);
        c.push(b"ab\ncd");
        let out = String::from_utf8(c.finish()).unwrap();
        assert!(out.starts_with("ab\n[compose: output truncated"), "{out}");
    }
}

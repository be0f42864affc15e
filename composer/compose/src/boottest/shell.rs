//! The host side of boot-test's test shell (overlay.rs): a root `/bin/sh` on the
//! guest's second serial port (ttyS1), which QEMU exposes as a Unix socket.
//! Each command is sent as one line,
//!
//! ```text
//! ( CMD ) </dev/null 2>&1; echo "@@CBT 7 $?"
//! ```
//!
//! and its output is everything up to that marker. The guest side is raw
//! and echo-free (see guest/test-shell).

use anyhow::{bail, Context, Result};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Shell {
    stream: UnixStream,
    next_id: u64,
}

/// What a command printed (stdout and stderr together) and its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub text: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
}

/// Splits `buf` at the marker of command `id`: (output, status) once the
/// marker line is complete.
pub fn split_marker(buf: &str, id: u64) -> Option<(String, i32)> {
    let tag = format!("@@CBT {id} ");
    let at = buf.find(&tag)?;
    let rest = &buf[at + tag.len()..];
    let end = rest.find('\n')?;
    let status = rest[..end].trim().parse().ok()?;
    Some((buf[..at].to_string(), status))
}

impl Shell {
    /// Connects to QEMU's socket for the guest's ttyS1.
    pub fn connect(socket: &Path) -> Result<Shell> {
        let stream = UnixStream::connect(socket)
            .with_context(|| format!("connecting to the guest's ttyS1 at {}", socket.display()))?;
        Ok(Shell { stream, next_id: 1 })
    }

    /// Waits (up to `within`) until the guest's shell answers.
    pub fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let probe = Duration::from_secs(5).min(left.max(Duration::from_millis(100)));
            if let Ok(out) = self.run("echo ready", probe) {
                if out.ok() && out.text.contains("ready") {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "the guest's test shell (ttyS1) did not answer within {}s: did the guest unpack \
                     its overlay (compose-test-shell.service, see the serial log)?",
                    within.as_secs()
                );
            }
        }
    }

    /// Runs `cmd` as root in the guest; fails only if no answer comes back
    /// within `timeout` (a non-zero exit is in the Output).
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> Result<Output> {
        if cmd.contains('\n') {
            bail!("test shell commands are one line");
        }
        self.drain()?;
        let id = self.next_id;
        self.next_id += 1;
        let line = format!("( {cmd} ) </dev/null 2>&1; echo \"@@CBT {id} $?\"\n");
        self.stream
            .write_all(line.as_bytes())
            .context("writing to the guest's ttyS1")?;
        let deadline = Instant::now() + timeout;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "no answer to {cmd:?} within {}s (so far: {:?})",
                    timeout.as_secs(),
                    String::from_utf8_lossy(&buf)
                );
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => bail!("the guest's ttyS1 socket closed"),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e).context("reading the guest's ttyS1"),
            }
            if let Some((text, status)) = split_marker(&String::from_utf8_lossy(&buf), id) {
                return Ok(Output { status, text });
            }
        }
    }

    /// Drops whatever a previous, timed-out command printed late.
    fn drain(&mut self) -> Result<()> {
        self.stream.set_nonblocking(true)?;
        let mut chunk = [0u8; 4096];
        while let Ok(n) = self.stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
        }
        self.stream.set_nonblocking(false)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_splits_output_and_status() {
        assert_eq!(
            split_marker("root:x\n@@CBT 3 0\n", 3),
            Some(("root:x\n".to_string(), 0))
        );
        assert_eq!(
            split_marker("cat: /etc/shadow: Permission denied\n@@CBT 4 1\n", 4),
            Some(("cat: /etc/shadow: Permission denied\n".to_string(), 1))
        );
        // Another command's marker, or an incomplete line, is not an answer.
        assert_eq!(split_marker("@@CBT 2 0\n", 3), None);
        assert_eq!(split_marker("x\n@@CBT 3 1", 3), None);
    }

    /// The protocol against a real /bin/sh behind a socket pair, as the
    /// guest runs it (minus the serial port).
    #[test]
    fn runs_commands_in_a_real_shell() {
        let (host, guest) = UnixStream::pair().unwrap();
        let fd = |s: &UnixStream| std::os::fd::OwnedFd::from(s.try_clone().unwrap());
        let mut child = std::process::Command::new("/bin/sh")
            .stdin(fd(&guest))
            .stdout(fd(&guest))
            .stderr(fd(&guest))
            .spawn()
            .unwrap();
        let mut sh = Shell {
            stream: host,
            next_id: 1,
        };
        sh.wait_ready(Duration::from_secs(10)).unwrap();
        let out = sh
            .run("echo hi; echo err >&2; exit 3", Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            out,
            Output {
                status: 3,
                text: "hi\nerr\n".into()
            }
        );
        // A command that reads stdin gets /dev/null, not the protocol.
        let out = sh.run("cat; echo done", Duration::from_secs(10)).unwrap();
        assert_eq!(out.text, "done\n");
        assert!(sh.run("sleep 1", Duration::from_millis(200)).is_err());
        // The late marker of the timed-out command is drained, not mistaken.
        std::thread::sleep(Duration::from_millis(1500));
        let out = sh.run("echo after", Duration::from_secs(10)).unwrap();
        assert_eq!(out.text, "after\n");
        drop(sh);
        let _ = child.wait();
    }
}

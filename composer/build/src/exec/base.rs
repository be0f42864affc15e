//! The base layer: mmdebstrap (or debootstrap) into an empty root.
//!
//! The bootstrap runs under `unshare --mount` so the proc/sys/dev mounts it
//! makes inside the target vanish with it, whatever way it ends.
//!
//! Progress is read from the tool's own log lines ([`BootstrapParser`]),
//! not from apt's `APT::Status-Fd`: mmdebstrap passes its own
//! `-oAPT::Status-Fd=` on every apt call (a command-line option, which beats
//! one set through `--aptopt`) and draws those numbers only on a terminal.
//! With `--verbose` it forwards apt's and dpkg's plain output instead, whose
//! `Get:`, `Unpacking` and `Setting up` lines we can count; `I:` lines name
//! the phase.

use super::edit::Edit;
use crate::chroot::log_tail;
use crate::plan::ResolvedBase;
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Where the bootstrap is, as far as its output tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapStatus {
    /// The tool's own words for the phase ("downloading packages with apt").
    pub phase: String,
    /// Items done in this phase: packages fetched, or unpack and setup
    /// events (two per package) while installing.
    pub done: u64,
    /// What `done` counts up to, when apt said how many packages.
    pub total: Option<u64>,
}

/// What the phase counts, chosen from its `I:` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Counting {
    #[default]
    Nothing,
    /// apt's `Get:N` lines, against "N newly installed".
    Fetches,
    /// dpkg's `Unpacking` and `Setting up` lines, two per package.
    Installs,
}

/// Turns mmdebstrap (or debootstrap) output lines into [`BootstrapStatus`].
/// Pure, so it is tested on captured output.
#[derive(Debug, Default)]
pub struct BootstrapParser {
    phase: String,
    counting: Counting,
    done: u64,
    total: Option<u64>,
    /// Packages fetched by the last download phase: mmdebstrap then
    /// installs that (essential) set with dpkg, which prints no total.
    fetched: u64,
}

impl BootstrapParser {
    /// Feeds one line; returns the new status when the line changed it.
    pub fn line(&mut self, line: &str) -> Option<BootstrapStatus> {
        let line = line.trim_end();
        // While apt or dpkg runs, an `I:` line without mmdebstrap's "..." is
        // theirs (the kernel's postinst: "I: /vmlinuz is now a symlink").
        let phase = line
            .strip_prefix("I: ")
            .filter(|_| self.counting == Counting::Nothing || line.ends_with("..."));
        if let Some(info) = phase {
            if self.counting == Counting::Fetches {
                self.fetched = self.done;
            }
            self.phase = info.trim_end_matches("...").trim_end().to_string();
            self.done = 0;
            self.total = None;
            self.counting = if self.phase.starts_with("downloading packages") {
                Counting::Fetches
            } else if self.phase.starts_with("installing") {
                if self.phase.starts_with("installing essential") && self.fetched > 0 {
                    self.total = Some(2 * self.fetched);
                }
                Counting::Installs
            } else {
                Counting::Nothing
            };
        } else if self.counting == Counting::Nothing {
            return None;
        } else if let Some(n) = newly_installed(line) {
            self.total = Some(match self.counting {
                Counting::Installs => 2 * n,
                _ => n,
            });
        } else if match self.counting {
            Counting::Fetches => line.starts_with("Get:"),
            Counting::Installs => line.starts_with("Unpacking ") || line.starts_with("Setting up "),
            Counting::Nothing => false,
        } {
            self.done += 1;
        } else {
            return None;
        }
        Some(BootstrapStatus {
            phase: self.phase.clone(),
            // A guessed total must not make a bar run past its end.
            done: self.total.map_or(self.done, |t| self.done.min(t)),
            total: self.total,
        })
    }
}

/// The package count of apt's "0 upgraded, 69 newly installed, ..." line.
fn newly_installed(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once(" upgraded, ")?;
    let (n, _) = rest.split_once(" newly installed")?;
    n.parse().ok()
}

/// The bootstrap command line for `base` into `target`.
pub fn bootstrap_command(base: &ResolvedBase, target: &Path) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--"]);
    cmd.arg(&base.tool);
    let include = base.packages.join(",");
    if base.tool == "mmdebstrap" {
        cmd.arg("--mode=root");
        // apt's and dpkg's own lines in the log (a useful tail on failure)
        // and countable for progress, instead of bars drawn only on a TTY.
        cmd.arg("--verbose");
        cmd.arg(format!("--variant={}", base.variant));
        cmd.arg(format!("--architectures={}", base.architecture));
        cmd.arg(format!("--components={}", base.components.join(",")));
        if !include.is_empty() {
            cmd.arg(format!("--include={include}"));
        }
    } else {
        // debootstrap knows minbase and buildd; its default is "important".
        if matches!(base.variant.as_str(), "minbase" | "buildd") {
            cmd.arg(format!("--variant={}", base.variant));
        }
        cmd.arg(format!("--arch={}", base.architecture));
        cmd.arg(format!("--components={}", base.components.join(",")));
        if !include.is_empty() {
            cmd.arg(format!("--include={include}"));
        }
    }
    cmd.arg(&base.suite).arg(target).arg(&base.mirror);
    cmd.env("SOURCE_DATE_EPOCH", base.source_date_epoch.to_string());
    cmd.env("LC_ALL", "C.UTF-8");
    cmd
}

/// Bootstraps `target` (created empty here) and removes what the tools copy
/// from the host (its hostname and resolv.conf), which would make the base
/// depend on the machine that built it. Unless `verbose` (output streamed
/// as is), the output goes to `log` and each status change to `progress`.
pub fn run_base(
    base: &ResolvedBase,
    target: &Path,
    log: &Path,
    verbose: bool,
    progress: &mut dyn FnMut(BootstrapStatus),
) -> Result<()> {
    fs::create_dir_all(target)?;
    let mut cmd = bootstrap_command(base, target);
    cmd.stdin(Stdio::null());
    let status = if verbose {
        cmd.status()
    } else {
        run_logged(&mut cmd, log, progress)
    }
    .with_context(|| format!("starting {} (is it installed?)", base.tool))?;
    if !status.success() {
        bail!(
            "{} failed ({status}) for suite {} from {}\n--- last lines of {} ---\n{}",
            base.tool,
            base.suite,
            base.mirror,
            log.display(),
            log_tail(log, 30)
        );
    }
    let mut e = Edit::new(base.source_date_epoch)?;
    e.file("/etc/hostname", 0o644, 0, 0, b"localhost\n")?;
    e.file("/etc/resolv.conf", 0o644, 0, 0, b"")?;
    e.apply(target)
}

/// Runs `cmd` with stdout to `log` and stderr (where both tools write their
/// status) through a pipe: copied to `log` line by line and parsed.
fn run_logged(
    cmd: &mut Command,
    log: &Path,
    progress: &mut dyn FnMut(BootstrapStatus),
) -> std::io::Result<std::process::ExitStatus> {
    let mut file = fs::File::create(log)?;
    cmd.stdout(file.try_clone()?).stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut parser = BootstrapParser::default();
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    // Read to the end before waiting, so the tool never blocks on a full
    // pipe; a log write error must not leave it blocked either, hence kill.
    let copied = (|| -> std::io::Result<()> {
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            file.write_all(&line)?;
            if let Some(s) = parser.line(&String::from_utf8_lossy(&line)) {
                progress(s);
            }
        }
    })();
    if let Err(e) = copied {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    child.wait()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(tool: &str) -> ResolvedBase {
        ResolvedBase {
            tool: tool.into(),
            suite: "bookworm".into(),
            variant: "minbase".into(),
            architecture: "amd64".into(),
            components: vec!["main".into(), "contrib".into()],
            mirror: "http://deb.debian.org/debian".into(),
            packages: vec!["linux-image-amd64".into(), "zstd".into()],
            source_date_epoch: 1704067200,
        }
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn mmdebstrap_command_line() {
        let cmd = bootstrap_command(&base("mmdebstrap"), Path::new("/t"));
        assert_eq!(cmd.get_program(), "unshare");
        assert_eq!(
            args(&cmd).join(" "),
            "--mount --propagation private -- mmdebstrap --mode=root --verbose --variant=minbase \
             --architectures=amd64 --components=main,contrib --include=linux-image-amd64,zstd \
             bookworm /t http://deb.debian.org/debian"
        );
        let sde = cmd
            .get_envs()
            .find(|(k, _)| *k == "SOURCE_DATE_EPOCH")
            .unwrap()
            .1;
        assert_eq!(sde.unwrap(), "1704067200");
    }

    /// Lines of `mmdebstrap --verbose --variant=minbase --include=zstd
    /// bookworm` (1.3.5), captured; runs of like lines shortened.
    const MMDEBSTRAP: &str = "\
I: automatically chosen mode: root
I: running apt-get update...
Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]
Get:2 http://deb.debian.org/debian bookworm/main amd64 Packages [8790 kB]
Fetched 8941 kB in 3s (2687 kB/s)
Reading package lists...
I: downloading packages with apt...
Reading package lists...
  tar usrmerge util-linux util-linux-extra zlib1g
0 upgraded, 3 newly installed, 0 to remove and 0 not upgraded.
Need to get 29.7 MB of archives.
After this operation, 139 MB of additional disk space will be used.
Get:1 http://deb.debian.org/debian bookworm/main amd64 gcc-12-base amd64 12.2.0-14+deb12u1 [37.6 kB]
Get:2 http://deb.debian.org/debian bookworm/main amd64 libc6 amd64 2.36-9+deb12u14 [2759 kB]
Get:3 http://deb.debian.org/debian bookworm/main amd64 libgcc-s1 amd64 12.2.0-14+deb12u1 [49.9 kB]
/usr/bin/dpkg --status-fd 8 --configure --pending 
Fetched 29.7 MB in 0s (107 MB/s)
I: extracting archives...
I: installing essential packages...
Selecting previously unselected package gcc-12-base:amd64.
(Reading database ... 0 files and directories currently installed.)
Preparing to unpack .../gcc-12-base_12.2.0-14+deb12u1_amd64.deb ...
Unpacking gcc-12-base:amd64 (12.2.0-14+deb12u1) ...
Use of uninitialized value in concatenation (.) or string at /usr/share/perl5/Debconf/Config.pm line 22.
Unpacking libc6:amd64 (2.36-9+deb12u14) ...
Setting up libc6:amd64 (2.36-9+deb12u14) ...
The system has been successfully converted.
I: installing remaining packages inside the chroot...
Reading package lists...
libpam-modules is already the newest version (1.5.2-6+deb12u2).
The following NEW packages will be installed:
  adduser apt debian-archive-keyring e2fsprogs gpgv libapt-pkg6.0 libcom-err2
0 upgraded, 2 newly installed, 0 to remove and 0 not upgraded.
Get:1 http://deb.debian.org/debian bookworm/main amd64 libcom-err2 amd64 1.47.0-2+b2 [20.0 kB]
Unpacking zstd (1.5.4+dfsg2-5) ...
Setting up zstd (1.5.4+dfsg2-5) ...
I: /initrd.img is now a symlink to boot/initrd.img-6.1.0-50-amd64
Unpacking apt (2.6.1) ...
Setting up apt (2.6.1) ...
Processing triggers for libc-bin (2.36-9+deb12u14) ...
I: cleaning package lists and apt cache...
Reading package lists...
I: creating tarball...
I: done
";

    fn statuses(text: &str) -> Vec<(String, u64, Option<u64>)> {
        let mut p = BootstrapParser::default();
        text.lines()
            .filter_map(|l| p.line(l))
            .map(|s| (s.phase, s.done, s.total))
            .collect()
    }

    #[test]
    fn mmdebstrap_phases_and_counts() {
        let got = statuses(MMDEBSTRAP);
        let want: Vec<(&str, u64, Option<u64>)> = vec![
            ("automatically chosen mode: root", 0, None),
            ("running apt-get update", 0, None),
            ("downloading packages with apt", 0, None),
            ("downloading packages with apt", 0, Some(3)),
            ("downloading packages with apt", 1, Some(3)),
            ("downloading packages with apt", 2, Some(3)),
            ("downloading packages with apt", 3, Some(3)),
            ("extracting archives", 0, None),
            // The essential set is what was downloaded: two events each.
            ("installing essential packages", 0, Some(6)),
            ("installing essential packages", 1, Some(6)),
            ("installing essential packages", 2, Some(6)),
            ("installing essential packages", 3, Some(6)),
            ("installing remaining packages inside the chroot", 0, None),
            (
                "installing remaining packages inside the chroot",
                0,
                Some(4),
            ),
            (
                "installing remaining packages inside the chroot",
                1,
                Some(4),
            ),
            (
                "installing remaining packages inside the chroot",
                2,
                Some(4),
            ),
            (
                "installing remaining packages inside the chroot",
                3,
                Some(4),
            ),
            (
                "installing remaining packages inside the chroot",
                4,
                Some(4),
            ),
            ("cleaning package lists and apt cache", 0, None),
            ("creating tarball", 0, None),
            ("done", 0, None),
        ];
        let want: Vec<_> = want
            .into_iter()
            .map(|(p, d, t)| (p.to_string(), d, t))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn counts_stop_at_their_total_and_odd_lines_are_ignored() {
        let text = "I: downloading packages with apt...\n\
                    0 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.\n\
                    Get:1 a\nGet:2 b\n\
                    0 upgraded, x newly installed\n\
                    I: installing essential packages...\n\
                    Unpacking a ...\nSetting up a ...\nUnpacking b ...\n";
        let got = statuses(text);
        assert_eq!(got[3], ("downloading packages with apt".into(), 1, Some(1)));
        // Two fetched, so four events expected; a third package stops at 4.
        assert_eq!(got.last().unwrap().1, 3);
        assert_eq!(got.last().unwrap().2, Some(4));
        assert_eq!(got.len(), 8);
    }

    #[test]
    fn debootstrap_info_lines_are_phases() {
        let got = statuses(
            "I: Retrieving InRelease \nI: Validating libacl1 2.3.1-3\n\
             I: Configuring libc-bin...\nW: Cannot check Release signature\n",
        );
        let phases: Vec<_> = got.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            phases,
            [
                "Retrieving InRelease",
                "Validating libacl1 2.3.1-3",
                "Configuring libc-bin"
            ]
        );
    }

    #[test]
    fn debootstrap_command_line() {
        let cmd = bootstrap_command(&base("debootstrap"), Path::new("/t"));
        assert_eq!(
            args(&cmd).join(" "),
            "--mount --propagation private -- debootstrap --variant=minbase --arch=amd64 \
             --components=main,contrib --include=linux-image-amd64,zstd bookworm /t \
             http://deb.debian.org/debian"
        );
    }
}

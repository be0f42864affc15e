//! The base layer: mmdebstrap (or debootstrap) into an empty root.
//!
//! The bootstrap runs under `unshare --mount` so the proc/sys/dev mounts it
//! makes inside the target vanish with it, whatever way it ends.

use super::edit::Edit;
use crate::chroot::log_tail;
use crate::plan::ResolvedBase;
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// The bootstrap command line for `base` into `target`.
pub fn bootstrap_command(base: &ResolvedBase, target: &Path) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--"]);
    cmd.arg(&base.tool);
    let include = base.packages.join(",");
    if base.tool == "mmdebstrap" {
        cmd.arg("--mode=root");
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
/// depend on the machine that built it.
pub fn run_base(base: &ResolvedBase, target: &Path, log: &Path, verbose: bool) -> Result<()> {
    fs::create_dir_all(target)?;
    let mut cmd = bootstrap_command(base, target);
    cmd.stdin(Stdio::null());
    if !verbose {
        let f = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(f.try_clone()?).stderr(f);
    }
    let status = cmd
        .status()
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
            "--mount --propagation private -- mmdebstrap --mode=root --variant=minbase \
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

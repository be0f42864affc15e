//! Inside the helper process: namespaces, mounts, chroot, exec.
//!
//! Runs single-threaded in a fresh process (see the parent module), so
//! fork and the allocations around it are safe.

use super::{cstring, HelperArgs};
use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{chdir, chroot, execve, fork, sethostname, ForkResult};
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Returns the exit code of the script (128+N when killed by signal N).
pub fn run(args: &HelperArgs) -> Result<i32> {
    // If compose dies, so do we (and with us the PID namespace below).
    set_parent_death_signal()?;
    unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC,
    )
    .context("unsharing namespaces (compose build must run as root)")?;
    // Nothing we mount may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making / private")?;
    sethostname("compose-build").context("setting the build hostname")?;
    // SAFETY: this process is single-threaded (see module docs).
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            let err = child(args);
            eprintln!("compose chroot: {err:#}");
            std::process::exit(125)
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None).context("waiting for the chroot")? {
                WaitStatus::Exited(_, code) => return Ok(code),
                WaitStatus::Signaled(_, sig, _) => return Ok(128 + sig as i32),
                _ => continue,
            }
        },
    }
}

fn set_parent_death_signal() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if rc != 0 {
        bail!(
            "prctl(PR_SET_PDEATHSIG): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// PID 1 of the new namespace: mount, chroot, exec. Returns only on error.
fn child(args: &HelperArgs) -> anyhow::Error {
    match setup_and_exec(args) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn setup_and_exec(args: &HelperArgs) -> Result<std::convert::Infallible> {
    set_parent_death_signal()?;
    let root = &args.root;
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs(root, "proc", "proc", nodev, None)?;
    mount_fs(root, "sys", "sysfs", nodev | MsFlags::MS_RDONLY, None)?;
    mount_fs(root, "dev", "tmpfs", MsFlags::MS_NOSUID, Some("mode=0755"))?;
    populate_dev(&root.join("dev"))?;
    mount_fs(
        root,
        "dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    mount_fs(root, "dev/shm", "tmpfs", nodev, Some("mode=1777"))?;
    mount_fs(
        root,
        "run",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )?;
    fs::create_dir_all(root.join("run/lock"))?;
    mount_fs(
        root,
        "tmp",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    for (host, name) in &args.binds {
        bind_ro(host, &root.join("run/compose").join(name))?;
    }
    let resolv = root.join("etc/resolv.conf");
    // Only over a plain file: mounting onto a symlink would follow it out of the root.
    if fs::symlink_metadata(&resolv)
        .map(|m| m.is_file())
        .unwrap_or(false)
        && Path::new("/etc/resolv.conf").exists()
    {
        bind_ro(Path::new("/etc/resolv.conf"), &resolv)?;
    }
    chroot(root.as_path()).with_context(|| format!("chroot {}", root.display()))?;
    chdir("/").context("chdir /")?;
    let mut env: Vec<CString> = [
        ("PATH", PATH),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("DEBCONF_NONINTERACTIVE_SEEN", "true"),
    ]
    .iter()
    .map(|(k, v)| CString::new(format!("{k}={v}")))
    .collect::<Result<_, _>>()?;
    for (k, v) in &args.env {
        env.push(CString::new(format!("{k}={v}")).context("NUL in environment")?);
    }
    let argv = [
        CString::new("sh")?,
        CString::new("-e")?,
        CString::new("-c")?,
        CString::new(args.script.as_str()).context("NUL in script")?,
    ];
    let err = execve(&CString::new("/bin/sh")?, &argv, &env).unwrap_err();
    bail!("exec /bin/sh in the image: {err}")
}

/// Mounts a fresh filesystem on ROOT/rel after checking that rel is a real
/// directory of the image, not a symlink that would lead onto the host.
fn mount_fs(
    root: &Path,
    rel: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    let target = root.join(rel);
    ensure_real_dir(&target)?;
    mount(Some(fstype), &target, Some(fstype), flags, data)
        .with_context(|| format!("mounting {fstype} on {}", target.display()))
}

fn ensure_real_dir(target: &Path) -> Result<()> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("{} is not a directory in the image", target.display()),
        Err(_) => {
            fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))
        }
    }
}

fn bind_ro(host: &Path, target: &Path) -> Result<()> {
    if host.is_dir() {
        ensure_real_dir(target)?;
    }
    let _ = cstring(target)?;
    mount(
        Some(host),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind-mounting {} on {}", host.display(), target.display()))?;
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("making {} read-only", target.display()))
}

/// The handful of device nodes and links a maintainer script expects.
fn populate_dev(dev: &Path) -> Result<()> {
    let rw = Mode::from_bits_truncate(0o666);
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = dev.join(name);
        mknod(&p, SFlag::S_IFCHR, rw, makedev(major, minor))
            .with_context(|| format!("mknod {}", p.display()))?;
        // mknod honours the umask; the nodes must be world-usable.
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &p,
            rw,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlink(target, dev.join(name))?;
    }
    fs::create_dir(dev.join("pts"))?;
    fs::create_dir(dev.join("shm"))?;
    Ok(())
}

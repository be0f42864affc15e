//! What makes a root bootable: its kernel/initrd pair, the settings layers
//! left in /usr/lib/compose/boot.d/, and the pxelinux entry.

use anyhow::{bail, Context, Result};
use compose_store::ImageRoot;
use serde::Deserialize;
use std::path::Path;

/// The kernel and initrd of one version, found in a root's /boot.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelPair {
    pub version: String,
    /// Paths relative to the root (`boot/vmlinuz-V`).
    pub kernel: String,
    pub initrd: String,
}

/// Picks the kernel the image would boot: the target of /vmlinuz when it
/// names a version with an initrd, else the highest version with both files.
/// The image's symlinks (`/boot`, `/vmlinuz`) resolve inside `root`, never
/// on the build host.
pub fn find_kernel(root: &ImageRoot) -> Result<KernelPair> {
    let names: Vec<String> = match root.read_dir("boot")? {
        Some(names) => names
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect(),
        None => {
            if let Some(target) = root.read_link("boot")? {
                bail!(
                    "/boot in the snapshot is a symlink to {}, which is no directory inside the image \
                     (an image's symlinks are resolved inside the image, never on the build host): \
                     make /boot a directory of the image holding the kernel and initrd",
                    target.display()
                )
            }
            Vec::new()
        }
    };
    pick_kernel(&names, root.read_link("vmlinuz")?.as_deref())
}

pub fn pick_kernel(boot_names: &[String], vmlinuz_link: Option<&Path>) -> Result<KernelPair> {
    let has = |n: &str| boot_names.iter().any(|b| b == n);
    let pair = |v: &str| KernelPair {
        version: v.to_string(),
        kernel: format!("boot/vmlinuz-{v}"),
        initrd: format!("boot/initrd.img-{v}"),
    };
    if let Some(link) = vmlinuz_link {
        let name = link
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(v) = name.strip_prefix("vmlinuz-") {
            if has(&format!("vmlinuz-{v}")) && has(&format!("initrd.img-{v}")) {
                return Ok(pair(v));
            }
        }
    }
    let mut versions: Vec<&str> = boot_names
        .iter()
        .filter_map(|n| n.strip_prefix("vmlinuz-"))
        .filter(|v| has(&format!("initrd.img-{v}")))
        .collect();
    versions.sort_by_key(|v| version_key(v));
    if let Some(v) = versions.last() {
        return Ok(pair(v));
    }
    let kernels: Vec<&String> = boot_names
        .iter()
        .filter(|n| n.starts_with("vmlinuz-"))
        .collect();
    if kernels.is_empty() {
        bail!("the snapshot has no kernel (/boot/vmlinuz-*): add linux-image-amd64 (or your own kernel .deb) to the recipe")
    }
    bail!(
        "the snapshot has {} but no matching /boot/initrd.img-VERSION: add initramfs-tools to the recipe so the kernel gets an initrd",
        kernels.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
    )
}

/// Numeric runs compare as numbers: 6.1.0-10 sorts after 6.1.0-9.
fn version_key(v: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut num = String::new();
    let mut text = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                out.push((0, std::mem::take(&mut text)));
            }
            num.push(c);
        } else {
            if !num.is_empty() {
                out.push((num.parse().unwrap_or(u64::MAX), String::new()));
                num.clear();
            }
            text.push(c);
        }
    }
    if !num.is_empty() {
        out.push((num.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        out.push((0, text));
    }
    out
}

/// Settings from /usr/lib/compose/boot.d/*.json, merged in name order.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSettings {
    #[serde(default)]
    pub cmdline: Vec<String>,
    #[serde(default)]
    pub pxelinux_serial: Option<String>,
}

/// Where layers leave boot settings, relative to the root.
const BOOT_D: &str = "usr/lib/compose/boot.d";

/// Reads and merges the boot settings of `root` (resolved inside it: a
/// boot.d that is a symlink to a host directory reads the image's, if any).
pub fn read_boot_settings(root: &ImageRoot) -> Result<BootSettings> {
    let Some(mut names) = root.read_dir(BOOT_D)? else {
        return Ok(BootSettings::default());
    };
    names.retain(|n| Path::new(n).extension().is_some_and(|e| e == "json"));
    names.sort();
    let mut merged = BootSettings::default();
    for name in names {
        let rel = format!("{BOOT_D}/{}", name.to_string_lossy());
        let shown = root.path().join(&rel);
        let Some(bytes) = root.read_file(&rel)? else {
            continue; // a dangling symlink: nothing to read
        };
        let s: BootSettings = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} in the snapshot is not valid boot settings",
                shown.display()
            )
        })?;
        refuse_test_shell(&s.cmdline, &format!("/{rel} in the snapshot"))?;
        merged.cmdline.extend(s.cmdline);
        if s.pxelinux_serial.is_some() {
            merged.pxelinux_serial = s.pxelinux_serial;
        }
    }
    Ok(merged)
}

/// Everything the pxelinux entry of one generation needs.
pub struct Entry<'a> {
    pub label: &'a str,
    pub kernel: &'a str,
    pub initrd: &'a str,
    pub cmdline: &'a str,
    pub serial: Option<&'a str>,
}

/// A complete pxelinux configuration that boots one generation.
pub fn render_pxelinux(e: &Entry) -> String {
    let mut s = String::new();
    if let Some(serial) = e.serial {
        // pxelinux wants SERIAL first to send its own output there too.
        s.push_str(&format!("SERIAL {serial}\n"));
    }
    s.push_str("# written by compose publish: one generation, booted without a prompt\n");
    // NOESCAPE: Shift/Alt at the console do not bring up a boot: prompt;
    // ALLOWOPTIONS 0: nothing typed there may add kernel arguments (such as
    // init=/bin/sh). Both are core keywords of pxelinux and syslinux.efi.
    s.push_str(&format!(
        "DEFAULT {}\nPROMPT 0\nTIMEOUT 0\nNOESCAPE 1\nALLOWOPTIONS 0\n\n",
        e.label
    ));
    s.push_str(&format!(
        "LABEL {}\n  KERNEL {}\n  INITRD {}\n  APPEND {}\n",
        e.label, e.kernel, e.initrd, e.cmdline
    ));
    s
}

/// The kernel argument that used to start a root shell on a serial port
/// (boot-test's command channel). boot-test now ships that shell in its
/// guests' own overlays; an image still carrying the old unit must not get
/// it switched on by a published command line.
const TEST_SHELL: &str = "compose.test-shell";

/// Refuses `compose.test-shell` among `args` (from `source`, for the message).
pub fn refuse_test_shell(args: &[String], source: &str) -> Result<()> {
    if let Some(arg) = args
        .iter()
        .find(|a| a.split('=').next() == Some(TEST_SHELL))
    {
        bail!(
            "{arg} (from {source}) would start a root shell on a serial port of every node: \
             it is for `compose boot-test`'s scratch guests only, which get it without a kernel \
             argument; remove it from {source}"
        )
    }
    Ok(())
}

/// The kernel command line of a generation rooted at `export` over NFS.
pub fn render_cmdline(
    server: Option<&str>,
    export: &str,
    marker: &str,
    extra: &[String],
) -> String {
    let nfsroot = match server {
        Some(s) => format!("{s}:{export}"),
        // Without a server the initramfs uses the DHCP server's address.
        None => export.to_string(),
    };
    let mut parts = vec![
        "root=/dev/nfs".to_string(),
        format!("nfsroot={nfsroot}"),
        "ip=dhcp".to_string(),
        "ro".to_string(),
        marker.to_string(),
    ];
    parts.extend(extra.iter().cloned());
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kernel_pairing() {
        let n = names(&[
            "config-6.1.0-9-amd64",
            "vmlinuz-6.1.0-9-amd64",
            "initrd.img-6.1.0-9-amd64",
            "vmlinuz-6.1.0-10-amd64",
            "initrd.img-6.1.0-10-amd64",
            "vmlinuz-7.0",
        ]);
        assert_eq!(pick_kernel(&n, None).unwrap().version, "6.1.0-10-amd64");
        let via_link = pick_kernel(&n, Some(Path::new("boot/vmlinuz-6.1.0-9-amd64"))).unwrap();
        assert_eq!(via_link.kernel, "boot/vmlinuz-6.1.0-9-amd64");
        assert_eq!(via_link.initrd, "boot/initrd.img-6.1.0-9-amd64");
        let err = pick_kernel(&names(&["vmlinuz-6.1"]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("initramfs-tools"), "{err}");
        let err = pick_kernel(&[], None).unwrap_err().to_string();
        assert!(err.contains("linux-image-amd64"), "{err}");
    }

    #[test]
    fn pxelinux_entry_golden() {
        let cmdline = render_cmdline(
            None,
            "/srv/compose/roots/abc",
            "compose.snapshot=sha256:abc",
            &["console=ttyS0,115200n8".to_string()],
        );
        let text = render_pxelinux(&Entry {
            label: "minimal-3",
            kernel: "images/minimal/gen/3/vmlinuz",
            initrd: "images/minimal/gen/3/initrd.img",
            cmdline: &cmdline,
            serial: Some("0 115200"),
        });
        assert_eq!(
            text,
            "SERIAL 0 115200\n# written by compose publish: one generation, booted without a prompt\n\
             DEFAULT minimal-3\nPROMPT 0\nTIMEOUT 0\nNOESCAPE 1\nALLOWOPTIONS 0\n\nLABEL minimal-3\n  KERNEL images/minimal/gen/3/vmlinuz\n\
             \x20 INITRD images/minimal/gen/3/initrd.img\n  APPEND root=/dev/nfs nfsroot=/srv/compose/roots/abc \
             ip=dhcp ro compose.snapshot=sha256:abc console=ttyS0,115200n8\n"
        );
        assert!(render_cmdline(Some("10.0.0.1"), "/r", "m", &[]).contains("nfsroot=10.0.0.1:/r "));
    }

    #[test]
    fn test_shell_is_refused() {
        let args = names(&["quiet", "compose.test-shell=ttyS1"]);
        let err = refuse_test_shell(&args, "--cmdline")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("compose.test-shell=ttyS1 (from --cmdline)") && err.contains("remove it"),
            "{err}"
        );
        assert!(refuse_test_shell(&names(&["compose.test-shell"]), "x").is_err());
        assert!(refuse_test_shell(&names(&["compose.test-shells=1", "quiet"]), "x").is_ok());
    }

    #[test]
    fn boot_settings_merge_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("usr/lib/compose/boot.d");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("a.json"), r#"{"cmdline":["quiet"]}"#).unwrap();
        fs::write(
            dir.join("b.json"),
            r#"{"cmdline":["console=ttyS0,115200n8"],"pxelinux_serial":"0 115200"}"#,
        )
        .unwrap();
        let root = ImageRoot::open(d.path()).unwrap();
        let s = read_boot_settings(&root).unwrap();
        assert_eq!(s.cmdline, vec!["quiet", "console=ttyS0,115200n8"]);
        assert_eq!(s.pxelinux_serial.as_deref(), Some("0 115200"));
        fs::write(dir.join("c.json"), r#"{"bogus":1}"#).unwrap();
        assert!(read_boot_settings(&root).is_err());
    }
}

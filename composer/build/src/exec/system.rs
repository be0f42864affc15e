//! `serial-console` and `hostname`: small edits to the image's init
//! configuration, plus the boot settings publish needs, recorded inside
//! the image under /usr/lib/compose/boot.d/ (so they travel with the
//! snapshot and are cached with it).

use super::edit::{read_image_file, Edit};
use super::StepContext;
use anyhow::{bail, Result};
use compose_recipe::HostnameSpec;
use std::path::Path;

/// Where layers leave boot settings (kernel command line, pxelinux serial) for publish.
pub const BOOT_D: &str = "/usr/lib/compose/boot.d";

#[derive(Debug, PartialEq)]
pub enum Init {
    Systemd,
    Sysvinit,
}

/// Which init the image boots, from /sbin/init (merged-/usr aware).
pub fn detect_init(root: &Path) -> Option<Init> {
    for init in ["usr/sbin/init", "sbin/init"] {
        if let Ok(target) = std::fs::read_link(root.join(init)) {
            return Some(if target.to_string_lossy().contains("systemd") {
                Init::Systemd
            } else {
                Init::Sysvinit
            });
        }
    }
    if root.join("etc/inittab").is_file() {
        return Some(Init::Sysvinit);
    }
    root.join("usr/lib/systemd/systemd")
        .exists()
        .then_some(Init::Systemd)
}

pub fn serial_console(cx: &StepContext, tty: &str, baud: u32) -> Result<()> {
    let mut e = Edit::new(cx.source_date_epoch)?;
    match detect_init(cx.root) {
        Some(Init::Systemd) => {
            e.symlink(
                &format!("/etc/systemd/system/getty.target.wants/serial-getty@{tty}.service"),
                "/lib/systemd/system/serial-getty@.service",
                0,
                0,
            )?;
            let dropin = format!("/etc/systemd/system/serial-getty@{tty}.service.d");
            e.dir(&dropin, 0o755, 0, 0)?;
            e.file(
                &format!("{dropin}/compose-baud.conf"),
                0o644,
                0,
                0,
                render_getty_dropin(baud).as_bytes(),
            )?;
        }
        Some(Init::Sysvinit) => {
            let old = read_image_file(cx.root, "/etc/inittab")?.unwrap_or_default();
            let text = render_inittab(&String::from_utf8_lossy(&old), tty, baud);
            e.file("/etc/inittab", 0o644, 0, 0, text.as_bytes())?;
        }
        None => bail!(
            "layer {}: serial-console: the image has neither systemd nor /etc/inittab; \
             add systemd-sysv (or sysvinit-core) to the base packages",
            cx.layer
        ),
    }
    e.dir(BOOT_D, 0o755, 0, 0)?;
    e.file(
        &format!("{BOOT_D}/serial-console.json"),
        0o644,
        0,
        0,
        render_boot_fragment(tty, baud).as_bytes(),
    )?;
    e.apply(cx.root)
}

/// Debian's serial-getty@.service with our baud rate first.
pub fn render_getty_dropin(baud: u32) -> String {
    let rates: Vec<String> = std::iter::once(baud)
        .chain(
            [115200, 57600, 38400, 9600]
                .into_iter()
                .filter(|r| *r != baud),
        )
        .map(|r| r.to_string())
        .collect();
    format!(
        "# written by compose (serial-console layer)\n[Service]\nExecStart=\n\
         ExecStart=-/sbin/agetty -o '-p -- \\\\u' --keep-baud {} - $TERM\n",
        rates.join(",")
    )
}

/// Replaces any getty line for `tty` with ours.
pub fn render_inittab(old: &str, tty: &str, baud: u32) -> String {
    let mut out: String = old
        .lines()
        .filter(|l| l.starts_with('#') || !l.split_whitespace().any(|w| w == tty))
        .map(|l| format!("{l}\n"))
        .collect();
    let id: String = tty.chars().filter(char::is_ascii_digit).collect();
    out.push_str(&format!(
        "T{id}:23:respawn:/sbin/getty -L {tty} {baud} vt100\n"
    ));
    out
}

/// Settings publish copies into the pxelinux entry.
pub fn render_boot_fragment(tty: &str, baud: u32) -> String {
    let mut v = serde_json::json!({
        "cmdline": ["console=tty0", format!("console={tty},{baud}n8")],
    });
    if let Some(port) = tty.strip_prefix("ttyS") {
        v["pxelinux_serial"] = serde_json::json!(format!("{port} {baud}"));
    }
    format!(
        "{}\n",
        serde_json::to_string_pretty(&v).expect("static json")
    )
}

const HOSTNAME_SCRIPT: &str = r#"#!/bin/sh
# compose: apply the hostname the DHCP server gave the initramfs. klibc's
# ipconfig records it in /run/net-IFACE.conf but never sets it.
grep -q 'systemd.hostname=' /proc/cmdline && exit 0
for conf in /run/net-*.conf; do
    [ -r "$conf" ] || continue
    name=$(sed -n "s/^HOSTNAME='\{0,1\}\([A-Za-z0-9.-]*\)'\{0,1\}$/\1/p" "$conf")
    [ -n "$name" ] || continue
    hostname "$name"
    # the root is a RAM overlay on a netbooted node: these writes stay local
    echo "$name" > /etc/hostname 2>/dev/null || true
    grep -q "^127.0.1.1" /etc/hosts 2>/dev/null || printf '127.0.1.1\t%s\n' "$name" >> /etc/hosts 2>/dev/null || true
    exit 0
done
"#;

const HOSTNAME_UNIT: &str = "# compose: hostname from the netboot DHCP lease
[Unit]
Description=Hostname from the netboot DHCP lease (compose)
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target
ConditionPathExistsGlob=/run/net-*.conf

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/compose/hostname-from-dhcp

[Install]
WantedBy=sysinit.target
";

pub fn hostname(cx: &StepContext, spec: &HostnameSpec) -> Result<()> {
    let mut e = Edit::new(cx.source_date_epoch)?;
    let hosts = read_image_file(cx.root, "/etc/hosts")?.unwrap_or_default();
    let hosts = String::from_utf8_lossy(&hosts);
    match spec {
        HostnameSpec::Fixed(name) => {
            e.file("/etc/hostname", 0o644, 0, 0, format!("{name}\n").as_bytes())?;
            e.file(
                "/etc/hosts",
                0o644,
                0,
                0,
                render_hosts(&hosts, Some(name)).as_bytes(),
            )?;
        }
        HostnameSpec::FromDhcp => {
            if detect_init(cx.root) != Some(Init::Systemd) {
                bail!(
                    "layer {}: hostname from_dhcp needs systemd in the image (add systemd-sysv to the base packages)",
                    cx.layer
                );
            }
            if read_image_file(cx.root, "/etc/hostname")?.is_some() {
                e.remove("/etc/hostname")?;
            }
            e.file(
                "/etc/hosts",
                0o644,
                0,
                0,
                render_hosts(&hosts, None).as_bytes(),
            )?;
            e.dir("/usr/lib/compose", 0o755, 0, 0)?;
            e.file(
                "/usr/lib/compose/hostname-from-dhcp",
                0o755,
                0,
                0,
                HOSTNAME_SCRIPT.as_bytes(),
            )?;
            let unit = "/usr/lib/systemd/system/compose-hostname.service";
            e.file(unit, 0o644, 0, 0, HOSTNAME_UNIT.as_bytes())?;
            e.symlink(
                "/etc/systemd/system/sysinit.target.wants/compose-hostname.service",
                unit,
                0,
                0,
            )?;
        }
    }
    e.apply(cx.root)
}

/// /etc/hosts with the 127.0.1.1 line for `name` (or none for DHCP names).
pub fn render_hosts(old: &str, name: Option<&str>) -> String {
    let mut out: String = old
        .lines()
        .filter(|l| !l.starts_with("127.0.1.1"))
        .map(|l| format!("{l}\n"))
        .collect();
    if !out.contains("localhost") {
        out.insert_str(
            0,
            "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
        );
    }
    if let Some(name) = name {
        out.push_str(&format!("127.0.1.1\t{name}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getty_dropin_puts_the_rate_first_once() {
        let s = render_getty_dropin(57600);
        assert!(
            s.contains("--keep-baud 57600,115200,38400,9600 - $TERM"),
            "{s}"
        );
        assert!(s.contains("ExecStart=\n"));
    }

    #[test]
    fn inittab_replaces_the_tty_line() {
        let old =
            "id:2:initdefault:\nT0:23:respawn:/sbin/getty -L ttyS0 9600 vt100\n#T1 ttyS0 comment\n";
        let new = render_inittab(old, "ttyS0", 115200);
        assert_eq!(
            new,
            "id:2:initdefault:\n#T1 ttyS0 comment\nT0:23:respawn:/sbin/getty -L ttyS0 115200 vt100\n"
        );
    }

    #[test]
    fn boot_fragment_has_cmdline_and_pxelinux_serial() {
        let v: serde_json::Value =
            serde_json::from_str(&render_boot_fragment("ttyS1", 115200)).unwrap();
        assert_eq!(v["cmdline"][1], "console=ttyS1,115200n8");
        assert_eq!(v["pxelinux_serial"], "1 115200");
        let v: serde_json::Value =
            serde_json::from_str(&render_boot_fragment("ttyAMA0", 9600)).unwrap();
        assert!(v.get("pxelinux_serial").is_none());
    }

    #[test]
    fn hosts_keeps_other_lines_and_sets_one_name() {
        let old = "127.0.0.1\tlocalhost\n127.0.1.1\told\n10.0.0.1 server\n";
        assert_eq!(
            render_hosts(old, Some("node01")),
            "127.0.0.1\tlocalhost\n10.0.0.1 server\n127.0.1.1\tnode01\n"
        );
        assert_eq!(
            render_hosts(old, None),
            "127.0.0.1\tlocalhost\n10.0.0.1 server\n"
        );
        assert!(render_hosts("", None).starts_with("127.0.0.1\tlocalhost\n"));
    }

    #[test]
    fn init_detection() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(detect_init(d.path()), None);
        std::fs::create_dir_all(d.path().join("usr/sbin")).unwrap();
        std::os::unix::fs::symlink("../lib/systemd/systemd", d.path().join("usr/sbin/init"))
            .unwrap();
        assert_eq!(detect_init(d.path()), Some(Init::Systemd));
        let s = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(s.path().join("etc")).unwrap();
        std::fs::write(s.path().join("etc/inittab"), "").unwrap();
        assert_eq!(detect_init(s.path()), Some(Init::Sysvinit));
    }
}

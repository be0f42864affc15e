//! The product's proof: QEMU guests PXE-boot a published snapshot from
//! `compose serve`, reach multi-user and pass the in-guest checks; one is
//! rebooted into a new generation while the other keeps working, then
//! rolled back (`compose boot-test --upgrade-to`). node01 boots BIOS
//! (SeaBIOS, pxelinux.0), node02 UEFI (OVMF, syslinux.efi): a mixed fleet.

use super::*;
use compose_e2e::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn vm_two_guests_boot_upgrade_and_roll_back() {
    require_vm_tools(&[]);
    let f = fixture();
    let cold = f.cold["snapshot"].as_str().unwrap().to_string();
    // Generation 2 differs in one file (/etc/motd), built into a private
    // store copy so the fixture's `minimal` tag stays put.
    let (_keep, store) = store_copy();
    let recipe = variant(
        "minimal-release2",
        "[[layer]]\nname = \"release\"\nkind = \"script\"\nrun = \"echo release-2 > /etc/motd\"\n",
    );
    let v2 = build_json(&store, &recipe)["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(cold, v2);

    let logs = repo_root().join("tests/artifacts/boot");
    let report = boot_test(
        &store,
        &[
            &format!("minimal@{cold}"),
            "--guests",
            "2",
            "--upgrade-to",
            &format!("minimal@{v2}"),
            "--firmware",
            "mixed",
        ],
        &logs,
    );
    let boots = report["boots"].as_array().unwrap();
    // node01 and node02 on generation 1; node01 on 2 (upgrade); node01 on 1 (rollback).
    let seen: Vec<(String, u64, String)> = boots
        .iter()
        .map(|b| {
            (
                b["guest"]["hostname"].as_str().unwrap().to_string(),
                b["boot"].as_u64().unwrap(),
                b["expect"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = |h: &str, n: u64, g: &str| (h.to_string(), n, g.to_string());
    for w in [
        want("node01", 1, "minimal/1"),
        want("node02", 1, "minimal/1"),
        want("node01", 2, "minimal/2"),
        want("node01", 3, "minimal/1"),
    ] {
        assert!(seen.contains(&w), "no boot {w:?} in {seen:?}");
    }
    for b in boots {
        let marker = b["marker"].as_str().unwrap_or_default();
        let snapshot = if b["expect"] == "minimal/2" {
            &v2
        } else {
            &cold
        };
        assert!(marker.contains(&format!("snapshot={snapshot}")), "{b:#}");
        assert!(b["error"].is_null(), "{b:#}");
        let checks = assert_checks(b);
        if b["boot"].as_u64() > Some(1) {
            assert!(
                checks.iter().any(|c| c == "probe-file-content"),
                "{checks:?}"
            );
        }
        // The phases come from compose serve's log.
        for phase in ["dhcp", "tftp", "kernel_initrd", "nfs_mount", "userspace"] {
            assert!(b["phases"][phase].as_f64().is_some(), "{phase}: {b:#}");
        }
    }
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["ok"], true, "{s:#}");
            s["name"].as_str().unwrap()
        })
        .collect();
    for name in [
        "machine-ids-distinct",
        "publish-upgrade",
        "other-guest-kept-running",
        "serve-restart-keeps-mounts",
        "rollback",
    ] {
        assert!(steps.contains(&name), "{name} missing from {steps:?}");
    }
    // The serial logs are kept for debugging (CI artifacts).
    for log in [
        "node01.serial.log",
        "node02.serial.log",
        "node01.boot2.serial.log",
        "serve.log",
    ] {
        assert!(
            logs.join(log).is_file(),
            "{log} not kept in {}",
            logs.display()
        );
    }
}

/// Fails, naming the package, unless QEMU, both firmwares and both boot
/// loaders (and the `extra` programs) are installed (ci/setup installs them).
fn require_vm_tools(extra: &[(&str, &str)]) {
    for (prog, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("ip", "iproute2"),
    ]
    .iter()
    .chain(extra)
    {
        require_program(prog, pkg);
    }
    for (file, pkg) in [
        ("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf"),
        ("/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi", "syslinux-efi"),
        ("/usr/lib/PXELINUX/pxelinux.0", "pxelinux"),
    ] {
        assert!(
            Path::new(file).is_file(),
            "{file} is missing: apt-get install {pkg} (ci/setup does), or run ci/test"
        );
    }
}

/// Runs `compose boot-test ARGS --timeout 300 --json --keep-logs LOGS`
/// under a watchdog and returns its report; fails with its output unless it
/// exited 0.
fn boot_test(store: &Path, args: &[&str], logs: &Path) -> Value {
    let _ = fs::remove_dir_all(logs);
    let tag = format!(
        "{}-{}",
        std::process::id(),
        logs.file_name().unwrap().to_string_lossy()
    );
    let out_path = std::env::temp_dir().join(format!("compose-boot-{tag}.out"));
    let err_path = std::env::temp_dir().join(format!("compose-boot-{tag}.err"));
    // boot-test bounds each boot (--timeout); the watchdog only catches a hang.
    let mut child = Command::new(compose_bin())
        .arg("--store")
        .arg(store)
        .arg("boot-test")
        .args(args)
        .args(["--timeout", "300", "--json", "--keep-logs"])
        .arg(logs)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20 * 60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            // SIGTERM lets boot-test stop its guests, serve and namespace.
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(10));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "compose boot-test did not finish within 20 minutes:\n{}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    eprintln!("{stderr}");
    assert!(
        status.success(),
        "compose boot-test failed ({status})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    serde_json::from_str(&stdout).expect("boot-test --json prints JSON")
}

/// The check names every boot must pass.
const CHECKS: [&str; 11] = [
    "firmware",
    "cmdline-snapshot",
    "hostname",
    "root-is-overlay",
    "lower-is-read-only-nfs",
    "non-root-runs-programs",
    "shadow-unreadable-by-non-root",
    "writes-land-in-tmpfs",
    "node-files-host-key",
    "node-files-modes",
    "node-files-hosts",
];

/// Every check of boot `b` passed, the required ones among them, and the
/// guest's firmware is the one `--firmware mixed` gives it.
fn assert_checks(b: &Value) -> Vec<String> {
    let firmware = if b["guest"]["hostname"] == "node02" {
        "uefi"
    } else {
        "bios"
    };
    assert_eq!(b["guest"]["firmware"], firmware, "{b:#}");
    let checks: Vec<String> = b["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["ok"], true, "{c:#}");
            c["name"].as_str().unwrap().to_string()
        })
        .collect();
    for name in CHECKS {
        assert!(
            checks.iter().any(|c| c == name),
            "{name} missing from {checks:?}"
        );
    }
    checks
}

/// Behind a site's DHCP server (dnsmasq handing out addresses only),
/// compose serve in proxyDHCP mode boots a BIOS and a UEFI guest: each gets
/// its boot file from compose and its address from the site.
#[test]
fn vm_proxy_dhcp_mixed_fleet_boots_behind_a_site_dhcp_server() {
    require_vm_tools(&[("dnsmasq", "dnsmasq-base")]);
    let f = fixture();
    let cold = f.cold["snapshot"].as_str().unwrap().to_string();
    let logs = repo_root().join("tests/artifacts/boot-proxy");
    let report = boot_test(
        &f.store,
        &[
            &format!("minimal@{cold}"),
            "--guests",
            "2",
            "--firmware",
            "mixed",
            "--proxy-dhcp",
        ],
        &logs,
    );
    let boots = report["boots"].as_array().unwrap();
    assert_eq!(boots.len(), 2, "{report:#}");
    for b in boots {
        assert!(b["error"].is_null(), "{b:#}");
        assert!(
            b["marker"].as_str().unwrap_or_default().contains(&cold),
            "{b:#}"
        );
        assert_checks(b);
    }
    // compose handed out boot files by firmware, and no address at all.
    let serve = fs::read_to_string(logs.join("serve.log")).unwrap();
    for (host, file) in [("node01", "pxelinux.0"), ("node02", "syslinux.efi")] {
        assert!(
            serve.lines().any(|l| l.contains("event=dhcp.proxy")
                && l.contains(&format!("host={host} "))
                && l.contains(&format!("file={file} "))),
            "no proxyDHCP offer of {file} to {host}:\n{serve}"
        );
    }
    assert!(
        !serve.contains("event=dhcp.ack"),
        "compose leased an address:\n{serve}"
    );
    let site = fs::read_to_string(logs.join("site-dhcp.log")).unwrap();
    for ip in ["10.78.0.11", "10.78.0.12"] {
        assert!(
            site.lines()
                .any(|l| l.contains("DHCPACK") && l.contains(&format!(" {ip} "))),
            "the site server leased no {ip}:\n{site}"
        );
    }
}

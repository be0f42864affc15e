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
    for (prog, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("ip", "iproute2"),
    ] {
        require_program(prog, pkg);
    }
    for (file, pkg) in [
        ("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf"),
        ("/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi", "syslinux-efi"),
    ] {
        assert!(
            std::path::Path::new(file).is_file(),
            "{file} is missing: apt-get install {pkg} (ci/setup does), or run ci/test"
        );
    }
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
    let _ = fs::remove_dir_all(&logs);
    let out_path = std::env::temp_dir().join(format!("compose-boot-{}.out", std::process::id()));
    let err_path = std::env::temp_dir().join(format!("compose-boot-{}.err", std::process::id()));
    // boot-test bounds each boot (--timeout); the watchdog only catches a hang.
    let mut child = Command::new(compose_bin())
        .arg("--store")
        .arg(&store)
        .args([
            "boot-test",
            &format!("minimal@{cold}"),
            "--guests",
            "2",
            "--upgrade-to",
            &format!("minimal@{v2}"),
            "--firmware",
            "mixed",
            "--timeout",
            "300",
            "--json",
            "--keep-logs",
        ])
        .arg(&logs)
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
    let report: Value = serde_json::from_str(&stdout).expect("boot-test --json prints JSON");
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
        let checks: Vec<&str> = b["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert_eq!(c["ok"], true, "{c:#}");
                c["name"].as_str().unwrap()
            })
            .collect();
        let firmware = if b["guest"]["hostname"] == "node02" {
            "uefi"
        } else {
            "bios"
        };
        assert_eq!(b["guest"]["firmware"], firmware, "{b:#}");
        for name in [
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
        ] {
            assert!(checks.contains(&name), "{name} missing from {checks:?}");
        }
        if b["boot"].as_u64() > Some(1) {
            assert!(checks.contains(&"probe-file-content"), "{checks:?}");
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

//! The product's proof: QEMU guests PXE-boot a published snapshot from
//! `compose serve` and reach multi-user (`compose boot-test`).

use super::*;
use compose_e2e::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn vm_two_guests_boot_the_published_generation() {
    for (prog, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("ip", "iproute2"),
    ] {
        require_program(prog, pkg);
    }
    let f = fixture();
    let snapshot = f.cold["snapshot"].as_str().unwrap().to_string();
    let logs = repo_root().join("tests/artifacts/boot");
    let _ = fs::remove_dir_all(&logs);
    let out_path = std::env::temp_dir().join(format!("compose-boot-{}.out", std::process::id()));
    let err_path = std::env::temp_dir().join(format!("compose-boot-{}.err", std::process::id()));
    // boot-test bounds itself (--timeout); the watchdog below only catches a hang.
    let mut child = Command::new(compose_bin())
        .arg("--store")
        .arg(&f.store)
        .args([
            "boot-test",
            &format!("minimal@{snapshot}"),
            "--guests",
            "2",
            "--timeout",
            "300",
            "--keep-logs",
        ])
        .arg(&logs)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(360);
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
                "compose boot-test did not finish within 6 minutes:\n{}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    assert!(
        status.success(),
        "compose boot-test failed ({status})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    for node in ["node01", "node02"] {
        let serial = fs::read_to_string(logs.join(format!("{node}.serial.log")))
            .unwrap_or_else(|e| panic!("{node}'s serial log was not kept: {e}"));
        let want = format!("COMPOSE-BOOTED host={node} snapshot={snapshot} gen=minimal/1");
        assert!(
            serial.contains(&want),
            "{node}'s serial log lacks {want:?}:\n{}",
            serial.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
        assert!(
            stdout.contains(&format!("{node} ok: power-on to marker")),
            "{stdout}"
        );
    }
    eprintln!("{stdout}");
}

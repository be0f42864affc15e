//! Real clients against the server: tftp-hpa, atftp and curl. A missing
//! client is a failure, not a skip, so CI cannot pass without them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{pattern, Harness};

const INSTALL: &str = "install tftp-hpa atftp curl (ci/setup does)";

fn require(bin: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(found, "{bin} not found: {INSTALL}");
}

struct Run {
    ok: bool,
    code: Option<i32>,
    log: String,
}

/// Runs a client with stdout/stderr in files, killed after 30 s.
fn run(dir: &Path, args: &[&str]) -> Run {
    require(args[0]);
    let log = dir.join("client.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("{args:?} timed out; output:\n{log}"));
    Run {
        ok: status.success(),
        code: status.code(),
        log,
    }
}

/// A client invocation that fetches `file` into `out`.
type GetCmd = fn(port: &str, file: &str, out: &str) -> Vec<String>;

fn v(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn clients() -> Vec<(&'static str, GetCmd)> {
    vec![
        ("tftp-hpa", |p, f, o| {
            v(&["tftp", "-m", "binary", "127.0.0.1", p, "-c", "get", f, o])
        }),
        ("tftp-hpa -v", |p, f, o| {
            v(&[
                "tftp",
                "-v",
                "-m",
                "binary",
                "127.0.0.1",
                p,
                "-c",
                "get",
                f,
                o,
            ])
        }),
        ("atftp blksize+tsize", |p, f, o| {
            v(&[
                "atftp",
                "--option",
                "blksize 1428",
                "--option",
                "tsize 0",
                "-g",
                "-r",
                f,
                "-l",
                o,
                "127.0.0.1",
                p,
            ])
        }),
        ("atftp windowsize", |p, f, o| {
            v(&[
                "atftp",
                "--option",
                "windowsize 4",
                "--option",
                "blksize 1024",
                "-g",
                "-r",
                f,
                "-l",
                o,
                "127.0.0.1",
                p,
            ])
        }),
        ("atftp plain", |p, f, o| {
            v(&["atftp", "-g", "-r", f, "-l", o, "127.0.0.1", p])
        }),
        ("curl", |p, f, o| {
            let url = format!("tftp://127.0.0.1:{p}/{f}");
            v(&[
                "curl",
                "-sS",
                "--path-as-is",
                "--tftp-blksize",
                "1024",
                &url,
                "-o",
                o,
            ])
        }),
    ]
}

fn fetch(h: &Harness, dir: &Path, cmd: GetCmd, file: &str) -> (Run, Option<Vec<u8>>) {
    let out: PathBuf = dir.join("out");
    let _ = std::fs::remove_file(&out);
    let port = h.addr.port().to_string();
    let args = cmd(&port, file, out.to_str().unwrap());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(dir, &args);
    (r, std::fs::read(&out).ok())
}

#[test]
fn real_clients_fetch_files() {
    let h = Harness::start();
    std::fs::write(h.root.join("big"), pattern(3_000_000)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let files: &[(&str, Vec<u8>)] = &[
        ("pxelinux.0", pattern(42_000)),
        ("big", pattern(3_000_000)),
        ("exact1024", pattern(1024)),
        ("empty", vec![]),
        ("pxelinux.cfg/default", b"DEFAULT x\n".to_vec()),
        ("images/x/current/vmlinuz", pattern(70_000)),
    ];
    for (name, cmd) in clients() {
        for (file, want) in files {
            let (r, got) = fetch(&h, work.path(), cmd, file);
            assert!(r.ok, "{name} {file}: failed:\n{}", r.log);
            assert!(
                got.as_ref() == Some(want),
                "{name} {file}: content differs\n{}",
                r.log
            );
        }
    }
}

/// Every client must show the server's refusal: tftp-hpa prints "Error code
/// N: message" (and exits 0), atftp prints "<message>", curl exits 68 (TFTP
/// file not found) or 69 (TFTP access violation).
#[test]
fn real_clients_are_refused_escapes() {
    let h = Harness::start();
    let work = tempfile::tempdir().unwrap();
    let cases: &[(&str, u16, &str)] = &[
        ("../secret", 2, "'..' in path"),
        ("images/../../secret", 2, "'..' in path"),
        ("evil", 2, "escapes the confinement"),
        ("up/etc/passwd", 2, "escapes the confinement"),
        ("deep", 2, "escapes the confinement"),
        ("missing", 1, "file not found"),
        ("dir", 2, "is a directory"),
    ];
    for (name, cmd) in clients() {
        for (file, code, msg) in cases {
            let (r, got) = fetch(&h, work.path(), cmd, file);
            let shown = if name.starts_with("tftp-hpa") {
                r.log.contains(&format!("Error code {code}: ")) && r.log.contains(msg)
            } else if name.starts_with("atftp") {
                !r.ok && r.log.contains(msg)
            } else {
                r.code == Some(if *code == 1 { 68 } else { 69 })
            };
            assert!(shown, "{name} {file}: refusal not shown:\n{}", r.log);
            let got = got.unwrap_or_default();
            assert!(got.is_empty(), "{name} {file}: wrote {} bytes", got.len());
        }
    }
}

#[test]
fn real_clients_cannot_write() {
    let h = Harness::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("upload"), b"data").unwrap();
    let port = h.addr.port().to_string();
    let url = format!("tftp://127.0.0.1:{port}/upload");
    let puts: Vec<Vec<&str>> = vec![
        vec![
            "tftp",
            "-m",
            "binary",
            "127.0.0.1",
            &port,
            "-c",
            "put",
            "upload",
        ],
        vec![
            "atftp",
            "-p",
            "-l",
            "upload",
            "-r",
            "upload",
            "127.0.0.1",
            &port,
        ],
        vec!["curl", "-sS", "-T", "upload", &url],
    ];
    for args in puts {
        let r = run(work.path(), &args);
        let refused = match args[0] {
            "tftp" => r.log.contains("Error code 2: read-only server"),
            "atftp" => !r.ok && r.log.contains("read-only server"),
            _ => r.code == Some(69),
        };
        assert!(refused, "{args:?}: not refused:\n{}", r.log);
        assert!(!h.root.join("upload").exists(), "{args:?} wrote a file");
    }
}

#[test]
fn tftp_hpa_netascii_round_trips() {
    let h = Harness::start();
    let work = tempfile::tempdir().unwrap();
    let port = h.addr.port().to_string();
    let r = run(
        work.path(),
        &[
            "tftp",
            "-m",
            "ascii",
            "127.0.0.1",
            &port,
            "-c",
            "get",
            "text",
            "out",
        ],
    );
    assert!(r.ok, "{}", r.log);
    let want = std::fs::read(h.root.join("text")).unwrap();
    assert_eq!(
        std::fs::read(work.path().join("out")).unwrap(),
        want,
        "{}",
        r.log
    );
}

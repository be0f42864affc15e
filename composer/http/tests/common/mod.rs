//! A publish tree in a temp dir, a server on 127.0.0.1 on its own thread, and
//! curl as the client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use compose_http::{HttpConfig, HttpEvent, HttpServer, PrivateFiles};

pub struct Tree {
    pub dir: tempfile::TempDir,
    /// A 1 MiB + 123 bytes kernel: several chunks, odd tail.
    pub kernel: Vec<u8>,
}

impl Tree {
    pub fn top(&self) -> &Path {
        self.dir.path()
    }
}

fn write(p: &Path, body: &[u8], mode: u32) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The shape of /srv/compose that HTTP sees.
pub fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    // Deterministic, non-repeating bytes.
    let kernel: Vec<u8> = (0..(1 << 20) + 123u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write(&t.join("images/img/gen/1/vmlinuz"), &kernel, 0o644);
    write(
        &t.join("images/img/gen/1/pxelinux.cfg"),
        b"DEFAULT linux\n",
        0o644,
    );
    symlink("gen/1", t.join("images/img/current")).unwrap();
    write(&t.join("tftp/pxelinux.0"), b"loader", 0o644);
    write(&t.join("tftp/secret"), b"0600 file", 0o600);
    write(&t.join("roots/abc/etc/shadow"), b"root:x", 0o644);
    write(
        &t.join("cluster.d/h/boot/n1/overlay.cpio"),
        b"overlay of n1",
        0o600,
    );
    symlink("../images", t.join("tftp/images")).unwrap();
    std::fs::create_dir_all(t.join("tftp/pxelinux.cfg")).unwrap();
    symlink(
        "../images/img/current/pxelinux.cfg",
        t.join("tftp/pxelinux.cfg/default"),
    )
    .unwrap();
    symlink("/etc/passwd", t.join("tftp/passwd")).unwrap();
    symlink("../roots/abc/etc/shadow", t.join("tftp/shadow")).unwrap();
    symlink("cluster.d/h", t.join("cluster")).unwrap();
    Tree { dir, kernel }
}

pub struct Server {
    pub addr: SocketAddr,
    pub private: PrivateFiles,
    events: mpsc::Receiver<HttpEvent>,
    /// Dropping the runtime cancels the server and its connections.
    _rt: tokio::runtime::Runtime,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits (at most 5 s) for an event matching `pred`, skipping others.
    pub fn wait_event(&self, pred: impl Fn(&HttpEvent) -> bool) -> HttpEvent {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if pred(&e) => return e,
                Ok(_) => {}
                Err(_) => panic!("no matching event within 5 s"),
            }
        }
    }
}

/// Starts a server on the tree, with the publish-tree policy: root `tftp/`,
/// boundary the tree, `images/` allowed.
pub fn start(tree: &Tree, tune: impl FnOnce(&mut HttpConfig)) -> Server {
    start_on(tree, tune, None)
}

/// [`start`], with the listener bound to `device` (SO_BINDTODEVICE) first.
pub fn start_on(tree: &Tree, tune: impl FnOnce(&mut HttpConfig), device: Option<&str>) -> Server {
    let t = tree.top();
    let mut cfg = HttpConfig::new(t.join("tftp"), "127.0.0.1:0".parse().unwrap());
    cfg.confine = t.to_path_buf();
    cfg.allow = vec![t.join("images")];
    tune(&mut cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut server, addr) = rt.block_on(HttpServer::bind(cfg)).unwrap();
    if let Some(dev) = device {
        server.bind_to_device(dev).unwrap();
    }
    server.set_status(|| br#"{"nodes":1}"#.to_vec());
    server.set_metrics(|| "# TYPE compose_nodes gauge\ncompose_nodes 3\n".to_owned());
    let private = server.private_files();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, events) = mpsc::channel();
    // Forward to a std channel the test thread can wait on.
    rt.spawn(async move {
        while let Some(e) = rx.recv().await {
            if ev_tx.send(e).is_err() {
                break;
            }
        }
    });
    rt.spawn(server.run(tx, std::future::pending()));
    Server {
        addr,
        private,
        events,
        _rt: rt,
    }
}

/// What curl saw.
pub struct Got {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `-w` output.
    pub written: String,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Runs curl with `args` (plus header/body capture) and parses the last
/// response's status and headers.
pub fn curl(args: &[&str]) -> Got {
    let dir = tempfile::tempdir().unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D"])
        .arg(&h)
        .arg("-o")
        .arg(&b)
        .args(args)
        .output()
        .expect("curl runs");
    let headers_text = std::fs::read_to_string(&h).unwrap_or_default();
    // With several URLs or redirects, -D appends: keep the last response.
    let last = headers_text
        .rsplit("HTTP/1.1 ")
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Got {
        status,
        headers,
        body: std::fs::read(&b).unwrap_or_default(),
        written: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

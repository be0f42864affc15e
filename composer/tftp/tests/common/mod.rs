//! Test harness: a server on its own thread and runtime over a temp publish
//! tree, plus a hand-written TFTP client. Everything is loopback and bounded.
#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use compose_tftp::packet::{self, Packet, Request};
use compose_tftp::{ErrorCode, Mode, TftpConfig, TftpEvent, TftpServer};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;

pub struct Harness {
    pub addr: SocketAddr,
    /// The confinement boundary (the publish tree); `root` is `top/tftp`.
    pub top: PathBuf,
    pub root: PathBuf,
    pub events: UnboundedReceiver<TftpEvent>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// A publish-tree-like layout: top/tftp (root) with `images -> ../images`,
/// plus escape attempts that must be refused.
fn layout(top: &Path) {
    let root = top.join("tftp");
    std::fs::create_dir_all(root.join("pxelinux.cfg")).unwrap();
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::fs::create_dir_all(top.join("images/x/gen/1/pxelinux.cfg")).unwrap();
    std::fs::write(
        top.join("images/x/gen/1/pxelinux.cfg/default"),
        b"DEFAULT x\n",
    )
    .unwrap();
    std::fs::write(top.join("images/x/gen/1/vmlinuz"), pattern(70_000)).unwrap();
    std::fs::write(
        top.join("secret"),
        b"outside the root, inside the boundary\n",
    )
    .unwrap();
    std::fs::write(root.join("pxelinux.0"), pattern(42_000)).unwrap();
    std::fs::write(root.join("exact1024"), pattern(1024)).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("text"), b"line one\nline two\r\nCR\rend\n").unwrap();
    let ln = |target: &str, link: &Path| std::os::unix::fs::symlink(target, link).unwrap();
    ln("gen/1", &top.join("images/x/current"));
    ln("../images", &root.join("images"));
    ln(
        "../images/x/current/pxelinux.cfg/default",
        &root.join("pxelinux.cfg/default"),
    );
    ln("/etc/passwd", &root.join("evil"));
    ln("../..", &root.join("up"));
    ln("../../../../../../../../etc/passwd", &root.join("deep"));
}

/// Deterministic, non-repeating-ish content so misplaced blocks show.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n as u64)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

pub fn config(root: &Path, top: &Path) -> TftpConfig {
    let mut cfg = TftpConfig::new(root, "127.0.0.1:0".parse().unwrap());
    cfg.confine = top.to_path_buf();
    cfg.max_blksize = 1468;
    cfg.max_window = 16;
    cfg.default_timeout = Duration::from_millis(500);
    cfg.retries = 4;
    cfg
}

impl Harness {
    pub fn start() -> Harness {
        Harness::start_with(|_| {})
    }

    /// Starts a server; `tweak` adjusts the config (timeouts, limits).
    pub fn start_with(tweak: impl FnOnce(&mut TftpConfig)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("srv");
        layout(&top);
        let root = top.join("tftp");
        let mut cfg = config(&root, &top);
        tweak(&mut cfg);
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (server, addr) = TftpServer::bind(cfg).await.unwrap();
                addr_tx.send(addr).unwrap();
                server
                    .run(tx, async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Harness {
            addr,
            top,
            root,
            events,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Waits (bounded) for the first event matching `pred`, skipping others.
    pub fn wait_event(&mut self, pred: impl Fn(&TftpEvent) -> bool) -> TftpEvent {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            match self.events.try_recv() {
                Ok(e) if pred(&e) => return e,
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        panic!("no matching event within 20 s");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A hand-written client: one socket (one TID) per instance.
pub struct Client {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    buf: Vec<u8>,
}

/// What a whole `get` saw.
#[derive(Debug, Default)]
pub struct Got {
    pub oack: Option<Vec<(String, String)>>,
    pub data: Vec<u8>,
    /// Block number and payload length of every DATA packet accepted.
    pub blocks: Vec<(u16, usize)>,
}

pub fn rrq(name: &str, mode: Mode, opts: &[(&str, &str)]) -> Packet {
    Packet::Rrq(Request {
        filename: name.into(),
        mode,
        options: opts
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    })
}

impl Client {
    pub async fn new(server: SocketAddr) -> Client {
        Client {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            buf: vec![0; 70_000],
        }
    }

    pub async fn send(&self, to: SocketAddr, p: &Packet) {
        self.sock
            .send_to(&packet::encode(p).unwrap(), to)
            .await
            .unwrap();
    }

    /// The next datagram within `t`, parsed, with its source.
    pub async fn recv(&mut self, t: Duration) -> Option<(Packet, SocketAddr)> {
        let (n, from) = tokio::time::timeout(t, self.sock.recv_from(&mut self.buf))
            .await
            .ok()?
            .unwrap();
        Some((packet::parse(&self.buf[..n]).unwrap(), from))
    }

    /// Sends a request and returns the first reply.
    pub async fn request(&mut self, p: &Packet) -> (Packet, SocketAddr) {
        self.send(self.server, p).await;
        self.recv(Duration::from_secs(5)).await.expect("no reply")
    }

    /// A complete, loss-free read: ACKs OACK, acks at each window's end.
    pub async fn get(&mut self, name: &str, opts: &[(&str, &str)]) -> Result<Got, String> {
        self.get_mode(name, Mode::Octet, opts).await
    }

    pub async fn get_mode(
        &mut self,
        name: &str,
        mode: Mode,
        opts: &[(&str, &str)],
    ) -> Result<Got, String> {
        let (mut pkt, tid) = self.request(&rrq(name, mode, opts)).await;
        let mut got = Got::default();
        let (mut blksize, mut window) = (512usize, 1usize);
        if let Packet::Oack { options } = &pkt {
            for (k, v) in options {
                match k.to_ascii_lowercase().as_str() {
                    "blksize" => blksize = v.parse().unwrap(),
                    "windowsize" => window = v.parse().unwrap(),
                    _ => {}
                }
            }
            got.oack = Some(options.clone());
            self.send(tid, &Packet::Ack { block: 0 }).await;
            pkt = self.next_from(tid).await?;
        }
        let mut expect: u16 = 1;
        let mut in_window = 0;
        let end = Instant::now() + Duration::from_secs(120);
        // Bounded by time (and by the server finishing the file).
        while Instant::now() < end {
            match pkt {
                Packet::Data { block, data } if block == expect => {
                    got.data.extend_from_slice(&data);
                    got.blocks.push((block, data.len()));
                    in_window += 1;
                    let last = data.len() < blksize;
                    if last || in_window == window {
                        self.send(tid, &Packet::Ack { block }).await;
                        in_window = 0;
                    }
                    if last {
                        return Ok(got);
                    }
                    expect = expect.wrapping_add(1);
                }
                Packet::Data { block, .. } => {
                    return Err(format!("got block {block}, want {expect}"))
                }
                Packet::Error { code, message } => {
                    return Err(format!("ERROR {}: {message}", code.0))
                }
                other => return Err(format!("unexpected {other:?}")),
            }
            pkt = self.next_from(tid).await?;
        }
        Err("client deadline".into())
    }

    /// The next packet from `tid` (others are dropped), within 5 s.
    pub async fn next_from(&mut self, tid: SocketAddr) -> Result<Packet, String> {
        for _ in 0..100 {
            match self.recv(Duration::from_secs(5)).await {
                Some((p, from)) if from == tid => return Ok(p),
                Some(_) => continue,
                None => return Err("timeout".into()),
            }
        }
        Err("too many stray packets".into())
    }
}

pub fn is_error(p: &Packet, code: ErrorCode) -> bool {
    matches!(p, Packet::Error { code: c, .. } if *c == code)
}

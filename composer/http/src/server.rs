//! The accept loop: connection caps (global and per peer IP), timeouts, one
//! task per connection running hyper's HTTP/1.1 state machine.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use compose_confine::Confinement;

use crate::confine::open_confinement;
use crate::deadline::DeadlineIo;
use crate::handler::{Handler, Hook, PrivateFiles};
use crate::metrics::Metrics;
use crate::{HttpError, HttpEvent};

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The directory URL paths are relative to, e.g. /srv/compose/tftp.
    pub root: PathBuf,
    /// The boundary no resolved path may leave, e.g. /srv/compose.
    pub confine: PathBuf,
    /// Directories besides `root` a served file may lie in, e.g.
    /// /srv/compose/images (where `tftp/images` leads).
    pub allow: Vec<PathBuf>,
    /// 0.0.0.0:80 in production; 127.0.0.1:0 in tests.
    pub bind: SocketAddr,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Open connections per client address at most.
    pub max_per_peer: usize,
    /// Time to receive a whole request head, counted from when the server
    /// starts waiting for it: on a new connection and after each response.
    /// Bounds slowloris headers and, in effect, kept-alive idle time.
    pub header_timeout: Duration,
    /// Time a connection may move no byte in either direction while a read
    /// waits (a stalled request body, a silent connection).
    pub idle_timeout: Duration,
    /// Time a write may make no progress (a client that stopped reading).
    pub write_timeout: Duration,
    /// Bytes per file read; two are in memory per transfer.
    pub chunk: usize,
}

impl HttpConfig {
    /// Defaults for a boot LAN, confined to `root` itself.
    pub fn new(root: impl Into<PathBuf>, bind: SocketAddr) -> HttpConfig {
        let root = root.into();
        HttpConfig {
            confine: root.clone(),
            root,
            allow: Vec::new(),
            bind,
            max_connections: 1024,
            max_per_peer: 16,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            chunk: 256 * 1024,
        }
    }

    fn validate(&self) -> Result<(), HttpError> {
        let bad = |m: &str| Err(HttpError::Config(m.to_owned()));
        if self.max_connections == 0 || self.max_per_peer == 0 {
            return bad("max_connections and max_per_peer must be at least 1");
        }
        if self.header_timeout.is_zero()
            || self.idle_timeout.is_zero()
            || self.write_timeout.is_zero()
        {
            return bad("timeouts must be positive");
        }
        if !(4096..=16 << 20).contains(&self.chunk) {
            return bad("chunk must be between 4 KiB and 16 MiB");
        }
        Ok(())
    }
}

/// A bound server that has not started serving: the caller learns the port,
/// registers private files and hooks, then calls [`HttpServer::run`].
pub struct HttpServer {
    cfg: HttpConfig,
    confinement: Confinement,
    listener: TcpListener,
    private: PrivateFiles,
    status_hook: Option<Hook<Vec<u8>>>,
    metrics_hook: Option<Hook<String>>,
}

impl HttpServer {
    /// Validates `cfg`, opens the confinement and binds the listener.
    pub async fn bind(cfg: HttpConfig) -> Result<(HttpServer, SocketAddr), HttpError> {
        cfg.validate()?;
        let confinement =
            open_confinement(&cfg.root, &cfg.confine, &cfg.allow).map_err(|source| {
                HttpError::Io {
                    context: format!(
                        "opening HTTP root {} (confined to {})",
                        cfg.root.display(),
                        cfg.confine.display()
                    ),
                    source,
                }
            })?;
        let listener = TcpListener::bind(cfg.bind)
            .await
            .map_err(|source| HttpError::Io {
                context: format!("binding HTTP socket {}", cfg.bind),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| HttpError::Io {
            context: "reading the HTTP socket address".into(),
            source,
        })?;
        let server = HttpServer {
            cfg,
            confinement,
            listener,
            private: PrivateFiles::default(),
            status_hook: None,
            metrics_hook: None,
        };
        Ok((server, addr))
    }

    /// Accepts connections arriving on `interface` only (SO_BINDTODEVICE;
    /// needs CAP_NET_RAW).
    pub fn bind_to_device(&self, interface: &str) -> Result<(), HttpError> {
        compose_netrt::bind_to_device(&self.listener, interface).map_err(|source| HttpError::Io {
            context: format!("binding the HTTP socket to interface {interface}"),
            source,
        })
    }

    /// The per-client file table; keep the handle to update it while serving.
    pub fn private_files(&self) -> PrivateFiles {
        self.private.clone()
    }

    /// Serves `/status.json` from `hook` (JSON bytes, rendered per request).
    pub fn set_status(&mut self, hook: impl Fn() -> Vec<u8> + Send + Sync + 'static) {
        self.status_hook = Some(Arc::new(hook));
    }

    /// Appends `hook`'s Prometheus text to the library's own `/metrics`.
    pub fn set_metrics(&mut self, hook: impl Fn() -> String + Send + Sync + 'static) {
        self.metrics_hook = Some(Arc::new(hook));
    }

    /// Serves until `shutdown` resolves; connections still open then are
    /// dropped (a boot client retries, a half-sent kernel is worthless).
    pub async fn run(
        self,
        events: UnboundedSender<HttpEvent>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), HttpError> {
        let HttpServer {
            cfg,
            confinement,
            listener,
            private,
            status_hook,
            metrics_hook,
        } = self;
        let handler = Arc::new(Handler {
            confinement,
            private,
            status_hook,
            metrics_hook,
            metrics: Arc::new(Metrics::default()),
            events: events.clone(),
            chunk: cfg.chunk,
        });
        let limits = Arc::new(Limits::new(cfg.max_connections, cfg.max_per_peer));
        let cfg = Arc::new(cfg);
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        // Runs once per accepted connection until shutdown.
        loop {
            while conns.try_join_next().is_some() {}
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE/ENFILE, ECONNABORTED: wait a little so a
                        // descriptor shortage is not a busy loop.
                        let _ = events.send(HttpEvent::AcceptError { reason: e.to_string() });
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Some(slot) = Slot::take(&limits, peer.ip()) else {
                handler.metrics.connection_refused();
                refuse_busy(stream);
                let reason = "too many connections".to_owned();
                let _ = events.send(HttpEvent::Refused {
                    peer,
                    path: String::new(),
                    status: 503,
                    reason,
                });
                continue;
            };
            let (handler, cfg) = (handler.clone(), cfg.clone());
            conns.spawn(async move {
                let _slot = slot;
                connection(stream, peer, handler, &cfg).await;
            });
        }
        conns.shutdown().await;
        Ok(())
    }
}

/// Writes a canned 503 if the socket takes it at once, then closes: the
/// descriptor is freed now, never parked behind a slow client.
fn refuse_busy(stream: TcpStream) {
    let _ = stream.try_write(
        b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
}

async fn connection(stream: TcpStream, peer: SocketAddr, handler: Arc<Handler>, cfg: &HttpConfig) {
    let _ = stream.set_nodelay(true);
    handler.metrics.connection_opened();
    let io = TokioIo::new(DeadlineIo::new(stream, cfg.idle_timeout, cfg.write_timeout));
    let h = handler.clone();
    let svc = service_fn(move |req| {
        let resp = h.handle(&req, peer);
        async move { Ok::<_, Infallible>(resp) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .keep_alive(true)
        .max_buf_size(16 * 1024)
        .serve_connection(io, svc)
        .await;
    handler.metrics.connection_closed();
}

/// Connection counts, global and per peer address.
struct Limits {
    max: usize,
    per_peer: usize,
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl Limits {
    fn new(max: usize, per_peer: usize) -> Limits {
        Limits {
            max,
            per_peer,
            counts: Mutex::new((0, HashMap::new())),
        }
    }
}

/// A held connection slot, returned on drop.
struct Slot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Slot {
    fn take(limits: &Arc<Limits>, ip: IpAddr) -> Option<Slot> {
        let ip = ip.to_canonical();
        let mut c = limits.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per) = &mut *c;
        let mine = per.entry(ip).or_default();
        if *total >= limits.max || *mine >= limits.per_peer {
            if *mine == 0 {
                per.remove(&ip);
            }
            return None;
        }
        *total += 1;
        *mine += 1;
        Some(Slot {
            limits: limits.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.limits.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per) = &mut *c;
        *total -= 1;
        if let Some(n) = per.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
    }
}

/// Binds and serves in one call (production: nobody needs the port first).
pub async fn serve(
    cfg: HttpConfig,
    events: UnboundedSender<HttpEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HttpError> {
    let (server, _) = HttpServer::bind(cfg).await?;
    server.run(events, shutdown).await
}

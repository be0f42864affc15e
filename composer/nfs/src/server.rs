//! The TCP loop: one listener, one task per connection on a per-CPU thread
//! (pool.rs); READs that cannot block answered by the connection itself
//! (fast.rs), other calls concurrently on the blocking pool (file-system
//! calls block); replies written back in completion order (RPC matches
//! them by xid) by writer.rs.

use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::fast::Reply;
use crate::pool::Pool;
use crate::proto::Ctx;
use crate::rpc::{fragment_header, Reassembler, MAX_RECORD};
use crate::writer::write_replies;
use crate::{Export, ExportSource, NfsConfig, NfsError, NfsEvent, Source};

/// Calls in flight per connection (the Linux client pipelines many).
const IN_FLIGHT: usize = 32;

/// A bound server; [`NfsServer::run`] serves it.
pub struct NfsServer {
    listener: TcpListener,
    source: Source,
}

impl NfsServer {
    /// Binds `cfg.bind` after checking every export is an openable directory.
    pub async fn bind(cfg: NfsConfig) -> Result<NfsServer, NfsError> {
        for ex in &cfg.exports {
            check_export(ex)?;
        }
        NfsServer::bind_dynamic(cfg.bind, Arc::new(cfg.exports)).await
    }

    /// Binds with an export list re-read on every MNT.
    pub async fn bind_dynamic(
        bind: SocketAddr,
        source: Arc<dyn ExportSource>,
    ) -> Result<NfsServer, NfsError> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| NfsError::Bind { addr: bind, source })?;
        Ok(NfsServer { listener, source })
    }

    /// Accepts connections that arrive on `interface` only (SO_BINDTODEVICE):
    /// Linux delivers a packet for any local address whatever interface it
    /// came in on, so binding the boot address alone would still let a
    /// host on another network route to it through its own interface.
    pub fn bind_to_device(&self, interface: &str) -> Result<(), NfsError> {
        use nix::sys::socket::{setsockopt, sockopt::BindToDevice};
        setsockopt(
            &self.listener,
            BindToDevice,
            &std::ffi::OsString::from(interface),
        )
        .map_err(|e| NfsError::Bind {
            addr: self.local_addr(),
            source: e.into(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| {
            // Only fails for a closed socket; bind just succeeded.
            SocketAddr::from(([0, 0, 0, 0], 0))
        })
    }

    /// Serves until `shutdown` completes; open connections are then dropped.
    pub async fn run(
        self,
        events: UnboundedSender<NfsEvent>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), NfsError> {
        let port = self.local_addr().port();
        let ctx = Arc::new(Ctx::new(self.source, port, events.clone()));
        let mut conns = JoinSet::new();
        let pool = Pool::start().unwrap_or_else(|e| {
            let message =
                format!("starting connection threads: {e}; serving on the caller's runtime");
            let _ = events.send(NfsEvent::Error {
                peer: None,
                message,
            });
            Pool::empty()
        });
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        // Moved to a pool thread, registered again there.
                        match stream.into_std() {
                            Ok(stream) => pool.spawn(&mut conns, connection(Arc::clone(&ctx), stream, peer)),
                            Err(e) => {
                                let _ = events.send(NfsEvent::Error { peer: Some(peer), message: format!("accept: {e}") });
                            }
                        }
                    }
                    Err(e) => {
                        let _ = events.send(NfsEvent::Error { peer: None, message: format!("accept: {e}") });
                        // EMFILE and friends: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.shutdown().await;
        Ok(())
    }
}

fn check_export(ex: &Export) -> Result<(), NfsError> {
    let err = |source| NfsError::Export {
        path: ex.path.clone(),
        dir: ex.dir.clone(),
        source,
    };
    let md = std::fs::metadata(&ex.dir).map_err(err)?;
    if !md.is_dir() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a directory",
        )));
    }
    Ok(())
}

/// Binds `cfg.bind` and serves the static export list until `shutdown`.
pub async fn serve(
    cfg: NfsConfig,
    events: UnboundedSender<NfsEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NfsError> {
    NfsServer::bind(cfg).await?.run(events, shutdown).await
}

/// Like [`serve`] with an export list re-read on every MNT.
pub async fn serve_dynamic(
    bind: SocketAddr,
    source: Arc<dyn ExportSource>,
    events: UnboundedSender<NfsEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NfsError> {
    NfsServer::bind_dynamic(bind, source)
        .await?
        .run(events, shutdown)
        .await
}

async fn connection(ctx: Arc<Ctx>, stream: std::net::TcpStream, peer: SocketAddr) {
    // Registered here, with the reactor of the thread it runs on.
    let stream = match TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            let message = format!("registering the connection: {e}");
            let _ = ctx.events.send(NfsEvent::Error {
                peer: Some(peer),
                message,
            });
            return;
        }
    };
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Reply>(IN_FLIGHT);
    let reader = read_calls(Arc::clone(&ctx), rd, peer, tx);
    let writer = write_replies(wr, rx);
    tokio::pin!(reader, writer);
    // The reader ends at end of stream or on a bad record; its sender is
    // dropped then, so the writer ends once every call in flight is
    // answered. A writer ending first (client gone, or a reply it could not
    // finish) ends both.
    let error = tokio::select! {
        r = &mut reader => {
            let w = writer.await;
            r.or(w)
        }
        w = &mut writer => w,
    };
    if let Some(message) = error {
        let _ = ctx.events.send(NfsEvent::Error {
            peer: Some(peer),
            message,
        });
    }
}

/// Reads calls until end of stream; answers READs that cannot block itself
/// (fast.rs) and everything else on the blocking pool, at most
/// [`IN_FLIGHT`] at a time. `Some`: why the connection ended early.
async fn read_calls(
    ctx: Arc<Ctx>,
    rd: OwnedReadHalf,
    peer: SocketAddr,
    tx: mpsc::Sender<Reply>,
) -> Option<String> {
    // Pipelined calls arrive several per segment: one read for them all.
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut reasm = Reassembler::default();
    loop {
        let mut mark = [0u8; 4];
        match rd.read_exact(&mut mark).await {
            Ok(_) => {}
            // A client closing or resetting between calls is a normal end.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ) =>
            {
                return None
            }
            Err(e) => return Some(format!("read: {e}")),
        }
        let (last, len) = fragment_header(mark);
        if len > MAX_RECORD {
            return Some(format!("fragment of {len} bytes"));
        }
        let mut frag = vec![0u8; len];
        if let Err(e) = rd.read_exact(&mut frag).await {
            return Some(format!("read: {e}"));
        }
        let record = match reasm.push(last, &frag) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => return Some(e.to_string()),
        };
        if let Some(reply) = ctx.try_read(&record, peer) {
            if tx.send(reply).await.is_err() {
                return None;
            }
            continue;
        }
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return None;
        };
        let (ctx, tx) = (Arc::clone(&ctx), tx.clone());
        tokio::task::spawn_blocking(move || {
            if let Some(reply) = ctx.handle(&record, peer) {
                let _ = tx.blocking_send(reply);
            }
            drop(permit);
        });
    }
}

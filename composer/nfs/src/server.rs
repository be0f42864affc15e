//! The TCP loop: one listener, one task per connection, calls answered
//! concurrently on the blocking pool (file-system calls block), replies
//! written back in completion order (RPC matches them by xid).

use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::proto::Ctx;
use crate::rpc::{fragment_header, frame, Reassembler, MAX_RECORD};
use crate::{Export, ExportSource, NfsConfig, NfsError, NfsEvent, Source};

/// Calls in flight per connection (the Linux client pipelines many).
const IN_FLIGHT: usize = 32;
/// Replies from this size on are written without copying them into a frame.
const BIG_REPLY: usize = 64 * 1024;

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
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        conns.spawn(connection(Arc::clone(&ctx), stream, peer));
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

async fn connection(ctx: Arc<Ctx>, stream: TcpStream, peer: SocketAddr) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let writer = tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            // Small replies are framed by copying (one write, one segment);
            // a big READ reply gets its record mark written first rather
            // than being copied behind it.
            let sent = if reply.len() < BIG_REPLY {
                wr.write_all(&frame(&reply)).await
            } else {
                let mark = (0x8000_0000 | reply.len() as u32).to_be_bytes();
                match wr.write_all(&mark).await {
                    Ok(()) => wr.write_all(&reply).await,
                    Err(e) => Err(e),
                }
            };
            if sent.is_err() {
                break;
            }
        }
    });
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut reasm = Reassembler::default();
    let error = loop {
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
                break None
            }
            Err(e) => break Some(format!("read: {e}")),
        }
        let (last, len) = fragment_header(mark);
        if len > MAX_RECORD {
            break Some(format!("fragment of {len} bytes"));
        }
        let mut frag = vec![0u8; len];
        if let Err(e) = rd.read_exact(&mut frag).await {
            break Some(format!("read: {e}"));
        }
        let record = match reasm.push(last, &frag) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => break Some(e.to_string()),
        };
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            break None;
        };
        let (ctx, tx) = (Arc::clone(&ctx), tx.clone());
        tokio::task::spawn_blocking(move || {
            if let Some(reply) = ctx.handle(&record, peer) {
                let _ = tx.blocking_send(reply);
            }
            drop(permit);
        });
    };
    if let Some(message) = error {
        let _ = ctx.events.send(NfsEvent::Error {
            peer: Some(peer),
            message,
        });
    }
    drop(tx);
    let _ = writer.await;
}

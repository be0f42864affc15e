//! The TCP loop: one listener, one task per connection on a per-CPU thread
//! (compose-netrt's `Pool`); READs that cannot block answered by the connection itself
//! (fast.rs), other calls concurrently on the blocking pool (file-system
//! calls block); replies written back in completion order (RPC matches
//! them by xid) by writer.rs.

use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use compose_netrt::Pool;

use crate::limit::{Admission, Limits, Ticket, IN_FLIGHT};
use crate::proto::{Ctx, RTMAX};
use crate::rpc::{fragment_header, Reassembler, MAX_RECORD};
use crate::writer::{write_replies, Queued};
use crate::{Export, ExportSource, NfsConfig, NfsError, NfsEvent, Source, NFS_PROG};

/// Blocking-pool threads (file-system calls) per connection thread: tokio's
/// default, 512 a runtime, let a flood of calls spawn that many threads (and
/// their stacks). Calls beyond these wait their turn.
const BLOCKING_THREADS: usize = 8;

/// A bound server; [`NfsServer::run`] serves it.
pub struct NfsServer {
    listener: TcpListener,
    source: Source,
    limits: Limits,
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
        Ok(NfsServer {
            listener,
            source,
            limits: Limits::default(),
        })
    }

    /// Serves with `limits` instead of the defaults ([`Limits::default`],
    /// from RLIMIT_NOFILE when the server was bound).
    pub fn limits(self, limits: Limits) -> NfsServer {
        NfsServer { limits, ..self }
    }

    /// Accepts connections that arrive on `interface` only (SO_BINDTODEVICE):
    /// Linux delivers a packet for any local address whatever interface it
    /// came in on, so binding the boot address alone would still let a
    /// host on another network route to it through its own interface.
    pub fn bind_to_device(&self, interface: &str) -> Result<(), NfsError> {
        compose_netrt::bind_to_device(&self.listener, interface).map_err(|source| NfsError::Bind {
            addr: self.local_addr(),
            source,
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
        let pool = Pool::start("nfs", Some(BLOCKING_THREADS)).unwrap_or_else(|e| {
            let message =
                format!("starting connection threads: {e}; serving on the caller's runtime");
            let _ = events.send(NfsEvent::Error {
                peer: None,
                message,
            });
            Pool::empty()
        });
        let admission = Admission::new(self.limits);
        let limits = Arc::new(self.limits);
        let replies = Arc::new(Semaphore::new(self.limits.total_reply_budget));
        // Report the first connection turned away, not each of a flood.
        let mut refusing = false;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let ticket = match admission.admit(peer.ip()) {
                            Ok(t) => t,
                            Err(full) => {
                                // Closed at once: the client sees a reset,
                                // not a connection nobody answers.
                                drop(stream);
                                if !std::mem::replace(&mut refusing, true) {
                                    let message = format!("refusing connections: {full}");
                                    let _ = events.send(NfsEvent::Error { peer: Some(peer), message });
                                }
                                continue;
                            }
                        };
                        refusing = false;
                        let _ = stream.set_nodelay(true);
                        // Moved to a pool thread, registered again there.
                        match stream.into_std() {
                            Ok(stream) => {
                                let budgets = (Arc::clone(&limits), Arc::clone(&replies));
                                let conn = connection(Arc::clone(&ctx), budgets, stream, peer, ticket);
                                // Shutdown aborts it through `conns`.
                                let _ = pool.spawn(&mut conns, conn);
                            }
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

async fn connection(
    ctx: Arc<Ctx>,
    (limits, replies): (Arc<Limits>, Arc<Semaphore>),
    stream: std::net::TcpStream,
    peer: SocketAddr,
    _ticket: Ticket,
) {
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
    // Unbounded: a reply never waits for room (a blocking thread waiting
    // to hand over its reply was what a client that never reads pinned);
    // the reader's reply budget bounds what is in it instead.
    let (tx, rx) = mpsc::unbounded_channel::<Queued>();
    let reader = read_calls(Arc::clone(&ctx), (&limits, replies), rd, peer, tx);
    let writer = write_replies(wr, rx, limits.write_timeout);
    tokio::pin!(reader, writer);
    // The reader ends at end of stream, after the idle timeout or on a bad
    // record; its sender is dropped then, so the writer ends once every
    // call in flight is answered. A writer ending first (client gone, a
    // reply it could not finish, or not taken in time) ends both.
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

/// What the reply to `record` may take of the connection's reply budget:
/// a READ or READDIR its count (the reply's size), anything else the
/// record's own size; at least a share of [`IN_FLIGHT`], so no more than
/// that many calls are in flight; at most the whole budget.
pub(crate) fn reply_cost(record: &[u8], budget: usize) -> usize {
    let asked = crate::rpc::parse_call(record).ok().and_then(|c| {
        if (c.prog, c.vers) != (NFS_PROG, 3) {
            return None;
        }
        let mut d = crate::xdr::Dec::new(c.args);
        d.opaque(64).ok()?;
        let count = match c.proc_ {
            6 => {
                d.u64().ok()?;
                d.u32().ok()?
            }
            16 | 17 => {
                d.fixed(16).ok()?;
                let count = d.u32().ok()?;
                if c.proc_ == 17 {
                    d.u32().ok()?
                } else {
                    count
                }
            }
            _ => return None,
        };
        Some(count.min(RTMAX) as usize + 512)
    });
    asked
        .unwrap_or(0)
        .max(record.len() + 512)
        .max(budget / IN_FLIGHT)
        .min(budget)
}

/// One record (all its fragments). `Ok(None)`: the client closed between
/// records. A fragment's buffer grows as its bytes arrive, so a client
/// announcing a big record and sending nothing holds no memory for it.
pub(crate) async fn read_record<R: AsyncRead + Unpin>(
    rd: &mut R,
    reasm: &mut Reassembler,
) -> Result<Option<Vec<u8>>, String> {
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
                return Ok(None)
            }
            Err(e) => return Err(format!("read: {e}")),
        }
        let (last, len) = fragment_header(mark);
        if len > MAX_RECORD {
            return Err(format!("fragment of {len} bytes"));
        }
        let mut frag = Vec::new();
        match (&mut *rd).take(len as u64).read_to_end(&mut frag).await {
            Ok(n) if n == len => {}
            Ok(_) => return Err("read: end of stream inside a record".into()),
            Err(e) => return Err(format!("read: {e}")),
        }
        match reasm.push(last, &frag) {
            Ok(Some(r)) => return Ok(Some(r)),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Reads calls until end of stream or [`Limits::idle_timeout`] without
/// one; answers READs that cannot block itself (fast.rs) and everything
/// else on the blocking pool. Each call first takes its share of the
/// connection's reply budget, and unless it is the only one in flight of
/// the server-wide one too, given back when its reply is written: a
/// client that does not take its replies stops being read, so it holds
/// a bounded amount of memory and no thread. `Some`: why the connection
/// ended early.
async fn read_calls(
    ctx: Arc<Ctx>,
    (limits, replies): (&Limits, Arc<Semaphore>),
    rd: OwnedReadHalf,
    peer: SocketAddr,
    tx: mpsc::UnboundedSender<Queued>,
) -> Option<String> {
    // Pipelined calls arrive several per segment: one read for them all.
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let budget = Arc::new(Semaphore::new(limits.reply_budget));
    let mut reasm = Reassembler::default();
    loop {
        let record =
            match tokio::time::timeout(limits.idle_timeout, read_record(&mut rd, &mut reasm)).await
            {
                Ok(Ok(Some(r))) => r,
                Ok(Ok(None)) => return None,
                Ok(Err(e)) => return Some(e),
                // Idle: closed quietly, the client reconnects if it needs to.
                Err(_) => return None,
            };
        let cost = reply_cost(&record, limits.reply_budget) as u32;
        let Ok(own) = Arc::clone(&budget).acquire_many_owned(cost).await else {
            return None;
        };
        // The only call in flight is served whatever other connections
        // hold; another takes from the shared budget too, or proceeds
        // once the calls before it are answered (it is alone then), so a
        // full shared budget shortens a pipeline but never stalls it.
        let others = (limits.reply_budget - cost as usize) as u32;
        let shared = if budget.available_permits() >= others as usize {
            None
        } else {
            let cost = cost.min(limits.total_reply_budget as u32);
            tokio::select! {
                p = Arc::clone(&replies).acquire_many_owned(cost) => match p {
                    Ok(p) => Some(p),
                    Err(_) => return None,
                },
                // All but ours given back: alone now.
                _ = budget.acquire_many(others) => None,
            }
        };
        let permits = (own, shared);
        if let Some(reply) = ctx.try_read(&record, peer) {
            if tx.send(Queued::new(reply, permits)).is_err() {
                return None;
            }
            continue;
        }
        let (ctx, tx) = (Arc::clone(&ctx), tx.clone());
        tokio::task::spawn_blocking(move || {
            if let Some(reply) = ctx.handle(&record, peer) {
                let _ = tx.send(Queued::new(reply, permits));
            }
        });
    }
}

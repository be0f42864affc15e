//! Where transfers run: a few threads, each with its own single-threaded
//! runtime, one per CPU.
//!
//! Why not the caller's runtime: a lock-step transfer is one DATA out and
//! one ACK in, tens of thousands of times, so its speed is the wake-up
//! latency per ACK. On a multi-threaded runtime the worker that polls epoll
//! often hands the woken task to another worker, a thread switch per block;
//! on a loaded 2-core host that made one 512-byte-block transfer 2-4x slower
//! than tftpd-hpa (ci/bench/serve.sh, BENCHMARKS.md). A single-threaded
//! runtime runs the task on the thread that saw the ACK, and with many
//! transfers one epoll_wait still returns many ready sockets at once, which
//! a thread (or process) per transfer would not.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinSet};

struct Worker {
    handle: Handle,
    /// Transfers running on it, to place a new one on the least busy.
    active: Arc<AtomicUsize>,
    /// Dropping it lets the thread leave `block_on` and drop its runtime
    /// (and any task still on it).
    _stop: oneshot::Sender<()>,
}

pub(crate) struct Pool {
    workers: Vec<Worker>,
}

/// Decrements a worker's count when its transfer ends or is aborted.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// Starts one worker per available CPU (at least one).
    pub(crate) fn start() -> std::io::Result<Pool> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("tftp-{i}"))
                .spawn(move || {
                    // Drives every task spawned on `handle` until stopped.
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            workers.push(Worker {
                handle,
                active: Arc::new(AtomicUsize::new(0)),
                _stop: stop,
            });
        }
        Ok(Pool { workers })
    }

    /// Spawns `transfer` on the least busy worker, tracked by `set` (so the
    /// server's limit and shutdown cover it). It is first polled on the
    /// worker, inside its runtime: register sockets there, not before.
    /// Returns the handle that aborts it (None only without workers).
    pub(crate) fn spawn(
        &self,
        set: &mut JoinSet<()>,
        transfer: impl Future<Output = ()> + Send + 'static,
    ) -> Option<AbortHandle> {
        let w = self
            .workers
            .iter()
            .min_by_key(|w| w.active.load(Ordering::Relaxed))?;
        w.active.fetch_add(1, Ordering::Relaxed);
        let active = Active(w.active.clone());
        Some(set.spawn_on(
            async move {
                let _active = active;
                transfer.await;
            },
            &w.handle,
        ))
    }
}

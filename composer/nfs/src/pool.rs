//! Where connections run: one thread per CPU, each with its own
//! single-threaded runtime (composer/tftp does the same, for the same
//! reason).
//!
//! A READ reply is a wake-up on the socket, a system call or two, and
//! writes as the client drains them. On the multi-threaded runtime the
//! worker that saw the socket ready often hands the task to another worker,
//! a thread switch per wake-up, which on a loaded 2-core host costs more
//! than the READ itself. Here a connection's reader and writer always run
//! on the thread that polled its socket, and one epoll_wait still returns
//! every ready connection of that thread.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Blocking-pool threads (file-system calls) per worker.
const BLOCKING_THREADS: usize = 8;

struct Worker {
    handle: Handle,
    /// Connections on it, to place a new one on the least busy.
    active: Arc<AtomicUsize>,
    /// Dropped with the pool: the thread leaves `block_on` and drops its
    /// runtime with whatever is left on it.
    _stop: oneshot::Sender<()>,
}

pub struct Pool {
    workers: Vec<Worker>,
}

/// Counts a connection on its worker until it ends or is aborted.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// One worker per available CPU (at least one).
    pub fn start() -> std::io::Result<Pool> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            // Each runtime has its own blocking pool, 512 threads by
            // default: a flood of calls spawned that many (and their
            // stacks). File-system calls beyond these wait their turn.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(BLOCKING_THREADS)
                .build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("nfs-{i}"))
                .spawn(move || {
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

    /// No threads: [`Pool::spawn`] uses the caller's runtime.
    pub fn empty() -> Pool {
        Pool {
            workers: Vec::new(),
        }
    }

    /// Spawns `conn` on the least busy worker, tracked by `set` (so the
    /// server's shutdown aborts it). It is first polled on the worker:
    /// sockets must be registered there, not before.
    pub fn spawn(&self, set: &mut JoinSet<()>, conn: impl Future<Output = ()> + Send + 'static) {
        let Some(w) = self
            .workers
            .iter()
            .min_by_key(|w| w.active.load(Ordering::Relaxed))
        else {
            // No workers (see `empty`): the caller's runtime.
            set.spawn(conn);
            return;
        };
        w.active.fetch_add(1, Ordering::Relaxed);
        let active = Active(Arc::clone(&w.active));
        set.spawn_on(
            async move {
                let _active = active;
                conn.await;
            },
            &w.handle,
        );
    }
}

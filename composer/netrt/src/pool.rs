//! Where a server's transfers and connections run: one thread per CPU, each
//! with its own single-threaded tokio runtime.
//!
//! Why not the caller's runtime: a lock-step TFTP transfer is one DATA out
//! and one ACK in, tens of thousands of times, so its speed is the wake-up
//! latency per ACK; an NFS READ reply is a wake-up on the socket, a system
//! call or two, and writes as the client drains them. On a multi-threaded
//! runtime the worker that polls epoll often hands the woken task to
//! another worker, a thread switch per wake-up; on a loaded 2-core host that
//! made one 512-byte-block TFTP transfer 2-4x slower than tftpd-hpa
//! (ci/bench/serve.sh, BENCHMARKS.md) and cost more than an NFS READ itself.
//! A single-threaded runtime runs the task on the thread that saw its socket
//! ready, and with many tasks one epoll_wait still returns many ready
//! sockets at once, which a thread (or process) per transfer would not.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinSet};

struct Worker {
    handle: Handle,
    /// Tasks running on it, to place a new one on the least busy.
    active: Arc<AtomicUsize>,
    /// Dropped with the pool: the thread leaves `block_on` and drops its
    /// runtime with whatever is left on it.
    _stop: oneshot::Sender<()>,
}

pub struct Pool {
    workers: Vec<Worker>,
}

/// Counts a task on its worker until it ends or is aborted.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// One worker per available CPU (at least one), its thread named
    /// `<name>-<i>`. `max_blocking_threads` caps each runtime's blocking
    /// pool (tokio's default is 512 a runtime: a flood of file-system calls
    /// spawned that many threads, and their stacks); None keeps the default.
    pub fn start(name: &str, max_blocking_threads: Option<usize>) -> std::io::Result<Pool> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_all();
            if let Some(max) = max_blocking_threads {
                builder.max_blocking_threads(max);
            }
            let rt = builder.build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
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

    /// No threads: [`Pool::spawn`] uses the caller's runtime (a server that
    /// could not start its threads still serves).
    pub fn empty() -> Pool {
        Pool {
            workers: Vec::new(),
        }
    }

    /// Spawns `task` on the least busy worker, tracked by `set` (so the
    /// server's limit and shutdown cover it). It is first polled on the
    /// worker, inside its runtime: register sockets there, not before.
    /// Returns the handle that aborts it.
    pub fn spawn(
        &self,
        set: &mut JoinSet<()>,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> AbortHandle {
        let Some(w) = self
            .workers
            .iter()
            .min_by_key(|w| w.active.load(Ordering::Relaxed))
        else {
            // No workers (see `empty`): the caller's runtime.
            return set.spawn(task);
        };
        w.active.fetch_add(1, Ordering::Relaxed);
        let active = Active(Arc::clone(&w.active));
        set.spawn_on(
            async move {
                let _active = active;
                task.await;
            },
            &w.handle,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each task runs on a pool thread named for the server, or on the
    /// caller's runtime when the pool is empty; counts go back to zero.
    #[tokio::test]
    async fn spawns_on_named_workers_and_counts() {
        let pool = Pool::start("t", Some(2)).unwrap();
        let mut set = JoinSet::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..4 {
            let tx = tx.clone();
            pool.spawn(&mut set, async move {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send(name);
            });
        }
        while set.join_next().await.is_some() {}
        for _ in 0..4 {
            let name = rx.recv().await.unwrap().unwrap();
            assert!(name.starts_with("t-"), "{name}");
        }
        for w in &pool.workers {
            assert_eq!(w.active.load(Ordering::Relaxed), 0);
        }
        let empty = Pool::empty();
        let tx2 = tx.clone();
        empty.spawn(&mut set, async move {
            let _ = tx2.send(std::thread::current().name().map(str::to_owned));
        });
        while set.join_next().await.is_some() {}
        let name = rx.recv().await.unwrap().unwrap_or_default();
        assert!(!name.starts_with("t-"), "{name}");
    }
}

//! The password-hashing pool: `n` threads `hasher-<i>` sharing one bounded queue. An argon2id
//! check takes tens of milliseconds and 19 MiB at the default cost, so it has threads of its
//! own: a login burst then queues here, not in front of the unread and history reads of the
//! db-reader threads. A full queue is returned to the caller, never waited on (the login is
//! refused with "unavailable", 1/4 result 3).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crossbeam_channel::{bounded, Sender, TrySendError};

/// A password check (or any CPU-heavy auth work); it sends its own answer back.
pub type HashJob = Box<dyn FnOnce() + Send + 'static>;

/// Handle to the hashing threads; they exit once every clone is dropped and the queue is
/// drained.
#[derive(Clone)]
pub struct Hashers {
    queue: Option<Sender<HashJob>>,
    threads: usize,
}

impl Hashers {
    /// Spawns `n` threads (at least one) over one queue of `queue_cap` jobs.
    pub fn spawn(n: usize, queue_cap: usize) -> std::io::Result<Hashers> {
        let n = n.max(1);
        let (tx, rx) = bounded::<HashJob>(queue_cap.max(1));
        let rx = Arc::new(rx);
        for i in 0..n {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("hasher-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        if catch_unwind(AssertUnwindSafe(job)).is_err() {
                            log::error!(target: "login", "hasher-{i}: a job panicked");
                        }
                    }
                })?;
        }
        Ok(Hashers {
            queue: Some(tx),
            threads: n,
        })
    }

    /// A pool with no threads: every submit fails (handler tests, roles that hash nothing).
    pub fn none() -> Hashers {
        Hashers {
            queue: None,
            threads: 0,
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queues a job; `Err(job)` if the queue is full (or there are no threads).
    pub fn submit(&self, job: HashJob) -> Result<(), HashJob> {
        match &self.queue {
            Some(q) => q.try_send(job).map_err(|e| match e {
                TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
            }),
            None => Err(job),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_the_pool_and_a_full_queue_is_refused() {
        let pool = Hashers::spawn(2, 4).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in 0..4 {
            let tx = tx.clone();
            let job: HashJob = Box::new(move || {
                let name = std::thread::current().name().unwrap_or("").to_string();
                tx.send((i, name)).unwrap();
            });
            assert!(pool.submit(job).is_ok());
        }
        let mut got: Vec<(i32, String)> = (0..4).map(|_| rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert!(got.iter().all(|g| g.1.starts_with("hasher-")));
        // Block both threads, fill the queue, and see the next one refused.
        let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
        for _ in 0..2 {
            let g = gate_rx.clone();
            pool.submit(Box::new(move || {
                let _ = g.recv();
            }))
            .ok()
            .unwrap();
        }
        let mut queued = 0;
        while pool.submit(Box::new(|| {})).is_ok() {
            queued += 1;
            assert!(
                queued <= 6,
                "the queue holds at most 4 (+2 taken by the threads)"
            );
        }
        drop(gate_tx);
        assert!(Hashers::none().submit(Box::new(|| {})).is_err());
    }
}

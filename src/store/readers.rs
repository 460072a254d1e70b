//! The reader pool: `n` threads `db-reader-<i>`, each owning one read-only connection and one
//! bounded job queue. Workers submit closures; a closure sends its own answer back (to the
//! worker's channel + Waker). A full queue is returned to the caller, never waited on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, Sender, TrySendError};
use rusqlite::Connection;

use super::room::Room;
use super::{open_reader, DbSync, StoreError};

/// A query to run on a reader thread.
pub type ReadJob = Box<dyn FnOnce(&Connection) + Send + 'static>;

/// Handle to the reader threads. Cheap to clone; the threads exit once every clone is dropped
/// and their queues are drained.
#[derive(Clone)]
pub struct Readers {
    inner: Arc<Inner>,
}

struct Inner {
    queues: Vec<Sender<ReadJob>>,
    next: AtomicUsize,
}

impl Readers {
    /// Opens `n` read connections on `path` (same pragmas as the writer's, `query_only`, no
    /// migrations: open the writer's connection with [`super::open`] first) and spawns threads
    /// `db-reader-<i>`, each with its own bounded queue of `queue_cap` jobs. Each job taken
    /// rings `room` (loops parked on a full queue try again).
    pub fn spawn(
        path: &Path,
        sync: DbSync,
        n: usize,
        queue_cap: usize,
        room: Arc<Room>,
    ) -> Result<Readers, StoreError> {
        if n == 0 {
            return Err(StoreError::Invalid(
                "the reader pool needs at least one thread".into(),
            ));
        }
        // All connections first: a bad database leaves no thread behind.
        let conns = (0..n)
            .map(|_| open_reader(path, sync))
            .collect::<Result<Vec<_>, _>>()?;
        let mut queues = Vec::with_capacity(n);
        for (i, conn) in conns.into_iter().enumerate() {
            let (tx, rx) = bounded::<ReadJob>(queue_cap);
            let room = Arc::clone(&room);
            std::thread::Builder::new()
                .name(format!("db-reader-{i}"))
                .spawn(move || {
                    for job in rx {
                        room.ring();
                        // A panicking job must not take the thread (and its queue) down.
                        if catch_unwind(AssertUnwindSafe(|| job(&conn))).is_err() {
                            log::error!(target: "store", "db-reader-{i}: a read job panicked");
                        }
                    }
                })?;
            queues.push(tx);
        }
        Ok(Readers {
            inner: Arc::new(Inner {
                queues,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// A pool with no threads: every submit fails and [`Readers::all_full`] is true. For
    /// handler tests, whose reads go to a recorder (`msg::Jobs`) instead; a read that goes
    /// straight to the pool (a presence notice) is refused.
    pub fn none() -> Readers {
        Readers {
            inner: Arc::new(Inner {
                queues: Vec::new(),
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// Number of reader threads.
    pub fn len(&self) -> usize {
        self.inner.queues.len()
    }

    /// False for a spawned pool (it has at least one thread), true for [`Readers::none`].
    pub fn is_empty(&self) -> bool {
        self.inner.queues.is_empty()
    }

    /// Whether every queue is full (a submit would fail now; always, with no threads).
    pub fn all_full(&self) -> bool {
        self.inner.queues.iter().all(Sender::is_full)
    }

    /// Round-robin submit. If the chosen queue is full the next ones are tried; `Err(job)` when
    /// every queue is full (the caller decides: back-pressure or an error reply).
    pub fn submit(&self, job: ReadJob) -> Result<(), ReadJob> {
        let n = self.inner.queues.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let mut job = job;
        for k in 0..n {
            let Some(q) = self.inner.queues.get(start.wrapping_add(k) % n) else {
                break;
            };
            match q.try_send(job) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => job = j,
            }
        }
        Err(job)
    }

    /// Submits to the thread `key % n`, so jobs with one key run in submission order.
    /// `Err(job)` if that queue is full.
    pub fn submit_keyed(&self, key: u32, job: ReadJob) -> Result<(), ReadJob> {
        let n = self.inner.queues.len();
        let idx = usize::try_from(key).unwrap_or(usize::MAX) % n.max(1);
        match self.inner.queues.get(idx) {
            Some(q) => q.try_send(job).map_err(|e| e.into_inner()),
            None => Err(job),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{users, TempDb};
    use crate::store::{open, users as users_table};
    use crossbeam_channel::unbounded;

    fn pool(t: &TempDb, n: usize, cap: usize) -> Readers {
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        users(&conn, 3);
        Readers::spawn(&t.path(), DbSync::Normal, n, cap, Default::default()).unwrap()
    }

    #[test]
    fn jobs_run_and_answer() {
        let t = TempDb::new("readers");
        let r = pool(&t, 3, 16);
        assert_eq!(r.len(), 3);
        let (tx, rx) = unbounded();
        for i in 0..30u32 {
            let tx = tx.clone();
            r.submit(Box::new(move |c: &Connection| {
                let u = users_table::by_id(c, i % 3 + 1).unwrap().unwrap();
                tx.send((i, u.name, std::thread::current().name().map(String::from)))
                    .unwrap();
            }))
            .unwrap_or_else(|_| panic!("queue full"));
        }
        let mut got: Vec<_> = rx.iter().take(30).collect();
        got.sort();
        for (i, name, thread) in got {
            assert_eq!(name, format!("u{}", i % 3 + 1));
            assert!(thread.unwrap().starts_with("db-reader-"));
        }
    }

    #[test]
    fn readers_cannot_write() {
        let t = TempDb::new("readers-ro");
        let r = pool(&t, 1, 4);
        let (tx, rx) = unbounded();
        r.submit(Box::new(move |c: &Connection| {
            tx.send(c.execute("DELETE FROM users", []).is_err())
                .unwrap();
        }))
        .unwrap_or_else(|_| panic!("queue full"));
        assert!(rx.recv().unwrap());
    }

    #[test]
    fn keyed_jobs_keep_order_and_panics_are_contained() {
        let t = TempDb::new("readers-keyed");
        let r = pool(&t, 4, 1000);
        let (tx, rx) = unbounded();
        r.submit_keyed(7, Box::new(|_: &Connection| panic!("job panics")))
            .unwrap_or_else(|_| panic!("queue full"));
        for i in 0..200u32 {
            let tx = tx.clone();
            r.submit_keyed(7, Box::new(move |_: &Connection| tx.send(i).unwrap()))
                .unwrap_or_else(|_| panic!("queue full"));
        }
        let got: Vec<u32> = rx.iter().take(200).collect();
        assert_eq!(got, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn full_queue_gives_the_job_back() {
        let t = TempDb::new("readers-full");
        let r = pool(&t, 1, 1);
        let (started_tx, started_rx) = unbounded();
        let (release_tx, release_rx) = unbounded::<()>();
        r.submit(Box::new(move |_: &Connection| {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
        }))
        .unwrap_or_else(|_| panic!("queue full"));
        started_rx.recv().unwrap(); // the thread is busy, its queue empty
        assert!(r.submit(Box::new(|_: &Connection| {})).is_ok());
        assert!(r.submit(Box::new(|_: &Connection| {})).is_err());
        assert!(r.submit_keyed(5, Box::new(|_: &Connection| {})).is_err());
        release_tx.send(()).unwrap();
    }

    #[test]
    fn no_pool_refuses_every_job() {
        let r = Readers::none();
        assert!(r.is_empty() && r.all_full());
        assert!(r.submit(Box::new(|_: &Connection| {})).is_err());
        assert!(r.submit_keyed(5, Box::new(|_: &Connection| {})).is_err());
    }

    #[test]
    fn zero_threads_or_missing_schema_is_an_error() {
        let t = TempDb::new("readers-bad");
        assert!(Readers::spawn(&t.path(), DbSync::Normal, 0, 1, Default::default()).is_err());
        std::fs::create_dir_all(&t.dir).unwrap();
        // a database nobody migrated
        assert!(Readers::spawn(&t.path(), DbSync::Normal, 1, 1, Default::default()).is_err());
    }
}

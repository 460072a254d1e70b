//! The single writer thread with group commit (architecture.md sections 2 and 3, behaviour.md
//! section 18, B-GEN-3, B-GEN-4, B-MSG-2 steps 2-3).
//!
//! ```text
//! loop:
//!   block for one job, then take up to max_batch - 1 more that are already queued
//!   BEGIN IMMEDIATE
//!     per job: SAVEPOINT job; apply; RELEASE (or ROLLBACK TO: that job fails alone)
//!   COMMIT                                  <- one sync per batch (DbSync)
//!   outlet.reply(tag, result) per job, in submission order
//!   outlet.flush()                          <- once per batch
//! ```
//!
//! If SQLite itself aborts the transaction (disk full, I/O error) or the commit fails, every job
//! of the batch gets the error: nothing of it was stored.

use std::collections::{HashMap, HashSet};
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use rusqlite::Connection;

use super::{messages, now_secs, recent, unread, Family, StoreError};

/// A write the server asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// B-MSG-2 step 2; `create_time` is assigned by the writer.
    StoreP2p {
        from: u32,
        to: u32,
        msg_type: u8,
        data: Vec<u8>,
    },
    /// B-UNR-4 (3/3).
    MarkRead {
        reader: u32,
        peer: u32,
        family: Family,
    },
    /// B-RC-3 (2/12 with session_type 1).
    HideRecent { owner: u32, peer: u32 },
}

/// The result of a committed [`WriteOp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOut {
    /// The message is committed with this id and time.
    Stored { msg_id: u64, create_time: u32 },
    /// The change is committed.
    Done,
}

/// Where results go. The writer calls `reply` once per job AFTER the batch committed (or with
/// the error), then `flush` once per batch (the server uses flush to wake each worker once).
pub trait Outlet: Send + 'static {
    type Tag: Send + 'static;
    fn reply(&mut self, tag: Self::Tag, result: Result<WriteOut, StoreError>);
    fn flush(&mut self);
}

/// One queued write and the tag its reply carries back.
pub struct WriteJob<T> {
    pub op: WriteOp,
    pub tag: T,
}

/// Spawns thread "db-writer", which owns `conn` and runs batches (see the module doc) of at most
/// `max_batch` jobs (0 is taken as 1) until every sender of `rx` is dropped.
pub fn spawn_writer<O: Outlet>(
    conn: Connection,
    rx: Receiver<WriteJob<O::Tag>>,
    outlet: O,
    max_batch: usize,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("db-writer".into())
        .spawn(move || run(&conn, &rx, outlet, max_batch.max(1)))
}

fn run<O: Outlet>(
    conn: &Connection,
    rx: &Receiver<WriteJob<O::Tag>>,
    mut outlet: O,
    max_batch: usize,
) {
    // B-GEN-3: stored times never decrease in storage order, across restarts too.
    let mut last_time = messages::max_create_time(conn).unwrap_or_else(|e| {
        log::error!(target: "store", "db-writer: reading the last create_time failed: {e}");
        0
    });
    let mut batch: Vec<WriteJob<O::Tag>> = Vec::with_capacity(max_batch);
    let mut results: Vec<Result<WriteOut, StoreError>> = Vec::with_capacity(max_batch);
    let mut pairs = PairUpdates::default();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let time = now_secs().max(last_time);
        last_time = time;
        if let Err(e) = run_batch_fast(conn, &batch, time, &mut results, &mut pairs) {
            // Some job failed (or the commit did): redo the batch job by job, so that a failing
            // job fails alone and the others still commit.
            log::warn!(target: "store", "db-writer: batch of {} jobs retried job by job: {e}", batch.len());
            run_batch(conn, &batch, time, &mut results);
        }
        for (job, result) in batch.drain(..).zip(results.drain(..)) {
            outlet.reply(job.tag, result);
        }
        outlet.flush();
    }
    log::debug!(target: "store", "db-writer: all senders gone, exiting");
}

/// Unread and recent-contact changes of one batch's p2p messages, written once per pair at the
/// end of the batch (or before a job that reads or resets them) instead of once per message.
/// Every message of a batch has the same `create_time`, so the result is the same.
#[derive(Default)]
struct PairUpdates {
    /// (reader, peer) -> (new unread messages, newest message id)
    unread: HashMap<(u32, u32), (u32, u64)>,
    /// (owner, peer) rows to touch (B-RC-1)
    recent: HashSet<(u32, u32)>,
}

impl PairUpdates {
    fn add(&mut self, from: u32, to: u32, msg_id: u64) {
        self.recent.insert((from, to));
        if from != to {
            let e = self.unread.entry((to, from)).or_insert((0, 0));
            e.0 += 1;
            e.1 = msg_id;
            self.recent.insert((to, from));
        }
    }

    fn write(&mut self, conn: &Connection, time: u32) -> Result<(), StoreError> {
        for ((reader, peer), (n, last)) in self.unread.drain() {
            unread::add(conn, reader, peer, n, last)?;
        }
        for (owner, peer) in self.recent.drain() {
            recent::touch(conn, owner, peer, time)?;
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.unread.clear();
        self.recent.clear();
    }
}

/// The common case: the whole batch in one transaction without per-job savepoints, with
/// unread and recent-contact updates merged per pair. Any error rolls everything back and is
/// returned; the caller then runs [`run_batch`].
fn run_batch_fast<T>(
    conn: &Connection,
    batch: &[WriteJob<T>],
    time: u32,
    results: &mut Vec<Result<WriteOut, StoreError>>,
    pairs: &mut PairUpdates,
) -> Result<(), StoreError> {
    results.clear();
    pairs.clear();
    exec(conn, "BEGIN IMMEDIATE")?;
    let mut body = || -> Result<(), StoreError> {
        for job in batch {
            let out = match &job.op {
                WriteOp::StoreP2p {
                    from,
                    to,
                    msg_type,
                    data,
                } => {
                    let msg_id = messages::insert(conn, *from, *to, *msg_type, data, time)?;
                    pairs.add(*from, *to, msg_id);
                    WriteOut::Stored {
                        msg_id,
                        create_time: time,
                    }
                }
                other => {
                    // 3/3 and 2/12 see every message stored before them (B-UNR-4).
                    pairs.write(conn, time)?;
                    apply(conn, other, time)?
                }
            };
            results.push(Ok(out));
        }
        pairs.write(conn, time)?;
        exec(conn, "COMMIT")
    };
    let r = body();
    if r.is_err() {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        results.clear();
        pairs.clear();
    }
    r
}

/// Runs one batch in one transaction, each job in its own savepoint; leaves exactly one result
/// per job in `results`.
fn run_batch<T>(
    conn: &Connection,
    batch: &[WriteJob<T>],
    time: u32,
    results: &mut Vec<Result<WriteOut, StoreError>>,
) {
    results.clear();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = StoreError::from(e);
        log::error!(target: "store", "db-writer: BEGIN failed for {} jobs: {e}", batch.len());
        results.extend(batch.iter().map(|_| Err(e.duplicate())));
        return;
    }
    let mut aborted: Option<StoreError> = None;
    for job in batch {
        match run_job(conn, &job.op, time) {
            Ok(out) => results.push(Ok(out)),
            Err(JobError::Alone(e)) => {
                log::warn!(target: "store", "db-writer: job failed alone: {e}");
                results.push(Err(e));
            }
            Err(JobError::Batch(e)) => {
                aborted = Some(e);
                break;
            }
        }
    }
    let failure = match aborted {
        Some(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Some(e)
        }
        None => match conn.execute_batch("COMMIT") {
            Ok(()) => None,
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Some(StoreError::from(e))
            }
        },
    };
    if let Some(e) = failure {
        log::error!(target: "store", "db-writer: batch of {} jobs failed: {e}", batch.len());
        results.clear();
        results.extend(batch.iter().map(|_| Err(e.duplicate())));
    }
}

enum JobError {
    /// The job's savepoint was rolled back; the rest of the batch goes on.
    Alone(StoreError),
    /// The transaction is gone or in an unknown state: the whole batch fails.
    Batch(StoreError),
}

fn run_job(conn: &Connection, op: &WriteOp, time: u32) -> Result<WriteOut, JobError> {
    exec(conn, "SAVEPOINT job").map_err(JobError::Batch)?;
    let err = match apply(conn, op, time) {
        Ok(out) => match exec(conn, "RELEASE job") {
            Ok(()) => return Ok(out),
            Err(e) => e,
        },
        Err(e) => e,
    };
    // SQLite may have rolled the whole transaction back already (SQLITE_FULL, IOERR, ...).
    if conn.is_autocommit() {
        return Err(JobError::Batch(err));
    }
    match exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job")) {
        Ok(()) => Err(JobError::Alone(err)),
        Err(e) => {
            log::error!(target: "store", "db-writer: rolling back a job failed: {e}");
            Err(JobError::Batch(err))
        }
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn apply(conn: &Connection, op: &WriteOp, time: u32) -> Result<WriteOut, StoreError> {
    match op {
        WriteOp::StoreP2p {
            from,
            to,
            msg_type,
            data,
        } => {
            let msg_id = messages::store_p2p(conn, *from, *to, *msg_type, data, time)?;
            Ok(WriteOut::Stored {
                msg_id,
                create_time: time,
            })
        }
        WriteOp::MarkRead {
            reader,
            peer,
            family,
        } => {
            unread::mark_read(conn, *reader, *peer, *family)?;
            Ok(WriteOut::Done)
        }
        WriteOp::HideRecent { owner, peer } => {
            recent::hide(conn, *owner, *peer)?;
            Ok(WriteOut::Done)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{users, TempDb};
    use crate::store::{open, DbSync};
    use crossbeam_channel::{unbounded, Sender};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    type Reply = (u32, Result<WriteOut, StoreError>);

    struct TestOutlet {
        tx: Sender<Reply>,
        flushes: Arc<AtomicUsize>,
    }

    impl Outlet for TestOutlet {
        type Tag = u32;
        fn reply(&mut self, tag: u32, result: Result<WriteOut, StoreError>) {
            self.tx.send((tag, result)).unwrap();
        }
        fn flush(&mut self) {
            self.flushes.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn p2p(from: u32, to: u32, data: &[u8]) -> WriteOp {
        WriteOp::StoreP2p {
            from,
            to,
            msg_type: 1,
            data: data.to_vec(),
        }
    }

    /// Runs `ops` (all queued before the thread starts) through a writer; returns replies and
    /// the number of flushes.
    fn run_ops(conn: Connection, ops: Vec<WriteOp>, max_batch: usize) -> (Vec<Reply>, usize) {
        let (jtx, jrx) = unbounded();
        let (rtx, rrx) = unbounded();
        let flushes = Arc::new(AtomicUsize::new(0));
        for (i, op) in ops.into_iter().enumerate() {
            jtx.send(WriteJob {
                op,
                tag: u32::try_from(i).unwrap(),
            })
            .unwrap();
        }
        drop(jtx);
        let outlet = TestOutlet {
            tx: rtx,
            flushes: flushes.clone(),
        };
        spawn_writer(conn, jrx, outlet, max_batch)
            .unwrap()
            .join()
            .unwrap();
        (rrx.try_iter().collect(), flushes.load(Ordering::SeqCst))
    }

    #[test]
    fn thousand_jobs_in_order_with_group_commit() {
        let t = TempDb::new("writer");
        let conn = open(&t.path(), DbSync::Full).unwrap();
        users(&conn, 3);
        // a stored time in the future: the writer must not go below it (B-GEN-3)
        let future = now_secs() + 1000;
        messages::store_p2p(&conn, 3, 1, 1, b"future", future).unwrap();

        let ops = (0..1000u32)
            .map(|i| p2p(1 + i % 2, 2 - i % 2, format!("m{i}").as_bytes()))
            .collect();
        let (replies, flushes) = run_ops(conn, ops, 64);
        assert_eq!(replies.len(), 1000);
        assert_eq!(flushes, 1000usize.div_ceil(64));
        let mut last_id = 0;
        let mut last_time = future;
        for (i, (tag, res)) in replies.iter().enumerate() {
            assert_eq!(*tag, u32::try_from(i).unwrap());
            match res {
                Ok(WriteOut::Stored {
                    msg_id,
                    create_time,
                }) => {
                    assert!(*msg_id > last_id);
                    assert!(*create_time >= last_time);
                    last_id = *msg_id;
                    last_time = *create_time;
                }
                other => panic!("{other:?}"),
            }
        }

        // rows are there for a new connection after the thread ended
        let conn = open(&t.path(), DbSync::Full).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1001);
        let m = messages::by_id(&conn, last_id).unwrap().unwrap();
        assert_eq!(m.data, b"m999");
        assert_eq!(
            unread::counts(&conn, 1, Family::Android, 10).unwrap(),
            vec![(2, 500), (3, 1)]
        );
    }

    #[test]
    fn merged_pair_updates_match_message_by_message_order() {
        // One batch: two messages, a 3/3 on the PC, one more message, a 2/12 hide, a reply.
        let t = TempDb::new("writer-merge");
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        users(&conn, 2);
        let ops = vec![
            p2p(1, 2, b"a"),
            p2p(1, 2, b"b"),
            WriteOp::MarkRead {
                reader: 2,
                peer: 1,
                family: Family::Pc,
            },
            p2p(1, 2, b"c"),
            WriteOp::HideRecent { owner: 1, peer: 2 },
            p2p(2, 1, b"d"),
        ];
        let (replies, flushes) = run_ops(conn, ops, 64);
        assert_eq!(flushes, 1, "one batch");
        assert!(replies.iter().all(|(_, r)| r.is_ok()));
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        assert_eq!(
            unread::counts(&conn, 2, Family::Pc, 10).unwrap(),
            vec![(1, 1)]
        );
        assert_eq!(
            unread::counts(&conn, 2, Family::Ios, 10).unwrap(),
            vec![(1, 3)]
        );
        assert_eq!(
            unread::counts(&conn, 1, Family::Pc, 10).unwrap(),
            vec![(2, 1)]
        );
        let texts: Vec<Vec<u8>> = unread::messages(&conn, 2, 1, Family::Ios, 10)
            .unwrap()
            .into_iter()
            .map(|m| m.data)
            .collect();
        assert_eq!(texts, vec![b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]);
        // The hide came after the last a->b message, but b->a un-hid it again (B-RC-1).
        assert_eq!(recent::list(&conn, 1, 10).unwrap().len(), 1);
        assert_eq!(recent::list(&conn, 2, 10).unwrap().len(), 1);
    }

    #[test]
    fn failing_jobs_fail_alone() {
        let t = TempDb::new("writer-fail");
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        users(&conn, 3);
        // Force a failure half-way through a job: the message and unread rows are written,
        // then the second recent-contact upsert aborts. The savepoint must undo all of it.
        conn.execute_batch(
            "CREATE TEMP TRIGGER fail_rc BEFORE INSERT ON main.recent_contacts
             WHEN NEW.owner = 3 BEGIN SELECT RAISE(ABORT, 'forced'); END;",
        )
        .unwrap();
        let ops = vec![
            p2p(1, 2, b"ok1"),
            p2p(1, 3, b"half"),    // trigger
            p2p(1, 99, b"nobody"), // foreign key
            p2p(1, 2, b""),        // CHECK (empty payload)
            WriteOp::HideRecent { owner: 2, peer: 1 },
            p2p(2, 1, b"ok2"),
            WriteOp::MarkRead {
                reader: 2,
                peer: 1,
                family: Family::Pc,
            },
        ];
        let (replies, flushes) = run_ops(conn, ops, 100);
        assert_eq!(flushes, 1);
        let ok: Vec<bool> = replies.iter().map(|(_, r)| r.is_ok()).collect();
        assert_eq!(ok, [true, false, false, false, true, true, true]);
        assert!(matches!(replies.get(4), Some((4, Ok(WriteOut::Done)))));

        let conn = open(&t.path(), DbSync::Normal).unwrap();
        let data: Vec<Vec<u8>> = conn
            .prepare("SELECT data FROM messages ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(data, [b"ok1".to_vec(), b"ok2".to_vec()]);
        assert!(unread::counts(&conn, 3, Family::Pc, 10).unwrap().is_empty());
        assert!(recent::watchers(&conn, 3, 10).unwrap().is_empty());
        assert!(unread::counts(&conn, 2, Family::Pc, 10).unwrap().is_empty());
        assert_eq!(
            unread::counts(&conn, 2, Family::Ios, 10).unwrap(),
            vec![(1, 1)]
        );
        assert_eq!(
            unread::counts(&conn, 1, Family::Pc, 10).unwrap(),
            vec![(2, 1)]
        );
        // hidden, then un-hidden by the later message
        assert_eq!(recent::list(&conn, 2, 10).unwrap().len(), 1);
    }

    #[test]
    fn commit_failure_fails_the_whole_batch() {
        let t = TempDb::new("writer-commit");
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        users(&conn, 2);
        // A deferred foreign key is checked at COMMIT: storing "b" leaves a violation behind
        // (through a temp trigger), so the commit fails, and so must every job of the batch.
        conn.execute_batch(
            "CREATE TEMP TABLE p (id INTEGER PRIMARY KEY);
             CREATE TEMP TABLE c (pid INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);
             CREATE TEMP TRIGGER defer_fail AFTER INSERT ON main.messages
             WHEN NEW.data = x'62' BEGIN INSERT INTO c VALUES (42); END;",
        )
        .unwrap();
        let (replies, _) = run_ops(conn, vec![p2p(1, 2, b"a"), p2p(2, 1, b"b")], 10);
        assert_eq!(replies.len(), 2);
        assert!(replies.iter().all(|(_, r)| r.is_err()), "{replies:?}");
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}

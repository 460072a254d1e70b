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
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use rusqlite::Connection;

use super::departs::{self, Depart};
use super::files::{self, OfflineFile};
use super::groups::{self, MemberChange, Sender};
use super::room::Room;
use super::users::{self, NewUser, User};
use super::{messages, recent, unread, Family, StoreError};
use crate::clock::unix_now;

/// A write the server asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// B-MSG-2 step 2; `create_time` is assigned by the writer.
    StoreP2p {
        from: u32,
        to: u32,
        msg_type: u8,
        /// Shared with the delivery that is encoded after commit (no copy per use).
        data: Arc<[u8]>,
    },
    /// B-UNR-4 (3/3).
    MarkRead {
        reader: u32,
        peer: u32,
        family: Family,
    },
    /// B-RC-3 (2/12 with session_type 1).
    HideRecent { owner: u32, peer: u32 },
    /// B-GRP-2 (5/12): members = `creator`, then `members` in order without repeats. The
    /// caller checked name, avatar and that every listed id is an active user. More than
    /// `max_members` -> `GroupChange { result: 2, group_id: 0, .. }`, nothing stored; else
    /// `GroupCreated`.
    CreateTempGroup {
        creator: u32,
        name: Vec<u8>,
        avatar: Vec<u8>,
        members: Vec<u32>,
        max_members: u32,
    },
    /// B-GRP-4, B-GRP-5 (5/14) -> `GroupChange` with the 5/15 result code.
    ChangeMembers {
        group: u32,
        requester: u32,
        change_type: u32,
        users: Vec<u32>,
        max_members: u32,
    },
    /// B-GRP-8 (group 3/1) -> `Stored`. A sender that is not a current member, or a deleted
    /// or unknown group, is `Err(StoreError::Invalid)`.
    StoreGroupMsg {
        group: u32,
        from: u32,
        msg_type: u8,
        data: Arc<[u8]>,
        family: Family,
    },
    /// B-ADM-7 (`POST /v1/messages` to a group) -> `Stored`: like `StoreGroupMsg` without the
    /// membership check and without moving any cursor. Deleted or unknown group: `Invalid`.
    StoreGroupMsgAdmin {
        group: u32,
        from: u32,
        msg_type: u8,
        data: Arc<[u8]>,
    },
    /// B-GRP-13 (5/11) -> `Done` (also for a non-member: no-op).
    GroupReadAck {
        user: u32,
        group: u32,
        family: Family,
    },
    /// B-RC-4 (2/12 with session_type 2 or 3) -> `Hidden`.
    HideGroup { user: u32, group: u32 },
    /// B-GRP-1, B-GRP-17 (admin) -> `GroupCreated`; a member that is not an active user is
    /// `Err(Invalid)`. The caller checks `MaxNormalGroupMembers`.
    CreateNormalGroup {
        name: Vec<u8>,
        avatar: Vec<u8>,
        members: Vec<u32>,
    },
    /// B-GRP-18 (admin, complete new list) -> `GroupChange { result: 0, .. }`; unknown or
    /// deleted group `Err(NotFound)`, temporary group or a new member that is not an active
    /// user `Err(Invalid)`.
    SetNormalMembers { group: u32, members: Vec<u32> },
    /// B-GRP-18 (admin) -> `GroupChange { result: 0, listed: [], members_after: [], .. }`;
    /// unknown or deleted group `Err(NotFound)`, temporary group `Err(Invalid)`.
    DeleteNormalGroup { group: u32 },
    /// B-GRP-1 (admin `PATCH /v1/groups/{id}`): new name and/or avatar of a normal group ->
    /// `Done`; unknown or deleted group `Err(NotFound)`, temporary group `Err(Invalid)`.
    RenameNormalGroup {
        group: u32,
        name: Option<Vec<u8>>,
        avatar: Option<Vec<u8>>,
    },
    /// B-ADM (`POST /v1/users`) -> `Created`; a taken name is `Err(Conflict)` (B-USER-4).
    CreateUser(NewUser),
    /// B-ADM (`PATCH /v1/users/{id}`): every field replaced -> `Done`; see `users::update`.
    UpdateUser(User),
    /// B-ADM (`POST /v1/departments`) -> `Created`; a missing parent is `Err(Invalid)`.
    CreateDepart {
        title: String,
        description: String,
        parent_id: u32,
        leader_id: u32,
    },
    /// B-ADM (`PATCH /v1/departments/{id}`) -> `Done`; see `departs::update`.
    UpdateDepart(Depart),
    /// B-FILE-9 (the in-process file role, after fsync and rename) -> `Done`; see
    /// `files::insert`.
    AddOfflineFile(OfflineFile),
    /// B-FILE-14 (the in-process file role, 6/19) -> `Deleted`; see `files::delete`.
    DeleteOfflineFile { task_id: String, from: u32, to: u32 },
    /// B-FILE-15 (the in-process file role's sweeper): every record created before `before`
    /// -> `Expired`; see `files::delete_older`.
    ExpireOfflineFiles { before: u32 },
    /// Changes nothing -> `Done`. Its reply comes after every job queued before it was
    /// committed and answered: the graceful stop waits on it (`server::Running::stop`).
    Barrier,
}

/// The result of a committed [`WriteOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOut {
    /// The message is committed with this id and time.
    Stored { msg_id: u64, create_time: u32 },
    /// The change is committed.
    Done,
    /// A group was created with these members (creator first for a temporary group).
    GroupCreated { group_id: u32, members: Vec<u32> },
    /// A membership change, or its refusal (`result` != 0: nothing changed and
    /// `members_before` = `members_after` = the current members). `listed` = the requested ids,
    /// deduplicated, in request order.
    GroupChange {
        result: u32,
        group_id: u32,
        listed: Vec<u32>,
        members_before: Vec<u32>,
        members_after: Vec<u32>,
    },
    /// `HideGroup`: false when the user is not a member (or there is no such group).
    Hidden { ok: bool },
    /// A user or department was created with this id.
    Created { id: u32 },
    /// `DeleteOfflineFile`: whether a record went.
    Deleted { ok: bool },
    /// `ExpireOfflineFiles`: (task_id, to_id) of every record that went, so the caller can
    /// delete the files.
    Expired(Vec<(String, u32)>),
}

impl From<MemberChange> for WriteOut {
    fn from(c: MemberChange) -> Self {
        WriteOut::GroupChange {
            result: c.result,
            group_id: c.group_id,
            listed: c.listed,
            members_before: c.members_before,
            members_after: c.members_after,
        }
    }
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
    room: Arc<Room>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("db-writer".into())
        .spawn(move || run(&conn, &rx, outlet, max_batch.max(1), &room))
}

fn run<O: Outlet>(
    conn: &Connection,
    rx: &Receiver<WriteJob<O::Tag>>,
    mut outlet: O,
    max_batch: usize,
    room: &Room,
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
        // The batch left the queue: loops parked on a full queue try again.
        room.ring();
        let time = unix_now().max(last_time);
        last_time = time;
        let started = std::time::Instant::now();
        if let Err(e) = run_batch_fast(conn, &batch, time, &mut results, &mut pairs) {
            // Some job failed (or the commit did): redo the batch job by job, so that a failing
            // job fails alone and the others still commit.
            log::warn!(target: "store", "db-writer: batch of {} jobs retried job by job: {e}", batch.len());
            run_batch(conn, &batch, time, &mut results);
        }
        log::trace!(target: "store", "db-writer: batch of {} jobs committed in {:?}", batch.len(), started.elapsed());
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
                    // 3/3 and 2/12 see every message stored before them (B-UNR-4). Group ops
                    // touch neither table but flush too: one simple rule, same result.
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
        WriteOp::CreateTempGroup {
            creator,
            name,
            avatar,
            members,
            max_members,
        } => Ok(
            match groups::create_temp(conn, *creator, name, avatar, members, *max_members, time)? {
                Some((group_id, members)) => WriteOut::GroupCreated { group_id, members },
                None => WriteOut::GroupChange {
                    result: 2,
                    group_id: 0,
                    listed: Vec::new(),
                    members_before: Vec::new(),
                    members_after: Vec::new(),
                },
            },
        ),
        WriteOp::ChangeMembers {
            group,
            requester,
            change_type,
            users,
            max_members,
        } => Ok(groups::change_members(
            conn,
            *group,
            *requester,
            *change_type,
            users,
            *max_members,
            time,
        )?
        .into()),
        WriteOp::StoreGroupMsg {
            group,
            from,
            msg_type,
            data,
            family,
        } => {
            let sender = Sender::Client(*family);
            let msg_id = groups::store_msg(conn, *group, *from, *msg_type, data, sender, time)?;
            Ok(WriteOut::Stored {
                msg_id,
                create_time: time,
            })
        }
        WriteOp::StoreGroupMsgAdmin {
            group,
            from,
            msg_type,
            data,
        } => {
            let msg_id =
                groups::store_msg(conn, *group, *from, *msg_type, data, Sender::Admin, time)?;
            Ok(WriteOut::Stored {
                msg_id,
                create_time: time,
            })
        }
        WriteOp::GroupReadAck {
            user,
            group,
            family,
        } => {
            groups::read_ack(conn, *user, *group, *family)?;
            Ok(WriteOut::Done)
        }
        WriteOp::HideGroup { user, group } => Ok(WriteOut::Hidden {
            ok: groups::hide(conn, *user, *group)?,
        }),
        WriteOp::CreateNormalGroup {
            name,
            avatar,
            members,
        } => {
            let (group_id, members) = groups::create_normal(conn, name, avatar, members, time)?;
            Ok(WriteOut::GroupCreated { group_id, members })
        }
        WriteOp::SetNormalMembers { group, members } => {
            Ok(groups::set_normal_members(conn, *group, members, time)?.into())
        }
        WriteOp::DeleteNormalGroup { group } => {
            Ok(groups::delete_normal(conn, *group, time)?.into())
        }
        WriteOp::RenameNormalGroup {
            group,
            name,
            avatar,
        } => {
            rename_normal(conn, *group, name.as_deref(), avatar.as_deref())?;
            Ok(WriteOut::Done)
        }
        WriteOp::CreateUser(u) => Ok(WriteOut::Created {
            id: users::insert(conn, u)?,
        }),
        WriteOp::UpdateUser(u) => {
            users::update(conn, u)?;
            Ok(WriteOut::Done)
        }
        WriteOp::CreateDepart {
            title,
            description,
            parent_id,
            leader_id,
        } => Ok(WriteOut::Created {
            id: departs::insert(conn, title, description, *parent_id, *leader_id)?,
        }),
        WriteOp::UpdateDepart(d) => {
            departs::update(conn, d)?;
            Ok(WriteOut::Done)
        }
        WriteOp::AddOfflineFile(f) => {
            files::insert(conn, f)?;
            Ok(WriteOut::Done)
        }
        WriteOp::DeleteOfflineFile { task_id, from, to } => Ok(WriteOut::Deleted {
            ok: files::delete(conn, task_id, *from, *to)?,
        }),
        WriteOp::ExpireOfflineFiles { before } => {
            Ok(WriteOut::Expired(files::delete_older(conn, *before)?))
        }
        WriteOp::Barrier => Ok(WriteOut::Done),
    }
}

/// `RenameNormalGroup`: the group's `updated` is left alone (no membership change, no message).
fn rename_normal(
    conn: &Connection,
    group: u32,
    name: Option<&[u8]>,
    avatar: Option<&[u8]>,
) -> Result<(), StoreError> {
    let g = groups::get(conn, group)?
        .filter(|g| !g.deleted)
        .ok_or_else(|| StoreError::NotFound(format!("no group {group}")))?;
    if g.group_type != groups::NORMAL {
        return Err(StoreError::Invalid(format!(
            "group {group} is not a normal group"
        )));
    }
    conn.execute(
        "UPDATE groups SET name = ?1, avatar = ?2 WHERE id = ?3",
        rusqlite::params![name.unwrap_or(&g.name), avatar.unwrap_or(&g.avatar), group],
    )?;
    Ok(())
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
            data: data.into(),
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
        spawn_writer(conn, jrx, outlet, max_batch, Default::default())
            .unwrap()
            .join()
            .unwrap();
        (rrx.try_iter().collect(), flushes.load(Ordering::SeqCst))
    }

    #[test]
    fn a_barrier_changes_nothing_and_is_answered_in_queue_order() {
        let t = TempDb::new("barrier");
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        users(&conn, 2);
        let ops = vec![
            p2p(1, 2, b"a"),
            WriteOp::Barrier,
            p2p(2, 1, b"b"),
            WriteOp::Barrier,
        ];
        for max_batch in [1, 16] {
            let conn = open(&t.path(), DbSync::Normal).unwrap();
            let (replies, _) = run_ops(conn, ops.clone(), max_batch);
            let tags: Vec<u32> = replies.iter().map(|(t, _)| *t).collect();
            assert_eq!(tags, vec![0, 1, 2, 3]);
            assert!(matches!(replies[0].1, Ok(WriteOut::Stored { .. })));
            assert!(matches!(replies[1].1, Ok(WriteOut::Done)));
            assert!(matches!(replies[3].1, Ok(WriteOut::Done)));
        }
        let n: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 4);
    }

    #[test]
    fn thousand_jobs_in_order_with_group_commit() {
        let t = TempDb::new("writer");
        let conn = open(&t.path(), DbSync::Full).unwrap();
        users(&conn, 3);
        // a stored time in the future: the writer must not go below it (B-GEN-3)
        let future = unix_now() + 1000;
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

    /// Every row of every table, in key order, as text: the whole database state.
    fn dump(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        for (table, order) in [
            ("messages", "id"),
            ("unread", "reader, peer"),
            ("recent_contacts", "owner, peer"),
            ("groups", "id"),
            ("group_members", "group_id, user_id"),
            ("group_messages", "id"),
        ] {
            let mut st = conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
                .unwrap();
            let n = st.column_count();
            let rows = st
                .query_map([], |r| {
                    let vals: Vec<rusqlite::types::Value> =
                        (0..n).map(|i| r.get(i)).collect::<Result<_, _>>()?;
                    Ok(format!("{table}: {vals:?}"))
                })
                .unwrap();
            for row in rows {
                out.push(row.unwrap());
            }
        }
        out
    }

    fn gmsg(group: u32, from: u32, data: &[u8], family: Family) -> WriteOp {
        WriteOp::StoreGroupMsg {
            group,
            from,
            msg_type: 0x11,
            data: data.into(),
            family,
        }
    }

    /// The groups of [`group_setup`]; users and groups share one id sequence (B-GRP-20), so
    /// they are 6, 7 and 8 after users 1..=5, and the next new group is 9.
    #[derive(Clone, Copy)]
    struct Setup {
        /// temporary, creator 1; members 1, 2, 3
        t: u32,
        /// normal; 1, 2
        n: u32,
        /// normal; 3
        m: u32,
    }

    /// users 1..=5; then the groups of [`Setup`].
    fn group_setup(conn: &Connection) -> Setup {
        users(conn, 5);
        let (t, members) = groups::create_temp(conn, 1, b"t", b"", &[2, 3], 10, 5)
            .unwrap()
            .unwrap();
        assert_eq!(members, vec![1, 2, 3]);
        let (n, members) = groups::create_normal(conn, b"n", b"", &[1, 2], 5).unwrap();
        assert_eq!(members, vec![1, 2]);
        let (m, members) = groups::create_normal(conn, b"m", b"", &[3], 5).unwrap();
        assert_eq!(members, vec![3]);
        assert_eq!((t, n, m), (6, 7, 8));
        Setup { t, n, m }
    }

    /// `new` = the id the first group created by these ops gets.
    fn mixed_ops(g: Setup, new: u32) -> Vec<WriteOp> {
        vec![
            p2p(1, 2, b"a"),
            gmsg(g.t, 1, b"g1", Family::Pc),
            p2p(2, 1, b"b"),
            WriteOp::HideGroup {
                user: 2,
                group: g.t,
            },
            WriteOp::ChangeMembers {
                group: g.t,
                requester: 1,
                change_type: 0,
                users: vec![4, 4, 1],
                max_members: 10,
            },
            gmsg(g.t, 4, b"g2", Family::Ios),
            WriteOp::MarkRead {
                reader: 2,
                peer: 1,
                family: Family::Pc,
            },
            WriteOp::GroupReadAck {
                user: 3,
                group: g.t,
                family: Family::Android,
            },
            p2p(1, 2, b"c"),
            WriteOp::ChangeMembers {
                group: g.t,
                requester: 2,
                change_type: 1,
                users: vec![3],
                max_members: 10,
            },
            WriteOp::CreateTempGroup {
                creator: 5,
                name: b"big".to_vec(),
                avatar: Vec::new(),
                members: vec![1, 2],
                max_members: 2,
            },
            WriteOp::CreateTempGroup {
                creator: 5,
                name: b"x".to_vec(),
                avatar: b"av".to_vec(),
                members: vec![1, 5],
                max_members: 10,
            },
            gmsg(new, 1, b"g3", Family::Android),
            WriteOp::HideGroup {
                user: 4,
                group: g.n,
            },
            WriteOp::SetNormalMembers {
                group: g.n,
                members: vec![2, 3, 4, 3],
            },
            WriteOp::StoreGroupMsgAdmin {
                group: g.n,
                from: 5,
                msg_type: 0x11,
                data: b"notice".as_slice().into(),
            },
            WriteOp::HideRecent { owner: 1, peer: 2 },
            p2p(3, 1, b"d"),
            WriteOp::DeleteNormalGroup { group: g.m },
            WriteOp::CreateNormalGroup {
                name: b"new".to_vec(),
                avatar: Vec::new(),
                members: vec![3, 4],
            },
            gmsg(g.t, 2, b"g4", Family::Pc),
        ]
    }

    #[test]
    fn fast_path_with_group_ops_matches_job_by_job() {
        let fast_db = crate::store::testutil::mem();
        let slow_db = crate::store::testutil::mem();
        let g = group_setup(&fast_db);
        group_setup(&slow_db);
        // the first group these ops create takes the next id of the one sequence (B-GRP-20)
        let new = g.m + 1;
        let ops = mixed_ops(g, new);
        let batch: Vec<WriteJob<()>> = ops.into_iter().map(|op| WriteJob { op, tag: () }).collect();
        let mut fast = Vec::new();
        let mut pairs = PairUpdates::default();
        run_batch_fast(&fast_db, &batch, 100, &mut fast, &mut pairs).unwrap();
        let mut slow = Vec::new();
        run_batch(&slow_db, &batch, 100, &mut slow);
        let fast: Vec<WriteOut> = fast.into_iter().map(Result::unwrap).collect();
        let slow: Vec<WriteOut> = slow.into_iter().map(Result::unwrap).collect();
        assert_eq!(fast, slow);
        assert_eq!(dump(&fast_db), dump(&slow_db));

        // and the results are the expected ones
        let change = |i: usize| fast.get(i).cloned().unwrap();
        assert_eq!(
            change(4),
            WriteOut::GroupChange {
                result: 0,
                group_id: g.t,
                listed: vec![4, 1],
                members_before: vec![1, 2, 3],
                members_after: vec![1, 2, 3, 4],
            }
        );
        assert!(matches!(change(9), WriteOut::GroupChange { result: 2, .. }));
        assert!(matches!(
            change(10),
            WriteOut::GroupChange {
                result: 2,
                group_id: 0,
                ..
            }
        ));
        assert_eq!(
            change(11),
            WriteOut::GroupCreated {
                group_id: new,
                members: vec![5, 1]
            }
        );
        assert_eq!(change(13), WriteOut::Hidden { ok: false });
        assert_eq!(change(3), WriteOut::Hidden { ok: true });
        assert!(matches!(
            change(14),
            WriteOut::GroupChange { result: 0, ref members_after, .. } if *members_after == vec![2, 3, 4]
        ));
        assert!(matches!(
            change(15),
            WriteOut::Stored {
                create_time: 100,
                ..
            }
        ));
        assert_eq!(
            change(18),
            WriteOut::GroupChange {
                result: 0,
                group_id: g.m,
                listed: vec![],
                members_before: vec![3],
                members_after: vec![],
            }
        );
        assert_eq!(
            change(19),
            WriteOut::GroupCreated {
                group_id: new + 1,
                members: vec![3, 4]
            }
        );
        let c = &fast_db;
        // group t: 2 hid it, then g2 un-hid it. 4 joined after g1 and sent g2 from ios: only
        // g4 is unread in group t (pc: g2 is its own); group n: the admin notice.
        assert_eq!(groups::recent_groups_of(c, 2, 10).unwrap().len(), 2);
        for f in [Family::Ios, Family::Pc] {
            assert_eq!(
                groups::unread_counts(c, 4, f, 150, 10).unwrap(),
                vec![(g.t, 1), (g.n, 1)]
            );
        }
        // 3 acked in android after g2: g4 only there, g1 g2 g4 in pc
        assert_eq!(
            groups::unread_counts(c, 3, Family::Android, 150, 10).unwrap(),
            vec![(g.t, 1), (g.n, 1)]
        );
        assert_eq!(
            groups::unread_counts(c, 3, Family::Pc, 150, 10).unwrap(),
            vec![(g.t, 3), (g.n, 1)]
        );
        assert_eq!(unread::counts(c, 2, Family::Pc, 10).unwrap(), vec![(1, 1)]);
    }

    #[test]
    fn a_refused_group_message_fails_alone() {
        let t = TempDb::new("writer-groups");
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        let g = group_setup(&conn);
        let ops = vec![
            gmsg(g.t, 1, b"ok1", Family::Pc),
            gmsg(g.t, 5, b"not a member", Family::Pc),
            p2p(1, 2, b"p"),
            gmsg(g.m, 3, b"ok2", Family::Pc),
            WriteOp::DeleteNormalGroup { group: g.m },
            gmsg(g.m, 3, b"deleted", Family::Pc),
            WriteOp::SetNormalMembers {
                group: g.t,
                members: vec![1],
            },
            WriteOp::StoreGroupMsgAdmin {
                group: 99,
                from: 1,
                msg_type: 0x11,
                data: b"no group".as_slice().into(),
            },
        ];
        let (replies, flushes) = run_ops(conn, ops, 64);
        assert_eq!(flushes, 1);
        let ok: Vec<bool> = replies.iter().map(|(_, r)| r.is_ok()).collect();
        assert_eq!(ok, [true, false, true, true, true, false, false, false]);
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        let data: Vec<Vec<u8>> = conn
            .prepare("SELECT data FROM group_messages ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(data, [b"ok1".to_vec(), b"ok2".to_vec()]);
        assert!(groups::get(&conn, g.m).unwrap().unwrap().deleted);
        assert_eq!(groups::members(&conn, g.t).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn users_and_groups_share_one_id_sequence() {
        // B-GRP-20 on a new database, all through the writer: user 1, user 2, normal group 3,
        // user 4, temporary group 5. A refused job gives its id back: the temporary group with
        // an unknown member and the taken name use up nothing.
        let t = TempDb::new("writer-ids");
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        let new = |name: &str| {
            WriteOp::CreateUser(NewUser {
                name: name.into(),
                password_hash: "h".into(),
                ..Default::default()
            })
        };
        let temp = |creator: u32, members: Vec<u32>| WriteOp::CreateTempGroup {
            creator,
            name: b"t".to_vec(),
            avatar: Vec::new(),
            members,
            max_members: 10,
        };
        let ops = vec![
            new("a"),
            new("b"),
            WriteOp::CreateNormalGroup {
                name: b"n".to_vec(),
                avatar: Vec::new(),
                members: vec![1, 2],
            },
            temp(1, vec![42]), // foreign key: rolled back
            new("a"),          // taken
            new("c"),
            temp(4, vec![1]),
        ];
        let (replies, _) = run_ops(conn, ops, 64);
        let r: Vec<_> = replies.into_iter().map(|(_, r)| r).collect();
        assert!(matches!(r[0], Ok(WriteOut::Created { id: 1 })), "{r:?}");
        assert!(matches!(r[1], Ok(WriteOut::Created { id: 2 })), "{r:?}");
        assert_eq!(
            r[2].as_ref().ok(),
            Some(&WriteOut::GroupCreated {
                group_id: 3,
                members: vec![1, 2]
            })
        );
        assert!(r[3].is_err(), "{r:?}");
        assert!(matches!(r[4], Err(StoreError::Conflict(_))), "{r:?}");
        assert!(matches!(r[5], Ok(WriteOut::Created { id: 4 })), "{r:?}");
        assert_eq!(
            r[6].as_ref().ok(),
            Some(&WriteOut::GroupCreated {
                group_id: 5,
                members: vec![4, 1]
            })
        );
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        let ids = |sql: &str| -> Vec<u32> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(ids("SELECT id FROM users ORDER BY id"), [1, 2, 4]);
        assert_eq!(ids("SELECT id FROM groups ORDER BY id"), [3, 5]);
        assert_eq!(ids("SELECT last FROM id_seq"), [5]);
        // outside the writer, the store functions take the next ids too
        assert_eq!(
            users::insert(
                &conn,
                &NewUser {
                    name: "d".into(),
                    ..Default::default()
                }
            )
            .unwrap(),
            6
        );
        assert_eq!(
            groups::create_temp(&conn, 6, b"x", b"", &[], 10, 1)
                .unwrap()
                .map(|(id, _)| id),
            Some(7)
        );
    }

    #[test]
    fn admin_user_depart_and_rename_ops() {
        let t = TempDb::new("writer-admin");
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        users(&conn, 2);
        let g = groups::create_normal(&conn, b"ops", b"", &[1, 2], 1)
            .unwrap()
            .0;
        let new = |name: &str| NewUser {
            name: name.into(),
            password_hash: "h".into(),
            ..Default::default()
        };
        let mut u1 = users::by_id(&conn, 1).unwrap().unwrap();
        u1.disabled = true;
        u1.nick = "one".into();
        let mut bad = u1.clone();
        bad.name = "u2".into();
        let ops = vec![
            WriteOp::CreateUser(new("carol")),
            WriteOp::CreateUser(new("u1")),
            WriteOp::UpdateUser(u1.clone()),
            WriteOp::UpdateUser(bad),
            WriteOp::CreateDepart {
                title: "HQ".into(),
                description: "d".into(),
                parent_id: 0,
                leader_id: 0,
            },
            WriteOp::CreateDepart {
                title: "x".into(),
                description: String::new(),
                parent_id: 9,
                leader_id: 0,
            },
            WriteOp::UpdateDepart(Depart {
                id: 1,
                title: "Head".into(),
                description: String::new(),
                parent_id: 0,
                leader_id: 3,
                disabled: false,
            }),
            WriteOp::RenameNormalGroup {
                group: g,
                name: Some(b"dev".to_vec()),
                avatar: None,
            },
            WriteOp::RenameNormalGroup {
                group: 99,
                name: None,
                avatar: None,
            },
        ];
        let (replies, _) = run_ops(conn, ops, 16);
        let r: Vec<_> = replies.into_iter().map(|(_, r)| r).collect();
        // carol's id follows the group's: one id sequence (B-GRP-20)
        assert!(matches!(r[0], Ok(WriteOut::Created { id }) if id == g + 1));
        assert!(matches!(r[1], Err(StoreError::Conflict(_))));
        assert!(matches!(r[2], Ok(WriteOut::Done)));
        assert!(matches!(r[3], Err(StoreError::Conflict(_))));
        assert!(matches!(r[4], Ok(WriteOut::Created { id: 1 })));
        assert!(matches!(r[5], Err(StoreError::Invalid(_))));
        assert!(matches!(r[6], Ok(WriteOut::Done)));
        assert!(matches!(r[7], Ok(WriteOut::Done)));
        assert!(matches!(r[8], Err(StoreError::NotFound(_))));
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        assert_eq!(users::by_id(&conn, 1).unwrap().unwrap(), u1);
        assert_eq!(users::by_id(&conn, g + 1).unwrap().unwrap().name, "carol");
        let d = departs::by_id(&conn, 1).unwrap().unwrap();
        assert_eq!((d.title.as_str(), d.leader_id), ("Head", 3));
        let grp = groups::get(&conn, g).unwrap().unwrap();
        assert_eq!(
            (grp.name.as_slice(), grp.members.as_slice()),
            (&b"dev"[..], &[1, 2][..])
        );
    }

    #[test]
    fn offline_file_ops() {
        let t = TempDb::new("writer-files");
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        let rec = |task: &str, to: u32, created: u32| OfflineFile {
            task_id: task.into(),
            from_id: 1,
            to_id: to,
            file_name: b"f.bin".to_vec(),
            file_size: 3,
            created,
        };
        let delete = |task: &str, from: u32, to: u32| WriteOp::DeleteOfflineFile {
            task_id: task.into(),
            from,
            to,
        };
        let ops = vec![
            WriteOp::AddOfflineFile(rec("t1", 2, 100)),
            WriteOp::AddOfflineFile(rec("t2", 3, 200)),
            WriteOp::AddOfflineFile(rec("t1", 2, 300)), // recorded already: fails alone
            delete("t2", 9, 3),                         // not its sender
            WriteOp::AddOfflineFile(rec("t3", 4, 300)),
            WriteOp::AddOfflineFile(rec("t4", 4, 400)),
            WriteOp::ExpireOfflineFiles { before: 250 },
            delete("t3", 1, 4),
            delete("t3", 1, 4), // gone already
        ];
        let (replies, flushes) = run_ops(conn, ops, 64);
        assert_eq!(flushes, 1);
        let mut r: Vec<_> = replies.into_iter().map(|(_, r)| r).collect();
        if let Some(Ok(WriteOut::Expired(gone))) = r.get_mut(6) {
            gone.sort();
        }
        assert!(matches!(r[0], Ok(WriteOut::Done)), "{r:?}");
        assert!(matches!(r[1], Ok(WriteOut::Done)), "{r:?}");
        assert!(r[2].is_err(), "{r:?}");
        assert!(matches!(r[3], Ok(WriteOut::Deleted { ok: false })), "{r:?}");
        assert!(matches!(r[4], Ok(WriteOut::Done)), "{r:?}");
        assert!(matches!(r[5], Ok(WriteOut::Done)), "{r:?}");
        assert_eq!(
            r[6].as_ref().ok(),
            Some(&WriteOut::Expired(vec![
                ("t1".to_string(), 2),
                ("t2".to_string(), 3)
            ]))
        );
        assert!(matches!(r[7], Ok(WriteOut::Deleted { ok: true })), "{r:?}");
        assert!(matches!(r[8], Ok(WriteOut::Deleted { ok: false })), "{r:?}");
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        assert_eq!(
            files::list_for(&conn, 4, 0, 10).unwrap(),
            vec![rec("t4", 4, 400)]
        );
        for (task, to) in [("t1", 2), ("t2", 3)] {
            assert!(
                files::list_for(&conn, to, 0, 10).unwrap().is_empty(),
                "{task}"
            );
        }
    }
}

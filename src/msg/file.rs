//! Module 6 on the msg port (B-FILE-1 .. B-FILE-3, B-FILE-12 .. B-FILE-14): file requests,
//! the offline-file list, and the sender's and receiver's reports. The transfers themselves
//! happen on the file port ([`crate::file`]).

use std::sync::{Arc, Weak};
use std::time::Instant;

use super::outlet::{submit_read, AdminCache, WriteTag};
use super::presence::Class;
use super::service::WorkerMsg;
use super::{Ctx, Effect, MsgConn, Step};
use crate::clock::unix_now;
use crate::file::hub::{CreateError, OnDone, ReadyNotice, Task, TokenCheck, TransMode};
use crate::file::records::FileRecords;
use crate::msg::state::State;
use crate::net::Shared;
use crate::proto::file::{
    AddOfflineFile, Addr, DeleteOfflineFile, FileNotify, FileRequest, FileResponse, OfflineFile,
    OfflineFileListResponse,
};
use crate::proto::{Id, Pdu};
use crate::stats::bump;
use crate::store::files;
use crate::store::writer::{WriteJob, WriteOp, WriteOut};
use crate::store::StoreError;

/// B-FILE-1: longest `file_name`.
const MAX_FILE_NAME: usize = 255;

/// The file addresses as 6/11, 6/12 and 6/17 carry them.
fn addrs(st: &State) -> Vec<Addr<'_>> {
    st.file
        .get()
        .map(|hub| {
            hub.addrs
                .iter()
                .map(|(ip, port)| Addr { ip, port: *port })
                .collect()
        })
        .unwrap_or_default()
}

/// 6/11 failure: the full layout with empty `task_id`, no addresses, `trans_mode` 0.
fn refuse(cx: &Ctx<'_>, mc: &mut MsgConn, r: &FileRequest<'_>, result: u32) -> Step {
    let rsp = Pdu::FileResponse(FileResponse {
        result,
        from_id: r.from_id,
        to_id: r.to_id,
        file_name: r.file_name,
        task_id: b"",
        addrs: Vec::new(),
        trans_mode: 0,
    })
    .to_frame(cx.reserved);
    cx.respond(mc, vec![Effect::Reply(rsp)])
}

/// 6/12 for every session of the receiver (a push, reserved 0).
fn notify(st: &State, task: &Task, ready: u32) -> Vec<u8> {
    Pdu::FileNotify(FileNotify {
        from_id: Id::Num(task.from),
        to_id: Id::Num(task.to),
        file_name: &task.name,
        file_size: task.size,
        task_id: task.id.as_bytes(),
        addrs: addrs(st),
        trans_mode: task.mode as u32,
        offline_ready: ready,
    })
    .to_frame(0)
}

/// 6/10 -> 6/11, then 6/12 to the receiver (B-FILE-1 .. B-FILE-3).
pub fn request(cx: &Ctx<'_>, mc: &mut MsgConn, r: &FileRequest<'_>) -> Step {
    let st = cx.st;
    let Some(me) = mc.user_id() else {
        return Step::Now(Vec::new());
    };
    if r.from_id.value() != Some(me) {
        bump(&st.counters.identity_rejects);
        log::info!(target: "msg", "conn={:?} user={me} 6/10 with a foreign from_id", cx.conn);
        return Step::Now(Vec::new());
    }
    let to = r
        .to_id
        .value()
        .filter(|&to| to != me && st.directory.read().active(to).is_some());
    let valid = (1..=MAX_FILE_NAME).contains(&r.file_name.len())
        && r.file_size >= 1
        && u64::from(r.file_size) <= st.cfg.file.max_file_size
        && matches!(r.trans_mode, 1 | 2);
    let (Some(to), true) = (to, valid) else {
        bump(&st.counters.file_rejected);
        return refuse(cx, mc, r, 1);
    };
    let Some(hub) = st.file.get() else {
        return refuse(cx, mc, r, 8);
    };
    // B-FILE-2: online only if asked for and the receiver has a PC session.
    let receiver_on_pc = st
        .presence
        .sessions(to)
        .iter()
        .any(|s| s.class == Class::Pc);
    let mode = if r.trans_mode == 1 && receiver_on_pc {
        TransMode::Online
    } else {
        TransMode::Offline
    };
    let task = match hub.create_task(me, to, r.file_name, r.file_size, mode) {
        Ok(t) => t,
        Err(CreateError::NotCreatable) => return refuse(cx, mc, r, 2),
        Err(CreateError::NoFileService) => return refuse(cx, mc, r, 8),
    };
    log::info!(target: "msg", "user={me} file task {} to {to}, {} bytes, {mode:?}", task.id, task.size);
    let rsp = Pdu::FileResponse(FileResponse {
        result: 0,
        from_id: r.from_id,
        to_id: r.to_id,
        file_name: r.file_name,
        task_id: task.id.as_bytes(),
        addrs: addrs(st),
        trans_mode: mode as u32,
    })
    .to_frame(cx.reserved);
    let push: Shared = notify(st, &task, 0).into();
    cx.respond(
        mc,
        vec![
            Effect::Reply(rsp),
            Effect::Deliver {
                user: to,
                bytes: push,
                skip: None,
            },
        ],
    )
}

/// 6/16 -> 6/17 (B-FILE-12).
pub fn offline_list(cx: &Ctx<'_>, mc: &mut MsgConn) -> Step {
    let Some(me) = mc.user_id() else {
        return Step::Now(Vec::new());
    };
    let reserved = cx.reserved;
    let limit = cx.st.cfg.file.max_offline_files;
    let not_before =
        unix_now().saturating_sub(cx.st.cfg.file.offline_file_days.saturating_mul(86_400));
    submit_read(cx, mc, move |db, st| {
        let rows = match files::list_for(db, me, not_before, limit) {
            Ok(r) => r,
            Err(e) => {
                bump(&st.counters.store_failures);
                log::error!(target: "store", "offline files of {me}: {e}");
                Vec::new()
            }
        };
        let items: Vec<OfflineFile<'_>> = rows
            .iter()
            .map(|f| OfflineFile {
                from_id: Id::Num(f.from_id),
                task_id: f.task_id.as_bytes(),
                file_name: &f.file_name,
                file_size: f.file_size,
            })
            .collect();
        let frame = super::encode_capped(st, &items, reserved, |p| {
            Pdu::OfflineFileListResponse(OfflineFileListResponse {
                files: p.to_vec(),
                addrs: addrs(st),
            })
        });
        vec![Effect::Reply(frame)]
    })
}

/// 6/18: informational only (B-FILE-13).
pub fn add_report(cx: &Ctx<'_>, mc: &mut MsgConn, r: &AddOfflineFile<'_>) -> Step {
    let st = cx.st;
    if r.from_id.value() != mc.user_id() || mc.user_id().is_none() {
        bump(&st.counters.identity_rejects);
        return Step::Now(Vec::new());
    }
    bump(&st.counters.file_add_reports);
    Step::Now(Vec::new())
}

/// 6/19: the receiver is done with an offline file; delete it (B-FILE-14). No reply.
pub fn delete(cx: &Ctx<'_>, mc: &mut MsgConn, r: &DeleteOfflineFile<'_>) -> Step {
    let st = cx.st;
    let Some(me) = mc.user_id() else {
        return Step::Now(Vec::new());
    };
    if r.to_id.value() != Some(me) {
        bump(&st.counters.identity_rejects);
        return Step::Now(Vec::new());
    }
    let (Some(from), Some(hub)) = (r.from_id.value(), st.file.get()) else {
        bump(&st.counters.file_rejected);
        return Step::Now(Vec::new());
    };
    // The deletion happens on the file role's io thread. It holds a write slot of this
    // connection until applied, so a later 6/16 (or any read that waits for writes) reflects it
    // (B-GEN-1). The slot is completed even if the job is never handled (OnDone runs on drop),
    // and never aborted: a late completion must not land on a reused sequence number.
    let seq = mc.begin_job(true);
    let conn = cx.conn;
    let weak = Arc::downgrade(st);
    let done = OnDone::new(move || {
        if let Some(st) = weak.upgrade() {
            if let Some(h) = st.workers().get(conn.worker) {
                h.send(WorkerMsg::Done {
                    conn,
                    seq,
                    done: Vec::new(),
                });
            }
        }
    });
    if !hub.delete_offline(r.task_id, from, me, done) {
        bump(&st.counters.file_rejected);
    }
    Step::Queued
}

/// The msg role as the file role sees it: token checks, "upload complete" notices, and the
/// group-commit writer for the offline-file records ([`FileRecords`]).
/// Holds the state weakly: the file role must not keep it alive after a stop.
pub struct MsgSide {
    st: Weak<State>,
}

impl MsgSide {
    pub fn new(st: &Arc<State>) -> Arc<MsgSide> {
        Arc::new(MsgSide {
            st: Arc::downgrade(st),
        })
    }
}

impl TokenCheck for MsgSide {
    fn valid_for(&self, token: &[u8], user: u32) -> bool {
        self.st
            .upgrade()
            .is_some_and(|st| st.tokens.lock().is_valid(token, user, Instant::now()))
    }
}

impl ReadyNotice for MsgSide {
    /// B-FILE-9: 6/12 with `offline_ready` 1 to every session of the receiver.
    fn upload_complete(&self, task: &Task) {
        let Some(st) = self.st.upgrade() else {
            return;
        };
        let bytes: Shared = notify(&st, task, 1).into();
        for s in st.presence.sessions(task.to) {
            if let Some(h) = st.workers().get(s.conn.worker) {
                h.send(WorkerMsg::Push {
                    conn: s.conn,
                    bytes: Arc::clone(&bytes),
                });
            }
        }
    }
}

impl MsgSide {
    /// Queues `op` on the group-commit writer and waits for its result, which the writer's
    /// outlet sends after the commit (an admin tag: no worker, no group-cache change).
    ///
    /// Blocks: called on the file role's pool threads (file-io, file-sync) only, never on an
    /// event loop. The state is held only while queuing, not while waiting. The wait cannot
    /// outlive the writer: the writer answers every job it took before it exits, and a job it
    /// never answers (its thread died) drops the tag and with it `tx`, which ends the wait.
    /// At a stop the file role stops (and joins these threads) before the writer does
    /// (`server::Running::stop`), and the writer runs until the state is dropped.
    fn commit(&self, op: WriteOp) -> Result<WriteOut, StoreError> {
        let gone = || StoreError::Io(std::io::Error::other("the database writer is gone"));
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job = WriteJob {
            op,
            tag: WriteTag::admin(tx, AdminCache::Nothing, None),
        };
        {
            let st = self.st.upgrade().ok_or_else(gone)?;
            st.writer.send(job).map_err(|_| gone())?;
        }
        rx.recv().map_err(|_| gone())?
    }
}

fn unexpected(out: WriteOut) -> StoreError {
    StoreError::Invalid(format!("unexpected writer result {out:?}"))
}

impl FileRecords for MsgSide {
    fn insert(&self, rec: &files::OfflineFile) -> Result<(), StoreError> {
        match self.commit(WriteOp::AddOfflineFile(rec.clone()))? {
            WriteOut::Done => Ok(()),
            out => Err(unexpected(out)),
        }
    }

    fn delete(&self, task_id: &str, from: u32, to: u32) -> Result<bool, StoreError> {
        let op = WriteOp::DeleteOfflineFile {
            task_id: task_id.to_string(),
            from,
            to,
        };
        match self.commit(op)? {
            WriteOut::Deleted { ok } => Ok(ok),
            out => Err(unexpected(out)),
        }
    }

    fn delete_older(&self, before: u32) -> Result<Vec<(String, u32)>, StoreError> {
        match self.commit(WriteOp::ExpireOfflineFiles { before })? {
            WriteOut::Expired(gone) => Ok(gone),
            out => Err(unexpected(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use super::*;
    use crate::auth::hashers::Hashers;
    use crate::config::Config;
    use crate::file::io::{self, stored_path, IoDone, IoJob, IoSetup};
    use crate::file::{Cid, FileMsg};
    use crate::msg::directory::Directory;
    use crate::msg::group_cache::GroupCache;
    use crate::msg::outlet::WorkerOutlet;
    use crate::msg::state::Pools;
    use crate::net::Workers;
    use crate::stats::Counters;
    use crate::store::readers::Readers;
    use crate::store::testutil::TempDb;
    use crate::store::{open, open_reader, writer, DbSync};

    const WAIT: Duration = Duration::from_secs(10);

    /// The in-process file role's io threads (file-io, file-sync) with `MsgSide` as their
    /// records: every record write (the start-up sweep, an upload's record, a 6/19 delete) is
    /// one job on the state's writer channel, run by the group-commit writer.
    #[test]
    fn in_process_file_records_go_through_the_writer() {
        let t = TempDb::new("msg-file-records");
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        // An expired offline file, for the start-up sweep.
        let old = crate::auth::token_gen::new_token().unwrap();
        let old_rec = files::OfflineFile {
            task_id: old.clone(),
            from_id: 1,
            to_id: 2,
            file_name: b"old".to_vec(),
            file_size: 1,
            created: 1,
        };
        files::insert(&conn, &old_rec).unwrap();
        let old_path = stored_path(&t.dir, 2, &old).unwrap();
        std::fs::create_dir_all(old_path.parent().unwrap()).unwrap();
        std::fs::write(&old_path, b"x").unwrap();

        // The state's writer channel is read here: each job is noted, then run by a writer.
        let groups = Arc::new(GroupCache::new(Vec::new()));
        let (wtx, wrx) = crossbeam_channel::bounded::<WriteJob<WriteTag>>(4);
        let st = Arc::new(State::new(
            Config::default(),
            Directory::new(Vec::new(), Vec::new()),
            Arc::clone(&groups),
            Pools {
                writer: wtx,
                readers: Readers::none(),
                hashers: Hashers::none(),
                room: Default::default(),
            },
            "127.0.0.1:8000".parse().unwrap(),
        ));
        let (real_tx, real_rx) = crossbeam_channel::bounded(4);
        let outlet = WorkerOutlet::new(
            Workers::default(),
            Arc::clone(&st.counters),
            groups,
            Arc::clone(&st.presence),
        );
        let writer = writer::spawn_writer(conn, real_rx, outlet, 16, Default::default()).unwrap();
        let noted = std::thread::spawn(move || {
            let mut ops = Vec::new();
            for job in wrx {
                ops.push(job.op.clone());
                if real_tx.send(job).is_err() {
                    break;
                }
            }
            ops
        });

        let side = MsgSide::new(&st);
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (reply_tx, reply_rx) = crossbeam_channel::unbounded();
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(16);
        let setup = IoSetup {
            db: open_reader(&t.path(), DbSync::Normal).unwrap(),
            records: side.clone(),
            data_dir: t.dir.clone(),
            offline_days: 1,
            sweep_every: Duration::from_secs(3600),
            notice: side.clone(),
            counters: Arc::new(Counters::default()),
            full: Arc::new(AtomicBool::new(false)),
        };
        let io_thread = std::thread::spawn(move || io::run(setup, jobs_rx, reply_tx, waker));

        // An offline upload of three bytes: its record is committed by the writer.
        let task = Arc::new(Task {
            id: crate::auth::token_gen::new_token().unwrap(),
            from: 1,
            to: 2,
            name: b"f.bin".to_vec(),
            size: 3,
            mode: TransMode::Offline,
        });
        let by = Cid {
            slot: 1,
            generation: 1,
        };
        jobs_tx
            .send(IoJob::Begin {
                task: Arc::clone(&task),
                by,
            })
            .unwrap();
        jobs_tx
            .send(IoJob::Append {
                task_id: task.id.clone(),
                by,
                data: b"abc".to_vec(),
            })
            .unwrap();
        jobs_tx
            .send(IoJob::Finish {
                task: Arc::clone(&task),
                by,
            })
            .unwrap();
        loop {
            match reply_rx.recv_timeout(WAIT).unwrap() {
                FileMsg::Io(IoDone::Finished { ok, .. }) => {
                    assert!(ok);
                    break;
                }
                FileMsg::Io(IoDone::Began { ok, .. } | IoDone::Appended { ok, .. }) => {
                    assert!(ok)
                }
                _ => {}
            }
        }
        let check = open(&t.path(), DbSync::Normal).unwrap();
        let rec = files::get(&check, &task.id, 0).unwrap().unwrap();
        assert_eq!((rec.to_id, rec.file_size), (2, 3));
        let path = stored_path(&t.dir, 2, &task.id).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        assert!(
            !old_path.exists(),
            "the start-up sweep deleted the expired file"
        );
        assert_eq!(files::get(&check, &old, 0).unwrap(), None);

        // 6/19 by its receiver: the record goes through the writer, then the file.
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let done = OnDone::new(move || {
            let _ = done_tx.send(());
        });
        jobs_tx
            .send(IoJob::Delete {
                task_id: task.id.clone().into_bytes(),
                from: 1,
                to: 2,
                done,
            })
            .unwrap();
        done_rx.recv_timeout(WAIT).unwrap();
        assert_eq!(files::get(&check, &task.id, 0).unwrap(), None);
        assert!(!path.exists());
        jobs_tx.send(IoJob::Stop).unwrap();
        io_thread.join().unwrap();

        // The state gone: the writer drains and ends; a later write fails at once.
        drop(st);
        let ops = noted.join().unwrap();
        writer.join().unwrap();
        assert!(FileRecords::insert(&*side, &old_rec).is_err());
        assert_eq!(ops.len(), 3, "{ops:?}");
        assert!(
            matches!(ops[0], WriteOp::ExpireOfflineFiles { .. }),
            "{ops:?}"
        );
        match &ops[1] {
            WriteOp::AddOfflineFile(f) => assert_eq!(f, &rec),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ops[2],
            WriteOp::DeleteOfflineFile {
                task_id: task.id.clone(),
                from: 1,
                to: 2
            }
        );
    }
}

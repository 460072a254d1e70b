//! Module 6 on the msg port (B-FILE-1 .. B-FILE-3, B-FILE-12 .. B-FILE-14): file requests,
//! the offline-file list, and the sender's and receiver's reports. The transfers themselves
//! happen on the file port ([`crate::file`]).

use std::sync::{Arc, Weak};
use std::time::Instant;

use super::outlet::submit_read;
use super::presence::Class;
use super::service::WorkerMsg;
use super::{Ctx, Effect, MsgConn, Step};
use crate::clock::unix_now;
use crate::file::hub::{CreateError, OnDone, ReadyNotice, Task, TokenCheck, TransMode};
use crate::msg::state::State;
use crate::net::Shared;
use crate::proto::file::{
    AddOfflineFile, Addr, DeleteOfflineFile, FileNotify, FileRequest, FileResponse, OfflineFile,
    OfflineFileListResponse,
};
use crate::proto::{Id, Pdu};
use crate::stats::bump;
use crate::store::files;

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

/// The msg role as the file role sees it: token checks and "upload complete" notices.
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

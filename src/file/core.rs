//! The file role's logic (behaviour.md B-FILE-4 .. B-FILE-11, B-FILE-15): a function of its
//! state and one event (a PDU, an io result, a closed connection, the clock) returning
//! [`Act`]s for the worker. No sockets and no disk here, so every rule is unit-tested.
//!
//! Each task has one `Live` entry from its announcement (6/10 on the msg port) until it ends:
//! cancelled, refused or done (6/3), uploaded (B-FILE-9), or idle for `TaskTimeout`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::Mmap;

use super::hub::{Task, TokenCheck, TransMode};
use super::io::{IoDone, IoJob};
use super::Cid;
use crate::proto::file::{
    FileLogin, FileLoginResponse, FileState, PullDataRequest, PullDataResponse,
};
use crate::proto::frame::Header;
use crate::proto::{Id, Pdu};
use crate::stats::{bump, Counters};
use crate::store::files::OfflineFile;

/// B-FILE-8: offline uploads are pulled in segments of this size unless `FileSegmentSize` says
/// otherwise.
pub const UPLOAD_SEGMENT: u32 = 65_536;
/// B-FILE-11: the most one download pull returns.
pub const MAX_PULL: u32 = 262_144;
/// How long a 6/1 may wait for its task's announcement over a link (file role alone).
const LINK_GRACE: Duration = Duration::from_secs(2);
/// B-FILE-8: the third bad answer in a row abandons an upload.
const MAX_BAD_ANSWERS: u8 = 3;

/// 6/3 `state`.
const PEER_READY: u32 = 0;
const DONE: u32 = 3;
/// 6/5 results (protocol.md section 8.3).
const INVALID_TASK: u32 = 5;
const ILLEGAL_USER: u32 = 6;
const BEYOND_END: u32 = 11;

/// What the worker does, in order.
#[derive(Debug)]
pub enum Act {
    /// Queue bytes on a connection.
    Send(Cid, Vec<u8>),
    /// Queue a 6/5 head, then its data straight from the file's map (no copy, B-FILE-11).
    SendMapped(Cid, Vec<u8>, Arc<Mmap>, std::ops::Range<usize>),
    /// Stop reading; close once the output is flushed.
    CloseAfterFlush(Cid),
    /// Hand a job to the io thread.
    Io(IoJob),
    /// The connection may have input waiting that it can now process.
    Resume(Cid),
}

/// What a file connection is doing.
enum Phase {
    /// No 6/1 yet.
    Fresh,
    /// 6/1 mode 4 is being checked by the io thread; input waits.
    Opening { reserved: u16, task_id: Vec<u8> },
    /// A party of an online task (mode 1 or 2).
    Online { task: String },
    /// The uploader of an offline task (mode 3).
    Upload { task: String },
    /// An offline download (mode 4), served from the map.
    Download { rec: OfflineFile, map: Arc<Mmap> },
    /// Refused or finished: input is ignored until the close.
    Ended,
    /// A 6/1 naming a task not announced yet (file role alone, B-FILE-4); input waits.
    Parked {
        reserved: u16,
        user: u32,
        task_id: Vec<u8>,
        client_mode: u32,
        until: Instant,
    },
}

/// An offline upload in progress (B-FILE-8).
struct Upload {
    /// The uploader's connection: io results of an earlier attempt are told apart by it.
    by: Cid,
    offset: u32,
    want: u32,
    bad: u8,
    /// An io job (begin, append, finish) is in flight: the uploader's input waits.
    busy: bool,
}

/// A task the file role knows, from its announcement until it ends.
struct Live {
    task: Arc<Task>,
    sender: Option<Cid>,
    receiver: Option<Cid>,
    /// Last login or data of this task (B-FILE-15).
    last: Instant,
    upload: Option<Upload>,
}

/// The file role's limits (conf values).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `TaskTimeout` (B-FILE-15).
    pub task_timeout: Duration,
    /// `FileSegmentSize` (B-FILE-8).
    pub segment: u32,
    /// `MaxFileTasks`: live tasks at most; more announcements are dropped.
    pub max_tasks: usize,
}

pub struct Core {
    tokens: Arc<dyn TokenCheck>,
    counters: Arc<Counters>,
    task_timeout: Duration,
    /// Bytes asked for per 6/4 of an offline upload (`FileSegmentSize`).
    segment: u32,
    max_tasks: usize,
    /// Live tasks as the msg role's hub counts them: it reserves a place per announced task
    /// (refusing 6/10 at the cap), the core gives it back when the task goes.
    live: Arc<AtomicUsize>,
    /// Tasks arrive over a link from another process (see [`Phase::Parked`]).
    linked: bool,
    conns: HashMap<Cid, Phase>,
    /// The connections in [`Phase::Parked`] (few, and only with a link): looked through on
    /// announcements and by the clock instead of every connection.
    parked: Vec<Cid>,
    tasks: HashMap<String, Live>,
    expiry: BinaryHeap<Reverse<(Instant, String)>>,
}

fn frame(pdu: Pdu<'_>, reserved: u16) -> Vec<u8> {
    pdu.to_frame(reserved)
}

/// The 6/5 error form (protocol.md P-20 row 20): empty task and user, offset 0, no data.
fn pull_error(result: u32, reserved: u16) -> Vec<u8> {
    frame(
        Pdu::PullDataResponse(PullDataResponse {
            result,
            task_id: b"",
            user_id: Id::Raw(b""),
            offset: 0,
            data: b"",
        }),
        reserved,
    )
}

/// A download's 6/5 without its data: the frame of an empty-data answer, with `length` and the
/// data's length field raised by `n`. The `n` bytes follow from the map.
fn pull_response_head(rec: &OfflineFile, offset: u32, n: u32, reserved: u16) -> Vec<u8> {
    let mut head = frame(
        Pdu::PullDataResponse(PullDataResponse {
            result: 0,
            task_id: rec.task_id.as_bytes(),
            user_id: Id::Num(rec.from_id),
            offset,
            data: b"",
        }),
        reserved,
    );
    // `data` is the last field: its u32 length is the last 4 bytes.
    let total = u32::try_from(head.len())
        .unwrap_or(u32::MAX)
        .saturating_add(n);
    if let Some(len) = head.get_mut(..4) {
        len.copy_from_slice(&total.to_be_bytes());
    }
    let at = head.len().saturating_sub(4);
    if let Some(data_len) = head.get_mut(at..) {
        data_len.copy_from_slice(&n.to_be_bytes());
    }
    head
}

fn state_pdu(state: u32, task: &str, user: u32) -> Vec<u8> {
    frame(
        Pdu::FileState(FileState {
            state,
            task_id: task.as_bytes(),
            user_id: Id::Num(user),
        }),
        0,
    )
}

fn pull_request(task: &Task, offset: u32, size: u32) -> Vec<u8> {
    frame(
        Pdu::PullDataRequest(PullDataRequest {
            task_id: task.id.as_bytes(),
            user_id: Id::Num(task.from),
            mode: TransMode::Offline as u32,
            offset,
            size,
        }),
        0,
    )
}

impl Core {
    pub fn new(
        tokens: Arc<dyn TokenCheck>,
        counters: Arc<Counters>,
        limits: Limits,
        live: Arc<AtomicUsize>,
        linked: bool,
    ) -> Self {
        Core {
            tokens,
            counters,
            task_timeout: limits.task_timeout,
            segment: limits.segment.max(1),
            max_tasks: limits.max_tasks,
            live,
            linked,
            conns: HashMap::new(),
            parked: Vec::new(),
            tasks: HashMap::new(),
            expiry: BinaryHeap::new(),
        }
    }

    /// A task announced by the msg role (B-FILE-3). Returns the answers to 6/1s that waited
    /// for it.
    pub fn task_created(&mut self, task: Task, now: Instant) -> Vec<Act> {
        let id = task.id.clone();
        self.add_task(task, now);
        if !self.linked {
            return Vec::new();
        }
        let waiting = self.parked_where(|task_id, _| task_id == id.as_bytes());
        let mut acts = Vec::new();
        for cid in waiting {
            acts.extend(self.unpark(cid, now));
        }
        acts
    }

    /// The parked connections whose (task id, deadline) satisfy `f`.
    fn parked_where(&self, f: impl Fn(&[u8], Instant) -> bool) -> Vec<Cid> {
        self.parked
            .iter()
            .copied()
            .filter(|c| match self.conns.get(c) {
                Some(Phase::Parked { task_id, until, .. }) => f(task_id, *until),
                _ => false,
            })
            .collect()
    }

    /// Runs a parked 6/1 again (its task arrived, or its wait is over).
    fn unpark(&mut self, cid: Cid, now: Instant) -> Vec<Act> {
        self.parked.retain(|&c| c != cid);
        let Some(Phase::Parked {
            reserved,
            user,
            task_id,
            client_mode,
            ..
        }) = self.conns.insert(cid, Phase::Fresh)
        else {
            return Vec::new();
        };
        let linked = std::mem::replace(&mut self.linked, false);
        let mut acts = self.join(cid, reserved, user, &task_id, client_mode, now);
        self.linked = linked;
        acts.push(Act::Resume(cid));
        acts
    }

    fn add_task(&mut self, task: Task, now: Instant) {
        if self.tasks.len() >= self.max_tasks {
            // The in-process hub reserves a place before it announces (6/10 result 2 at the
            // cap); over a link the msg server cannot see the count, so the task is dropped
            // here and its 6/1 refused.
            bump(&self.counters.file_rejected);
            log::warn!(target: "file", "task {} dropped: MaxFileTasks reached", task.id);
            self.release_place();
            return;
        }
        self.expiry
            .push(Reverse((now + self.task_timeout, task.id.clone())));
        self.tasks.insert(
            task.id.clone(),
            Live {
                task: Arc::new(task),
                sender: None,
                receiver: None,
                last: now,
                upload: None,
            },
        );
    }

    /// Removes a task (ended, stored, expired) and gives its place back to the hub.
    fn remove_task(&mut self, task_id: &str) -> Option<Live> {
        let live = self.tasks.remove(task_id);
        if live.is_some() {
            self.release_place();
        }
        live
    }

    /// One task fewer in the shared count (never below 0: over a link nobody reserves).
    fn release_place(&self) {
        let _ = self
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
    }

    pub fn accepted(&mut self, cid: Cid) {
        self.conns.insert(cid, Phase::Fresh);
    }

    /// Whether the connection completed a 6/1 (heartbeats go to these only, B-HB-3).
    pub fn logged_in(&self, cid: Cid) -> bool {
        matches!(
            self.conns.get(&cid),
            Some(Phase::Online { .. } | Phase::Upload { .. } | Phase::Download { .. })
        )
    }

    /// Whether input of this connection must wait (an io job of its own is in flight).
    pub fn waiting(&self, cid: Cid) -> bool {
        match self.conns.get(&cid) {
            Some(Phase::Opening { .. } | Phase::Parked { .. }) => true,
            Some(Phase::Upload { task }) => self
                .tasks
                .get(task)
                .and_then(|l| l.upload.as_ref())
                .is_some_and(|u| u.busy),
            _ => false,
        }
    }

    /// The other party of an online task, if connected (relay back-pressure).
    pub fn peer_of(&self, cid: Cid) -> Option<Cid> {
        let Some(Phase::Online { task }) = self.conns.get(&cid) else {
            return None;
        };
        let live = self.tasks.get(task)?;
        if live.sender == Some(cid) {
            live.receiver
        } else {
            live.sender
        }
    }

    /// Number of tasks alive (tests, stats).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// One decoded PDU of a file connection. `raw` is the whole frame (relayed unchanged, P-17).
    pub fn on_pdu(
        &mut self,
        cid: Cid,
        h: &Header,
        raw: &[u8],
        pdu: Pdu<'_>,
        now: Instant,
    ) -> Vec<Act> {
        match pdu {
            Pdu::Heartbeat => vec![Act::Send(cid, frame(Pdu::Heartbeat, h.reserved))],
            Pdu::FileLogin(l) => self.login(cid, h.reserved, &l, now),
            Pdu::FileState(s) => self.state(cid, raw, &s),
            Pdu::PullDataRequest(r) => self.pull(cid, h.reserved, raw, &r, now),
            Pdu::PullDataResponse(r) => self.pull_answer(cid, raw, &r, now),
            _ => {
                bump(&self.counters.unknown_pdus);
                Vec::new()
            }
        }
    }

    fn refuse(&mut self, cid: Cid, reserved: u16, task_id: &[u8]) -> Vec<Act> {
        bump(&self.counters.file_login_refused);
        self.conns.insert(cid, Phase::Ended);
        let rsp = frame(
            Pdu::FileLoginResponse(FileLoginResponse { result: 1, task_id }),
            reserved,
        );
        vec![Act::Send(cid, rsp), Act::CloseAfterFlush(cid)]
    }

    /// B-FILE-4: 6/1.
    fn login(&mut self, cid: Cid, reserved: u16, l: &FileLogin<'_>, now: Instant) -> Vec<Act> {
        if !matches!(self.conns.get(&cid), Some(Phase::Fresh)) {
            return Vec::new(); // a second 6/1 is ignored
        }
        let user = l.user_id.value();
        let Some(user) = user.filter(|&u| self.tokens.valid_for(l.token, u)) else {
            return self.refuse(cid, reserved, l.task_id);
        };
        if l.client_mode == 4 {
            self.conns.insert(
                cid,
                Phase::Opening {
                    reserved,
                    task_id: l.task_id.to_vec(),
                },
            );
            return vec![Act::Io(IoJob::OpenDownload {
                cid,
                task_id: l.task_id.to_vec(),
                user,
            })];
        }
        self.join(cid, reserved, user, l.task_id, l.client_mode, now)
    }

    /// B-FILE-4 for modes 1-3, once the token is known to be valid for `user`.
    fn join(
        &mut self,
        cid: Cid,
        reserved: u16,
        user: u32,
        task_id: &[u8],
        client_mode: u32,
        now: Instant,
    ) -> Vec<Act> {
        let known = std::str::from_utf8(task_id)
            .ok()
            .is_some_and(|t| self.tasks.contains_key(t));
        if !known && self.linked && client_mode <= 3 {
            // Linked to a msg server in another process: the announcement may still be on
            // its way. Wait for it a little (LINK_GRACE), then refuse.
            self.conns.insert(
                cid,
                Phase::Parked {
                    reserved,
                    user,
                    task_id: task_id.to_vec(),
                    client_mode,
                    until: now + LINK_GRACE,
                },
            );
            self.parked.push(cid);
            return Vec::new();
        }
        let live = std::str::from_utf8(task_id)
            .ok()
            .and_then(|t| self.tasks.get_mut(t));
        let Some(live) = live else {
            return self.refuse(cid, reserved, task_id);
        };
        let t = &live.task;
        let fits = match client_mode {
            1 => t.mode == TransMode::Online && user == t.from && live.sender.is_none(),
            2 => t.mode == TransMode::Online && user == t.to && live.receiver.is_none(),
            3 => t.mode == TransMode::Offline && user == t.from && live.sender.is_none(),
            _ => false,
        };
        if !fits {
            return self.refuse(cid, reserved, task_id);
        }
        live.last = now;
        let task = Arc::clone(&live.task);
        let ok = frame(
            Pdu::FileLoginResponse(FileLoginResponse {
                result: 0,
                task_id: task.id.as_bytes(),
            }),
            reserved,
        );
        let mut acts = vec![Act::Send(cid, ok)];
        match client_mode {
            1 | 2 => {
                let other = if client_mode == 1 {
                    live.sender = Some(cid);
                    live.receiver
                } else {
                    live.receiver = Some(cid);
                    live.sender
                };
                // B-FILE-5: the second party to arrive is told its peer is ready.
                if other.is_some() {
                    acts.push(Act::Send(cid, state_pdu(PEER_READY, &task.id, user)));
                }
                self.conns.insert(
                    cid,
                    Phase::Online {
                        task: task.id.clone(),
                    },
                );
            }
            _ => {
                live.sender = Some(cid);
                live.upload = Some(Upload {
                    by: cid,
                    offset: 0,
                    want: task.size.min(self.segment),
                    bad: 0,
                    busy: true,
                });
                self.conns.insert(
                    cid,
                    Phase::Upload {
                        task: task.id.clone(),
                    },
                );
                acts.push(Act::Io(IoJob::Begin {
                    task: Arc::clone(&task),
                    by: cid,
                }));
            }
        }
        acts
    }

    /// B-FILE-7: 6/3 from a party.
    fn state(&mut self, cid: Cid, raw: &[u8], s: &FileState<'_>) -> Vec<Act> {
        let task_id = match self.conns.get(&cid) {
            Some(Phase::Online { task } | Phase::Upload { task }) => task.clone(),
            Some(Phase::Download { .. }) if s.state != PEER_READY => {
                // The downloader is finished or gives up.
                self.conns.insert(cid, Phase::Ended);
                return vec![Act::CloseAfterFlush(cid)];
            }
            _ => return Vec::new(),
        };
        if s.state == PEER_READY || s.task_id != task_id.as_bytes() {
            return Vec::new();
        }
        let mut acts = Vec::new();
        if let Some(live) = self.tasks.get(&task_id) {
            let other = if live.sender == Some(cid) {
                live.receiver
            } else {
                live.sender
            };
            if let Some(o) = other {
                acts.push(Act::Send(o, raw.to_vec()));
            }
        }
        acts.extend(self.end_task(&task_id));
        acts
    }

    /// Ends a task: both parties' connections close once flushed, an upload is abandoned.
    fn end_task(&mut self, task_id: &str) -> Vec<Act> {
        let Some(live) = self.remove_task(task_id) else {
            return Vec::new();
        };
        let mut acts = Vec::new();
        if let Some(up) = &live.upload {
            acts.push(Act::Io(IoJob::Abandon {
                task_id: task_id.to_string(),
                by: up.by,
            }));
        }
        for c in [live.sender, live.receiver].into_iter().flatten() {
            self.conns.insert(c, Phase::Ended);
            acts.push(Act::CloseAfterFlush(c));
        }
        acts
    }

    /// 6/4 from a client: online relay (B-FILE-6) or offline download (B-FILE-11).
    fn pull(
        &mut self,
        cid: Cid,
        reserved: u16,
        raw: &[u8],
        r: &PullDataRequest<'_>,
        now: Instant,
    ) -> Vec<Act> {
        match self.conns.get(&cid) {
            Some(Phase::Online { task }) => {
                let Some(live) = self.tasks.get_mut(task) else {
                    return vec![Act::Send(cid, pull_error(INVALID_TASK, reserved))];
                };
                let from_receiver = live.receiver == Some(cid);
                if !from_receiver || r.user_id.value() != Some(live.task.to) || r.mode != 1 {
                    return vec![Act::Send(cid, pull_error(ILLEGAL_USER, reserved))];
                }
                if r.task_id != live.task.id.as_bytes() {
                    return vec![Act::Send(cid, pull_error(INVALID_TASK, reserved))];
                }
                match live.sender {
                    Some(s) => {
                        live.last = now;
                        vec![Act::Send(s, raw.to_vec())]
                    }
                    None => vec![Act::Send(cid, pull_error(INVALID_TASK, reserved))],
                }
            }
            Some(Phase::Download { rec, map }) => {
                if r.user_id.value() != Some(rec.to_id) {
                    return vec![Act::Send(cid, pull_error(ILLEGAL_USER, reserved))];
                }
                if r.task_id != rec.task_id.as_bytes() || r.mode != TransMode::Offline as u32 {
                    return vec![Act::Send(cid, pull_error(INVALID_TASK, reserved))];
                }
                let size = rec.file_size;
                if r.offset > size {
                    return vec![Act::Send(cid, pull_error(BEYOND_END, reserved))];
                }
                let n = r.size.min(size - r.offset).min(MAX_PULL);
                let start = r.offset as usize;
                let head = pull_response_head(rec, r.offset, n, reserved);
                let range = start..start + n as usize;
                let mut acts = vec![Act::SendMapped(cid, head, Arc::clone(map), range)];
                if r.offset == size {
                    // End of file: empty data, then done, then close (protocol.md row 20).
                    acts.push(Act::Send(cid, state_pdu(DONE, &rec.task_id, rec.to_id)));
                    acts.push(Act::CloseAfterFlush(cid));
                    self.conns.insert(cid, Phase::Ended);
                }
                acts
            }
            Some(Phase::Upload { .. }) => vec![Act::Send(cid, pull_error(ILLEGAL_USER, reserved))],
            _ => Vec::new(),
        }
    }

    /// 6/5 from a client: online relay (B-FILE-6) or an upload segment (B-FILE-8).
    fn pull_answer(
        &mut self,
        cid: Cid,
        raw: &[u8],
        r: &PullDataResponse<'_>,
        now: Instant,
    ) -> Vec<Act> {
        match self.conns.get(&cid) {
            Some(Phase::Online { task }) => {
                let Some(live) = self.tasks.get_mut(task) else {
                    return Vec::new();
                };
                match (live.sender == Some(cid), live.receiver) {
                    (true, Some(rcv)) if r.task_id == live.task.id.as_bytes() => {
                        live.last = now;
                        vec![Act::Send(rcv, raw.to_vec())]
                    }
                    _ => {
                        bump(&self.counters.file_rejected);
                        Vec::new()
                    }
                }
            }
            Some(Phase::Upload { task }) => {
                let task = task.clone();
                self.segment(cid, &task, r, now)
            }
            _ => Vec::new(),
        }
    }

    fn segment(
        &mut self,
        cid: Cid,
        task_id: &str,
        r: &PullDataResponse<'_>,
        now: Instant,
    ) -> Vec<Act> {
        let Some(live) = self.tasks.get_mut(task_id) else {
            return Vec::new();
        };
        let task = Arc::clone(&live.task);
        let Some(up) = live.upload.as_mut().filter(|u| u.by == cid) else {
            return Vec::new();
        };
        let good = r.result == 0
            && r.task_id == task.id.as_bytes()
            && r.offset == up.offset
            && r.data.len() == up.want as usize;
        if good {
            live.last = now;
            up.bad = 0;
            up.busy = true;
            return vec![Act::Io(IoJob::Append {
                task_id: task.id.clone(),
                by: cid,
                data: r.data.to_vec(),
            })];
        }
        up.bad += 1;
        if up.bad >= MAX_BAD_ANSWERS {
            log::info!(target: "file", "task {}: third bad segment, upload abandoned", task.id);
            return self.abandon_upload(task_id, cid);
        }
        vec![Act::Send(cid, pull_request(&task, up.offset, up.want))]
    }

    /// B-FILE-10: the upload stops, its temporary file goes; the task stays until it expires.
    fn abandon_upload(&mut self, task_id: &str, cid: Cid) -> Vec<Act> {
        if let Some(live) = self.tasks.get_mut(task_id) {
            if live.sender == Some(cid) {
                live.sender = None;
            }
            live.upload = None;
        }
        self.conns.insert(cid, Phase::Ended);
        vec![
            Act::Io(IoJob::Abandon {
                task_id: task_id.to_string(),
                by: cid,
            }),
            Act::CloseAfterFlush(cid),
        ]
    }

    /// An io result.
    pub fn io_done(&mut self, done: IoDone, now: Instant) -> Vec<Act> {
        match done {
            IoDone::Began { task_id, by, ok } => self.upload_step(&task_id, by, ok, false, now),
            IoDone::Appended { task_id, by, ok } => self.upload_step(&task_id, by, ok, true, now),
            IoDone::Finished { task_id, by, ok } => {
                let current = self
                    .tasks
                    .get(&task_id)
                    .and_then(|l| l.upload.as_ref())
                    .is_some_and(|u| u.by == by);
                if !ok {
                    return if current {
                        self.abandon_upload(&task_id, by)
                    } else {
                        Vec::new()
                    };
                }
                // Stored: the task is over, even if its uploader left while the file was being
                // placed (then nobody hears "done", and a restarted attempt is stopped: the
                // file and its record exist).
                let Some(live) = self.remove_task(&task_id) else {
                    return Vec::new();
                };
                if current {
                    self.conns.insert(by, Phase::Ended);
                    return vec![
                        Act::Send(by, state_pdu(DONE, &task_id, live.task.from)),
                        Act::CloseAfterFlush(by),
                    ];
                }
                let mut acts = Vec::new();
                if let Some(up) = &live.upload {
                    acts.push(Act::Io(IoJob::Abandon {
                        task_id: task_id.clone(),
                        by: up.by,
                    }));
                }
                for c in [live.sender, live.receiver].into_iter().flatten() {
                    self.conns.insert(c, Phase::Ended);
                    acts.push(Act::CloseAfterFlush(c));
                }
                acts
            }
            IoDone::Opened { cid, file } => {
                let Some(Phase::Opening { reserved, task_id }) = self.conns.remove(&cid) else {
                    return Vec::new(); // closed meanwhile
                };
                match file {
                    Some((rec, map)) => {
                        let ok = frame(
                            Pdu::FileLoginResponse(FileLoginResponse {
                                result: 0,
                                task_id: rec.task_id.as_bytes(),
                            }),
                            reserved,
                        );
                        self.conns.insert(cid, Phase::Download { rec, map });
                        vec![Act::Send(cid, ok), Act::Resume(cid)]
                    }
                    None => self.refuse(cid, reserved, &task_id),
                }
            }
        }
    }

    /// The temporary file was created (`appended` false) or a segment appended: ask for the
    /// next segment, or finish after the last one (B-FILE-8, B-FILE-9).
    fn upload_step(
        &mut self,
        task_id: &str,
        by: Cid,
        ok: bool,
        appended: bool,
        now: Instant,
    ) -> Vec<Act> {
        let Some(live) = self.tasks.get_mut(task_id) else {
            return Vec::new();
        };
        let task = Arc::clone(&live.task);
        let Some(up) = live.upload.as_mut().filter(|u| u.by == by && u.busy) else {
            return Vec::new(); // an earlier attempt's result
        };
        if !ok {
            return self.abandon_upload(task_id, by);
        }
        live.last = now;
        if appended {
            up.offset = up.offset.saturating_add(up.want);
        }
        if up.offset >= task.size {
            return vec![Act::Io(IoJob::Finish { task, by })];
        }
        up.want = (task.size - up.offset).min(self.segment);
        up.busy = false;
        vec![
            Act::Send(by, pull_request(&task, up.offset, up.want)),
            Act::Resume(by),
        ]
    }

    /// A connection is gone.
    pub fn closed(&mut self, cid: Cid, now: Instant) -> Vec<Act> {
        let Some(phase) = self.conns.remove(&cid) else {
            return Vec::new();
        };
        if matches!(phase, Phase::Parked { .. }) {
            self.parked.retain(|&c| c != cid);
        }
        let task_id = match phase {
            Phase::Online { task } | Phase::Upload { task } => task,
            _ => return Vec::new(),
        };
        let Some(live) = self.tasks.get_mut(&task_id) else {
            return Vec::new();
        };
        live.last = now;
        if live.receiver == Some(cid) {
            live.receiver = None;
        }
        if live.sender == Some(cid) {
            live.sender = None;
            if live.upload.take().is_some() {
                return vec![Act::Io(IoJob::Abandon { task_id, by: cid })];
            }
        }
        Vec::new()
    }

    /// The next time [`Core::expire`] has work.
    pub fn next_expiry(&self) -> Option<Instant> {
        let parked = self.parked.iter().filter_map(|c| match self.conns.get(c) {
            Some(Phase::Parked { until, .. }) => Some(*until),
            _ => None,
        });
        self.expiry
            .peek()
            .map(|Reverse((at, _))| *at)
            .into_iter()
            .chain(parked)
            .min()
    }

    /// B-FILE-15: tasks without traffic for `TaskTimeout` end, their connections close.
    pub fn expire(&mut self, now: Instant) -> Vec<Act> {
        let mut acts = Vec::new();
        for cid in self.parked_where(|_, until| until <= now) {
            acts.extend(self.unpark(cid, now));
        }
        while let Some(Reverse((at, _))) = self.expiry.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, id))) = self.expiry.pop() else {
                break;
            };
            let Some(live) = self.tasks.get(&id) else {
                continue; // ended earlier
            };
            let due = live.last + self.task_timeout;
            if due > now {
                self.expiry.push(Reverse((due, id)));
                continue;
            }
            log::info!(target: "file", "task {id} expired");
            acts.extend(self.end_task(&id));
        }
        acts
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

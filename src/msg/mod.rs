//! The msg role: client sessions on `MsgListen` (modules 1-5 and 7 of protocol.md).
//!
//! Handlers are functions of (shared state, this connection's state, PDU) that return a [`Step`]:
//! effects to apply now, a storage job that was submitted, or a reason to hold the PDU back. The
//! worker applies effects (queue bytes, deliver to a user's sessions, close); handlers never touch
//! a socket, so they are tested without one.
//!
//! Ordering (B-GEN-1): every request that produces output takes a slot in the connection's
//! `pending` queue; a storage job fills its slot when it completes, and the worker applies slots
//! strictly from the front. A read that must see this connection's earlier writes waits until
//! they committed.

pub mod buddy;
pub mod chat;
pub mod directory;
pub mod file;
pub mod group;
pub mod group_cache;
pub mod login;
pub mod other;
pub mod outlet;
pub mod presence;
pub mod service;
pub mod state;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::auth::hashers::HashJob;
use crate::msg::state::State;
use crate::net::{ConnId, Shared};
use crate::proto::codec::{Wire, Writer};
use crate::proto::frame::Header;
use crate::proto::Pdu;
use crate::stats::bump;
use crate::store::readers::ReadJob;
use crate::store::writer::WriteJob;
use crate::store::Family;
use outlet::WriteTag;
use presence::{Change, Class};

/// Something the worker does on behalf of a connection, in order.
pub enum Effect {
    /// Queue bytes on the originating connection.
    Reply(Vec<u8>),
    /// Queue shared bytes on the originating connection.
    ReplyShared(Shared),
    /// Queue bytes on every session of `user` except `skip`.
    Deliver {
        user: u32,
        bytes: Shared,
        skip: Option<ConnId>,
    },
    /// Queue one shared buffer on every session of every user in `members` except `skip`
    /// (group fan-out, B-GRP-8, B-FLOW-4). `members` holds each user once.
    DeliverMembers {
        members: Arc<[u32]>,
        bytes: Shared,
        skip: Option<ConnId>,
    },
    /// Queue bytes on one connection (any worker).
    Push { conn: ConnId, bytes: Shared },
    /// Kick a replaced session: send it 1/7 and close it (B-KICK-2).
    Kick { conn: ConnId, bytes: Shared },
    /// Close the originating connection once its output is flushed.
    CloseAfterFlush,
    /// A user's aggregated status changed: tell the watchers (B-PRES-3).
    StatusChanged(Change),
    /// Finish a login whose password check completed (applied in order, on the worker).
    FinishLogin(Box<login::Verdict>),
}

/// What a storage job hands back to the worker.
pub type Completion = Vec<Effect>;

/// A request waiting for its turn to be answered.
struct Pending {
    seq: u64,
    write: bool,
    done: Option<Vec<Effect>>,
}

/// The logged-in part of a session.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: u32,
    pub class: Class,
    pub family: Family,
    pub client_type: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, no 1/3 yet.
    Fresh,
    /// A 1/3 is being verified; further input waits.
    Verifying,
    LoggedIn,
    /// Sent 1/7 or failed: nothing more is processed.
    Ended,
}

pub struct MsgConn {
    pub phase: Phase,
    pub session: Option<Session>,
    pending: VecDeque<Pending>,
    next_seq: u64,
    writes_in_flight: usize,
}

impl Default for MsgConn {
    fn default() -> Self {
        MsgConn {
            phase: Phase::Fresh,
            session: None,
            pending: VecDeque::new(),
            next_seq: 1,
            writes_in_flight: 0,
        }
    }
}

impl MsgConn {
    /// Takes a pending slot for a job about to be submitted; returns its sequence number.
    pub fn begin_job(&mut self, write: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back(Pending {
            seq,
            write,
            done: None,
        });
        if write {
            self.writes_in_flight += 1;
        }
        seq
    }

    /// Gives back a slot whose job could not be submitted (queue full).
    pub fn abort_job(&mut self, seq: u64) {
        if let Some(pos) = self.pending.iter().position(|p| p.seq == seq) {
            if let Some(p) = self.pending.remove(pos) {
                if p.write {
                    self.writes_in_flight = self.writes_in_flight.saturating_sub(1);
                }
            }
        }
        if self.next_seq == seq + 1 {
            self.next_seq = seq;
        }
    }

    /// Immediate effects: applied now if nothing is pending, else queued behind the pending slots.
    pub fn immediate(&mut self, effects: Vec<Effect>) -> Option<Vec<Effect>> {
        if self.pending.is_empty() {
            return Some(effects);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back(Pending {
            seq,
            write: false,
            done: Some(effects),
        });
        None
    }

    /// Fills the slot of a completed job. False if no such slot (a stale reply).
    pub fn complete(&mut self, seq: u64, effects: Vec<Effect>) -> bool {
        let Some(front) = self.pending.front() else {
            return false;
        };
        let Some(idx) = seq
            .checked_sub(front.seq)
            .and_then(|d| usize::try_from(d).ok())
        else {
            return false;
        };
        match self.pending.get_mut(idx) {
            Some(p) if p.seq == seq && p.done.is_none() => {
                if p.write {
                    self.writes_in_flight = self.writes_in_flight.saturating_sub(1);
                }
                p.done = Some(effects);
                true
            }
            _ => false,
        }
    }

    /// Takes the effects that are ready at the front, in order.
    pub fn take_ready(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        while let Some(p) = self.pending.front_mut() {
            match p.done.take() {
                Some(e) => {
                    out.extend(e);
                    self.pending.pop_front();
                }
                None => break,
            }
        }
        out
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn writes_in_flight(&self) -> usize {
        self.writes_in_flight
    }

    pub fn user_id(&self) -> Option<u32> {
        self.session.as_ref().map(|s| s.user_id)
    }
}

/// The outcome of handling one PDU.
pub enum Step {
    /// Consumed; apply these effects now (already ordered behind pending slots if needed).
    Now(Vec<Effect>),
    /// Consumed; queued behind pending slots, or a job was submitted.
    Queued,
    /// Not consumed: retry once this connection's pending jobs have moved.
    Wait,
    /// Not consumed: rate-limited until then (B-MSG-6).
    Pause(Instant),
}

/// Why the writer's queue did not take a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Full: try again when it has room.
    Full,
    /// The writer is gone (the process is stopping).
    Closed,
}

/// Where handlers hand work that must not run on the loop: storage writes and reads, password
/// checks. [`State`] is the real one (its pools); handler tests record the jobs instead, so a
/// handler runs without a thread or a database.
pub trait Jobs: Send + Sync {
    /// To the group-commit writer's queue (a refused job is dropped).
    fn write(&self, job: WriteJob<WriteTag>) -> Result<(), Refused>;
    /// To the reader pool; `Err(job)` when its queues are full.
    fn read(&self, job: ReadJob) -> Result<(), ReadJob>;
    /// To the hashing pool; `Err(job)` when its queue is full.
    fn hash(&self, job: HashJob) -> Result<(), HashJob>;
    /// To the reader thread `key % n`, so jobs of one key run in order (presence notices of
    /// one user); `Err(job)` when that queue is full.
    fn read_keyed(&self, key: u32, job: ReadJob) -> Result<(), ReadJob>;
    /// Whether a storage job would not fit now (the writer's queue, or every reader queue).
    fn storage_full(&self) -> bool;
}

/// What a handler may look at besides the PDU.
pub struct Ctx<'a> {
    pub st: &'a Arc<State>,
    pub jobs: &'a dyn Jobs,
    pub conn: ConnId,
    pub peer: SocketAddr,
    pub reserved: u16,
    pub now: Instant,
}

impl Ctx<'_> {
    /// Answer now or behind pending slots (B-GEN-1).
    pub fn respond(&self, mc: &mut MsgConn, effects: Vec<Effect>) -> Step {
        match mc.immediate(effects) {
            Some(e) => Step::Now(e),
            None => Step::Queued,
        }
    }
}

/// A read that must reflect this connection's earlier writes waits for them (B-GEN-1).
fn must_wait_for_writes(mc: &MsgConn) -> bool {
    mc.writes_in_flight() > 0
}

/// Dispatches one decoded PDU of a msg-port connection. `rate` is consulted for 3/1 and 4/1.
pub fn on_pdu(
    cx: &Ctx<'_>,
    mc: &mut MsgConn,
    hdr: &Header,
    pdu: Pdu<'_>,
    rate: &mut dyn FnMut() -> Result<(), Instant>,
) -> Step {
    let st = cx.st;
    match mc.phase {
        Phase::Ended => return Step::Now(Vec::new()),
        Phase::Verifying => return Step::Wait,
        Phase::Fresh => {
            return match pdu {
                Pdu::LoginRequest(req) => login::on_login_request(cx, mc, &req),
                _ => {
                    // P-13 / B-LOGIN-1: 7/1 before login is not answered either.
                    bump(&st.counters.ignored_before_login);
                    Step::Now(Vec::new())
                }
            };
        }
        Phase::LoggedIn => {}
    }
    if mc.pending_len() >= st.cfg.msg.max_in_flight {
        return Step::Wait;
    }
    let _ = hdr;
    match pdu {
        Pdu::LoginRequest(_) => {
            bump(&st.counters.ignored_relogin);
            Step::Now(Vec::new())
        }
        Pdu::Heartbeat => other::heartbeat(cx, mc),
        Pdu::ServiceSetting(s) => other::service_setting(cx, mc, &s),
        Pdu::TimeRequest => chat::time(cx, mc),
        Pdu::MsgData(m) => {
            if let Err(until) = rate() {
                return Step::Pause(until);
            }
            chat::msg_data(cx, mc, hdr, &m)
        }
        Pdu::P2PCmd(c) => {
            if let Err(until) = rate() {
                return Step::Pause(until);
            }
            chat::p2p_cmd(cx, mc, hdr, &c)
        }
        Pdu::MsgDataAck(_) => {
            bump(&st.counters.recv_acks);
            Step::Now(Vec::new())
        }
        Pdu::MsgReadAck(r) => chat::read_ack(cx, mc, &r),
        Pdu::UnreadCountRequest => {
            if must_wait_for_writes(mc) {
                return Step::Wait;
            }
            chat::unread_count(cx, mc)
        }
        Pdu::UnreadMsgRequest(r) => {
            if must_wait_for_writes(mc) {
                return Step::Wait;
            }
            chat::unread_msgs(cx, mc, &r)
        }
        Pdu::RecentContactRequest(_) => {
            if must_wait_for_writes(mc) {
                return Step::Wait;
            }
            buddy::recent_contacts(cx, mc)
        }
        Pdu::RemoveSessionRequest(r) => buddy::remove_session(cx, mc, &r),
        Pdu::UserStatusRequest(r) => buddy::user_status(cx, mc, &r),
        Pdu::UsersStatusRequest(r) => buddy::users_status(cx, mc, &r),
        Pdu::UserInfoRequest(r) => buddy::user_info(cx, mc, &r),
        Pdu::AllUserRequest => buddy::all_users(cx, mc),
        Pdu::DepartmentRequest => buddy::departments(cx, mc),
        Pdu::GroupReadAck(r) => group::read_ack(cx, mc, &r),
        Pdu::CreateTempGroupRequest(r) => group::create_temp(cx, mc, &r),
        Pdu::ChangeMemberRequest(r) => group::change_members(cx, mc, &r),
        // Reads that must reflect this connection's earlier writes (B-GEN-1).
        Pdu::NormalGroupListRequest
        | Pdu::RecentGroupListRequest
        | Pdu::GroupInfoRequest(_)
        | Pdu::GroupUnreadCountRequest
        | Pdu::GroupUnreadMsgRequest(_)
        | Pdu::OfflineFileListRequest
            if must_wait_for_writes(mc) =>
        {
            Step::Wait
        }
        Pdu::NormalGroupListRequest => group::normal_list(cx, mc),
        Pdu::RecentGroupListRequest => group::recent_list(cx, mc),
        Pdu::GroupInfoRequest(r) => group::info(cx, mc, &r),
        Pdu::GroupUnreadCountRequest => group::unread_count(cx, mc),
        Pdu::GroupUnreadMsgRequest(r) => group::unread_msgs(cx, mc, &r),
        Pdu::FileRequest(r) => file::request(cx, mc, &r),
        Pdu::OfflineFileListRequest => file::offline_list(cx, mc),
        Pdu::AddOfflineFile(r) => file::add_report(cx, mc, &r),
        Pdu::DeleteOfflineFile(r) => file::delete(cx, mc, &r),
        other => {
            // Commands valid only on other ports (groups, files) and ones valid only on other ports.
            log::debug!(target: "msg", "conn={:?} unhandled {:?}", cx.conn, other.module_command());
            bump(&st.counters.unknown_pdus);
            Step::Now(Vec::new())
        }
    }
}

/// Encodes a list response, cut to the longest prefix of whole entries that fits
/// `MaxOutPduSize` (P-9; counted `out_truncated`).
pub fn encode_capped<T>(
    st: &State,
    items: &[T],
    reserved: u16,
    build: impl Fn(&[T]) -> Pdu<'_>,
) -> Vec<u8> {
    let max = st.cfg.msg.max_out_pdu_size as usize;
    let full = build(items).to_frame(reserved);
    if full.len() <= max {
        return full;
    }
    bump(&st.counters.out_truncated);
    log::warn!(target: "msg", "response of {} bytes cut to MaxOutPduSize", full.len());
    // Binary search for the longest prefix that fits.
    let (mut lo, mut hi) = (0usize, items.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let len = items
            .get(..mid)
            .map_or(usize::MAX, |p| build(p).to_frame(reserved).len());
        if len <= max {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    build(items.get(..lo).unwrap_or_default()).to_frame(reserved)
}

/// Encodes a list response as consecutive frames, each holding a whole number of entries and
/// at most `MaxOutPduSize` bytes, entries in order (B-USER-2 with `AllUsersSplit`). Always at
/// least one frame. An entry too large for a frame of its own is left out (logged, counted
/// `out_truncated`); a user record is far below any accepted `MaxOutPduSize`. `build` gets the
/// entries of one frame, as for [`encode_capped`].
pub fn encode_split<'a, T: Wire<'a>>(
    st: &State,
    items: &[T],
    reserved: u16,
    build: impl Fn(&[T]) -> Pdu<'_>,
) -> Vec<Vec<u8>> {
    let max = st.cfg.msg.max_out_pdu_size as usize;
    // Everything in a frame but its entries, measured rather than assumed: the list may share
    // its PDU with other fields.
    let overhead = build(&[]).to_frame(reserved).len();
    let mut frames = Vec::new();
    let mut frame_of = |from: usize, to: usize| {
        if let Some(entries) = items.get(from..to).filter(|e| !e.is_empty()) {
            frames.push(build(entries).to_frame(reserved));
        }
    };
    let (mut start, mut size) = (0, overhead);
    let mut scratch = Vec::new();
    for (i, item) in items.iter().enumerate() {
        scratch.clear();
        item.write(&mut Writer::new(&mut scratch));
        let n = scratch.len();
        if overhead + n > max {
            frame_of(start, i);
            (start, size) = (i + 1, overhead);
            bump(&st.counters.out_truncated);
            log::warn!(target: "msg", "list entry of {n} bytes left out: over MaxOutPduSize");
            continue;
        }
        if size + n > max {
            frame_of(start, i);
            (start, size) = (i, overhead);
        }
        size += n;
    }
    frame_of(start, items.len());
    if frames.is_empty() {
        frames.push(build(&[]).to_frame(reserved));
    }
    frames
}

/// The bytes of an id as it travelled (P-21 echoes).
pub fn id_echo(id: &crate::proto::Id<'_>) -> Vec<u8> {
    match id {
        crate::proto::Id::Raw(b) => b.to_vec(),
        crate::proto::Id::Num(n) => n.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod pending_tests {
    use super::*;

    #[test]
    fn pending_slots_release_in_order() {
        let mut mc = MsgConn::default();
        let a = mc.begin_job(true);
        let b = mc.begin_job(false);
        assert!(mc.immediate(vec![Effect::Reply(vec![3])]).is_none());
        assert_eq!(mc.writes_in_flight(), 1);
        assert!(mc.complete(b, vec![Effect::Reply(vec![2])]));
        assert!(mc.take_ready().is_empty(), "b waits for a");
        assert!(mc.complete(a, vec![Effect::Reply(vec![1])]));
        assert_eq!(mc.writes_in_flight(), 0);
        let got: Vec<Vec<u8>> = mc
            .take_ready()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Reply(v) => Some(v),
                _ => None,
            })
            .collect();
        assert_eq!(got, vec![vec![1], vec![2], vec![3]]);
        assert!(!mc.complete(a, vec![]), "a stale reply is refused");
    }
}

#[cfg(test)]
mod handler_tests;
#[cfg(test)]
mod tests;

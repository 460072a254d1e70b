//! The msg workers' [`Service`]: the msg port (client sessions) and the login port (1/1 ->
//! 1/2) of one worker loop. Frames are TT PDUs; handlers ([`super::on_pdu`]) return effects,
//! which become the loop's actions here: bytes for this connection, deliveries to other
//! sessions (this worker's directly, others' as posts to their loop), kicks, closes, holds.
//!
//! Graceful stop, driven by `server::Running::stop` through each worker's channel: step 1
//! ([`WorkerMsg::StopReading`]) stops accepting and reading; storage replies, pushes and output
//! go on. Step 2 ([`WorkerMsg::WriterDrained`]) asks for a report once no storage reply is
//! outstanding; step 3 ([`WorkerMsg::Shutdown`]) exits once every connection is flushed. At
//! `StopTimeout` the worker exits anyway and logs what was left.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::presence::{Change, Class};
use super::state::State;
use super::{Completion, Effect, Jobs, MsgConn, Phase, Step};
use crate::net::rate::TokenBucket;
use crate::net::service::{Action, Bytes, Conns, Framing, Outbox, Service, Verdict};
use crate::net::{ConnId, Shared};
use crate::proto::frame::{self, Header, HEADER_LEN};
use crate::proto::{Dir, Pdu};
use crate::stats::bump;

/// How long a connection closed for a protocol error may flush (P-11).
const ERROR_FLUSH: Duration = Duration::from_secs(1);
/// How long a kicked session may flush its 1/7 (B-KICK-2).
const KICK_FLUSH: Duration = Duration::from_secs(5);
/// Login-port connections that send no 1/1 are closed after this (B-LS-1).
const LOGIN_PORT_TIMEOUT: Duration = Duration::from_secs(30);

/// The worker's listeners, in the order the server hands them to the loop.
pub const MSG_LISTENER: usize = 0;
pub const LOGIN_LISTENER: usize = 1;

/// Work handed to a msg worker by another thread.
pub enum WorkerMsg {
    /// A storage job of `conn` finished: `seq` is the connection's request sequence number.
    Done {
        conn: ConnId,
        seq: u64,
        done: Completion,
    },
    /// Queue these bytes on the connection (a push: delivery, presence, kick notice ...).
    Push { conn: ConnId, bytes: Shared },
    /// A committed group message: queue it on this worker's sessions of these users, except
    /// `skip`. Sent by the writer's outlet to every worker in commit order (B-GRP-9).
    Fanout {
        members: Arc<[u32]>,
        bytes: Shared,
        skip: Option<ConnId>,
    },
    /// Send 1/7 and close the connection once flushed (B-KICK-2).
    Kick { conn: ConnId, bytes: Shared },
    /// Close the connection at once (B-ADM-6).
    Close { conn: ConnId },
    /// Graceful stop, step 1: stop accepting and reading client input (no new request reaches
    /// storage from here on), then send the worker's id on `ack`. By `deadline`
    /// (`StopTimeout`) the worker closes and exits whatever is left.
    StopReading { ack: Sender<u16>, deadline: Instant },
    /// Graceful stop, step 2: the writer has committed and answered every job queued before
    /// step 1, so those replies are in this channel ahead of this message. Once none of the
    /// worker's storage replies is outstanding, it sends its id on `quiet` (once).
    WriterDrained { quiet: Sender<u16> },
    /// Graceful stop, step 3 (every worker is quiet, so no more pushes come from other
    /// workers): flush what is queued, close every connection and exit.
    Shutdown,
}

/// Which port a connection came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// `ClientListen`: 1/1 -> 1/2, then close (B-LS).
    Login,
    /// `MsgListen`: client sessions.
    Msg,
}

/// Why a connection's input is not being processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    None,
    /// Waiting for earlier storage jobs of this connection (ordering, MaxInFlight), or for
    /// room in a full storage queue.
    Waiting,
    /// Rate-limited (B-MSG-6); the loop resumes it at the time.
    Paused,
    /// A protocol error (P-11): no more input; the requests accepted before it still get
    /// their replies (B-GEN-1), then the connection closes once flushed.
    Failed,
}

/// One connection of a msg worker.
pub struct MsgPeer {
    pub port: Port,
    pub peer: SocketAddr,
    pub hold: Hold,
    pub bucket: TokenBucket,
    /// Msg-port session state (None on the login port).
    pub msg: Option<Box<MsgConn>>,
}

impl MsgPeer {
    fn pending(&self) -> usize {
        self.msg.as_deref().map_or(0, MsgConn::pending_len)
    }

    fn user(&self) -> Option<u32> {
        self.msg.as_deref().and_then(MsgConn::user_id)
    }
}

/// Where a worker is in the graceful stop (see the module doc).
struct Stopping {
    deadline: Instant,
    /// Step 2 reached, not yet reported.
    quiet: Option<Sender<u16>>,
    exit: bool,
}

pub struct MsgService {
    id: u16,
    st: Arc<State>,
    /// Where handlers send storage and hashing work: the state's pools, or a test's recorder.
    jobs: Arc<dyn Jobs>,
    /// This worker's logged-in sessions by user, kept beside the shared presence directory so
    /// a group fan-out touches only local state (no lock, no copy per member).
    local: HashMap<u32, Vec<ConnId>>,
    /// Storage replies this worker's connections still wait for (pending slots).
    outstanding: usize,
    /// Connections held because a storage queue was full, resumed when it has room.
    waiting_room: Vec<ConnId>,
    stopping: Option<Stopping>,
}

impl MsgService {
    pub fn new(id: u16, st: Arc<State>) -> MsgService {
        let jobs: Arc<dyn Jobs> = Arc::clone(&st) as Arc<dyn Jobs>;
        MsgService::with_jobs(id, st, jobs)
    }

    /// A service whose handlers hand their jobs to `jobs` (tests record them).
    pub fn with_jobs(id: u16, st: Arc<State>, jobs: Arc<dyn Jobs>) -> MsgService {
        MsgService {
            id,
            st,
            jobs,
            local: HashMap::new(),
            outstanding: 0,
            waiting_room: Vec::new(),
            stopping: None,
        }
    }

    /// The largest PDU this connection may send now (P-5): `MaxPduSizeBeforeLogin` until it
    /// has sent its 1/3 (always on the login port), so a peer that never logs in cannot make
    /// the server buffer `MaxPduSize` bytes. From the 1/3 on the full limit applies: a client
    /// may pipeline a long 3/1 behind its 1/3, and it waits for the verdict (B-GEN-1).
    fn frame_limit(&self, c: &MsgPeer) -> u32 {
        let cfg = &self.st.cfg.net;
        let past_login_request = c.msg.as_deref().is_some_and(|m| m.phase != Phase::Fresh);
        if past_login_request {
            cfg.max_pdu_size
        } else {
            cfg.max_pdu_size.min(cfg.max_pdu_size_before_login)
        }
    }

    fn protocol_error(
        &mut self,
        out: &mut Outbox<WorkerMsg>,
        id: ConnId,
        c: &mut MsgPeer,
        e: &str,
    ) {
        bump(&self.st.counters.proto_errors);
        log::warn!(target: "net", "conn={id:?} peer={} protocol error: {e}", c.peer);
        out.push(Action::StopInput(id));
        if c.pending() == 0 {
            out.close_after_flush(id, ERROR_FLUSH);
            return;
        }
        // Storage jobs of earlier requests are still out: their replies go first (the last
        // one closes), within ERROR_FLUSH.
        c.hold = Hold::Failed;
        out.deadline(id, Some(Instant::now() + ERROR_FLUSH));
    }

    fn handle_msg(
        &mut self,
        out: &mut Outbox<WorkerMsg>,
        id: ConnId,
        c: &mut MsgPeer,
        h: &Header,
        pdu: Pdu<'_>,
    ) -> Verdict {
        let now = Instant::now();
        let st = Arc::clone(&self.st);
        let MsgPeer {
            peer, msg, bucket, ..
        } = c;
        let Some(mc) = msg.as_deref_mut() else {
            return Verdict::Consumed;
        };
        let jobs = Arc::clone(&self.jobs);
        let cx = super::Ctx {
            st: &st,
            jobs: &*jobs,
            conn: id,
            peer: *peer,
            reserved: h.reserved,
            now,
        };
        let step = super::on_pdu(&cx, mc, h, pdu, &mut || bucket.take(now));
        match step {
            Step::Now(effects) => {
                self.apply(out, id, Some(c), effects);
                Verdict::Consumed
            }
            Step::Queued => Verdict::Consumed,
            Step::Wait => {
                c.hold = Hold::Waiting;
                if c.pending() == 0 {
                    // Held for a full storage queue: resumed when it has room.
                    bump(&self.st.counters.storage_full_waits);
                    self.wait_for_room(out, id);
                }
                Verdict::Hold
            }
            Step::Pause(until) => {
                c.hold = Hold::Paused;
                out.push(Action::ResumeAt(id, until));
                Verdict::Hold
            }
        }
    }

    /// Parks `id` until a storage queue has room. The bell is set before the queues are looked
    /// at again, so a job taken in between still rings it.
    fn wait_for_room(&mut self, out: &mut Outbox<WorkerMsg>, id: ConnId) {
        self.waiting_room.push(id);
        self.st.room.wait(self.id);
        if !self.jobs.storage_full() {
            self.resume_waiting(out);
        }
    }

    fn resume_waiting(&mut self, out: &mut Outbox<WorkerMsg>) {
        for id in self.waiting_room.drain(..) {
            out.push(Action::Resume(id));
        }
    }

    // ---------------------------------------------------------------- effects

    /// Turns effects of connection `id` (`c`: its state, if it is still open) into actions.
    fn apply(
        &mut self,
        out: &mut Outbox<WorkerMsg>,
        id: ConnId,
        mut c: Option<&mut MsgPeer>,
        effects: Vec<Effect>,
    ) {
        for e in effects {
            match e {
                Effect::Reply(v) if c.is_some() => out.push(Action::Answer(id, Bytes::Owned(v))),
                Effect::ReplyShared(b) if c.is_some() => {
                    out.push(Action::Answer(id, Bytes::Shared(b)));
                }
                Effect::Reply(_) | Effect::ReplyShared(_) => {}
                Effect::Deliver { user, bytes, skip } => self.deliver(out, user, &bytes, skip),
                Effect::DeliverMembers {
                    members,
                    bytes,
                    skip,
                } => {
                    for &user in members.iter() {
                        self.deliver(out, user, &bytes, skip);
                    }
                }
                Effect::Push { conn, bytes } => self.push_to(out, conn, bytes),
                // A kick of one of this worker's connections goes through its own channel
                // too: it needs that connection's state.
                Effect::Kick { conn, bytes } => {
                    out.post(conn.worker, WorkerMsg::Kick { conn, bytes })
                }
                Effect::CloseAfterFlush if c.is_some() => out.close_after_flush(id, ERROR_FLUSH),
                Effect::CloseAfterFlush => {}
                Effect::StatusChanged(change) => notify_watchers(&self.st, &*self.jobs, change),
                Effect::FinishLogin(v) => {
                    let Some(peer) = c.as_deref_mut() else {
                        // The connection is gone: undo nothing (no session was registered).
                        continue;
                    };
                    let Some(mc) = peer.msg.as_deref_mut() else {
                        continue;
                    };
                    let now = Instant::now();
                    let more = super::login::finish(&self.st, id, mc, *v, now);
                    if let Some(class) = mc.session.as_ref().map(|s| s.class) {
                        if let Some(user) = mc.user_id() {
                            self.local.entry(user).or_default().push(id);
                        }
                        let idle = idle_timeout(&self.st, class);
                        out.push(Action::IdleTimeout(id, Some(idle)));
                    }
                    self.apply(out, id, c.as_deref_mut(), more);
                }
            }
        }
    }

    /// Queues one shared buffer on every session of `user` except `skip`.
    fn deliver(
        &mut self,
        out: &mut Outbox<WorkerMsg>,
        user: u32,
        bytes: &Shared,
        skip: Option<ConnId>,
    ) {
        for s in self.st.presence.sessions(user) {
            if Some(s.conn) != skip {
                self.push_to(out, s.conn, Arc::clone(bytes));
            }
        }
    }

    /// Bytes for any connection: here, or through its worker's channel.
    fn push_to(&mut self, out: &mut Outbox<WorkerMsg>, conn: ConnId, bytes: Shared) {
        if conn.worker == self.id {
            out.push(Action::Send(conn, Bytes::Shared(bytes)));
        } else {
            out.post(conn.worker, WorkerMsg::Push { conn, bytes });
        }
    }

    /// This worker's share of a commit-ordered group delivery: its own sessions only.
    fn fanout_local(
        &self,
        out: &mut Outbox<WorkerMsg>,
        members: &[u32],
        bytes: &Shared,
        skip: Option<ConnId>,
    ) {
        for user in members {
            if let Some(conns) = self.local.get(user) {
                for &conn in conns.iter().filter(|&&c| Some(c) != skip) {
                    out.push(Action::Send(conn, Bytes::Shared(Arc::clone(bytes))));
                }
            }
        }
    }

    fn on_done(
        &mut self,
        out: &mut Outbox<WorkerMsg>,
        conns: &mut dyn Conns<MsgPeer>,
        conn: ConnId,
        seq: u64,
        done: Completion,
    ) {
        // A storage reply means a job left a queue: connections parked for room try again.
        if !self.waiting_room.is_empty() {
            self.resume_waiting(out);
        }
        let Some(c) = conns.get_mut(conn) else {
            // The requester is gone. What it caused for others still happens: a committed
            // message is delivered to the recipient's sessions even if its sender left.
            bump(&self.st.counters.stale_replies);
            self.apply(out, conn, None, done);
            return;
        };
        let before = c.pending();
        let Some(mc) = c.msg.as_deref_mut() else {
            return;
        };
        if !mc.complete(seq, done) {
            bump(&self.st.counters.stale_replies);
            return;
        }
        let ready = mc.take_ready();
        self.outstanding = self
            .outstanding
            .saturating_sub(before - mc.pending_len().min(before));
        self.apply(out, conn, Some(&mut *c), ready);
        if c.hold == Hold::Failed && c.pending() == 0 {
            out.close_after_flush(conn, ERROR_FLUSH);
        } else if c.hold == Hold::Waiting {
            c.hold = Hold::None;
            out.push(Action::Resume(conn));
        }
    }

    fn kick_local(
        &mut self,
        out: &mut Outbox<WorkerMsg>,
        conns: &mut dyn Conns<MsgPeer>,
        conn: ConnId,
        bytes: Shared,
    ) {
        let Some(c) = conns.get_mut(conn) else {
            return;
        };
        if let Some(m) = c.msg.as_deref_mut() {
            if m.phase == Phase::Ended {
                return; // already kicked or failed
            }
            m.phase = Phase::Ended;
        }
        log::info!(target: "net", "conn={conn:?} kicked by a newer login");
        out.push(Action::Answer(conn, Bytes::Shared(bytes)));
        out.close_after_flush(conn, KICK_FLUSH);
    }

    // ---------------------------------------------------------------- graceful stop

    fn stop_reading(&mut self, out: &mut Outbox<WorkerMsg>, ack: &Sender<u16>, deadline: Instant) {
        out.push(Action::StopReading);
        self.waiting_room.clear();
        self.stopping.get_or_insert(Stopping {
            deadline,
            quiet: None,
            exit: false,
        });
        let _ = ack.send(self.id);
    }

    /// The stop state; a step that arrives without step 1 stops at once.
    fn stop_state(&mut self) -> &mut Stopping {
        self.stopping.get_or_insert_with(|| Stopping {
            deadline: Instant::now(),
            quiet: None,
            exit: false,
        })
    }
}

impl Service for MsgService {
    type Conn = MsgPeer;
    type Msg = WorkerMsg;

    fn accept(
        &mut self,
        out: &mut Outbox<WorkerMsg>,
        id: ConnId,
        listener: usize,
        peer: SocketAddr,
    ) -> Option<MsgPeer> {
        if self.stopping.is_some() {
            return None;
        }
        let now = Instant::now();
        let port = if listener == LOGIN_LISTENER {
            Port::Login
        } else {
            Port::Msg
        };
        let timeout = match port {
            Port::Login => LOGIN_PORT_TIMEOUT,
            Port::Msg => self.st.cfg.net.login_timeout,
        };
        out.deadline(id, Some(now + timeout));
        Some(MsgPeer {
            port,
            peer,
            hold: Hold::None,
            bucket: TokenBucket::new(self.st.cfg.msg.msg_rate_limit, now),
            msg: (port == Port::Msg).then(|| Box::new(MsgConn::default())),
        })
    }

    fn frame(
        &mut self,
        _out: &mut Outbox<WorkerMsg>,
        _id: ConnId,
        c: &mut MsgPeer,
        input: &[u8],
    ) -> Framing {
        match frame::check(input, self.frame_limit(c)) {
            Ok(Some(h)) => Framing::Complete(h.length as usize),
            Ok(None) => Framing::Partial,
            Err(e) => Framing::Invalid(e.to_string()),
        }
    }

    fn on_frame(
        &mut self,
        out: &mut Outbox<WorkerMsg>,
        id: ConnId,
        c: &mut MsgPeer,
        bytes: &[u8],
    ) -> Verdict {
        // The loop presents a frame only to a connection that is not held.
        if matches!(c.hold, Hold::Waiting | Hold::Paused) {
            c.hold = Hold::None;
        }
        let Some(h) = frame::header(bytes) else {
            return Verdict::Consumed;
        };
        let body = bytes.get(HEADER_LEN..).unwrap_or_default();
        // P-13: before login only 1/3 and 7/1 (msg port) / 1/1 (login port) are parsed.
        let allowed_before_login = match c.port {
            Port::Login => (h.module, h.command) == (1, 1),
            Port::Msg => matches!((h.module, h.command), (1, 3) | (7, 1)),
        };
        let logged_in = c.msg.as_ref().is_some_and(|m| m.phase != Phase::Fresh);
        if !logged_in && !allowed_before_login {
            if crate::proto::is_known(Dir::ToServer, h.module, h.command) {
                bump(&self.st.counters.ignored_before_login);
            } else {
                bump(&self.st.counters.unknown_pdus);
            }
            return Verdict::Consumed;
        }
        // P-12: a command of another port (1/1 here, 6/1-6/5 on the msg port) is unknown.
        if !accepted_on(c.port, h.module, h.command) {
            bump(&self.st.counters.unknown_pdus);
            return Verdict::Consumed;
        }
        let (pdu, short) = match Pdu::decode_noting_short(Dir::ToServer, h.module, h.command, body)
        {
            Ok(Some(p)) => p,
            Ok(None) => {
                bump(&self.st.counters.unknown_pdus);
                log::debug!(target: "net", "conn={id:?} unknown {}/{}", h.module, h.command);
                return Verdict::Consumed;
            }
            Err(e) => {
                let what = format!("{}/{}: {e}", h.module, h.command);
                self.protocol_error(out, id, c, &what);
                return Verdict::Consumed;
            }
        };
        let before = c.pending();
        let verdict = match c.port {
            Port::Login => {
                let cfg = &self.st.cfg;
                let srv = crate::login::MsgServer {
                    ip1: cfg.login.ip_addr1.as_bytes(),
                    ip2: cfg.ip_addr2().as_bytes(),
                    port: self.st.msg_addr.port(),
                    full: self.st.msg_conns.load(Ordering::Relaxed) >= cfg.net.max_conn_cnt,
                };
                if let Some(frame) = crate::login::answer(&h, &pdu, &srv) {
                    out.push(Action::Answer(id, Bytes::Owned(frame)));
                    out.close_after_flush(id, ERROR_FLUSH);
                }
                Verdict::Consumed
            }
            Port::Msg => self.handle_msg(out, id, c, &h, pdu),
        };
        self.outstanding = (self.outstanding + c.pending()).saturating_sub(before);
        // A held PDU is decoded again when it is retried: count it once, when it is served.
        if short && verdict == Verdict::Consumed {
            bump(&self.st.counters.short_requests);
        }
        verdict
    }

    fn on_bad_input(
        &mut self,
        out: &mut Outbox<WorkerMsg>,
        id: ConnId,
        c: &mut MsgPeer,
        why: &str,
    ) {
        self.protocol_error(out, id, c, why);
    }

    fn on_message(
        &mut self,
        out: &mut Outbox<WorkerMsg>,
        conns: &mut dyn Conns<MsgPeer>,
        msg: WorkerMsg,
    ) {
        match msg {
            WorkerMsg::Done { conn, seq, done } => self.on_done(out, conns, conn, seq, done),
            WorkerMsg::Push { conn, bytes } => out.push(Action::Send(conn, Bytes::Shared(bytes))),
            WorkerMsg::Fanout {
                members,
                bytes,
                skip,
            } => self.fanout_local(out, &members, &bytes, skip),
            WorkerMsg::Kick { conn, bytes } => self.kick_local(out, conns, conn, bytes),
            WorkerMsg::Close { conn } => out.close_now(conn, "closed by the server"),
            WorkerMsg::StopReading { ack, deadline } => self.stop_reading(out, &ack, deadline),
            WorkerMsg::WriterDrained { quiet } => self.stop_state().quiet = Some(quiet),
            WorkerMsg::Shutdown => {
                let s = self.stop_state();
                s.exit = true;
                let deadline = s.deadline;
                out.push(Action::Exit { deadline });
            }
        }
    }

    fn on_timeout(&mut self, out: &mut Outbox<WorkerMsg>, id: ConnId, c: &mut MsgPeer) {
        let reason = if c.hold == Hold::Failed {
            "flush limit reached"
        } else {
            match c.msg.as_deref() {
                Some(m) if m.session.is_some() => {
                    bump(&self.st.counters.idle_closes);
                    "idle timeout"
                }
                Some(_) => {
                    bump(&self.st.counters.login_timeouts);
                    "login timeout"
                }
                None => "login port timeout",
            }
        };
        out.close_now(id, reason);
    }

    /// A registered session ends (B-KICK-4).
    fn on_closed(&mut self, _out: &mut Outbox<WorkerMsg>, id: ConnId, c: MsgPeer, why: &str) {
        self.outstanding = self.outstanding.saturating_sub(c.pending());
        let user = c
            .user()
            .filter(|_| c.msg.as_ref().is_some_and(|m| m.session.is_some()));
        log::debug!(target: "net", "conn={id:?} user={user:?} closed: {why}");
        let Some(user) = user else {
            return;
        };
        if let Some(list) = self.local.get_mut(&user) {
            list.retain(|&s| s != id);
            if list.is_empty() {
                self.local.remove(&user);
            }
        }
        self.st.tokens.lock().session_ended(user, Instant::now());
        if let Some(change) = self.st.presence.logout(user, id) {
            notify_watchers(&self.st, &*self.jobs, change);
        }
    }

    fn on_tick(&mut self, out: &mut Outbox<WorkerMsg>, now: Instant) {
        if !self.waiting_room.is_empty() && self.st.room.rang(self.id) {
            self.resume_waiting(out);
        }
        let outstanding = self.outstanding;
        let Some(s) = self.stopping.as_mut() else {
            return;
        };
        if outstanding == 0 {
            if let Some(q) = s.quiet.take() {
                let _ = q.send(self.id);
            }
        }
        if now >= s.deadline {
            log::warn!(
                target: "net",
                "worker {}: StopTimeout reached with {outstanding} storage replies outstanding; closing",
                self.id
            );
            out.push(Action::Exit { deadline: now });
        }
    }

    fn next_tick(&self) -> Option<Instant> {
        self.stopping.as_ref().map(|s| s.deadline)
    }

    fn on_exit(&mut self) {
        // Sessions are not logged out one by one: the process is ending.
        self.local.clear();
    }
}

/// Whether a client command is served on this port (protocol.md section 1).
fn accepted_on(port: Port, module: u16, command: u16) -> bool {
    match port {
        Port::Login => (module, command) == (1, 1),
        Port::Msg => {
            let file_port = module == 6 && (1..=5).contains(&command);
            !file_port && (module, command) != (1, 1)
        }
    }
}

fn idle_timeout(st: &State, class: Class) -> Duration {
    match class {
        Class::Pc => st.cfg.msg.pc_idle_timeout,
        Class::Mobile => st.cfg.msg.mobile_idle_timeout,
    }
}

/// B-PRES-3: one 2/5 to every presence-receiving session of every watcher. Runs on the reader
/// thread chosen by the user id, so one user's changes go out in order.
pub fn notify_watchers(st: &Arc<State>, jobs: &dyn Jobs, c: Change) {
    let state = Arc::clone(st);
    let job = Box::new(move |db: &rusqlite::Connection| {
        let limit = state.cfg.msg.max_recent_contacts;
        let watchers = match crate::store::recent::watchers(db, c.user, limit) {
            Ok(w) => w,
            Err(e) => {
                bump(&state.counters.store_failures);
                log::error!(target: "store", "watchers of {}: {e}", c.user);
                return;
            }
        };
        let bytes: Shared = super::other::status_notify(c.user, c.new, 0).into();
        let workers = state.workers();
        let mut touched = vec![false; workers.all().len()];
        for v in watchers {
            for s in state.presence.sessions(v) {
                if s.class == Class::Pc || state.cfg.msg.presence_to_mobile {
                    if let Some(h) = workers.get(s.conn.worker) {
                        h.send_quiet(WorkerMsg::Push {
                            conn: s.conn,
                            bytes: bytes.clone(),
                        });
                        if let Some(t) = touched.get_mut(usize::from(s.conn.worker)) {
                            *t = true;
                        }
                    }
                }
            }
        }
        for (i, t) in touched.into_iter().enumerate() {
            if t {
                if let Some(h) = workers.all().get(i) {
                    h.wake();
                }
            }
        }
    });
    if jobs.read_keyed(c.user, job).is_err() {
        bump(&st.counters.store_failures);
        log::warn!(target: "msg", "presence of {} not sent: reader queue full", c.user);
    }
}

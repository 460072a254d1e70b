//! One worker thread: a mio Poll over its listeners (SO_REUSEPORT) and its connections.
//!
//! Per loop iteration: poll; accept; read and handle input; drain the channel (storage replies,
//! pushes from other threads); expire timers; resume rate-paused connections; flush output;
//! wake each other worker we sent to, once. Nothing here blocks: storage work leaves through
//! channels and comes back as [`WorkerMsg::Done`].
//!
//! Graceful stop, driven by `server::Running::stop` through this worker's channel: step 1
//! ([`WorkerMsg::StopReading`]) closes the listeners and stops reading input; the loop goes on
//! applying storage replies and pushes and flushing output. Step 2
//! ([`WorkerMsg::WriterDrained`]) asks for a report once no storage reply is outstanding; step
//! 3 ([`WorkerMsg::Shutdown`]) closes every connection once its output is flushed. At
//! `StopTimeout` the worker closes everything anyway and logs what was left.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::conn::{Conn, Hold, TokenBucket};
use super::outq::Flushed;
use super::timer::{DeadlineHeap, TimerKey};
use super::{ConnId, DirtySlots, Role, Shared, WorkerMsg};
use crate::msg::presence::{Change, Class};
use crate::msg::{self, Ctx, Effect, MsgConn, Phase, Step};
use crate::proto::frame::{self, Header, HEADER_LEN};
use crate::proto::{Dir, Pdu, ProtoError};
use crate::state::State;
use crate::stats::bump;

pub const WAKER: Token = Token(0);
const LISTENER_BASE: usize = 1;
const CONN_BASE: usize = 64;
/// Bytes read from one connection per service call before others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// How long a connection closed for a protocol error may flush (P-11).
const ERROR_FLUSH: Duration = Duration::from_secs(1);
/// How long a kicked session may flush its 1/7 (B-KICK-2).
const KICK_FLUSH: Duration = Duration::from_secs(5);
/// Login-port connections that send no 1/1 are closed after this (B-LS-1).
const LOGIN_PORT_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection's input buffer keeps at most this much spare capacity after its frames were
/// consumed (larger ones are shrunk to what is left).
const KEEP_INBUF_CAPACITY: usize = 64 << 10;
/// At the end of a graceful stop, unread input discarded per connection before its close (a
/// close with unread input sends RST, which drops output the peer has not received yet).
const DISCARD_LIMIT: usize = 16 << 20;

/// Where a worker is in the graceful stop (see the module doc).
struct Stopping {
    /// `StopTimeout` from the start of the stop: close everything by then.
    deadline: Instant,
    /// Step 2 reached, not yet reported: report here once no storage reply is outstanding.
    quiet: Option<Sender<u16>>,
    /// Step 3 reached: close every connection once all output is flushed.
    exit: bool,
}

enum Frame {
    Consumed,
    Hold,
    Closed,
}

pub struct Worker {
    id: u16,
    poll: Poll,
    rx: Receiver<WorkerMsg>,
    st: Arc<State>,
    listeners: Vec<(TcpListener, Role)>,
    conns: Slab<Conn>,
    next_generation: u32,
    timers: DeadlineHeap,
    resumes: DeadlineHeap,
    retry: Vec<TimerKey>,
    dirty: DirtySlots,
    touched: Vec<bool>,
    scratch: Vec<u8>,
    /// Reused buffer of fan-out targets.
    fanout_targets: Vec<usize>,
    /// This worker's logged-in sessions by user (slab slots), kept beside the shared presence
    /// directory so a group fan-out touches only local state (no lock, no copy per member).
    local: HashMap<u32, Vec<usize>>,
    /// Set by step 1 of the graceful stop: no more input is read.
    stopping: Option<Stopping>,
    /// The loop ends.
    done: bool,
}

impl Worker {
    pub fn new(
        id: u16,
        poll: Poll,
        rx: Receiver<WorkerMsg>,
        st: Arc<State>,
        listeners: Vec<(TcpListener, Role)>,
    ) -> io::Result<Self> {
        let mut listeners = listeners;
        for (i, (l, _)) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(l, Token(LISTENER_BASE + i), Interest::READABLE)?;
        }
        let scratch = vec![0u8; st.cfg.net.read_buf_size.max(4096)];
        Ok(Worker {
            id,
            poll,
            rx,
            st,
            listeners,
            conns: Slab::new(),
            next_generation: 1,
            timers: DeadlineHeap::default(),
            resumes: DeadlineHeap::default(),
            retry: Vec::new(),
            dirty: DirtySlots::default(),
            touched: Vec::new(),
            scratch,
            fanout_targets: Vec::new(),
            local: HashMap::new(),
            stopping: None,
            done: false,
        })
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        self.touched = vec![false; self.st.workers().all().len()];
        while !self.done {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!(target: "net", "worker {} poll failed: {e}", self.id);
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    Token(t) if t >= CONN_BASE => {
                        let slot = t - CONN_BASE;
                        if ev.is_writable() {
                            self.flush(slot);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.service(slot);
                        }
                    }
                    Token(t) => self.accept(t - LISTENER_BASE),
                }
            }
            self.drain_channel();
            self.run_retries();
            self.expire_timers();
            self.resume_paused();
            self.flush_dirty();
            self.wake_touched();
            self.stop_step();
        }
        log::debug!(target: "net", "worker {} stopped", self.id);
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.retry.is_empty() || !self.dirty.is_empty() {
            return Some(Duration::from_millis(1));
        }
        let now = Instant::now();
        let stop_at = self.stopping.as_ref().map(|s| s.deadline);
        let next = [self.timers.next(), self.resumes.next(), stop_at]
            .into_iter()
            .flatten()
            .min();
        let cap = Duration::from_secs(1);
        Some(next.map_or(cap, |t| t.saturating_duration_since(now).min(cap)))
    }

    fn key(&self, slot: usize) -> Option<TimerKey> {
        self.conns.get(slot).map(|c| TimerKey {
            slot,
            generation: c.id.generation,
        })
    }

    /// The live connection for an id, if the slot still holds that generation.
    fn slot_of(&self, id: ConnId) -> Option<usize> {
        let slot = id.slot as usize;
        match self.conns.get(slot) {
            Some(c) if id.worker == self.id && c.id.generation == id.generation => Some(slot),
            _ => None,
        }
    }

    // ---------------------------------------------------------------- accept

    fn accept(&mut self, idx: usize) {
        loop {
            let Some((listener, role)) = self.listeners.get(idx) else {
                return;
            };
            let role = *role;
            let (stream, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and retry on the next readiness event.
                    log::warn!(target: "net", "accept on {} port failed: {e}", role.name());
                    return;
                }
            };
            let counter = match role {
                Role::Login => &self.st.login_conns,
                Role::Msg => &self.st.msg_conns,
            };
            if counter.fetch_add(1, Ordering::Relaxed) >= self.st.cfg.net.max_conn_cnt {
                counter.fetch_sub(1, Ordering::Relaxed);
                bump(&self.st.counters.conn_cap_rejects);
                drop(stream); // B-FLOW-2: accepted and closed at once, no data
                continue;
            }
            let _ = stream.set_nodelay(true);
            let now = Instant::now();
            let entry = self.conns.vacant_entry();
            let slot = entry.key();
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1).max(1);
            let Ok(slot32) = u32::try_from(slot) else {
                counter.fetch_sub(1, Ordering::Relaxed);
                continue;
            };
            let id = ConnId {
                worker: self.id,
                slot: slot32,
                generation,
            };
            let deadline = now
                + match role {
                    Role::Login => LOGIN_PORT_TIMEOUT,
                    Role::Msg => self.st.cfg.net.login_timeout,
                };
            let mut conn = Conn {
                stream,
                id,
                role,
                peer,
                inbuf: Vec::new(),
                out: Default::default(),
                want_write: false,
                want_read: true,
                deadline,
                armed_at: Some(deadline),
                closing: false,
                eof: false,
                hold: Hold::None,
                bucket: TokenBucket::new(self.st.cfg.msg.msg_rate_limit, now),
                msg: (role == Role::Msg).then(|| Box::new(MsgConn::default())),
            };
            if let Err(e) = self.poll.registry().register(
                &mut conn.stream,
                Token(CONN_BASE + slot),
                Interest::READABLE,
            ) {
                log::warn!(target: "net", "register failed: {e}");
                counter.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            entry.insert(conn);
            self.timers.arm(deadline, TimerKey { slot, generation });
            log::debug!(target: "net", "conn={id:?} accepted on {} port from {peer}", role.name());
        }
    }

    // ---------------------------------------------------------------- input

    /// Processes buffered input, then reads until the socket is drained, the read budget is
    /// spent, or the connection is held back.
    fn service(&mut self, slot: usize) {
        if self.stopping.is_some() {
            return; // graceful stop: no new request enters (buffered input is dropped)
        }
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            // Held connections are resumed by whoever lifts the hold (a storage reply, the
            // retry list, the rate-limit timer).
            if conn.closing || conn.hold != Hold::None {
                return;
            }
            if !conn.inbuf.is_empty() {
                // Processed in place: the buffer goes back without a copy, minus the consumed
                // prefix (dropped once per batch of frames, not once per read), so a read
                // while a large PDU is still incomplete costs only its new bytes.
                let mut buf = std::mem::take(&mut conn.inbuf);
                let (used, go_on) = self.process(slot, &buf);
                let Some(conn) = self.conns.get_mut(slot) else {
                    return;
                };
                if used < buf.len() && !conn.closing && conn.hold != Hold::Failed {
                    if used > 0 {
                        buf.drain(..used);
                        // A large PDU's capacity is not kept for a small remainder (B-FLOW-3).
                        if buf.capacity() > KEEP_INBUF_CAPACITY && buf.capacity() > 4 * buf.len() {
                            buf.shrink_to_fit();
                        }
                    }
                    conn.inbuf = buf;
                }
                if !go_on {
                    return;
                }
            }
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            if conn.hold != Hold::None {
                return;
            }
            if budget == 0 {
                if let Some(k) = self.key(slot) {
                    self.retry.push(k);
                }
                return;
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            let read = conn.stream.read(&mut scratch);
            match read {
                Ok(0) => {
                    self.scratch = scratch;
                    conn.eof = true;
                    self.close_now(slot, "peer closed");
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.touch_idle(slot);
                    let data = scratch.get(..n).unwrap_or_default();
                    let has_partial = self.conns.get(slot).is_some_and(|c| !c.inbuf.is_empty());
                    if has_partial {
                        if let Some(c) = self.conns.get_mut(slot) {
                            c.inbuf.extend_from_slice(data);
                        }
                    } else {
                        let (used, _) = self.process(slot, data);
                        if let Some(c) = self.conns.get_mut(slot) {
                            if let Some(rest) = data.get(used..) {
                                if !rest.is_empty() && !c.closing && c.hold != Hold::Failed {
                                    c.inbuf.extend_from_slice(rest);
                                }
                            }
                        }
                    }
                    self.scratch = scratch;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.scratch = scratch;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.scratch = scratch;
                }
                Err(e) => {
                    self.scratch = scratch;
                    self.close_now(slot, &format!("read error: {e}"));
                    return;
                }
            }
        }
    }

    /// Moves a connection's deadline; arms an earlier heap entry when it moved closer.
    fn set_deadline(&mut self, slot: usize, at: Instant) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        c.deadline = at;
        if c.armed_at.is_none_or(|a| at < a) {
            c.armed_at = Some(at);
            self.timers.arm(
                at,
                TimerKey {
                    slot,
                    generation: c.id.generation,
                },
            );
        }
    }

    /// Any received byte resets the idle timer of a logged-in session (B-HB-2).
    fn touch_idle(&mut self, slot: usize) {
        let now = Instant::now();
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let idle = c
            .msg
            .as_ref()
            .and_then(|m| m.session.as_ref())
            .map(|s| idle_timeout(&self.st, s.class));
        if let (Some(idle), false) = (idle, c.closing) {
            self.set_deadline(slot, now + idle);
        }
    }

    /// Handles the whole PDUs at the front of `buf`. Returns the bytes consumed and whether
    /// the caller may go on reading (false: held back or closed).
    fn process(&mut self, slot: usize, buf: &[u8]) -> (usize, bool) {
        let mut pos = 0;
        loop {
            let rest = buf.get(pos..).unwrap_or_default();
            let header = match frame::check(rest, self.frame_limit(slot)) {
                Ok(Some(h)) => h,
                Ok(None) => return (pos, true),
                Err(e) => {
                    self.protocol_error(slot, &e, None);
                    return (pos, false);
                }
            };
            let len = header.length as usize;
            let Some(pdu_bytes) = rest.get(..len) else {
                return (pos, true);
            };
            match self.handle_frame(slot, &header, pdu_bytes) {
                Frame::Consumed => pos += len,
                Frame::Hold => return (pos, false),
                Frame::Closed => return (pos, false),
            }
            if self.conns.get(slot).is_none_or(|c| c.closing) {
                return (pos, false);
            }
        }
    }

    /// The largest PDU this connection may send now (P-5): `MaxPduSizeBeforeLogin` until it
    /// has sent its 1/3 (always on the login port), so a peer that never logs in cannot make
    /// the server buffer `MaxPduSize` bytes. From the 1/3 on the full limit applies: a client
    /// may pipeline a long 3/1 behind its 1/3, and it waits for the verdict (B-GEN-1).
    fn frame_limit(&self, slot: usize) -> u32 {
        let cfg = &self.st.cfg.net;
        let past_login_request = self
            .conns
            .get(slot)
            .and_then(|c| c.msg.as_deref())
            .is_some_and(|m| m.phase != Phase::Fresh);
        if past_login_request {
            cfg.max_pdu_size
        } else {
            cfg.max_pdu_size.min(cfg.max_pdu_size_before_login)
        }
    }

    fn handle_frame(&mut self, slot: usize, h: &Header, bytes: &[u8]) -> Frame {
        let body = bytes.get(HEADER_LEN..).unwrap_or_default();
        let Some(conn) = self.conns.get_mut(slot) else {
            return Frame::Closed;
        };
        let role = conn.role;
        // P-13: before login only 1/3 and 7/1 (msg port) / 1/1 (login port) are parsed.
        let allowed_before_login = match role {
            Role::Login => (h.module, h.command) == (1, 1),
            Role::Msg => matches!((h.module, h.command), (1, 3) | (7, 1)),
        };
        let logged_in = conn.msg.as_ref().is_some_and(|m| m.phase != Phase::Fresh);
        if !logged_in && !allowed_before_login {
            let known = crate::proto::is_known(Dir::ToServer, h.module, h.command);
            if known {
                bump(&self.st.counters.ignored_before_login);
            } else {
                bump(&self.st.counters.unknown_pdus);
            }
            return Frame::Consumed;
        }
        // P-12: a command of another port (1/1 here, 6/1-6/5 on the msg port) is unknown.
        if !accepted_on(role, h.module, h.command) {
            bump(&self.st.counters.unknown_pdus);
            return Frame::Consumed;
        }
        let (pdu, short) = match Pdu::decode_noting_short(Dir::ToServer, h.module, h.command, body)
        {
            Ok(Some(p)) => p,
            Ok(None) => {
                bump(&self.st.counters.unknown_pdus);
                log::debug!(target: "net", "conn={:?} unknown {}/{}", conn.id, h.module, h.command);
                return Frame::Consumed;
            }
            Err(e) => {
                self.protocol_error(slot, &e, Some(h));
                return Frame::Closed;
            }
        };
        let done = match role {
            Role::Login => {
                let effects = crate::login::on_pdu(&self.st, h, &pdu);
                self.apply(slot, effects);
                Frame::Consumed
            }
            Role::Msg => self.handle_msg(slot, h, pdu),
        };
        // A held PDU is decoded again when it is retried: count it once, when it is served.
        if short && matches!(done, Frame::Consumed) {
            bump(&self.st.counters.short_requests);
        }
        done
    }

    fn handle_msg(&mut self, slot: usize, h: &Header, pdu: Pdu<'_>) -> Frame {
        let now = Instant::now();
        let st = Arc::clone(&self.st);
        let Some(conn) = self.conns.get_mut(slot) else {
            return Frame::Closed;
        };
        let Conn {
            id,
            peer,
            msg,
            bucket,
            ..
        } = conn;
        let Some(mc) = msg.as_deref_mut() else {
            return Frame::Closed;
        };
        let cx = Ctx {
            st: &st,
            conn: *id,
            peer: *peer,
            reserved: h.reserved,
            now,
        };
        let step = msg::on_pdu(&cx, mc, h, pdu, &mut || bucket.take(now));
        match step {
            Step::Now(effects) => {
                self.apply(slot, effects);
                Frame::Consumed
            }
            Step::Queued => Frame::Consumed,
            Step::Wait => {
                let nothing_pending = mc.pending_len() == 0;
                conn.hold = Hold::Waiting;
                if nothing_pending {
                    // Held for a full storage queue: try again on the next iteration.
                    let key = TimerKey {
                        slot,
                        generation: conn.id.generation,
                    };
                    self.retry.push(key);
                }
                Frame::Hold
            }
            Step::Pause(until) => {
                conn.hold = Hold::Paused(until);
                let key = TimerKey {
                    slot,
                    generation: conn.id.generation,
                };
                self.resumes.arm(until, key);
                Frame::Hold
            }
        }
    }

    fn protocol_error(&mut self, slot: usize, e: &ProtoError, h: Option<&Header>) {
        bump(&self.st.counters.proto_errors);
        if let Some(c) = self.conns.get(slot) {
            let mc = h
                .map(|h| format!("{}/{}", h.module, h.command))
                .unwrap_or_default();
            log::warn!(target: "net", "conn={:?} peer={} protocol error {mc}: {e}", c.id, c.peer);
        }
        if self.pending_replies(slot) == 0 {
            self.close_after_flush(slot, ERROR_FLUSH);
            return;
        }
        // Storage jobs of earlier requests are still out: their replies go first (on_done
        // closes when the last one is applied), within ERROR_FLUSH.
        if let Some(c) = self.conns.get_mut(slot) {
            c.hold = Hold::Failed;
            c.inbuf = Vec::new();
        }
        self.set_deadline(slot, Instant::now() + ERROR_FLUSH);
    }

    /// Requests of this connection still waiting for a storage reply (msg port).
    fn pending_replies(&self, slot: usize) -> usize {
        self.conns
            .get(slot)
            .and_then(|c| c.msg.as_deref())
            .map_or(0, MsgConn::pending_len)
    }

    // ---------------------------------------------------------------- effects

    fn apply(&mut self, slot: usize, effects: Vec<Effect>) {
        for e in effects {
            match e {
                // A closing connection (kicked, failed) gets nothing after what was queued
                // before the close decision (B-KICK-2, P-11).
                Effect::Reply(v) => {
                    if let Some(c) = self.conns.get_mut(slot).filter(|c| !c.closing) {
                        c.out.push_owned(v);
                        self.dirty.mark(slot);
                    }
                }
                Effect::ReplyShared(b) => {
                    if let Some(c) = self.conns.get_mut(slot).filter(|c| !c.closing) {
                        c.out.push_shared(b);
                        self.dirty.mark(slot);
                    }
                }
                Effect::Deliver { user, bytes, skip } => self.deliver(user, bytes, skip),
                Effect::DeliverMembers {
                    members,
                    bytes,
                    skip,
                } => self.deliver_members(&members, &bytes, skip),
                Effect::Push { conn, bytes } => self.push_to(conn, bytes),
                Effect::Kick { conn, bytes } => {
                    if conn.worker == self.id {
                        self.kick_local(conn, bytes);
                    } else if let Some(h) = self.st.workers().get(conn.worker) {
                        h.send_quiet(WorkerMsg::Kick { conn, bytes });
                        self.mark_touched(conn.worker);
                    }
                }
                Effect::CloseAfterFlush => self.close_after_flush(slot, ERROR_FLUSH),
                Effect::StatusChanged(c) => notify_watchers(&self.st, c),
                Effect::FinishLogin(v) => {
                    let now = Instant::now();
                    let st = Arc::clone(&self.st);
                    let Some(conn) = self.conns.get_mut(slot) else {
                        // The connection is gone: undo nothing (no session was registered).
                        continue;
                    };
                    let id = conn.id;
                    let Some(mc) = conn.msg.as_deref_mut() else {
                        continue;
                    };
                    let more = msg::login::finish(&st, id, mc, *v, now);
                    if let Some((class, user)) = mc.session.as_ref().map(|s| (s.class, s.user_id)) {
                        self.local.entry(user).or_default().push(slot);
                        self.set_deadline(slot, now + idle_timeout(&st, class));
                    }
                    self.apply(slot, more);
                }
            }
        }
    }

    /// Effects of a connection that no longer exists: only those aimed at others.
    fn apply_orphaned(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Deliver { user, bytes, skip } => self.deliver(user, bytes, skip),
                Effect::DeliverMembers {
                    members,
                    bytes,
                    skip,
                } => self.deliver_members(&members, &bytes, skip),
                Effect::Push { conn, bytes } => self.push_to(conn, bytes),
                Effect::StatusChanged(c) => notify_watchers(&self.st, c),
                _ => {}
            }
        }
    }

    /// Queues one shared buffer on every session of `user` except `skip`.
    fn deliver(&mut self, user: u32, bytes: Shared, skip: Option<ConnId>) {
        for s in self.st.presence.sessions(user) {
            if Some(s.conn) != skip {
                self.push_to(s.conn, bytes.clone());
            }
        }
    }

    /// This worker's share of a commit-ordered group delivery: its own sessions only.
    fn fanout_local(&mut self, members: &[u32], bytes: &Shared, skip: Option<ConnId>) {
        let skip_slot = skip
            .filter(|c| c.worker == self.id)
            .map(|c| c.slot as usize);
        let mut targets = std::mem::take(&mut self.fanout_targets);
        for user in members {
            if let Some(slots) = self.local.get(user) {
                targets.extend(slots.iter().filter(|&&s| Some(s) != skip_slot));
            }
        }
        for &slot in &targets {
            self.queue(slot, Arc::clone(bytes));
        }
        targets.clear();
        self.fanout_targets = targets;
    }

    /// One shared buffer to every session of every member (B-GRP-8, B-FLOW-4).
    fn deliver_members(&mut self, members: &[u32], bytes: &Shared, skip: Option<ConnId>) {
        for &user in members {
            self.deliver(user, Arc::clone(bytes), skip);
        }
    }

    fn mark_touched(&mut self, worker: u16) {
        if let Some(t) = self.touched.get_mut(usize::from(worker)) {
            *t = true;
        }
    }

    /// Queues bytes on any connection: here, or through its worker's channel.
    fn push_to(&mut self, target: ConnId, bytes: Shared) {
        if target.worker != self.id {
            if let Some(h) = self.st.workers().get(target.worker) {
                h.send_quiet(WorkerMsg::Push {
                    conn: target,
                    bytes,
                });
                self.mark_touched(target.worker);
            }
            return;
        }
        let Some(slot) = self.slot_of(target) else {
            return;
        };
        self.queue(slot, bytes);
    }

    fn queue(&mut self, slot: usize, bytes: Shared) {
        let cap = self.st.cfg.net.out_buf_cap;
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.closing {
            return; // a kicked or failing session receives nothing more (B-KICK-2)
        }
        c.out.push_shared(bytes);
        if c.out.len() > cap {
            bump(&self.st.counters.slow_consumer_closes);
            self.close_now(slot, "slow consumer (OutBufCap)");
            return;
        }
        self.dirty.mark(slot);
    }

    fn kick_local(&mut self, target: ConnId, bytes: Shared) {
        let Some(slot) = self.slot_of(target) else {
            return;
        };
        if let Some(c) = self.conns.get_mut(slot) {
            if c.closing {
                return;
            }
            c.out.push_shared(bytes);
            if let Some(m) = c.msg.as_deref_mut() {
                m.phase = Phase::Ended;
            }
            log::info!(target: "net", "conn={target:?} kicked by a newer login");
        }
        self.close_after_flush(slot, KICK_FLUSH);
    }

    fn close_after_flush(&mut self, slot: usize, limit: Duration) {
        let now = Instant::now();
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        c.closing = true;
        c.inbuf = Vec::new();
        self.set_deadline(slot, now + limit);
        self.dirty.mark(slot);
    }

    // ---------------------------------------------------------------- channel

    fn drain_channel(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            match m {
                WorkerMsg::Done { conn, seq, done } => self.on_done(conn, seq, done),
                WorkerMsg::Push { conn, bytes } => self.push_to(conn, bytes),
                WorkerMsg::Fanout {
                    members,
                    bytes,
                    skip,
                } => self.fanout_local(&members, &bytes, skip),
                WorkerMsg::Kick { conn, bytes } => self.kick_local(conn, bytes),
                WorkerMsg::Close { conn } => {
                    if let Some(slot) = self.slot_of(conn) {
                        self.close_now(slot, "closed by the server");
                    }
                }
                WorkerMsg::StopReading { ack, deadline } => self.stop_reading(&ack, deadline),
                WorkerMsg::WriterDrained { quiet } => self.stop_state().quiet = Some(quiet),
                WorkerMsg::Shutdown => self.stop_state().exit = true,
            }
        }
    }

    // ---------------------------------------------------------------- graceful stop

    /// Step 1: no new connection, no more input; storage replies and output go on.
    fn stop_reading(&mut self, ack: &Sender<u16>, deadline: Instant) {
        for (l, _) in &mut self.listeners {
            let _ = self.poll.registry().deregister(l);
        }
        self.listeners.clear();
        self.retry.clear();
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

    /// Storage jobs of this worker's connections whose reply has not been applied yet.
    fn outstanding_replies(&self) -> usize {
        self.conns
            .iter()
            .filter_map(|(_, c)| c.msg.as_deref())
            .map(MsgConn::pending_len)
            .sum()
    }

    fn unflushed(&self) -> usize {
        self.conns.iter().filter(|(_, c)| !c.out.is_empty()).count()
    }

    /// End of each loop iteration while stopping: report quiet (step 2), exit when flushed
    /// (step 3) or at the deadline.
    fn stop_step(&mut self) {
        let Some(s) = self.stopping.as_ref() else {
            return;
        };
        let (deadline, exit) = (s.deadline, s.exit);
        if s.quiet.is_some() && self.outstanding_replies() == 0 {
            if let Some(q) = self.stopping.as_mut().and_then(|s| s.quiet.take()) {
                let _ = q.send(self.id);
            }
        }
        if exit && self.unflushed() == 0 {
            self.close_all();
        } else if Instant::now() >= deadline {
            log::warn!(
                target: "net",
                "worker {}: StopTimeout reached with {} storage replies outstanding and {} connections not flushed; closing {} connections",
                self.id,
                self.outstanding_replies(),
                self.unflushed(),
                self.conns.len()
            );
            self.close_all();
        }
    }

    /// Closes every connection (its unread input discarded first, so the close is a FIN) and
    /// ends the loop. Sessions are not logged out one by one: the process is ending.
    fn close_all(&mut self) {
        let n = self.conns.len();
        let mut scratch = std::mem::take(&mut self.scratch);
        for mut c in self.conns.drain() {
            let _ = self.poll.registry().deregister(&mut c.stream);
            discard_input(&mut c.stream, &mut scratch);
            let counter = match c.role {
                Role::Login => &self.st.login_conns,
                Role::Msg => &self.st.msg_conns,
            };
            counter.fetch_sub(1, Ordering::Relaxed);
        }
        self.scratch = scratch;
        self.local.clear();
        self.done = true;
        log::debug!(target: "net", "worker {} closed {n} connections at stop", self.id);
    }

    fn on_done(&mut self, conn: ConnId, seq: u64, done: Vec<Effect>) {
        let Some(slot) = self.slot_of(conn) else {
            // The requester is gone. What it caused for others still happens: a committed
            // message is delivered to the recipient's sessions even if its sender left.
            bump(&self.st.counters.stale_replies);
            self.apply_orphaned(done);
            return;
        };
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(mc) = c.msg.as_deref_mut() else {
            return;
        };
        if !mc.complete(seq, done) {
            bump(&self.st.counters.stale_replies);
            return;
        }
        let ready = mc.take_ready();
        self.apply(slot, ready);
        let failed_and_answered = self.conns.get(slot).is_some_and(|c| c.hold == Hold::Failed)
            && self.pending_replies(slot) == 0;
        if failed_and_answered {
            self.close_after_flush(slot, ERROR_FLUSH);
        } else if let Some(c) = self.conns.get_mut(slot) {
            if c.hold == Hold::Waiting && !c.closing {
                c.hold = Hold::None;
                self.service(slot);
            }
        }
    }

    fn run_retries(&mut self) {
        for key in std::mem::take(&mut self.retry) {
            let Some(c) = self.conns.get_mut(key.slot) else {
                continue;
            };
            if c.id.generation != key.generation {
                continue;
            }
            if c.hold == Hold::Waiting {
                c.hold = Hold::None;
            }
            self.service(key.slot);
        }
    }

    // ---------------------------------------------------------------- timers

    fn expire_timers(&mut self) {
        let now = Instant::now();
        while let Some((at, key)) = self.timers.pop_due(now) {
            let Some(c) = self.conns.get_mut(key.slot) else {
                continue;
            };
            if c.id.generation != key.generation || c.armed_at != Some(at) {
                continue; // stale entry
            }
            if c.deadline > now {
                c.armed_at = Some(c.deadline);
                self.timers.arm(c.deadline, key);
                continue;
            }
            let reason = if c.closing || c.hold == Hold::Failed {
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
            self.close_now(key.slot, reason);
        }
    }

    fn resume_paused(&mut self) {
        let now = Instant::now();
        while let Some((at, key)) = self.resumes.pop_due(now) {
            let Some(c) = self.conns.get_mut(key.slot) else {
                continue;
            };
            if c.id.generation != key.generation || c.hold != Hold::Paused(at) {
                continue;
            }
            c.hold = Hold::None;
            // Time paused by the server does not count as idle (B-HB-2).
            self.touch_idle(key.slot);
            self.service(key.slot);
        }
    }

    // ---------------------------------------------------------------- output

    fn flush_dirty(&mut self) {
        let dirty = self.dirty.take();
        for &slot in &dirty {
            self.flush(slot);
        }
        self.dirty.reuse(dirty);
    }

    fn flush(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let token = Token(CONN_BASE + slot);
        match c.out.flush_registered(
            &mut c.stream,
            self.poll.registry(),
            token,
            &mut c.want_write,
        ) {
            Ok(Flushed::All) if c.closing => self.close_now(slot, "closed after flush"),
            Ok(_) => {}
            Err(e) => self.close_now(slot, &format!("write error: {e}")),
        }
    }

    fn wake_touched(&mut self) {
        for (i, t) in self.touched.iter_mut().enumerate() {
            if std::mem::take(t) {
                if let Some(h) = self.st.workers().all().get(i) {
                    h.wake();
                }
            }
        }
    }

    /// Removes the connection at once; a registered session ends (B-KICK-4).
    fn close_now(&mut self, slot: usize, why: &str) {
        if !self.conns.contains(slot) {
            return;
        }
        let mut c = self.conns.remove(slot);
        let _ = self.poll.registry().deregister(&mut c.stream);
        let counter = match c.role {
            Role::Login => &self.st.login_conns,
            Role::Msg => &self.st.msg_conns,
        };
        counter.fetch_sub(1, Ordering::Relaxed);
        let user = c
            .msg
            .as_ref()
            .and_then(|m| m.session.as_ref())
            .map(|s| s.user_id);
        log::debug!(target: "net", "conn={:?} user={user:?} closed: {why}", c.id);
        if let Some(user) = user {
            if let Some(slots) = self.local.get_mut(&user) {
                slots.retain(|&s| s != slot);
                if slots.is_empty() {
                    self.local.remove(&user);
                }
            }
            self.st.tokens.lock().session_ended(user, Instant::now());
            if let Some(change) = self.st.presence.logout(user, c.id) {
                notify_watchers(&self.st, change);
            }
        }
    }
}

/// Reads and drops what the peer sent, up to [`DISCARD_LIMIT`] or until nothing is left.
fn discard_input(stream: &mut mio::net::TcpStream, buf: &mut [u8]) {
    let mut left = DISCARD_LIMIT;
    while left > 0 {
        match stream.read(buf) {
            Ok(0) => return,
            Ok(n) => left = left.saturating_sub(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Whether a client command is served on this port (protocol.md section 1).
fn accepted_on(role: Role, module: u16, command: u16) -> bool {
    match role {
        Role::Login => (module, command) == (1, 1),
        Role::Msg => {
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
pub fn notify_watchers(st: &Arc<State>, c: Change) {
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
        let bytes: Shared = crate::msg::other::status_notify(c.user, c.new, 0).into();
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
    if st.readers.submit_keyed(c.user, job).is_err() {
        bump(&st.counters.store_failures);
        log::warn!(target: "msg", "presence of {} not sent: reader queue full", c.user);
    }
}

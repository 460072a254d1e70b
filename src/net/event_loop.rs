//! One event loop thread: a mio `Poll` over its listeners and connections, serving one
//! [`Service`]. Every role runs on this loop: the msg workers (msg and login ports), the file
//! role, msfs and the admin API.
//!
//! Per iteration: poll; accept; read and frame input (each read costs only its new bytes: a
//! partial frame is kept and extended in place); apply the service's actions; drain the
//! channel (bounded per iteration); run held connections the service resumed; expire
//! deadlines; retry posts to full peer channels; the service's tick; flush output; wake each
//! peer loop posted to, once. Nothing here blocks.
//!
//! Limits, each with its overflow action:
//! - connections per listener (`max_conns`, shared by the loops of one port) and per source
//!   address (`max_per_ip`): over it a connection is accepted and closed at once
//!   (`conn_cap_rejects`);
//! - output per connection (`out_cap`): over it on [`Action::Send`] the connection is closed
//!   (`slow_consumer_closes`); when it goes over half of it, and back, the service is told
//!   ([`Service::on_output_level`]) and may hold the input that adds to it;
//! - partial input of all loops of the process ([`InputBudget`]): a read that takes the total
//!   over it closes the connection that read it (`input_budget_closes`); a frame's size is
//!   checked by the service's framer before it is buffered;
//! - a peer loop's channel: a post that does not fit waits in this loop's backlog, and this
//!   loop reads no input until the backlog is delivered (the senders slow down, nothing is
//!   dropped).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TrySendError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::outq::{Flushed, OutQueue};
use super::service::{Action, Bytes, Close, Conns, Framing, Outbox, Service, Verdict};
use super::timer::{DeadlineHeap, TimerKey};
use super::{ConnId, DirtySlots, Workers};
use crate::stats::{bump, Counters};

/// The waker's token in every loop's `Poll`.
pub const WAKER: Token = Token(0);
const LISTENER_BASE: usize = 1;
const CONN_BASE: usize = 64;
/// Channel messages handled per iteration before sockets get their turn again.
const MESSAGES_PER_ITERATION: usize = 4096;
/// A connection's input buffer keeps at most this much spare capacity after its frames were
/// consumed (larger ones are shrunk to what is left).
const KEEP_INBUF_CAPACITY: usize = 64 << 10;
/// Unread input discarded per connection before a close at exit or a lingering close (a close
/// with unread input sends RST, which drops output the peer has not received yet).
const DISCARD_LIMIT: usize = 16 << 20;
/// How often posts waiting for room in a peer loop's channel are tried again.
const BACKLOG_RETRY: Duration = Duration::from_millis(1);

/// Partial input buffered by every loop of the process, against one limit
/// (`MaxBufferedInput`).
pub struct InputBudget {
    used: AtomicUsize,
    limit: usize,
}

impl InputBudget {
    pub fn new(limit: usize) -> Arc<InputBudget> {
        Arc::new(InputBudget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Takes `n` more bytes; false (nothing taken) if that would pass the limit.
    fn take(&self, n: usize) -> bool {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = cur.checked_add(n).filter(|&v| v <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(v) => cur = v,
            }
        }
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// A listening socket of a loop and its caps.
pub struct ListenerSpec {
    pub listener: TcpListener,
    /// For logs: "msg", "login", "file", "msfs", "admin".
    pub name: &'static str,
    /// Connections open from this port, shared by the loops that listen on it.
    pub open: Arc<AtomicUsize>,
    pub max_conns: usize,
    /// Connections per source address on this loop; 0 = no cap.
    pub max_per_ip: usize,
}

/// How a loop reads and writes.
pub struct LoopConfig {
    /// This loop's number among the loops of its service (`ConnId::worker`).
    pub id: u16,
    /// Log target.
    pub name: &'static str,
    /// Bytes asked of the socket per read.
    pub read_chunk: usize,
    /// Bytes read from one connection per turn before the others get theirs.
    pub read_budget: usize,
    /// `OutBufCap`.
    pub out_cap: usize,
    pub input_budget: Arc<InputBudget>,
    pub counters: Arc<Counters>,
}

/// One connection as the loop holds it.
struct Slot<C> {
    stream: TcpStream,
    id: ConnId,
    peer: SocketAddr,
    listener: usize,
    /// Unprocessed input: a partial frame, or frames held back.
    inbuf: Vec<u8>,
    /// Bytes of `inbuf` taken from the [`InputBudget`].
    accounted: usize,
    out: OutQueue,
    /// Whether WRITABLE interest is registered.
    want_write: bool,
    deadline: Option<Instant>,
    idle: Option<Duration>,
    /// Bytes written move the idle deadline too ([`Action::IdleTimeoutRw`]).
    idle_rw: bool,
    /// Run [`Service::on_flushed`] when the output is all written.
    notify_flushed: bool,
    /// Deadline of this connection's live entry in the heap.
    armed_at: Option<Instant>,
    /// Close once flushed; no more input.
    closing: Option<Close>,
    /// Lingering after a flushed close: input is discarded until EOF or the deadline.
    lingering: bool,
    held: bool,
    resume_at: Option<Instant>,
    input_stopped: bool,
    /// Queued output is over half of `out_cap` (as last told to the service).
    out_high: bool,
    svc: C,
}

struct SlotConns<'a, C> {
    conns: &'a mut Slab<Slot<C>>,
    worker: u16,
}

impl<C> Conns<C> for SlotConns<'_, C> {
    fn get_mut(&mut self, id: ConnId) -> Option<&mut C> {
        if id.worker != self.worker {
            return None;
        }
        self.conns
            .get_mut(id.slot as usize)
            .filter(|s| s.id.generation == id.generation)
            .map(|s| &mut s.svc)
    }
}

pub struct EventLoop<S: Service> {
    cfg: LoopConfig,
    poll: Poll,
    rx: Receiver<S::Msg>,
    peers: Workers<S::Msg>,
    svc: S,
    listeners: Vec<ListenerSpec>,
    /// Open connections per (listener, source address).
    per_ip: HashMap<(usize, IpAddr), usize>,
    conns: Slab<Slot<S::Conn>>,
    next_generation: u32,
    timers: DeadlineHeap,
    resumes: DeadlineHeap,
    /// Connections to service again (resumed, or out of read budget): in this iteration, or
    /// the next if put back while the list is run.
    ready: Vec<TimerKey>,
    /// Connections whose readiness came while input was paused for the backlog.
    starved: Vec<TimerKey>,
    dirty: DirtySlots,
    touched: Vec<bool>,
    /// Posts to peer loops whose channel was full, per peer, in order.
    backlog: Vec<VecDeque<S::Msg>>,
    /// Posts to this loop itself.
    own: VecDeque<S::Msg>,
    out: Outbox<S::Msg>,
    scratch: Vec<u8>,
    reading_stopped: bool,
    exit_at: Option<Instant>,
    more_messages: bool,
    done: bool,
}

impl<S: Service> EventLoop<S> {
    /// A loop over `listeners` (registered here) with `rx` as its channel; `peers` are the
    /// handles of every loop of the service, this one included, indexed by id.
    pub fn new(
        cfg: LoopConfig,
        poll: Poll,
        rx: Receiver<S::Msg>,
        peers: Workers<S::Msg>,
        svc: S,
        listeners: Vec<ListenerSpec>,
    ) -> io::Result<Self> {
        let mut listeners = listeners;
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry().register(
                &mut l.listener,
                Token(LISTENER_BASE + i),
                Interest::READABLE,
            )?;
        }
        let n = peers.all().len();
        let scratch = vec![0u8; cfg.read_chunk.max(4096)];
        Ok(EventLoop {
            cfg,
            poll,
            rx,
            peers,
            svc,
            listeners,
            per_ip: HashMap::new(),
            conns: Slab::new(),
            next_generation: 1,
            timers: DeadlineHeap::default(),
            resumes: DeadlineHeap::default(),
            ready: Vec::new(),
            starved: Vec::new(),
            dirty: DirtySlots::default(),
            touched: vec![false; n],
            backlog: (0..n).map(|_| VecDeque::new()).collect(),
            own: VecDeque::new(),
            out: Outbox::default(),
            scratch,
            reading_stopped: false,
            exit_at: None,
            more_messages: false,
            done: false,
        })
    }

    /// Runs until the service asks to exit (or polling fails).
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.done {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!(target: "net", "{} {} poll failed: {e}", self.cfg.name, self.cfg.id);
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
            self.run_ready();
            self.expire_timers();
            self.resume_due();
            self.retry_backlog();
            self.svc.on_tick(&mut self.out, Instant::now());
            self.apply();
            self.run_ready();
            self.flush_dirty();
            self.wake_touched();
            self.exit_step();
        }
        self.svc.on_exit();
        log::debug!(target: "net", "{} {} stopped", self.cfg.name, self.cfg.id);
    }

    fn poll_timeout(&self) -> Duration {
        // Dirty: output queued while the last flush ran (by `on_flushed`).
        if !self.ready.is_empty()
            || self.more_messages
            || !self.own.is_empty()
            || !self.dirty.is_empty()
        {
            return Duration::ZERO;
        }
        if self.backlog.iter().any(|b| !b.is_empty()) {
            return BACKLOG_RETRY;
        }
        let now = Instant::now();
        let next = [
            self.timers.next(),
            self.resumes.next(),
            self.svc.next_tick(),
            self.exit_at,
        ]
        .into_iter()
        .flatten()
        .min();
        let cap = Duration::from_secs(1);
        next.map_or(cap, |t| t.saturating_duration_since(now).min(cap))
    }

    fn slot_of(&self, id: ConnId) -> Option<usize> {
        let slot = id.slot as usize;
        match self.conns.get(slot) {
            Some(c) if id.worker == self.cfg.id && c.id.generation == id.generation => Some(slot),
            _ => None,
        }
    }

    fn key(&self, slot: usize) -> Option<TimerKey> {
        self.conns.get(slot).map(|c| TimerKey {
            slot,
            generation: c.id.generation,
        })
    }

    fn slot_of_key(&self, key: TimerKey) -> Option<usize> {
        self.conns
            .get(key.slot)
            .filter(|c| c.id.generation == key.generation)
            .map(|_| key.slot)
    }

    // ---------------------------------------------------------------- accept

    fn accept(&mut self, idx: usize) {
        loop {
            if self.reading_stopped {
                return;
            }
            let Some(l) = self.listeners.get(idx) else {
                return;
            };
            let (stream, peer) = match l.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and retry on the next readiness event.
                    log::warn!(target: "net", "accept on {} port failed: {e}", l.name);
                    return;
                }
            };
            if l.open.fetch_add(1, Ordering::Relaxed) >= l.max_conns {
                l.open.fetch_sub(1, Ordering::Relaxed);
                bump(&self.cfg.counters.conn_cap_rejects);
                log::debug!(target: "net", "{} port: connection cap reached, closing {peer}", l.name);
                continue; // accepted and closed at once, no data
            }
            let from_ip = self.per_ip.get(&(idx, peer.ip())).copied().unwrap_or(0);
            if l.max_per_ip > 0 && from_ip >= l.max_per_ip {
                l.open.fetch_sub(1, Ordering::Relaxed);
                bump(&self.cfg.counters.conn_cap_rejects);
                log::warn!(target: "net", "{} port: cap per address reached, closing {peer}", l.name);
                continue;
            }
            let open = Arc::clone(&l.open);
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let slot = entry.key();
            let Ok(slot32) = u32::try_from(slot) else {
                open.fetch_sub(1, Ordering::Relaxed);
                continue;
            };
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1).max(1);
            let id = ConnId {
                worker: self.cfg.id,
                slot: slot32,
                generation,
            };
            let Some(svc) = self.svc.accept(&mut self.out, id, idx, peer) else {
                open.fetch_sub(1, Ordering::Relaxed);
                self.apply();
                continue;
            };
            let mut stream = stream;
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(CONN_BASE + slot),
                Interest::READABLE,
            ) {
                log::warn!(target: "net", "register failed: {e}");
                open.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            *self.per_ip.entry((idx, peer.ip())).or_insert(0) += 1;
            entry.insert(Slot {
                stream,
                id,
                peer,
                listener: idx,
                inbuf: Vec::new(),
                accounted: 0,
                out: OutQueue::default(),
                want_write: false,
                deadline: None,
                idle: None,
                idle_rw: false,
                notify_flushed: false,
                armed_at: None,
                closing: None,
                lingering: false,
                held: false,
                resume_at: None,
                input_stopped: false,
                out_high: false,
                svc,
            });
            log::debug!(target: "net", "conn={id:?} accepted on {} port from {peer}", self.listeners.get(idx).map_or("?", |l| l.name));
            // The service's accept actions (a deadline) need the slot.
            self.apply();
        }
    }

    // ---------------------------------------------------------------- input

    /// Processes buffered input, then reads until the socket is drained, the read budget is
    /// spent, or the connection's input is held.
    fn service(&mut self, slot: usize) {
        if self.conns.get(slot).is_some_and(|c| c.lingering) {
            self.linger_read(slot);
            return;
        }
        if self.reading_stopped {
            return; // stopping: no new request enters (buffered input is dropped)
        }
        if self.backlog.iter().any(|b| !b.is_empty()) {
            if let Some(k) = self.key(slot) {
                self.starved.push(k);
            }
            return;
        }
        let mut budget = self.cfg.read_budget;
        loop {
            let Some(c) = self.conns.get_mut(slot) else {
                return;
            };
            if c.closing.is_some() || c.held || c.input_stopped {
                return;
            }
            if !c.inbuf.is_empty() {
                // Processed in place: the buffer goes back without a copy, minus the consumed
                // prefix (dropped once per batch of frames), so a read while a large frame is
                // still incomplete costs only its new bytes.
                let mut buf = std::mem::take(&mut c.inbuf);
                let (used, go_on) = self.process(slot, &buf);
                let Some(c) = self.conns.get_mut(slot) else {
                    return;
                };
                if used < buf.len() && c.closing.is_none() && !c.input_stopped {
                    if used > 0 {
                        buf.drain(..used);
                        if buf.capacity() > KEEP_INBUF_CAPACITY && buf.capacity() > 4 * buf.len() {
                            buf.shrink_to_fit();
                        }
                    }
                    c.inbuf = buf;
                }
                if !self.account(slot) || !go_on {
                    return;
                }
            }
            if budget == 0 {
                if let Some(k) = self.key(slot) {
                    self.ready.push(k);
                }
                return;
            }
            let Some(c) = self.conns.get_mut(slot) else {
                return;
            };
            if c.held {
                return;
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            let read = c.stream.read(&mut scratch);
            match read {
                Ok(0) => {
                    self.scratch = scratch;
                    self.peer_closed(slot);
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    if let (Some(idle), None) = (c.idle, &c.closing) {
                        let at = Instant::now() + idle;
                        self.set_deadline(slot, Some(at));
                    }
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
                                if !rest.is_empty() && c.closing.is_none() && !c.input_stopped {
                                    c.inbuf.extend_from_slice(rest);
                                }
                            }
                        }
                    }
                    self.scratch = scratch;
                    if !self.account(slot) {
                        return;
                    }
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

    /// Brings the connection's share of the [`InputBudget`] to its buffered input; false (and
    /// the connection closed) if the budget has no room for it.
    fn account(&mut self, slot: usize) -> bool {
        let Some(c) = self.conns.get_mut(slot) else {
            return false;
        };
        let now = c.inbuf.len();
        if now <= c.accounted {
            self.cfg.input_budget.give(c.accounted - now);
            c.accounted = now;
            return true;
        }
        if self.cfg.input_budget.take(now - c.accounted) {
            c.accounted = now;
            return true;
        }
        bump(&self.cfg.counters.input_budget_closes);
        log::warn!(target: "net", "conn={:?} peer={} closed: MaxBufferedInput reached", c.id, c.peer);
        self.close_now(slot, "MaxBufferedInput reached");
        false
    }

    /// Frames and handles what is at the front of `buf`. Returns the bytes consumed and whether
    /// the caller may go on reading.
    fn process(&mut self, slot: usize, buf: &[u8]) -> (usize, bool) {
        let mut pos = 0;
        loop {
            let rest = buf.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                return (pos, true);
            }
            let Some(c) = self.conns.get_mut(slot) else {
                return (pos, false);
            };
            let id = c.id;
            let framing = self.svc.frame(&mut self.out, id, &mut c.svc, rest);
            let verdict = match framing {
                Framing::Partial => {
                    self.apply();
                    return (pos, true);
                }
                Framing::Complete(n) if n > 0 && n <= rest.len() => {
                    let frame = rest.get(..n).unwrap_or_default();
                    let v = self.svc.on_frame(&mut self.out, id, &mut c.svc, frame);
                    if v == Verdict::Consumed {
                        pos += n;
                    } else {
                        c.held = true;
                    }
                    v
                }
                Framing::Complete(n) => {
                    let why = format!("framer returned {n} of {} bytes", rest.len());
                    c.input_stopped = true;
                    self.svc.on_bad_input(&mut self.out, id, &mut c.svc, &why);
                    self.apply();
                    return (pos, false);
                }
                Framing::Invalid(why) => {
                    c.input_stopped = true;
                    self.svc.on_bad_input(&mut self.out, id, &mut c.svc, &why);
                    self.apply();
                    return (pos, false);
                }
            };
            self.apply();
            if verdict == Verdict::Hold {
                return (pos, false);
            }
            match self.conns.get(slot) {
                Some(c) if c.id == id && c.closing.is_none() && !c.held && !c.input_stopped => {}
                _ => return (pos, false),
            }
        }
    }

    fn peer_closed(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let id = c.id;
        c.input_stopped = true;
        self.svc.on_eof(&mut self.out, id, &mut c.svc);
        self.apply();
    }

    /// Reads and drops input of a lingering connection; closes at EOF.
    fn linger_read(&mut self, slot: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut gone = false;
        if let Some(c) = self.conns.get_mut(slot) {
            loop {
                match c.stream.read(&mut scratch) {
                    Ok(0) => {
                        gone = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        gone = true;
                        break;
                    }
                }
            }
        }
        self.scratch = scratch;
        if gone {
            self.close_now(slot, "closed after flush");
        }
    }

    /// Moves a connection's deadline; arms an earlier heap entry when it moved closer.
    fn set_deadline(&mut self, slot: usize, at: Option<Instant>) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        c.deadline = at;
        if let Some(at) = at {
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
    }

    // ---------------------------------------------------------------- actions

    /// Carries out the outbox, in order. Actions of callbacks run meanwhile (a close's
    /// `on_closed`) are carried out where they happen.
    fn apply(&mut self) {
        let mut actions = self.out.take();
        if actions.is_empty() {
            return;
        }
        for a in actions.drain(..) {
            self.act(a);
        }
        if self.out.is_empty() {
            self.out.restore(actions);
        }
    }

    fn act(&mut self, a: Action<S::Msg>) {
        match a {
            Action::Send(conn, bytes) => self.send(conn, bytes, true),
            Action::Answer(conn, bytes) => self.send(conn, bytes, false),
            Action::Close(conn, how) => {
                if let Some(slot) = self.slot_of(conn) {
                    match how {
                        Close::Now(why) => self.close_now(slot, &why),
                        how => self.close_after_flush(slot, how),
                    }
                }
            }
            Action::Deadline(conn, at) => {
                if let Some(slot) = self.slot_of(conn) {
                    if self.conns.get(slot).is_some_and(|c| c.closing.is_none()) {
                        self.set_deadline(slot, at);
                    }
                }
            }
            Action::IdleTimeout(conn, d) | Action::IdleTimeoutRw(conn, d) => {
                let rw = matches!(a, Action::IdleTimeoutRw(..));
                if let Some(slot) = self.slot_of(conn) {
                    if let Some(c) = self.conns.get_mut(slot).filter(|c| c.closing.is_none()) {
                        c.idle = d;
                        c.idle_rw = rw;
                        if let Some(d) = d {
                            self.set_deadline(slot, Some(Instant::now() + d));
                        }
                    }
                }
            }
            Action::Hold(conn) => {
                if let Some(c) = self.slot_of(conn).and_then(|s| self.conns.get_mut(s)) {
                    c.held = true;
                }
            }
            Action::NotifyFlushed(conn) => {
                if let Some(slot) = self.slot_of(conn) {
                    if let Some(c) = self.conns.get_mut(slot) {
                        c.notify_flushed = true;
                    }
                    self.dirty.mark(slot); // a flush that finds nothing queued tells at once
                }
            }
            Action::Resume(conn) => {
                if let Some(slot) = self.slot_of(conn) {
                    if let Some(c) = self.conns.get_mut(slot) {
                        c.held = false;
                        c.resume_at = None;
                        self.ready.push(TimerKey {
                            slot,
                            generation: conn.generation,
                        });
                    }
                }
            }
            Action::ResumeAt(conn, at) => {
                if let Some(slot) = self.slot_of(conn) {
                    if let Some(c) = self.conns.get_mut(slot) {
                        c.held = true;
                        c.resume_at = Some(at);
                        self.resumes.arm(
                            at,
                            TimerKey {
                                slot,
                                generation: conn.generation,
                            },
                        );
                    }
                }
            }
            Action::StopInput(conn) => {
                if let Some(slot) = self.slot_of(conn) {
                    if let Some(c) = self.conns.get_mut(slot) {
                        c.input_stopped = true;
                        c.inbuf = Vec::new();
                    }
                    self.account(slot);
                }
            }
            Action::Post(worker, msg) => self.post(worker, msg),
            Action::StopReading => self.stop_reading(),
            Action::Exit { deadline } => {
                self.exit_at = Some(self.exit_at.map_or(deadline, |d| d.min(deadline)));
            }
        }
    }

    fn send(&mut self, conn: ConnId, bytes: Bytes, capped: bool) {
        let Some(slot) = self.slot_of(conn) else {
            return;
        };
        let cap = self.cfg.out_cap;
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.closing.is_some() {
            return; // a closing connection gets nothing after what was queued before
        }
        match bytes {
            Bytes::Owned(v) => c.out.push_owned(v),
            Bytes::Shared(s) => c.out.push_shared(s),
            Bytes::Mapped(m, r) => c.out.push_mapped(m, r),
        }
        if capped && c.out.len() > cap {
            bump(&self.cfg.counters.slow_consumer_closes);
            self.close_now(slot, "slow consumer (OutBufCap)");
            return;
        }
        self.dirty.mark(slot);
        self.output_level(slot);
    }

    /// Tells the service when a connection's queued output goes over half of `out_cap`, or is
    /// written back down to half ([`Service::on_output_level`]).
    fn output_level(&mut self, slot: usize) {
        let half = self.cfg.out_cap / 2;
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let high = c.out.len() > half;
        if high == c.out_high {
            return;
        }
        c.out_high = high;
        let id = c.id;
        self.svc
            .on_output_level(&mut self.out, id, &mut c.svc, high);
        self.apply();
    }

    fn post(&mut self, worker: u16, msg: S::Msg) {
        if worker == self.cfg.id {
            self.own.push_back(msg);
            return;
        }
        let Some(h) = self.peers.get(worker) else {
            return;
        };
        let i = usize::from(worker);
        let waiting = self.backlog.get(i).is_some_and(|b| !b.is_empty());
        let msg = if waiting {
            msg
        } else {
            match h.tx.try_send(msg) {
                Ok(()) => {
                    if let Some(t) = self.touched.get_mut(i) {
                        *t = true;
                    }
                    return;
                }
                Err(TrySendError::Full(m)) => {
                    bump(&self.cfg.counters.channel_full_waits);
                    m
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        };
        if let Some(b) = self.backlog.get_mut(i) {
            b.push_back(msg);
        }
        if let Some(t) = self.touched.get_mut(i) {
            *t = true;
        }
    }

    fn retry_backlog(&mut self) {
        let mut cleared = false;
        for (i, b) in self.backlog.iter_mut().enumerate() {
            if b.is_empty() {
                continue;
            }
            let Some(h) = self.peers.all().get(i) else {
                b.clear();
                continue;
            };
            while let Some(m) = b.pop_front() {
                match h.tx.try_send(m) {
                    Ok(()) => {}
                    Err(TrySendError::Full(m)) => {
                        b.push_front(m);
                        break;
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        b.clear();
                        break;
                    }
                }
            }
            if let Some(t) = self.touched.get_mut(i) {
                *t = true;
            }
            cleared |= b.is_empty();
        }
        if cleared && self.backlog.iter().all(VecDeque::is_empty) {
            self.ready.append(&mut self.starved);
        }
    }

    fn close_after_flush(&mut self, slot: usize, how: Close) {
        let limit = match &how {
            Close::AfterFlush(d) | Close::Linger(d) => *d,
            Close::Now(_) => Duration::ZERO,
        };
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.closing.is_some() {
            return;
        }
        c.closing = Some(how);
        c.inbuf = Vec::new();
        self.account(slot);
        self.set_deadline(slot, Some(Instant::now() + limit));
        self.dirty.mark(slot);
    }

    /// Removes the connection at once and tells the service.
    fn close_now(&mut self, slot: usize, why: &str) {
        if !self.conns.contains(slot) {
            return;
        }
        let mut c = self.conns.remove(slot);
        let _ = self.poll.registry().deregister(&mut c.stream);
        self.forget(&c);
        log::debug!(target: "net", "conn={:?} peer={} closed: {why}", c.id, c.peer);
        self.svc.on_closed(&mut self.out, c.id, c.svc, why);
        self.apply();
    }

    /// Gives back what a removed connection held: its listener's count, its address's count,
    /// its input budget.
    fn forget(&mut self, c: &Slot<S::Conn>) {
        if let Some(l) = self.listeners.get(c.listener) {
            l.open.fetch_sub(1, Ordering::Relaxed);
        }
        let key = (c.listener, c.peer.ip());
        if let Some(n) = self.per_ip.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&key);
            }
        }
        self.cfg.input_budget.give(c.accounted);
    }

    // ---------------------------------------------------------------- channel

    fn drain_channel(&mut self) {
        let mut n = 0;
        while let Some(m) = self.own.pop_front() {
            self.message(m);
        }
        self.more_messages = false;
        while let Ok(m) = self.rx.try_recv() {
            self.message(m);
            n += 1;
            if n >= MESSAGES_PER_ITERATION {
                self.more_messages = true;
                break;
            }
        }
    }

    fn message(&mut self, m: S::Msg) {
        let mut conns = SlotConns {
            conns: &mut self.conns,
            worker: self.cfg.id,
        };
        self.svc.on_message(&mut self.out, &mut conns, m);
        self.apply();
    }

    fn wake_touched(&mut self) {
        for (i, t) in self.touched.iter_mut().enumerate() {
            if std::mem::take(t) {
                if let Some(h) = self.peers.all().get(i) {
                    h.wake();
                }
            }
        }
    }

    // ---------------------------------------------------------------- held input

    /// Services each listed connection once. Those put back meanwhile (read budget spent
    /// again, resumed by another's frame) wait for the next iteration, which polls without
    /// sleeping: a connection whose socket never drains gets turns in each iteration, not the
    /// whole loop.
    fn run_ready(&mut self) {
        for key in std::mem::take(&mut self.ready) {
            if let Some(slot) = self.slot_of_key(key) {
                self.service(slot);
            }
        }
    }

    fn resume_due(&mut self) {
        let now = Instant::now();
        while let Some((at, key)) = self.resumes.pop_due(now) {
            let Some(slot) = self.slot_of_key(key) else {
                continue;
            };
            let Some(c) = self.conns.get_mut(slot) else {
                continue;
            };
            if c.resume_at != Some(at) {
                continue;
            }
            c.resume_at = None;
            c.held = false;
            // Time the server held the input does not count as idle.
            if let (Some(idle), None) = (c.idle, &c.closing) {
                self.set_deadline(slot, Some(now + idle));
            }
            self.service(slot);
        }
    }

    // ---------------------------------------------------------------- timers

    fn expire_timers(&mut self) {
        let now = Instant::now();
        while let Some((at, key)) = self.timers.pop_due(now) {
            let Some(slot) = self.slot_of_key(key) else {
                continue;
            };
            let Some(c) = self.conns.get_mut(slot) else {
                continue;
            };
            if c.armed_at != Some(at) {
                continue; // stale entry
            }
            c.armed_at = None;
            match c.deadline {
                None => continue,
                Some(d) if d > now => {
                    c.armed_at = Some(d);
                    self.timers.arm(d, key);
                    continue;
                }
                Some(_) => {}
            }
            c.deadline = None;
            if c.closing.is_some() {
                self.close_now(slot, "flush limit reached");
                continue;
            }
            let id = c.id;
            self.svc.on_timeout(&mut self.out, id, &mut c.svc);
            self.apply();
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
        if c.lingering {
            return;
        }
        let token = Token(CONN_BASE + slot);
        let queued = c.out.len();
        let flushed = c.out.flush_registered(
            &mut c.stream,
            self.poll.registry(),
            token,
            &mut c.want_write,
        );
        if c.idle_rw && c.out.len() < queued && c.closing.is_none() {
            if let Some(idle) = c.idle {
                self.set_deadline(slot, Some(Instant::now() + idle));
            }
        }
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        match flushed {
            Ok(Flushed::All) => match &c.closing {
                Some(Close::Linger(_)) => {
                    // The peer reads the reply rather than a reset: half-close, then drop
                    // its input until it closes or the limit passes.
                    let _ = c.stream.shutdown(Shutdown::Write);
                    c.lingering = true;
                    self.linger_read(slot);
                }
                Some(_) => self.close_now(slot, "closed after flush"),
                None if c.notify_flushed => {
                    c.notify_flushed = false;
                    let id = c.id;
                    self.svc.on_flushed(&mut self.out, id, &mut c.svc);
                    self.apply();
                }
                None => {}
            },
            Ok(Flushed::Partial) => {}
            Err(e) => {
                self.close_now(slot, &format!("write error: {e}"));
                return;
            }
        }
        self.output_level(slot);
    }

    // ---------------------------------------------------------------- stop

    fn stop_reading(&mut self) {
        // The listeners stay in place (deregistered): connections still open give their
        // count back on close.
        if !self.reading_stopped {
            for l in &mut self.listeners {
                let _ = self.poll.registry().deregister(&mut l.listener);
            }
        }
        self.reading_stopped = true;
        self.ready.clear();
        self.starved.clear();
    }

    fn unflushed(&self) -> usize {
        self.conns.iter().filter(|(_, c)| !c.out.is_empty()).count()
    }

    fn exit_step(&mut self) {
        let Some(at) = self.exit_at else {
            return;
        };
        let unflushed = self.unflushed();
        // Posts waiting for room in a peer's channel (or for this loop) are output too.
        let posts = self.own.len() + self.backlog.iter().map(VecDeque::len).sum::<usize>();
        if (unflushed > 0 || posts > 0) && Instant::now() < at {
            return;
        }
        if unflushed > 0 {
            log::warn!(target: "net", "{} {}: exit deadline reached with {unflushed} connections not flushed", self.cfg.name, self.cfg.id);
        }
        if posts > 0 {
            log::warn!(target: "net", "{} {}: exit deadline reached with {posts} posts not delivered", self.cfg.name, self.cfg.id);
        }
        let n = self.conns.len();
        let mut scratch = std::mem::take(&mut self.scratch);
        let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for slot in slots {
            if self.conns.contains(slot) {
                let mut c = self.conns.remove(slot);
                let _ = self.poll.registry().deregister(&mut c.stream);
                discard_input(&mut c.stream, &mut scratch);
                self.forget(&c);
            }
        }
        self.scratch = scratch;
        self.done = true;
        log::debug!(target: "net", "{} {} closed {n} connections at exit", self.cfg.name, self.cfg.id);
    }
}

/// Reads and drops what the peer sent, up to [`DISCARD_LIMIT`] or until nothing is left.
fn discard_input(stream: &mut TcpStream, buf: &mut [u8]) {
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

#[cfg(test)]
#[path = "event_loop_tests.rs"]
mod tests;

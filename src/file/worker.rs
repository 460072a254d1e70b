//! Thread "file-worker": the sockets of the file port. Framing, timers and output queues as in
//! the msg workers ([`crate::net`]); the decisions are [`Core`]'s.
//!
//! Per connection: one deadline (no 6/1 within `LoginTimeout`, no byte received for
//! `TaskTimeout`, or the flush limit of a closing connection) and one heartbeat time (7/1
//! after 5 s without sending, B-HB-3), both in one deadline heap with lazy re-arming. Input
//! waits while the connection's own io job is in flight, or while its output or (online) its
//! relay peer's output is above half of `OutBufCap`: a client that pipelines pulls or pushes
//! unasked data is slowed down, not dropped. A single PDU can still take a queue over
//! `OutBufCap` (it is at most `MaxPduSize`); that connection is closed as a slow consumer.

use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use memmap2::Mmap;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::core::{Act, Core};
use super::hub::OnDone;
use super::io::IoJob;
use super::link::{self, MirrorTokens};
use super::{Cid, FileMsg};
use crate::config::Config;
use crate::net::outq::{Flushed, OutQueue};
use crate::net::timer::DeadlineHeap;
use crate::net::DirtySlots;
use crate::proto::frame::{self, Header, HEADER_LEN};
use crate::proto::internal::{
    self, LinkDelete, LinkDeleted, LinkHello, LinkTask, LinkTokens, LINK_MODULE,
};
use crate::proto::{Dir, Pdu};
use crate::stats::{bump, Counters};

pub const WAKE: Token = Token(0);
const LISTENER: Token = Token(1);
const CONN_BASE: usize = 2;
/// B-HB-3: a logged-in file connection gets 7/1 after this long without output.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a closing connection may flush (a protocol error, an ended task).
const CLOSE_FLUSH: Duration = Duration::from_secs(5);
/// Bytes read from one connection before the others get their turn.
const READ_BUDGET: usize = 1 << 20;

/// The file role alone: msg servers link in with this secret and feed this mirror.
pub struct LinkSide {
    pub secret: String,
    pub mirror: Arc<MirrorTokens>,
    /// This worker's own channel and waker (answers from the io thread to a link).
    pub back: Sender<FileMsg>,
    pub waker: Arc<mio::Waker>,
}

/// A link stays open without traffic (the msg server holds it).
const LINK_IDLE: Duration = Duration::from_secs(365 * 24 * 3600);

struct FileConn {
    stream: TcpStream,
    /// An authenticated link from a msg server (not a client).
    link: bool,
    generation: u32,
    peer: std::net::SocketAddr,
    inbuf: Vec<u8>,
    out: OutQueue,
    want_write: bool,
    closing: bool,
    /// Close at this time (login timeout, idle timeout or flush limit).
    deadline: Instant,
    /// Send 7/1 at this time if logged in.
    heartbeat: Instant,
    /// The time of this connection's live heap entry.
    armed: Option<Instant>,
}

impl FileConn {
    fn next_due(&self) -> Instant {
        if self.closing {
            self.deadline
        } else {
            self.deadline.min(self.heartbeat)
        }
    }
}

pub struct FileWorker {
    poll: Poll,
    listener: TcpListener,
    rx: Receiver<FileMsg>,
    io: Sender<IoJob>,
    core: Core,
    counters: Arc<Counters>,
    conns: Slab<FileConn>,
    next_generation: u32,
    timers: DeadlineHeap,
    dirty: DirtySlots,
    resume: Vec<Cid>,
    scratch: Vec<u8>,
    max_pdu: u32,
    /// `MaxPduSizeBeforeLogin`: the limit until the connection's 6/1 succeeded.
    max_pdu_before_login: u32,
    max_conns: usize,
    out_cap: usize,
    login_timeout: Duration,
    idle_timeout: Duration,
    link: Option<LinkSide>,
    stop: bool,
}

impl FileWorker {
    pub fn new(
        cfg: &Config,
        poll: Poll,
        listener: std::net::TcpListener,
        (rx, io): (Receiver<FileMsg>, Sender<IoJob>),
        core: Core,
        counters: Arc<Counters>,
        link: Option<LinkSide>,
    ) -> io::Result<FileWorker> {
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(FileWorker {
            poll,
            listener,
            rx,
            io,
            core,
            counters,
            conns: Slab::new(),
            next_generation: 1,
            timers: DeadlineHeap::default(),
            dirty: DirtySlots::default(),
            resume: Vec::new(),
            scratch: vec![0u8; 256 * 1024],
            max_pdu: cfg.net.max_pdu_size,
            max_pdu_before_login: cfg.net.max_pdu_size_before_login,
            max_conns: cfg.net.max_conn_cnt,
            out_cap: cfg.net.out_buf_cap,
            login_timeout: cfg.net.login_timeout,
            idle_timeout: cfg.file.task_timeout,
            link,
            stop: false,
        })
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        while !self.stop {
            let now = Instant::now();
            let next = [self.timers.next(), self.core.next_expiry()]
                .into_iter()
                .flatten()
                .min();
            let timeout = if self.dirty.is_empty() && self.resume.is_empty() {
                next.map_or(Duration::from_secs(1), |t| {
                    t.saturating_duration_since(now).min(Duration::from_secs(1))
                })
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!(target: "file", "file worker poll failed: {e}");
                break;
            }
            // Announcements first: a 6/1 read below may name a task announced just now.
            self.drain_channel();
            for ev in events.iter() {
                match ev.token() {
                    WAKE => {}
                    LISTENER => self.accept(),
                    Token(t) => {
                        let slot = t - CONN_BASE;
                        if ev.is_writable() {
                            self.flush(slot);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.service(slot);
                        }
                    }
                }
            }
            self.drain_channel();
            for cid in std::mem::take(&mut self.resume) {
                if let Some(slot) = self.slot_of(cid) {
                    self.service(slot);
                }
            }
            self.expire();
            self.flush_dirty();
        }
        log::debug!(target: "file", "file worker stopped with {} connections", self.conns.len());
    }

    fn slot_of(&self, cid: Cid) -> Option<usize> {
        match self.conns.get(cid.slot) {
            Some(c) if c.generation == cid.generation => Some(cid.slot),
            _ => None,
        }
    }

    fn cid(&self, slot: usize) -> Option<Cid> {
        self.conns.get(slot).map(|c| Cid {
            slot,
            generation: c.generation,
        })
    }

    fn accept(&mut self) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!(target: "file", "accept on the file port failed: {e}");
                    return;
                }
            };
            if self.conns.len() >= self.max_conns {
                bump(&self.counters.conn_cap_rejects);
                continue; // B-FLOW-2: closed at once
            }
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let slot = entry.key();
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1).max(1);
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(CONN_BASE + slot),
                Interest::READABLE,
            ) {
                log::warn!(target: "file", "register failed: {e}");
                continue;
            }
            let now = Instant::now();
            let deadline = now + self.login_timeout;
            entry.insert(FileConn {
                stream,
                link: false,
                generation,
                peer,
                inbuf: Vec::new(),
                out: OutQueue::default(),
                want_write: false,
                closing: false,
                deadline,
                heartbeat: now + HEARTBEAT,
                armed: Some(deadline.min(now + HEARTBEAT)),
            });
            self.timers
                .arm(deadline.min(now + HEARTBEAT), Cid { slot, generation });
            self.core.accepted(Cid { slot, generation });
            log::debug!(target: "file", "file connection {slot} from {peer}");
        }
    }

    /// Whether the connection may process more input now.
    fn may_process(&self, slot: usize) -> bool {
        let Some(c) = self.conns.get(slot) else {
            return false;
        };
        let cid = Cid {
            slot,
            generation: c.generation,
        };
        let high = |slot: usize| {
            self.conns
                .get(slot)
                .is_some_and(|c| c.out.len() > self.out_cap / 2)
        };
        // A relayed PDU lands on the peer's queue: hold this side while the peer's is high.
        let peer_high = self
            .core
            .peer_of(cid)
            .and_then(|p| self.slot_of(p))
            .is_some_and(high);
        !c.closing && !high(slot) && !peer_high && !self.core.waiting(cid)
    }

    fn service(&mut self, slot: usize) {
        let mut budget = READ_BUDGET;
        loop {
            if !self.process(slot) {
                return;
            }
            let Some(c) = self.conns.get_mut(slot) else {
                return;
            };
            if budget == 0 {
                self.resume.push(Cid {
                    slot,
                    generation: c.generation,
                });
                return;
            }
            match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    self.close_now(slot, "peer closed");
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    c.inbuf
                        .extend_from_slice(self.scratch.get(..n).unwrap_or_default());
                    if !c.closing {
                        let idle = Instant::now() + self.idle_timeout;
                        if self.core.logged_in(Cid {
                            slot,
                            generation: c.generation,
                        }) {
                            c.deadline = idle;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.process(slot);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_now(slot, &format!("read error: {e}"));
                    return;
                }
            }
        }
    }

    /// Handles whole PDUs at the front of the input. False when the connection should not be
    /// read further now (held, closing or gone).
    fn process(&mut self, slot: usize) -> bool {
        let Some(c) = self.conns.get_mut(slot) else {
            return false;
        };
        // Frames are handled in place; the consumed prefix is dropped once at the end.
        let mut buf = std::mem::take(&mut c.inbuf);
        let mut pos = 0;
        let go_on = loop {
            if !self.may_process(slot) {
                break false;
            }
            let rest = buf.get(pos..).unwrap_or_default();
            // Before its 6/1 succeeded a connection may send only small PDUs (P-5).
            let logged_in = self.cid(slot).is_some_and(|cid| self.core.logged_in(cid));
            let max = if logged_in {
                self.max_pdu
            } else {
                self.max_pdu.min(self.max_pdu_before_login)
            };
            let header = match frame::check(rest, max) {
                Ok(Some(h)) => h,
                Ok(None) => break true,
                Err(e) => {
                    bump(&self.counters.proto_errors);
                    if let Some(c) = self.conns.get(slot) {
                        log::warn!(target: "file", "peer={} protocol error: {e}", c.peer);
                    }
                    self.close_after_flush(slot);
                    break false;
                }
            };
            let len = header.length as usize;
            let raw = rest.get(..len).unwrap_or_default();
            self.handle_frame(slot, &header, raw);
            pos += len;
        };
        if let Some(c) = self.conns.get_mut(slot) {
            if !c.closing {
                buf.drain(..pos.min(buf.len()));
                c.inbuf = buf;
            }
        }
        go_on
    }

    fn handle_frame(&mut self, slot: usize, h: &Header, raw: &[u8]) {
        let Some(cid) = self.cid(slot) else {
            return;
        };
        if h.module == LINK_MODULE && self.link.is_some() {
            self.on_link(slot, h, raw);
            return;
        }
        if self.conns.get(slot).is_some_and(|c| c.link) {
            bump(&self.counters.unknown_pdus);
            return;
        }
        let mc = (h.module, h.command);
        // protocol.md section 1: the file port serves 6/1 .. 6/5 and 7/1 only.
        let served = (h.module == 6 && (1..=5).contains(&h.command)) || mc == (7, 1);
        if !served || !crate::proto::is_known(Dir::ToServer, h.module, h.command) {
            bump(&self.counters.unknown_pdus);
            return;
        }
        // P-13: before login only 6/1 and 7/1.
        if !self.core.logged_in(cid) && mc != (6, 1) && mc != (7, 1) {
            bump(&self.counters.ignored_before_login);
            return;
        }
        let body = raw.get(HEADER_LEN..).unwrap_or_default();
        let pdu = match Pdu::decode_noting_short(Dir::ToServer, h.module, h.command, body) {
            Ok(Some((p, short))) => {
                if short {
                    bump(&self.counters.short_requests);
                }
                p
            }
            Ok(None) => {
                bump(&self.counters.unknown_pdus);
                return;
            }
            Err(e) => {
                bump(&self.counters.proto_errors);
                log::warn!(target: "file", "slot={slot} protocol error {}/{}: {e}", h.module, h.command);
                self.close_after_flush(slot);
                return;
            }
        };
        let now = Instant::now();
        let was_in = self.core.logged_in(cid);
        let acts = self.core.on_pdu(cid, h, raw, pdu, now);
        if !was_in && self.core.logged_in(cid) {
            if let Some(c) = self.conns.get_mut(slot) {
                c.deadline = now + self.idle_timeout;
            }
        }
        self.apply(acts);
    }

    /// A link PDU (file role alone): hello first, then tasks, token states and deletions.
    fn on_link(&mut self, slot: usize, h: &Header, raw: &[u8]) {
        let Some(side) = &self.link else {
            return;
        };
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let now = Instant::now();
        if !c.link {
            let ok = h.command == internal::HELLO
                && internal::decode::<LinkHello>(raw).is_ok_and(|hello| {
                    crate::auth::secret_eq(hello.secret, side.secret.as_bytes())
                });
            if !ok {
                bump(&self.counters.file_login_refused);
                log::warn!(target: "file", "link from {} refused: bad hello", c.peer);
                self.close_after_flush(slot);
                return;
            }
            c.link = true;
            c.deadline = now + LINK_IDLE;
            log::info!(target: "file", "msg server linked from {}", c.peer);
            let welcome = internal::frame::<LinkHello>(internal::WELCOME, None);
            if let Some(cid) = self.cid(slot) {
                self.queue(cid, welcome, None);
            }
            return;
        }
        let acts = match h.command {
            internal::TASK => match internal::decode::<LinkTask>(raw)
                .ok()
                .as_ref()
                .and_then(link::task_of)
            {
                Some(t) => self.core.task_created(t, now),
                None => {
                    self.link_error(slot);
                    return;
                }
            },
            internal::TOKENS => match internal::decode::<LinkTokens>(raw) {
                Ok(t) => {
                    side.mirror.apply(&t);
                    Vec::new()
                }
                Err(_) => {
                    self.link_error(slot);
                    return;
                }
            },
            internal::DELETE => match internal::decode::<LinkDelete>(raw) {
                Ok(d) => {
                    // Answered once applied, so the msg server's later reads see it (B-GEN-1).
                    let (back, waker) = (side.back.clone(), Arc::clone(&side.waker));
                    let link = Cid {
                        slot,
                        generation: c.generation,
                    };
                    let ack = internal::frame(internal::DELETED, Some(&LinkDeleted { seq: d.seq }));
                    let done = OnDone::new(move || {
                        if back.send(FileMsg::Push(link, ack)).is_ok() {
                            let _ = waker.wake();
                        }
                    });
                    vec![Act::Io(IoJob::Delete {
                        task_id: d.task_id.to_vec(),
                        from: d.from,
                        to: d.to,
                        done,
                    })]
                }
                Err(_) => {
                    self.link_error(slot);
                    return;
                }
            },
            _ => {
                bump(&self.counters.unknown_pdus);
                Vec::new()
            }
        };
        self.apply(acts);
    }

    fn link_error(&mut self, slot: usize) {
        bump(&self.counters.proto_errors);
        log::warn!(target: "file", "link slot={slot}: malformed link PDU, closing");
        self.close_after_flush(slot);
    }

    fn apply(&mut self, acts: Vec<Act>) {
        for a in acts {
            match a {
                Act::Send(cid, bytes) => self.queue(cid, bytes, None),
                Act::SendMapped(cid, head, map, range) => {
                    self.queue(cid, head, Some((map, range)));
                }
                Act::CloseAfterFlush(cid) => {
                    if let Some(slot) = self.slot_of(cid) {
                        self.close_after_flush(slot);
                    }
                }
                Act::Io(job) => {
                    if self.io.send(job).is_err() {
                        log::error!(target: "file", "file-io thread is gone");
                    }
                }
                Act::Resume(cid) => self.resume.push(cid),
            }
        }
    }

    /// Queues `bytes`, then (a download's data) a range of a map.
    fn queue(&mut self, cid: Cid, bytes: Vec<u8>, mapped: Option<(Arc<Mmap>, Range<usize>)>) {
        let Some(slot) = self.slot_of(cid) else {
            return;
        };
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.closing {
            return;
        }
        c.out.push_owned(bytes);
        if let Some((map, range)) = mapped {
            c.out.push_mapped(map, range);
        }
        c.heartbeat = Instant::now() + HEARTBEAT;
        if c.out.len() > self.out_cap {
            bump(&self.counters.slow_consumer_closes);
            self.close_now(slot, "slow consumer (OutBufCap)");
            return;
        }
        self.dirty.mark(slot);
    }

    fn close_after_flush(&mut self, slot: usize) {
        let now = Instant::now();
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        c.closing = true;
        c.inbuf = Vec::new();
        c.deadline = now + CLOSE_FLUSH;
        if c.armed.is_none_or(|a| c.deadline < a) {
            c.armed = Some(c.deadline);
            self.timers.arm(
                c.deadline,
                Cid {
                    slot,
                    generation: c.generation,
                },
            );
        }
        self.dirty.mark(slot);
    }

    fn close_now(&mut self, slot: usize, why: &str) {
        if !self.conns.contains(slot) {
            return;
        }
        let mut c = self.conns.remove(slot);
        let _ = self.poll.registry().deregister(&mut c.stream);
        log::debug!(target: "file", "file connection {slot} from {} closed: {why}", c.peer);
        let acts = self.core.closed(
            Cid {
                slot,
                generation: c.generation,
            },
            Instant::now(),
        );
        self.apply(acts);
    }

    fn drain_channel(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            let now = Instant::now();
            match m {
                FileMsg::TaskCreated(t) => {
                    let acts = self.core.task_created(t, now);
                    self.apply(acts);
                }
                FileMsg::Push(cid, bytes) => self.queue(cid, bytes, None),
                FileMsg::Ready(t) => {
                    let bytes = link::task_frame(internal::READY, &t);
                    let links: Vec<Cid> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| c.link)
                        .map(|(slot, c)| Cid {
                            slot,
                            generation: c.generation,
                        })
                        .collect();
                    for cid in links {
                        self.queue(cid, bytes.clone(), None);
                    }
                }
                FileMsg::Io(done) => {
                    let acts = self.core.io_done(done, now);
                    self.apply(acts);
                }
                FileMsg::Shutdown => self.stop = true,
            }
        }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let acts = self.core.expire(now);
        self.apply(acts);
        while let Some((at, key)) = self.timers.pop_due(now) {
            let Some(c) = self.conns.get_mut(key.slot) else {
                continue;
            };
            if c.generation != key.generation || c.armed != Some(at) {
                continue; // stale entry
            }
            c.armed = None;
            if now >= c.deadline {
                let why = if c.closing {
                    "flush limit reached"
                } else if self.core.logged_in(key) {
                    "idle for TaskTimeout"
                } else {
                    bump(&self.counters.login_timeouts);
                    "no 6/1 within LoginTimeout"
                };
                self.close_now(key.slot, why);
                continue;
            }
            if now >= c.heartbeat && !c.closing {
                if self.core.logged_in(key) {
                    c.out.push_owned(Pdu::Heartbeat.to_frame(0));
                    self.dirty.mark(key.slot);
                }
                c.heartbeat = now + HEARTBEAT;
            }
            let due = c.next_due();
            c.armed = Some(due);
            self.timers.arm(due, key);
        }
    }

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
        let was_high = c.out.len() > self.out_cap / 2;
        let token = Token(CONN_BASE + slot);
        match c.out.flush_registered(
            &mut c.stream,
            self.poll.registry(),
            token,
            &mut c.want_write,
        ) {
            Ok(Flushed::All) => {
                if c.closing {
                    self.close_now(slot, "closed after flush");
                    return;
                }
            }
            Ok(Flushed::Partial) => {}
            Err(e) => {
                self.close_now(slot, &format!("write error: {e}"));
                return;
            }
        }
        // Input held back for a full queue (this one's or its relay peer's) may go on now.
        if was_high {
            if let Some(c) = self.conns.get(slot) {
                if c.out.len() <= self.out_cap / 2 {
                    let cid = Cid {
                        slot,
                        generation: c.generation,
                    };
                    self.resume.push(cid);
                    if let Some(peer) = self.core.peer_of(cid) {
                        self.resume.push(peer);
                    }
                }
            }
        }
    }
}

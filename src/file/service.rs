//! The file port as a [`Service`] of the event loop ([`crate::net::event_loop`]): framing,
//! timeouts, heartbeats and input holds of the file connections. The decisions are [`Core`]'s.
//!
//! Per connection:
//! - one deadline: no 6/1 within `LoginTimeout` ([`Action::Deadline`] at accept), then, once
//!   logged in, no byte received for `TaskTimeout` ([`Action::IdleTimeout`]); a link has none.
//!   A closing connection's flush limit is the loop's (`Close::AfterFlush(CLOSE_FLUSH)`).
//! - a heartbeat time: 7/1 after 5 s without output to a logged-in connection (B-HB-3). Output
//!   is queued from the events of other connections too (a relay), where the connection's
//!   state is out of reach, so the times live here, with one lazy heap entry per connection
//!   checked in [`Service::on_tick`]: output only moves the time, an entry that pops early is
//!   re-armed.
//! - input holds ([`Verdict::Hold`] / [`Action::Hold`], ended by [`Action::Resume`]): input
//!   waits while the connection's own io job is in flight, while its io job waits for room in
//!   the io channel, or while its output or (online) its relay peer's output is above half of
//!   `OutBufCap` ([`Service::on_output_level`]). A client that pipelines pulls or pushes unasked
//!   data is slowed down, not dropped. A single PDU can still take a queue over `OutBufCap` (it
//!   is at most `MaxPduSize`); that connection is closed as a slow consumer.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::core::{Act, Core};
use super::hub::{OnDone, Task};
use super::io::{IoJob, IoPort};
use super::link::{self, MirrorTokens};
use super::{Cid, FileMsg};
use crate::net::service::{Action, Bytes, Conns, Framing, Outbox, Service, Verdict};
use crate::net::timer::DeadlineHeap;
use crate::net::{ConnId, WorkerHandle};
use crate::proto::frame::{self, Header, HEADER_LEN};
use crate::proto::internal::{
    self, LinkDelete, LinkDeleted, LinkHello, LinkTask, LinkTokens, LINK_MODULE,
};
use crate::proto::{Dir, Pdu};
use crate::stats::{bump, Counters};

/// The file role runs one loop: both parties of an online task are on it, so a relay is a
/// queue push.
pub const LOOP_ID: u16 = 0;
/// B-HB-3: a logged-in file connection gets 7/1 after this long without output.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a closing connection may flush (a protocol error, an ended task).
const CLOSE_FLUSH: Duration = Duration::from_secs(5);

/// The file role alone: msg servers link in with this secret and feed this mirror.
pub struct LinkSide {
    pub secret: String,
    pub mirror: Arc<MirrorTokens>,
    /// The loop's own channel: the io thread answers a link's deletion through it.
    pub back: WorkerHandle<FileMsg>,
}

/// The conf values of the file port.
#[derive(Clone, Copy, Debug)]
pub struct PortLimits {
    pub max_pdu: u32,
    /// `MaxPduSizeBeforeLogin`: the limit until the connection's 6/1 succeeded.
    pub max_pdu_before_login: u32,
    pub login_timeout: Duration,
    /// `TaskTimeout`: a logged-in connection without input for this long is closed.
    pub idle_timeout: Duration,
}

/// A file connection as the loop holds it; the rest of its state is [`Core`]'s.
pub struct FileConn {
    peer: SocketAddr,
    /// An authenticated link from a msg server (not a client).
    link: bool,
    /// Logged in, so every byte received moves its deadline (`TaskTimeout`).
    idle: bool,
}

pub struct FileService {
    core: Core,
    counters: Arc<Counters>,
    limits: PortLimits,
    /// The msg role's announcements (in process), taken before a 6/1 looks its task up.
    tasks: Receiver<Task>,
    io: IoPort,
    /// Connections held because a job of theirs waits in the io backlog.
    io_held: Vec<Cid>,
    /// Next heartbeat time per open, not closing connection; the heap has one entry each.
    beats: HashMap<Cid, Instant>,
    beat_heap: DeadlineHeap,
    /// Connections whose output is above half of `OutBufCap`.
    high: HashSet<Cid>,
    /// Open links (file role alone): "upload complete" notices go to each.
    links: Vec<ConnId>,
    link: Option<LinkSide>,
}

fn cid(id: ConnId) -> Cid {
    Cid {
        slot: id.slot as usize,
        generation: id.generation,
    }
}

fn conn_id(c: Cid) -> Option<ConnId> {
    Some(ConnId {
        worker: LOOP_ID,
        slot: u32::try_from(c.slot).ok()?,
        generation: c.generation,
    })
}

impl FileService {
    pub fn new(
        core: Core,
        counters: Arc<Counters>,
        limits: PortLimits,
        tasks: Receiver<Task>,
        io: IoPort,
        link: Option<LinkSide>,
    ) -> FileService {
        FileService {
            core,
            counters,
            limits,
            tasks,
            io,
            io_held: Vec::new(),
            beats: HashMap::new(),
            beat_heap: DeadlineHeap::default(),
            high: HashSet::new(),
            links: Vec::new(),
            link,
        }
    }

    /// Whether the connection's input must wait now.
    fn blocked(&self, c: Cid) -> bool {
        self.core.waiting(c)
            || self.high.contains(&c)
            || self.core.peer_of(c).is_some_and(|p| self.high.contains(&p))
            || self.io_held.contains(&c)
    }

    /// Resumes the connection's input unless something still holds it.
    fn wake(&self, out: &mut Outbox<FileMsg>, c: Cid) {
        if !self.blocked(c) {
            if let Some(id) = conn_id(c) {
                out.push(Action::Resume(id));
            }
        }
    }

    fn send(&mut self, out: &mut Outbox<FileMsg>, c: Cid, bytes: Vec<u8>, now: Instant) {
        let Some(id) = conn_id(c) else {
            return;
        };
        if let Some(t) = self.beats.get_mut(&c) {
            *t = now + HEARTBEAT;
        }
        out.push(Action::Send(id, Bytes::Owned(bytes)));
    }

    fn close(&mut self, out: &mut Outbox<FileMsg>, id: ConnId) {
        self.beats.remove(&cid(id));
        out.close_after_flush(id, CLOSE_FLUSH);
    }

    /// Carries out the core's acts; `by` is the connection whose PDU caused them (held if its
    /// io job has to wait for room).
    fn apply(&mut self, out: &mut Outbox<FileMsg>, acts: Vec<Act>, by: Option<Cid>, now: Instant) {
        for a in acts {
            match a {
                Act::Send(c, bytes) => self.send(out, c, bytes, now),
                Act::SendMapped(c, head, map, range) => {
                    self.send(out, c, head, now);
                    if let Some(id) = conn_id(c) {
                        out.push(Action::Send(id, Bytes::Mapped(map, range)));
                    }
                }
                Act::CloseAfterFlush(c) => {
                    if let Some(id) = conn_id(c) {
                        self.close(out, id);
                    }
                }
                Act::Io(job) => {
                    if !self.io.submit(job) {
                        bump(&self.counters.channel_full_waits);
                        if let Some(c) = by.filter(|c| !self.io_held.contains(c)) {
                            self.io_held.push(c);
                        }
                    }
                }
                Act::Resume(c) => self.wake(out, c),
            }
        }
    }

    /// Announcements of the msg role that arrived meanwhile.
    fn take_announcements(&mut self, out: &mut Outbox<FileMsg>, now: Instant) {
        while let Ok(t) = self.tasks.try_recv() {
            let acts = self.core.task_created(t, now);
            self.apply(out, acts, None, now);
        }
    }

    /// Once logged in, every byte received moves the connection's deadline.
    fn arm_idle(&self, out: &mut Outbox<FileMsg>, id: ConnId, conn: &mut FileConn) {
        if !conn.idle && self.core.logged_in(cid(id)) {
            conn.idle = true;
            out.push(Action::IdleTimeout(id, Some(self.limits.idle_timeout)));
        }
    }

    /// A client PDU: 6/1 .. 6/5 and 7/1.
    fn on_client(
        &mut self,
        out: &mut Outbox<FileMsg>,
        id: ConnId,
        conn: &mut FileConn,
        h: &Header,
        raw: &[u8],
    ) {
        let c = cid(id);
        let mc = (h.module, h.command);
        // protocol.md section 1: the file port serves 6/1 .. 6/5 and 7/1 only.
        let served = (h.module == 6 && (1..=5).contains(&h.command)) || mc == (7, 1);
        if !served || !crate::proto::is_known(Dir::ToServer, h.module, h.command) {
            bump(&self.counters.unknown_pdus);
            return;
        }
        // P-13: before login only 6/1 and 7/1.
        if !self.core.logged_in(c) && mc != (6, 1) && mc != (7, 1) {
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
                log::warn!(target: "file", "peer={} protocol error {}/{}: {e}", conn.peer, h.module, h.command);
                self.close(out, id);
                return;
            }
        };
        let now = Instant::now();
        if mc == (6, 1) {
            // The task may have been announced just before this 6/1 arrived.
            self.take_announcements(out, now);
        }
        let acts = self.core.on_pdu(c, h, raw, pdu, now);
        self.apply(out, acts, Some(c), now);
        self.arm_idle(out, id, conn);
    }

    /// A link PDU (file role alone): hello first, then tasks, token states and deletions.
    fn on_link(
        &mut self,
        out: &mut Outbox<FileMsg>,
        id: ConnId,
        conn: &mut FileConn,
        h: &Header,
        raw: &[u8],
    ) {
        let Some(side) = &self.link else {
            return;
        };
        let now = Instant::now();
        if !conn.link {
            let ok = h.command == internal::HELLO
                && internal::decode::<LinkHello>(raw).is_ok_and(|hello| {
                    crate::auth::secret_eq(hello.secret, side.secret.as_bytes())
                });
            if !ok {
                bump(&self.counters.file_login_refused);
                log::warn!(target: "file", "link from {} refused: bad hello", conn.peer);
                self.close(out, id);
                return;
            }
            conn.link = true;
            self.links.push(id);
            // A link stays open without traffic (the msg server holds it).
            out.deadline(id, None);
            log::info!(target: "file", "msg server linked from {}", conn.peer);
            let welcome = internal::frame::<LinkHello>(internal::WELCOME, None);
            self.send(out, cid(id), welcome, now);
            return;
        }
        let acts = match h.command {
            internal::TASK => match internal::decode::<LinkTask>(raw)
                .ok()
                .as_ref()
                .and_then(link::task_of)
            {
                Some(t) => self.core.task_created(t, now),
                None => return self.link_error(out, id),
            },
            internal::TOKENS => match internal::decode::<LinkTokens>(raw) {
                Ok(t) => {
                    side.mirror.apply(&t);
                    Vec::new()
                }
                Err(_) => return self.link_error(out, id),
            },
            internal::DELETE => match internal::decode::<LinkDelete>(raw) {
                Ok(d) => {
                    // Answered once applied, so the msg server's later reads see it (B-GEN-1).
                    let back = side.back.clone();
                    let link = cid(id);
                    let ack = internal::frame(internal::DELETED, Some(&LinkDeleted { seq: d.seq }));
                    let done = OnDone::new(move || back.send(FileMsg::Push(link, ack)));
                    vec![Act::Io(IoJob::Delete {
                        task_id: d.task_id.to_vec(),
                        from: d.from,
                        to: d.to,
                        done,
                    })]
                }
                Err(_) => return self.link_error(out, id),
            },
            _ => {
                bump(&self.counters.unknown_pdus);
                Vec::new()
            }
        };
        self.apply(out, acts, Some(cid(id)), now);
    }

    fn link_error(&mut self, out: &mut Outbox<FileMsg>, id: ConnId) {
        bump(&self.counters.proto_errors);
        log::warn!(target: "file", "link {id:?}: malformed link PDU, closing");
        self.close(out, id);
    }

    /// B-HB-3: 7/1 to every logged-in connection whose heartbeat time has come.
    fn heartbeats(&mut self, out: &mut Outbox<FileMsg>, now: Instant) {
        while let Some((_, c)) = self.beat_heap.pop_due(now) {
            let Some(at) = self.beats.get_mut(&c) else {
                continue; // closed or closing
            };
            if *at <= now {
                if let Some(id) = conn_id(c).filter(|_| self.core.logged_in(c)) {
                    // Not checked against OutBufCap, like the connection's own answers.
                    out.push(Action::Answer(id, Bytes::Owned(Pdu::Heartbeat.to_frame(0))));
                }
                *at = now + HEARTBEAT;
            }
            self.beat_heap.arm(*at, c);
        }
    }
}

impl Service for FileService {
    type Conn = FileConn;
    type Msg = FileMsg;

    fn accept(
        &mut self,
        out: &mut Outbox<FileMsg>,
        id: ConnId,
        _listener: usize,
        peer: SocketAddr,
    ) -> Option<FileConn> {
        let now = Instant::now();
        let c = cid(id);
        self.core.accepted(c);
        self.beats.insert(c, now + HEARTBEAT);
        self.beat_heap.arm(now + HEARTBEAT, c);
        out.deadline(id, Some(now + self.limits.login_timeout));
        Some(FileConn {
            peer,
            link: false,
            idle: false,
        })
    }

    fn frame(
        &mut self,
        out: &mut Outbox<FileMsg>,
        id: ConnId,
        conn: &mut FileConn,
        input: &[u8],
    ) -> Framing {
        // Called after every read: a connection that logged in meanwhile (a download opened,
        // a parked 6/1 let in) starts its idle timeout here.
        self.arm_idle(out, id, conn);
        // Before its 6/1 succeeded a connection may send only small PDUs (P-5).
        let max = if self.core.logged_in(cid(id)) {
            self.limits.max_pdu
        } else {
            self.limits.max_pdu.min(self.limits.max_pdu_before_login)
        };
        match frame::check(input, max) {
            Ok(Some(h)) => Framing::Complete(h.length as usize),
            Ok(None) => Framing::Partial,
            Err(e) => Framing::Invalid(e.to_string()),
        }
    }

    fn on_frame(
        &mut self,
        out: &mut Outbox<FileMsg>,
        id: ConnId,
        conn: &mut FileConn,
        raw: &[u8],
    ) -> Verdict {
        let c = cid(id);
        if self.blocked(c) {
            return Verdict::Hold;
        }
        let Some(h) = frame::header(raw) else {
            return Verdict::Consumed; // the framer delimited at least a header
        };
        if h.module == LINK_MODULE && self.link.is_some() {
            self.on_link(out, id, conn, &h, raw);
        } else if conn.link {
            bump(&self.counters.unknown_pdus);
        } else {
            self.on_client(out, id, conn, &h, raw);
        }
        // Its own io job, or a queue it filled: read no more until that is over.
        if self.blocked(c) {
            out.push(Action::Hold(id));
        }
        Verdict::Consumed
    }

    fn on_bad_input(
        &mut self,
        out: &mut Outbox<FileMsg>,
        id: ConnId,
        conn: &mut FileConn,
        why: &str,
    ) {
        bump(&self.counters.proto_errors);
        log::warn!(target: "file", "peer={} protocol error: {why}", conn.peer);
        self.close(out, id);
    }

    fn on_message(
        &mut self,
        out: &mut Outbox<FileMsg>,
        _conns: &mut dyn Conns<FileConn>,
        msg: FileMsg,
    ) {
        let now = Instant::now();
        match msg {
            FileMsg::Io(done) => {
                let acts = self.core.io_done(done, now);
                self.apply(out, acts, None, now);
            }
            FileMsg::Push(c, bytes) => self.send(out, c, bytes, now),
            FileMsg::Ready(t) => {
                let bytes = link::task_frame(internal::READY, &t);
                for id in self.links.clone() {
                    self.send(out, cid(id), bytes.clone(), now);
                }
            }
            FileMsg::IoRoom => {
                if self.io.pump() {
                    for c in std::mem::take(&mut self.io_held) {
                        self.wake(out, c);
                    }
                }
            }
            FileMsg::Shutdown => out.push(Action::Exit { deadline: now }),
        }
    }

    fn on_timeout(&mut self, out: &mut Outbox<FileMsg>, id: ConnId, _conn: &mut FileConn) {
        // Tasks due by now end first (the loop runs deadlines before the tick): a party idle
        // for TaskTimeout is closed with its task, not left to keep the task alive for another
        // TaskTimeout by closing alone.
        let now = Instant::now();
        let acts = self.core.expire(now);
        self.apply(out, acts, None, now);
        if !self.beats.contains_key(&cid(id)) {
            return; // closing with its task
        }
        let why = if self.core.logged_in(cid(id)) {
            "idle for TaskTimeout"
        } else {
            bump(&self.counters.login_timeouts);
            "no 6/1 within LoginTimeout"
        };
        out.close_now(id, why);
    }

    fn on_closed(&mut self, out: &mut Outbox<FileMsg>, id: ConnId, conn: FileConn, why: &str) {
        log::debug!(target: "file", "file connection {id:?} from {} closed: {why}", conn.peer);
        let c = cid(id);
        let peer = self.core.peer_of(c);
        self.beats.remove(&c);
        self.high.remove(&c);
        self.io_held.retain(|&h| h != c);
        if conn.link {
            self.links.retain(|&l| l != id);
        }
        let now = Instant::now();
        let acts = self.core.closed(c, now);
        self.apply(out, acts, None, now);
        // Its relay peer may have been held for this connection's full queue.
        if let Some(p) = peer {
            self.wake(out, p);
        }
    }

    fn on_output_level(
        &mut self,
        out: &mut Outbox<FileMsg>,
        id: ConnId,
        _conn: &mut FileConn,
        high: bool,
    ) {
        let c = cid(id);
        let peer = self.core.peer_of(c);
        if high {
            // A relayed PDU lands on the peer's queue: hold that side as well.
            self.high.insert(c);
            out.push(Action::Hold(id));
            if let Some(p) = peer.and_then(conn_id) {
                out.push(Action::Hold(p));
            }
        } else {
            self.high.remove(&c);
            self.wake(out, c);
            if let Some(p) = peer {
                self.wake(out, p);
            }
        }
    }

    fn on_tick(&mut self, out: &mut Outbox<FileMsg>, now: Instant) {
        self.take_announcements(out, now);
        let acts = self.core.expire(now);
        self.apply(out, acts, None, now);
        self.heartbeats(out, now);
    }

    fn next_tick(&self) -> Option<Instant> {
        [self.beat_heap.next(), self.core.next_expiry()]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_exit(&mut self) {
        log::debug!(target: "file", "file loop stopped with {} tasks", self.core.task_count());
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;

//! What a role plugs into the event loop: a [`Service`] gets events and answers with actions.
//!
//! The loop ([`super::event_loop::EventLoop`]) owns sockets, buffers, deadlines and output; a
//! service owns what its connections mean. Every callback gets an [`Outbox`] and writes what
//! should happen into it (send bytes, close, hold input, set a deadline, post to another loop);
//! the loop carries the actions out, in order, when the callback returns. A service never sees
//! a socket or a `Poll`, so it is tested by feeding it events and reading its outbox.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::Mmap;

use super::{ConnId, Shared};

/// Where the next frame ends in a connection's buffered input.
#[derive(Debug, PartialEq, Eq)]
pub enum Framing {
    /// The first `n` bytes are one frame (`n > 0`).
    Complete(usize),
    /// Not a whole frame yet: read more. The service checked what it could (a header's length
    /// against its limit) before saying so, so nothing unbounded is buffered.
    Partial,
    /// The input cannot be framed (bad header, frame over the limit): [`Service::on_bad_input`]
    /// decides what happens.
    Invalid(String),
}

/// What became of a frame handed to [`Service::on_frame`].
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Handled: the loop drops it and goes on with the next frame.
    Consumed,
    /// Not handled yet: it stays at the front of the input, and the connection's input is held
    /// until the service sends [`Action::Resume`] (or [`Action::ResumeAt`]) for it.
    Hold,
}

/// Bytes to queue on a connection.
pub enum Bytes {
    Owned(Vec<u8>),
    /// Encoded once, queued on many connections.
    Shared(Shared),
    /// A range of a memory-mapped file, written without a copy.
    Mapped(Arc<Mmap>, Range<usize>),
}

/// How a connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Close {
    /// Now; output not yet written is dropped.
    Now(String),
    /// No more input; close once the queued output is written, or after this long anyway.
    AfterFlush(Duration),
    /// As `AfterFlush`, then half-close and drop the peer's input until it closes or the
    /// limit passes, so it reads the last reply rather than a reset (HTTP).
    Linger(Duration),
}

/// Something the loop does for a service.
pub enum Action<M> {
    /// Queue bytes on a connection of this loop (others: [`Action::Post`] to their loop). Past
    /// the loop's output cap the connection is closed as a slow consumer.
    Send(ConnId, Bytes),
    /// Like [`Action::Send`] but not checked against the output cap: the answer to the
    /// connection's own request (its size is the service's to bound).
    Answer(ConnId, Bytes),
    Close(ConnId, Close),
    /// The connection's deadline: [`Service::on_timeout`] runs when it passes. `None` clears it.
    Deadline(ConnId, Option<Instant>),
    /// Every byte received moves the deadline to `now + d` (an idle timeout). `None` stops that.
    IdleTimeout(ConnId, Option<Duration>),
    /// As [`Action::IdleTimeout`], and every byte written moves it too: a long download that
    /// makes progress is not idle (HTTP).
    IdleTimeoutRw(ConnId, Option<Duration>),
    /// Stop processing this connection's input (it stays buffered, bounded by the framer).
    Hold(ConnId),
    /// Run [`Service::on_flushed`] once the connection's queued output is all written (at
    /// once if none is): a service answering one request at a time takes the next only then,
    /// so its output stays bounded by one answer.
    NotifyFlushed(ConnId),
    /// Process held input again (at once, within this loop iteration).
    Resume(ConnId),
    /// Process held input again at that time.
    ResumeAt(ConnId, Instant),
    /// Drop buffered input and never read again; output goes on (a failed connection waiting
    /// for the answers of its earlier requests).
    StopInput(ConnId),
    /// A message to a loop of the same kind (this one included), delivered through its
    /// channel; the loops posted to are woken once per iteration.
    Post(u16, M),
    /// Stop accepting connections and reading input on every connection of this loop.
    StopReading,
    /// Leave the loop once every connection's output is written and every post delivered,
    /// or at `deadline`; the
    /// connections are closed without [`Service::on_closed`] (the process is stopping).
    Exit {
        deadline: Instant,
    },
}

/// The actions of one callback, carried out in order when it returns.
pub struct Outbox<M> {
    actions: Vec<Action<M>>,
}

impl<M> Default for Outbox<M> {
    fn default() -> Self {
        Outbox {
            actions: Vec::new(),
        }
    }
}

impl<M> Outbox<M> {
    pub fn push(&mut self, a: Action<M>) {
        self.actions.push(a);
    }

    pub fn send(&mut self, conn: ConnId, bytes: Vec<u8>) {
        self.actions.push(Action::Send(conn, Bytes::Owned(bytes)));
    }

    pub fn send_shared(&mut self, conn: ConnId, bytes: Shared) {
        self.actions.push(Action::Send(conn, Bytes::Shared(bytes)));
    }

    pub fn close_now(&mut self, conn: ConnId, why: impl Into<String>) {
        self.actions
            .push(Action::Close(conn, Close::Now(why.into())));
    }

    pub fn close_after_flush(&mut self, conn: ConnId, limit: Duration) {
        self.actions
            .push(Action::Close(conn, Close::AfterFlush(limit)));
    }

    pub fn deadline(&mut self, conn: ConnId, at: Option<Instant>) {
        self.actions.push(Action::Deadline(conn, at));
    }

    pub fn post(&mut self, worker: u16, msg: M) {
        self.actions.push(Action::Post(worker, msg));
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// The actions so far, in order (tests read them; the loop drains them).
    pub fn actions(&self) -> &[Action<M>] {
        &self.actions
    }

    pub fn drain(&mut self) -> std::vec::Drain<'_, Action<M>> {
        self.actions.drain(..)
    }

    /// Hands the actions over, leaving the outbox empty (its allocation goes with them).
    pub fn take(&mut self) -> Vec<Action<M>> {
        std::mem::take(&mut self.actions)
    }

    /// Gives an emptied vector back for reuse.
    pub fn restore(&mut self, mut v: Vec<Action<M>>) {
        if self.actions.is_empty() {
            v.clear();
            self.actions = v;
        }
    }
}

/// The service states of a loop's connections, looked up by id (a stale id finds nothing).
pub trait Conns<C> {
    fn get_mut(&mut self, id: ConnId) -> Option<&mut C>;
}

/// A role on the event loop. One value per loop thread; its connections' states live in the
/// loop beside their sockets and are handed to it with each event.
pub trait Service {
    /// Per-connection state.
    type Conn;
    /// Messages from other threads (storage replies, pushes, stop steps).
    type Msg: Send + 'static;

    /// A connection came in on listener `listener` (an index into the loop's listeners). `None`
    /// closes it at once.
    fn accept(
        &mut self,
        out: &mut Outbox<Self::Msg>,
        id: ConnId,
        listener: usize,
        peer: SocketAddr,
    ) -> Option<Self::Conn>;

    /// Where the frame at the front of `input` ends. Called again for each frame.
    fn frame(
        &mut self,
        out: &mut Outbox<Self::Msg>,
        id: ConnId,
        conn: &mut Self::Conn,
        input: &[u8],
    ) -> Framing;

    /// One whole frame, as [`Service::frame`] delimited it.
    fn on_frame(
        &mut self,
        out: &mut Outbox<Self::Msg>,
        id: ConnId,
        conn: &mut Self::Conn,
        frame: &[u8],
    ) -> Verdict;

    /// [`Service::frame`] said [`Framing::Invalid`]. The loop processes no more input of this
    /// connection until the service says otherwise; the service closes it (at once, after a
    /// reply, or once earlier requests were answered).
    fn on_bad_input(
        &mut self,
        out: &mut Outbox<Self::Msg>,
        id: ConnId,
        conn: &mut Self::Conn,
        why: &str,
    );

    /// The peer closed its side. Its input is stopped; by default the connection closes.
    fn on_eof(&mut self, out: &mut Outbox<Self::Msg>, id: ConnId, _conn: &mut Self::Conn) {
        out.close_now(id, "peer closed");
    }

    /// A message from another thread.
    fn on_message(
        &mut self,
        out: &mut Outbox<Self::Msg>,
        conns: &mut dyn Conns<Self::Conn>,
        msg: Self::Msg,
    );

    /// The output queued before [`Action::NotifyFlushed`] is written (not called for a
    /// connection that is closing).
    fn on_flushed(&mut self, _out: &mut Outbox<Self::Msg>, _id: ConnId, _conn: &mut Self::Conn) {}

    /// The connection's deadline passed (see [`Action::Deadline`]); it is cleared, so the
    /// service sets a new one or closes.
    fn on_timeout(&mut self, out: &mut Outbox<Self::Msg>, id: ConnId, conn: &mut Self::Conn);

    /// The connection is gone (closed by either side, a write error, a flush limit, a cap).
    fn on_closed(&mut self, out: &mut Outbox<Self::Msg>, id: ConnId, conn: Self::Conn, why: &str);

    /// The connection's queued output went over half of the loop's output cap (`high`), or was
    /// written back down to at most half (`!high`). A service that would add to a full queue
    /// (a relay, pipelined requests) holds the input that does so and resumes it here.
    fn on_output_level(
        &mut self,
        _out: &mut Outbox<Self::Msg>,
        _id: ConnId,
        _conn: &mut Self::Conn,
        _high: bool,
    ) {
    }

    /// Once per loop iteration, after the events and messages: time-driven work of the
    /// service itself.
    fn on_tick(&mut self, _out: &mut Outbox<Self::Msg>, _now: Instant) {}

    /// When [`Service::on_tick`] wants to run next at the latest (the loop sleeps no longer).
    fn next_tick(&self) -> Option<Instant> {
        None
    }

    /// The loop is ending (after [`Action::Exit`], or its poll failed).
    fn on_exit(&mut self) {}
}

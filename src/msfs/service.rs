//! Thread "msfs-http": msfs as a [`Service`] of the shared event loop. The loop owns sockets,
//! buffers and output; this decides where a request ends (the HTTP framer), what it means, and
//! when a connection times out.
//!
//! A connection takes one request at a time: after a request is complete its input is held
//! while the io thread works ([`Phase::Busy`]) and while the response is written
//! ([`Phase::Writing`], until `on_flushed`), so responses keep request order and a
//! connection's output is one response at most. Timing, as before the port:
//! - the first request's head is due `MsfsHeadTimeout` after the accept, a later one's after
//!   its first byte; a body must keep up `MsfsMinBodyRate` after [`BODY_GRACE`](super::BODY_GRACE); idle time
//!   counts from the last byte received. While a request arrives its deadline is computed
//!   here at each read ([`Action::Deadline`]), the loop's idle timeout off;
//! - between requests, from each response on, the loop's idle timeout ([`IDLE_TIMEOUT`],
//!   moved by bytes in either direction: [`Action::IdleTimeoutRw`]);
//! - no deadline while a job is with the io thread (it always answers);
//! - a response that closes (`Connection: close`, a rejection) is written, then the connection
//!   lingers for [`LINGER`] ([`Close::Linger`]) so the client reads it rather than a reset.

use std::net::SocketAddr;
use std::time::Instant;

use super::conn::{Conn, Phase};
use super::head::{parse_head, HeadParse, Method};
use super::io::Done;
use super::requests::{Ctx, Handled};
use super::{IDLE_TIMEOUT, LINGER};
use crate::net::service::{Action, Close, Conns, Framing, Outbox, Service, Verdict};
use crate::net::ConnId;
use crate::stats::bump;

/// Messages to the msfs loop.
pub enum Msg {
    /// An answer of the io thread.
    Done(Done),
    /// `Msfs::stop`: drop every connection and exit (a store in progress finishes first).
    Stop,
}

impl Service for Ctx {
    type Conn = Conn;
    type Msg = Msg;

    fn accept(
        &mut self,
        out: &mut Outbox<Msg>,
        id: ConnId,
        _listener: usize,
        _peer: SocketAddr,
    ) -> Option<Conn> {
        let now = Instant::now();
        // The first request's head is due `MsfsHeadTimeout` after the accept.
        out.deadline(id, Some(now + self.pace.head.min(IDLE_TIMEOUT)));
        Some(Conn::new(now))
    }

    /// The HTTP framer: a request is its head and `Content-Length` body bytes. The head is
    /// checked as soon as it is complete (rejections are answered from it, the body never
    /// read), so a body buffered is at most the upload limit.
    fn frame(&mut self, out: &mut Outbox<Msg>, id: ConnId, c: &mut Conn, input: &[u8]) -> Framing {
        let now = Instant::now();
        if c.loop_idle {
            out.push(Action::IdleTimeout(id, None));
            c.loop_idle = false;
        }
        if input.len() != c.seen {
            c.seen = input.len();
            c.last = now;
        }
        c.started.get_or_insert(now);
        if c.head.is_none() {
            match parse_head(input) {
                HeadParse::Incomplete => {
                    out.deadline(id, Some(c.deadline(&self.pace, input.len())));
                    return Framing::Partial;
                }
                HeadParse::Bad(msg) => {
                    c.no_body = false;
                    return Framing::Invalid(msg.to_string());
                }
                HeadParse::Done(h) => {
                    c.no_body = h.method == Method::Head;
                    if self.reject_head(out, id, c, &h) {
                        c.answered(out, id);
                        return Framing::Invalid("rejected from its head".into());
                    }
                    let need = h.len.saturating_add(h.body_len);
                    if h.expect_continue && input.len() == h.len && need > h.len {
                        super::conn::answer(out, id, b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
                    }
                    c.head = Some(h);
                    c.body_from = Some(now);
                }
            }
        }
        let need = c
            .head
            .as_ref()
            .map_or(0, |h| h.len.saturating_add(h.body_len));
        if need > 0 && input.len() >= need {
            return Framing::Complete(need);
        }
        out.deadline(id, Some(c.deadline(&self.pace, input.len().min(need))));
        Framing::Partial
    }

    fn on_frame(
        &mut self,
        out: &mut Outbox<Msg>,
        id: ConnId,
        c: &mut Conn,
        frame: &[u8],
    ) -> Verdict {
        let Some(h) = c.head.take() else {
            return Verdict::Consumed; // not reached: `frame` completes only a parsed head
        };
        if h.close {
            c.close_after = true;
        }
        match self.handle(out, id, c, &h, frame) {
            Handled::Answered => {
                c.request_taken();
                c.answered(out, id);
            }
            Handled::Job => {
                c.request_taken();
                c.phase = Phase::Busy;
                out.push(Action::Hold(id));
                out.deadline(id, None);
            }
            Handled::Full => {
                // The request stays in the input; `on_tick` resumes it when the io thread has
                // made room, and it is framed and handled again.
                c.head = Some(h);
                if c.phase == Phase::Queued {
                    self.waiting.push_front(id); // keeps its place
                } else {
                    c.phase = Phase::Queued;
                    self.waiting.push_back(id);
                }
                out.deadline(id, None);
                return Verdict::Hold;
            }
        }
        Verdict::Consumed
    }

    /// A head that does not parse: 400, then close. (A head rejected by its checks was
    /// answered by `frame`.)
    fn on_bad_input(&mut self, out: &mut Outbox<Msg>, id: ConnId, c: &mut Conn, why: &str) {
        if c.phase == Phase::Writing {
            return;
        }
        log::debug!(target: "msfs", "conn={id:?} bad request: {why}");
        c.close_after = true;
        c.respond_text(out, id, 400, &format!("bad request: {why}"));
        c.answered(out, id);
    }

    /// The peer closed its side. A request that has not arrived whole never will: close (once
    /// queued output is written). A request being served is answered first.
    fn on_eof(&mut self, out: &mut Outbox<Msg>, id: ConnId, c: &mut Conn) {
        if c.phase == Phase::Reading {
            out.push(Action::Close(id, Close::AfterFlush(LINGER)));
        } else {
            c.peer_eof = true;
        }
    }

    fn on_message(&mut self, out: &mut Outbox<Msg>, conns: &mut dyn Conns<Conn>, msg: Msg) {
        match msg {
            Msg::Done(d) => {
                let id = d.key();
                let Some(c) = conns.get_mut(id).filter(|c| c.phase == Phase::Busy) else {
                    // The client left while its job ran (an upload is then stored but
                    // unanswered).
                    bump(&self.counters.stale_replies);
                    return;
                };
                self.finish(out, id, c, d);
                c.answered(out, id);
            }
            Msg::Stop => out.push(Action::Exit {
                deadline: Instant::now(),
            }),
        }
    }

    /// The response is written: take the next request, or close.
    fn on_flushed(&mut self, out: &mut Outbox<Msg>, id: ConnId, c: &mut Conn) {
        if c.phase != Phase::Writing {
            return;
        }
        if c.close_after {
            out.push(Action::Close(id, Close::Linger(LINGER)));
        } else if c.peer_eof {
            out.close_now(id, "peer closed");
        } else {
            c.phase = Phase::Reading;
            c.no_body = false;
            out.push(Action::Resume(id));
        }
    }

    fn on_timeout(&mut self, out: &mut Outbox<Msg>, id: ConnId, c: &mut Conn) {
        if matches!(c.phase, Phase::Busy | Phase::Queued) {
            return; // no deadline while its request is with the io thread or waits for it
        }
        log::debug!(target: "msfs", "conn={id:?} timed out");
        out.close_now(id, "timed out");
    }

    fn on_closed(&mut self, _out: &mut Outbox<Msg>, id: ConnId, c: Conn, _why: &str) {
        if c.phase == Phase::Queued {
            self.waiting.retain(|w| *w != id);
        }
    }

    /// Requests waiting for the io queue try again as far as it has room (the io thread made
    /// room when it took a job; its answer woke this loop).
    fn on_tick(&mut self, out: &mut Outbox<Msg>, _now: Instant) {
        if self.waiting.is_empty() {
            return;
        }
        for _ in 0..self.room() {
            let Some(id) = self.waiting.pop_front() else {
                break;
            };
            out.push(Action::Resume(id));
        }
    }
}

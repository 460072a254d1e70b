//! One client connection as msfs sees it (the loop owns its socket and buffers): where it is in
//! its request, its deadline while a request arrives, and the responses queued for it.

use std::time::{Duration, Instant};

use super::head::Head;
use super::requests::Pace;
use super::service::Msg;
use super::{BAD_REQUEST, BODY_GRACE, IDLE_TIMEOUT, REQUEST_DEADLINE, TOO_LARGE, UNAUTHORIZED};
use crate::net::service::{Action, Bytes, Outbox};
use crate::net::ConnId;

/// Where a connection is; input is processed only in `Reading`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Receiving a request, or waiting for one.
    Reading,
    /// Its request is complete and waits for room in the io queue (input held).
    Queued,
    /// A job for it is with the io thread (input held, no deadline).
    Busy,
    /// Its response is being written (input held): the next request is taken once it is out,
    /// so a connection's output is at most one response.
    Writing,
}

pub(super) struct Conn {
    pub(super) phase: Phase,
    /// The head of the request being received, once parsed and accepted.
    pub(super) head: Option<Head>,
    /// First byte of the request being received (for the first request: the accept).
    pub(super) started: Option<Instant>,
    /// When its head was complete (its body is arriving).
    pub(super) body_from: Option<Instant>,
    /// Last time the input grew (idle time while a request arrives).
    pub(super) last: Instant,
    /// Input bytes seen by the last `frame`.
    pub(super) seen: usize,
    /// Close once the response is written (no more requests are read).
    pub(super) close_after: bool,
    /// The request being answered is a HEAD: responses carry no body.
    pub(super) no_body: bool,
    /// The peer closed its side while its request was served: close after the response.
    pub(super) peer_eof: bool,
    /// The loop's idle timeout is on (set with each response, counting both directions); it
    /// is turned off while a request arrives, whose deadline is computed here.
    pub(super) loop_idle: bool,
}

impl Conn {
    pub(super) fn new(now: Instant) -> Conn {
        Conn {
            phase: Phase::Reading,
            head: None,
            started: Some(now),
            body_from: None,
            last: now,
            seen: 0,
            close_after: false,
            no_body: false,
            peer_eof: false,
            loop_idle: false,
        }
    }

    /// When a request that has `received` bytes so far is overdue: idle for `IDLE_TIMEOUT`, a
    /// head not complete `pace.head` after it started, a body behind `pace.min_body_rate`
    /// (after `BODY_GRACE`), or a request older than `REQUEST_DEADLINE`. Bytes that trickle in
    /// reset only the idle time.
    pub(super) fn deadline(&self, pace: &Pace, received: usize) -> Instant {
        let idle = self.last + IDLE_TIMEOUT;
        let Some(started) = self.started else {
            return idle;
        };
        let request = match (&self.head, self.body_from) {
            (Some(h), Some(from)) => {
                // Each byte received buys 1 / rate seconds.
                let received = u64::try_from(received.saturating_sub(h.len)).unwrap_or(0);
                let earned = Duration::from_millis(
                    received.saturating_mul(1000) / pace.min_body_rate.max(1),
                );
                (from + BODY_GRACE + earned).min(started + REQUEST_DEADLINE)
            }
            _ => started + pace.head,
        };
        idle.min(request)
    }

    /// The request was taken (answered or handed to the io thread): the next one starts with
    /// its first byte.
    pub(super) fn request_taken(&mut self) {
        self.head = None;
        self.started = None;
        self.body_from = None;
        self.seen = 0;
    }

    /// A response is queued: hold input until it is written ([`Phase::Writing`], then
    /// `on_flushed`), idle counted from the last byte either way (a slow download in progress
    /// is not idle).
    pub(super) fn answered(&mut self, out: &mut Outbox<Msg>, id: ConnId) {
        self.phase = Phase::Writing;
        out.push(if self.close_after {
            Action::StopInput(id)
        } else {
            Action::Hold(id)
        });
        out.push(Action::IdleTimeoutRw(id, Some(IDLE_TIMEOUT)));
        self.loop_idle = true;
        out.push(Action::NotifyFlushed(id));
    }

    /// Queues a complete response (`body` is moved, not copied).
    pub(super) fn respond(
        &self,
        out: &mut Outbox<Msg>,
        id: ConnId,
        status: u16,
        content_type: &str,
        body: Vec<u8>,
    ) {
        let len = body.len() as u64;
        self.respond_head(out, id, status, content_type, len, "");
        if !body.is_empty() && !self.no_body {
            answer(out, id, body);
        }
    }

    /// Queues a response head announcing `len` body bytes.
    pub(super) fn respond_head(
        &self,
        out: &mut Outbox<Msg>,
        id: ConnId,
        status: u16,
        content_type: &str,
        len: u64,
        extra: &str,
    ) {
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        };
        let close = if self.close_after {
            "Connection: close\r\n"
        } else {
            ""
        };
        answer(
            out,
            id,
            format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {len}\r\n{extra}{close}\r\n"
            )
            .into_bytes(),
        );
    }

    pub(super) fn respond_text(&self, out: &mut Outbox<Msg>, id: ConnId, status: u16, text: &str) {
        self.respond(
            out,
            id,
            status,
            "text/plain; charset=utf-8",
            format!("{text}\n").into_bytes(),
        );
    }

    /// An upload reply (B-MSFS-6): always 200 with the JSON body.
    pub(super) fn upload_reply(
        &self,
        out: &mut Outbox<Msg>,
        id: ConnId,
        code: u32,
        msg: &str,
        path: &str,
        url: &str,
    ) {
        #[derive(serde::Serialize)]
        struct Reply<'a> {
            error_code: u32,
            error_msg: &'a str,
            path: &'a str,
            url: &'a str,
        }
        let body = serde_json::to_vec(&Reply {
            error_code: code,
            error_msg: msg,
            path,
            url,
        })
        .unwrap_or_default();
        // JSON body, text/html type: the 2014 iOS app's HTTP library accepts an upload reply
        // only as text/html, which is what TeamTalk's own image store sent (B-MSFS-1).
        self.respond(out, id, 200, "text/html; charset=utf-8", body);
    }

    pub(super) fn upload_error(&self, out: &mut Outbox<Msg>, id: ConnId, code: u32) {
        let msg = match code {
            TOO_LARGE => "file too large",
            BAD_REQUEST => "bad request",
            UNAUTHORIZED => "unauthorized",
            _ => "server error",
        };
        self.upload_reply(out, id, code, msg, "", "");
    }
}

/// Responses are [`Action::Answer`]s, not checked against the loop's output cap: each is
/// bounded (a file is at most `MsfsMaxFileSize`) and a connection has one at a time.
pub(super) fn answer(out: &mut Outbox<Msg>, id: ConnId, bytes: Vec<u8>) {
    out.push(Action::Answer(id, Bytes::Owned(bytes)));
}

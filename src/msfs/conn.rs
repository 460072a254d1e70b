//! One client connection: its buffers and state, the responses it queues, and the
//! non-blocking reads and writes of its socket.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::head::Head;
use super::requests::Pace;
use super::{
    BAD_REQUEST, BODY_GRACE, IDLE_TIMEOUT, MAX_HEAD, REQUEST_DEADLINE, TOO_LARGE, UNAUTHORIZED,
};

pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) generation: u32,
    /// The request being received (and, after its head, nothing beyond its body).
    pub(super) inbuf: Vec<u8>,
    /// Its head, once parsed and accepted.
    pub(super) head: Option<Head>,
    pub(super) out: VecDeque<Vec<u8>>,
    /// Bytes of `out.front()` already written.
    pub(super) out_pos: usize,
    /// A job for this connection is with the io thread.
    pub(super) busy: bool,
    /// Close once `out` is written (no more requests are read).
    pub(super) close_after: bool,
    /// The request being answered is a HEAD: responses carry no body.
    pub(super) no_body: bool,
    /// The final reply is out and the write side shut: input is discarded until EOF or this
    /// time.
    pub(super) lingering: Option<Instant>,
    pub(super) peer_eof: bool,
    /// Last byte read or written.
    pub(super) last: Instant,
    /// First byte of the request being received (for the first request: the accept).
    pub(super) started: Option<Instant>,
    /// When the head of the request being received was complete (its body is arriving).
    pub(super) body_from: Option<Instant>,
    /// The peer's address (`MsfsMaxConnsPerIp`).
    pub(super) ip: std::net::IpAddr,
    /// The deadline of this connection's live timer entry.
    pub(super) armed: Instant,
}

impl Conn {
    /// Bytes to read at most now: up to the end of the request being received.
    fn want(&self) -> usize {
        let need = match &self.head {
            None => MAX_HEAD + 1,
            Some(h) => h.len.saturating_add(h.body_len),
        };
        need.saturating_sub(self.inbuf.len())
    }

    /// When the connection is closed, `None` while a job is in flight: idle for
    /// `IDLE_TIMEOUT`, a head not complete `pace.head` after it started, a body behind
    /// `pace.min_body_rate` (after `BODY_GRACE`), or a request older than `REQUEST_DEADLINE`.
    /// Bytes that trickle in reset only the idle time.
    pub(super) fn deadline(&self, pace: &Pace) -> Option<Instant> {
        if let Some(t) = self.lingering {
            return Some(t);
        }
        if self.busy {
            return None;
        }
        let idle = self.last + IDLE_TIMEOUT;
        let Some(started) = self.started else {
            return Some(idle);
        };
        let request = match (&self.head, self.body_from) {
            (Some(h), Some(from)) => {
                // Each byte received buys 1 / rate seconds.
                let received = u64::try_from(self.inbuf.len().saturating_sub(h.len)).unwrap_or(0);
                let earned = Duration::from_millis(
                    received.saturating_mul(1000) / pace.min_body_rate.max(1),
                );
                (from + BODY_GRACE + earned).min(started + REQUEST_DEADLINE)
            }
            _ => started + pace.head,
        };
        Some(idle.min(request))
    }

    /// Queues a complete response (`body` is moved, not copied).
    fn respond(&mut self, status: u16, content_type: &str, body: Vec<u8>) {
        let len = body.len() as u64;
        self.respond_head(status, content_type, len, "");
        if !body.is_empty() && !self.no_body {
            self.out.push_back(body);
        }
    }

    /// Queues a response head announcing `len` body bytes.
    pub(super) fn respond_head(&mut self, status: u16, content_type: &str, len: u64, extra: &str) {
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
        self.out.push_back(
            format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {len}\r\n{extra}{close}\r\n"
            )
            .into_bytes(),
        );
    }

    pub(super) fn respond_text(&mut self, status: u16, text: &str) {
        self.respond(
            status,
            "text/plain; charset=utf-8",
            format!("{text}\n").into_bytes(),
        );
    }

    /// An upload reply (B-MSFS-6): always 200 with the JSON body.
    pub(super) fn upload_reply(&mut self, code: u32, msg: &str, path: &str, url: &str) {
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
        self.respond(200, "text/html; charset=utf-8", body);
    }

    pub(super) fn upload_error(&mut self, code: u32) {
        let msg = match code {
            TOO_LARGE => "file too large",
            BAD_REQUEST => "bad request",
            UNAUTHORIZED => "unauthorized",
            _ => "server error",
        };
        self.upload_reply(code, msg, "", "");
    }
}

/// Reads at most [`Conn::want`] bytes; the count read (0 at EOF, which sets `peer_eof`).
pub(super) fn read_some(c: &mut Conn, scratch: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut total = 0;
    loop {
        let want = c.want().min(scratch.len());
        let Some(buf) = scratch.get_mut(..want).filter(|b| !b.is_empty()) else {
            return Ok(total);
        };
        match c.stream.read(buf) {
            Ok(0) => {
                c.peer_eof = true;
                return Ok(total);
            }
            Ok(n) => {
                let now = Instant::now();
                if c.inbuf.is_empty() {
                    c.started = Some(now);
                }
                c.inbuf.extend_from_slice(buf.get(..n).unwrap_or_default());
                c.last = now;
                total += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(total),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Lingering: reads and drops input; `false` once the peer closed (or the socket failed).
pub(super) fn discard(c: &mut Conn, scratch: &mut [u8]) -> bool {
    use std::io::Read;
    loop {
        match c.stream.read(scratch) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Writes queued output; the count written.
pub(super) fn flush(c: &mut Conn) -> std::io::Result<usize> {
    use std::io::Write;
    let mut total = 0;
    while let Some(front) = c.out.front() {
        let rest = front.get(c.out_pos..).unwrap_or_default();
        if rest.is_empty() {
            c.out.pop_front();
            c.out_pos = 0;
            continue;
        }
        match c.stream.write(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.out_pos += n;
                total += n;
                c.last = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

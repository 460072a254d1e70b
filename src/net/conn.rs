//! One TCP connection as a worker holds it: socket, buffers, deadlines, rate bucket, role state.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::outq::OutQueue;
use super::{ConnId, Role};
use crate::msg::MsgConn;

/// Token bucket for B-MSG-6: `rate` tokens, refilled at `rate` per second.
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        TokenBucket {
            tokens: rate,
            rate,
            last: now,
        }
    }

    /// Takes one token, or tells when the next one will be there.
    pub fn take(&mut self, now: Instant) -> Result<(), Instant> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            Err(now + Duration::from_secs_f64(wait))
        }
    }
}

/// Why input is not being processed right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Processing normally.
    None,
    /// Waiting for earlier storage jobs of this connection (ordering, MaxInFlight, full queue).
    Waiting,
    /// Rate-limited until the given instant (B-MSG-6).
    Paused(Instant),
    /// A protocol error (P-11): no more input; the requests accepted before it still get
    /// their replies (B-GEN-1), then the connection closes once flushed.
    Failed,
}

pub struct Conn {
    pub stream: TcpStream,
    pub id: ConnId,
    pub role: Role,
    pub peer: SocketAddr,
    /// Unprocessed input (only a partial PDU, or PDUs held back by `hold`).
    pub inbuf: Vec<u8>,
    pub out: OutQueue,
    /// Whether WRITABLE interest is registered.
    pub want_write: bool,
    /// Whether READABLE interest is registered.
    pub want_read: bool,
    /// The connection's current timeout (login, idle, or close-after-flush limit).
    pub deadline: Instant,
    /// Deadline of this connection's live entry in the worker's heap.
    pub armed_at: Option<Instant>,
    /// Close once the output queue is empty; no more input is processed.
    pub closing: bool,
    /// The peer closed its side.
    pub eof: bool,
    pub hold: Hold,
    pub bucket: TokenBucket,
    /// Msg-port session state (None on the login port).
    pub msg: Option<Box<MsgConn>>,
}

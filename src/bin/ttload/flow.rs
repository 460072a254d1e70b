//! The test messages of p2p, offline and group: what each sender sends (`Load`), one sender's
//! stream (`Flow`: window or rate pacing, send times, acks), a bit per seq to tell loss and
//! duplicates, and the tagged bodies that let a receiver match a delivery to (sender, seq).

use std::time::Duration;

use ttserver::proto::{Id, MsgData, Pdu};

use crate::net::Net;

/// What every sender sends, the same in every thread.
#[derive(Clone, Copy)]
pub struct Load {
    /// Messages per sender.
    pub messages: u32,
    /// Messages in flight per sender.
    pub window: u32,
    /// Messages per second per sender (None: as fast as the window allows).
    pub rate: Option<f64>,
    /// Body bytes.
    pub size: usize,
    /// Written in every body: what an earlier run left behind is told apart.
    pub nonce: u32,
}

impl Load {
    /// `messages=.. window=.. rate=.. size=..` of a result line (rate 0: none).
    pub fn keys(&self) -> String {
        format!(
            "messages={} window={} rate={} size={}",
            self.messages,
            self.window,
            self.rate.unwrap_or(0.0),
            self.size
        )
    }

    /// How long poll may sleep: a paced sender needs a fine clock.
    pub fn poll_timeout(&self) -> Duration {
        if self.rate.is_some() {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(20)
        }
    }
}

/// How many u64 words hold a bit per seq.
pub fn words(messages: u32) -> usize {
    (messages as usize).div_ceil(64)
}

/// Sets bit i; true if it was set already.
pub fn bit_set(bits: &mut [u64], i: usize) -> bool {
    let (w, b) = (i / 64, 1u64 << (i % 64));
    let was = bits[w] & b != 0;
    bits[w] |= b;
    was
}

/// (acked but never received, received but never acked): the seqs set in one bitset only.
pub fn lost_unacked(acked: &[u64], received: &[u64]) -> (u64, u64) {
    acked.iter().zip(received).fold((0, 0), |(l, u), (a, r)| {
        (
            l + u64::from((a & !r).count_ones()),
            u + u64::from((r & !a).count_ones()),
        )
    })
}

/// One sender's stream of messages.
pub struct Flow {
    pub sent: u32,
    pub acked: u32,
    /// The seq after the last one acked (an ack of another seq is out of order).
    pub next_ack: u32,
    /// Send time of each seq, µs since the shared epoch.
    sent_at: Vec<u32>,
    /// A bit per seq acked.
    pub acks: Vec<u64>,
    /// Rate mode: next send time, µs since sending started.
    next_send: f64,
    /// A login or the connection failed: nothing more to send.
    pub broken: bool,
}

impl Flow {
    pub fn new(messages: u32) -> Flow {
        Flow {
            sent: 0,
            acked: 0,
            next_ack: 0,
            sent_at: vec![0; messages as usize],
            acks: vec![0; words(messages)],
            next_send: 0.0,
            broken: false,
        }
    }

    /// The seq to send next, if the window and the rate allow one now (`since_go_us` after
    /// sending started); it counts as sent at `now_us`.
    pub fn next(&mut self, load: &Load, since_go_us: f64, now_us: u32) -> Option<u32> {
        if self.sent >= load.messages || self.sent - self.acked >= load.window {
            return None;
        }
        if let Some(rate) = load.rate {
            if self.next_send > since_go_us {
                return None;
            }
            self.next_send += 1e6 / rate;
        }
        let seq = self.sent;
        self.sent_at[seq as usize] = now_us;
        self.sent += 1;
        Some(seq)
    }

    /// When seq (< `sent`) was sent, µs since the shared epoch.
    pub fn sent_at(&self, seq: u32) -> u32 {
        self.sent_at[seq as usize]
    }
}

/// Sends a 3/1 with the given body; `reserved` is the seq (its low 16 bits).
pub fn send_msg(net: &mut Net, tok: usize, from: u32, to: u32, msg_type: u8, seq: u32, b: &[u8]) {
    net.send(
        tok,
        &Pdu::MsgData(MsgData {
            seq_no: seq,
            from_id: Id::Num(from),
            to_id: Id::Num(to),
            create_time: 0,
            msg_type,
            msg_data: b,
            attach: b"",
        }),
        seq as u16,
    );
}

/// Writes `ttload <nonce> <fields> ` padded with 'x' to `size` bytes: the tag of a test body.
pub fn tagged_body(out: &mut Vec<u8>, nonce: u32, fields: std::fmt::Arguments, size: usize) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "ttload {nonce:08x} {fields} ");
    if out.len() < size {
        out.resize(size, b'x');
    }
}

/// The nonce and the space-separated fields after it of a body written by [`tagged_body`]
/// (looking at its first `max` bytes only).
pub fn tag(b: &[u8], max: usize) -> Option<(u32, std::str::Split<'_, char>)> {
    let text = std::str::from_utf8(b.get(..b.len().min(max))?).ok()?;
    let mut it = text.split(' ');
    if it.next()? != "ttload" {
        return None;
    }
    let nonce = u32::from_str_radix(it.next()?, 16).ok()?;
    Some((nonce, it))
}

/// The body of a p2p or offline message: `ttload <nonce> <pair> <seq> ` padded to `size`.
pub fn body(out: &mut Vec<u8>, nonce: u32, pair: usize, seq: u32, size: usize) {
    tagged_body(out, nonce, format_args!("{pair} {seq}"), size);
}

/// Parses a body written by [`body`]: (nonce, (pair, seq)).
pub fn parse_body(b: &[u8]) -> Option<(u32, (usize, u32))> {
    let (nonce, mut it) = tag(b, 64)?;
    let pair = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    Some((nonce, (pair, seq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_roundtrip_and_bits() {
        let mut b = Vec::new();
        body(&mut b, 0xdead, 12, 345, 100);
        assert_eq!(b.len(), 100);
        assert!(b.starts_with(b"ttload 0000dead 12 345 x"));
        assert_eq!(parse_body(&b), Some((0xdead, (12, 345))));
        body(&mut b, 1, 1, 1, 5);
        assert_eq!(b, b"ttload 00000001 1 1 ");
        assert_eq!(parse_body(&b), Some((1, (1, 1))));
        assert_eq!(parse_body(b"hello"), None);
        let mut bits = vec![0u64; 2];
        assert!(!bit_set(&mut bits, 70));
        assert!(bit_set(&mut bits, 70));
        assert_eq!(bits[1], 1 << 6);
        assert_eq!(lost_unacked(&[0b0110, 1], &[0b1100, 0]), (2, 1));
    }

    #[test]
    fn window_and_rate() {
        let mut load = Load {
            messages: 3,
            window: 2,
            rate: None,
            size: 100,
            nonce: 1,
        };
        let mut f = Flow::new(3);
        assert_eq!(f.next(&load, 0.0, 7), Some(0));
        assert_eq!(f.next(&load, 0.0, 8), Some(1));
        assert_eq!(f.next(&load, 0.0, 9), None);
        assert_eq!(f.sent_at(1), 8);
        load.rate = Some(1000.0);
        load.window = 10;
        assert_eq!(f.next(&load, 0.0, 9), Some(2));
        assert_eq!(f.next(&load, 1e9, 9), None);
    }
}

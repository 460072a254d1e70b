//! `p2p`: N sender/receiver pairs; each sender keeps W messages in flight (or sends at R/s);
//! every ack and delivery is matched to (pair, seq) so loss, duplicates and reordering are
//! counted, not assumed.
//!
//! Phase 0: every user logs in. Phase 1 (opened by the main thread once all threads are
//! logged in): send, until every message is acked and delivered (or nothing moves for
//! `STALL`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ttserver::proto::frame::Header;
use ttserver::proto::{Dir, Id, MsgData, Pdu};

use crate::net::{Handler, Net};
use crate::run::{body, parse_body, Scenario, Shared};
use crate::session::{Outcome, Users, UsersConf};

/// Progress counters.
pub const C_LOGINS: usize = 0;
pub const C_SENT: usize = 1;
pub const C_ACKED: usize = 2;
pub const C_DELIV: usize = 3;

/// The run ends when nothing was acked or delivered for this long.
pub const STALL: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
pub struct Conf {
    pub messages: u32,
    pub window: u32,
    /// Messages per second per sender.
    pub rate: Option<f64>,
    pub size: usize,
    pub nonce: u32,
}

struct Pair {
    /// Global 1-based pair index (written in every body).
    g: usize,
    sent: u32,
    acked: u32,
    next_ack: u32,
    delivered: u32,
    /// Send time of each seq, µs since the shared epoch.
    sent_at: Vec<u32>,
    acks: Vec<u8>,
    deliv: Vec<u8>,
    last_deliv: Option<u32>,
    dup: u64,
    ooo: u64,
    dup_ack: u64,
    ack_ooo: u64,
    bad: u64,
    broken: bool,
    /// Rate mode: next send time, µs since phase 1 opened.
    next_send: f64,
}

#[derive(Default)]
pub struct Out {
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub lost: u64,
    pub dup: u64,
    pub ooo: u64,
    pub unacked_deliv: u64,
    pub dup_ack: u64,
    pub ack_ooo: u64,
    pub bad: u64,
    pub stale: u64,
    pub bad_frames: u64,
    pub login_failed: u64,
    pub lost_conns: u64,
    pub broken: u64,
    pub stalled: bool,
    pub aborted: bool,
    pub proto_errors: u64,
    pub ack_lat: Vec<u32>,
    pub del_lat: Vec<u32>,
    pub login_lat: Vec<u32>,
    pub last_ack_us: u64,
    pub last_deliv_us: u64,
    pub first_error: Option<String>,
}

pub struct P2p {
    users: Users,
    pairs: Vec<Pair>,
    conf: Conf,
    shared: Arc<Shared>,
    phase0_done: bool,
    go: Option<Instant>,
    last_progress: Instant,
    stalled: bool,
    ack_lat: Vec<u32>,
    del_lat: Vec<u32>,
    last_ack: Option<Instant>,
    last_deliv: Option<Instant>,
    stale: u64,
    bad_frames: u64,
    lost_conns: u64,
    buf: Vec<u8>,
    local: [u64; 4],
    published: [u64; 4],
}

impl P2p {
    /// `pairs`: the 0-based global indices of this thread's pairs. Pair i uses users
    /// `<prefix><2i+1>` (sender) and `<prefix><2i+2>` (receiver).
    pub fn new(
        pairs: &[usize],
        prefix: &str,
        uconf: &UsersConf,
        conf: Conf,
        shared: Arc<Shared>,
    ) -> P2p {
        let mut names = Vec::with_capacity(pairs.len() * 2);
        for &i in pairs {
            names.push(format!("{prefix}{}", 2 * i + 1));
            names.push(format!("{prefix}{}", 2 * i + 2));
        }
        let mut users = Users::new(names, uconf);
        for ui in 0..pairs.len() * 2 {
            users.enqueue(ui);
        }
        let m = conf.messages as usize;
        P2p {
            users,
            pairs: pairs
                .iter()
                .map(|&i| Pair {
                    g: i + 1,
                    sent: 0,
                    acked: 0,
                    next_ack: 0,
                    delivered: 0,
                    sent_at: vec![0; m],
                    acks: vec![0; m],
                    deliv: vec![0; m],
                    last_deliv: None,
                    dup: 0,
                    ooo: 0,
                    dup_ack: 0,
                    ack_ooo: 0,
                    bad: 0,
                    broken: false,
                    next_send: 0.0,
                })
                .collect(),
            conf,
            shared,
            phase0_done: false,
            go: None,
            last_progress: Instant::now(),
            stalled: false,
            ack_lat: Vec::with_capacity(pairs.len() * m),
            del_lat: Vec::with_capacity(pairs.len() * m),
            last_ack: None,
            last_deliv: None,
            stale: 0,
            bad_frames: 0,
            lost_conns: 0,
            buf: Vec::new(),
            local: [0; 4],
            published: [0; 4],
        }
    }

    fn pair_ready(&self, k: usize) -> bool {
        !self.pairs[k].broken && self.users.online(2 * k) && self.users.online(2 * k + 1)
    }

    /// Sends what the window (and rate) allow for pair k.
    fn fill(&mut self, net: &mut Net, k: usize, now: Instant) {
        let Some(go) = self.go else {
            return;
        };
        if !self.pair_ready(k) {
            return;
        }
        let since_go = now.saturating_duration_since(go).as_secs_f64() * 1e6;
        let now_us = self.shared.us(now) as u32;
        let (from, to, tok) = (
            self.users.u[2 * k].id,
            self.users.u[2 * k + 1].id,
            self.users.u[2 * k].tok,
        );
        let c = self.conf;
        let p = &mut self.pairs[k];
        while p.sent < c.messages && p.sent - p.acked < c.window {
            if let Some(rate) = c.rate {
                if p.next_send > since_go {
                    break;
                }
                p.next_send += 1e6 / rate;
            }
            let seq = p.sent;
            body(&mut self.buf, c.nonce, p.g, seq, c.size);
            p.sent_at[seq as usize] = now_us;
            net.send(
                tok,
                &Pdu::MsgData(MsgData {
                    seq_no: seq,
                    from_id: Id::Num(from),
                    to_id: Id::Num(to),
                    create_time: 0,
                    msg_type: 1,
                    msg_data: &self.buf,
                    attach: b"",
                }),
                seq as u16,
            );
            p.sent += 1;
            self.local[C_SENT] += 1;
        }
    }

    fn on_ack(&mut self, net: &mut Net, k: usize, body: &[u8]) {
        let Ok(Some(Pdu::MsgDataAck(a))) = Pdu::decode(Dir::ToClient, 3, 2, body) else {
            self.bad_frames += 1;
            return;
        };
        let now = Instant::now();
        let now_us = self.shared.us(now) as u32;
        let p = &mut self.pairs[k];
        let seq = a.seq_no;
        if seq >= p.sent {
            p.bad += 1;
            return;
        }
        let i = seq as usize;
        p.acks[i] = p.acks[i].saturating_add(1);
        if p.acks[i] > 1 {
            p.dup_ack += 1;
            return;
        }
        if seq != p.next_ack {
            p.ack_ooo += 1;
        }
        p.next_ack = seq + 1;
        p.acked += 1;
        self.local[C_ACKED] += 1;
        self.ack_lat.push(now_us.saturating_sub(p.sent_at[i]));
        self.last_ack = Some(now);
        self.last_progress = now;
        if self.conf.rate.is_none() {
            self.fill(net, k, now);
        }
    }

    fn on_delivery(&mut self, k: usize, body: &[u8]) {
        let Ok(Some(Pdu::MsgData(d))) = Pdu::decode(Dir::ToClient, 3, 1, body) else {
            self.bad_frames += 1;
            return;
        };
        let Some((nonce, g, seq)) = parse_body(d.msg_data) else {
            self.stale += 1;
            return;
        };
        if nonce != self.conf.nonce {
            self.stale += 1;
            return;
        }
        let now = Instant::now();
        let now_us = self.shared.us(now) as u32;
        let sender = self.users.u[2 * k].id;
        let p = &mut self.pairs[k];
        if g != p.g || d.seq_no != seq || seq >= p.sent || d.from_id.value() != Some(sender) {
            p.bad += 1;
            return;
        }
        let i = seq as usize;
        p.deliv[i] = p.deliv[i].saturating_add(1);
        if p.deliv[i] > 1 {
            p.dup += 1;
            return;
        }
        if p.last_deliv.is_some_and(|l| seq < l) {
            p.ooo += 1;
        }
        p.last_deliv = Some(p.last_deliv.map_or(seq, |l| l.max(seq)));
        p.delivered += 1;
        self.local[C_DELIV] += 1;
        self.del_lat.push(now_us.saturating_sub(p.sent_at[i]));
        self.last_deliv = Some(now);
        self.last_progress = now;
    }

    fn publish(&mut self) {
        self.local[C_LOGINS] = self.users.ok;
        for i in 0..4 {
            self.shared.add(i, self.local[i] - self.published[i]);
            self.published[i] = self.local[i];
        }
    }

    fn pair_done(&self, k: usize) -> bool {
        let p = &self.pairs[k];
        p.broken || (p.acked == self.conf.messages && p.delivered == self.conf.messages)
    }

    pub fn finish(mut self, aborted: bool, net: &Net) -> Out {
        self.publish();
        let mut o = Out {
            stale: self.stale,
            bad_frames: self.bad_frames,
            login_failed: self.users.failed,
            lost_conns: self.lost_conns,
            stalled: self.stalled,
            aborted,
            proto_errors: net.proto_errors,
            last_ack_us: self.last_ack.map_or(0, |t| self.shared.us(t)),
            last_deliv_us: self.last_deliv.map_or(0, |t| self.shared.us(t)),
            first_error: self.users.first_error.take(),
            ..Out::default()
        };
        for p in &self.pairs {
            o.sent += u64::from(p.sent);
            o.acked += u64::from(p.acked);
            o.delivered += u64::from(p.delivered);
            o.dup += p.dup;
            o.ooo += p.ooo;
            o.dup_ack += p.dup_ack;
            o.ack_ooo += p.ack_ooo;
            o.bad += p.bad;
            o.broken += u64::from(p.broken);
            for (a, d) in p.acks.iter().zip(&p.deliv) {
                if *a > 0 && *d == 0 {
                    o.lost += 1;
                }
                if *a == 0 && *d > 0 {
                    o.unacked_deliv += 1;
                }
            }
        }
        o.ack_lat = std::mem::take(&mut self.ack_lat);
        o.del_lat = std::mem::take(&mut self.del_lat);
        o.login_lat = std::mem::take(&mut self.users.lat_us);
        o
    }
}

impl Handler for P2p {
    fn frame(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) {
        match self.users.on_frame(net, tok, h, body) {
            Outcome::Pass(ui) => match (ui % 2, h.module, h.command) {
                (0, 3, 2) => self.on_ack(net, ui / 2, body),
                (1, 3, 1) => self.on_delivery(ui / 2, body),
                _ => {}
            },
            Outcome::Failed(ui) => self.pairs[ui / 2].broken = true,
            Outcome::LoggedIn(_) | Outcome::Handled => {}
        }
    }

    fn closed(&mut self, _net: &mut Net, tok: usize, tag: u64, why: &str) {
        match self.users.on_closed(tok, tag, why) {
            Outcome::Pass(ui) => {
                self.lost_conns += 1;
                self.pairs[ui / 2].broken = true;
            }
            Outcome::Failed(ui) => self.pairs[ui / 2].broken = true,
            _ => {}
        }
    }
}

impl Scenario for P2p {
    fn tick(&mut self, net: &mut Net, now: Instant) -> bool {
        self.publish();
        for ui in self.users.pump(net, now) {
            self.pairs[ui / 2].broken = true;
        }
        self.users.heartbeats(net, now);
        if !self.phase0_done && self.users.settled() {
            self.phase0_done = true;
            self.shared.finish_phase(0);
        }
        if self.go.is_none() && self.shared.phase() >= 1 {
            self.go = Some(now);
            self.last_progress = now;
        }
        if self.go.is_none() {
            return false;
        }
        if self.conf.rate.is_some() || self.published[C_SENT] == 0 {
            for k in 0..self.pairs.len() {
                self.fill(net, k, now);
            }
        }
        if (0..self.pairs.len()).all(|k| self.pair_done(k)) {
            return true;
        }
        if now.duration_since(self.last_progress) > STALL {
            self.stalled = true;
            return true;
        }
        false
    }

    fn poll_timeout(&self) -> Duration {
        if self.conf.rate.is_some() {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(20)
        }
    }
}

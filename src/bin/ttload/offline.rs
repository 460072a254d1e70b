//! `offline`: senders send M messages each to their offline receivers, then the receivers log
//! in and read everything back (3/7 -> 3/8, then per peer 3/9 -> 3/14 and 3/3, repeated until
//! 3/8 is empty). Every message read is matched to (pair, seq).
//!
//! Phase 0: both users of a pair log in; the receiver marks everything from its sender read
//! (3/3, so earlier runs leave nothing behind), proves it with a 7/1 round trip and logs out.
//! Phase 1: senders send (window W) until every message is acked, then log out.
//! Phase 2: receivers log in and read.
//!
//! 3/14 returns at most `MaxUnreadMsgs` (server conf, default 100), newest first, and 3/3 marks
//! everything from that peer read: messages beyond the cap are counted `truncated` (raise
//! MaxUnreadMsgs above M for an exact run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ttserver::proto::frame::Header;
use ttserver::proto::{Dir, Id, MsgData, MsgReadAck, Pdu, UnreadMsgRequest};

use crate::net::{Handler, Net};
use crate::run::{body, parse_body, Scenario, Shared};
use crate::session::{Outcome, Users, UsersConf};

pub const C_LOGINS: usize = 0;
pub const C_SENT: usize = 1;
pub const C_ACKED: usize = 2;
pub const C_READ: usize = 3;

const CLEAN_RESERVED: u16 = 0x0C1E;
/// A receiver gives up after this many 3/7 rounds.
const MAX_ROUNDS: u32 = 100_000;
pub const STALL: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ps {
    Login,
    Cleaning,
    Ready,
    Sending,
    Acked,
    Reading,
    Done,
    Broken,
}

struct Pair {
    g: usize,
    st: Ps,
    sent: u32,
    acked: u32,
    next_ack: u32,
    acks: Vec<u8>,
    read: Vec<u8>,
    read_back: u32,
    dup: u64,
    ooo: u64,
    ack_ooo: u64,
    truncated: u64,
    foreign: u64,
    bad: u64,
    pending: Vec<(u32, u32)>,
    rounds: u32,
}

#[derive(Clone, Copy)]
pub struct Conf {
    pub messages: u32,
    pub window: u32,
    pub size: usize,
    pub nonce: u32,
}

#[derive(Default)]
pub struct Out {
    pub sent: u64,
    pub acked: u64,
    pub read_back: u64,
    pub dup: u64,
    pub ooo: u64,
    pub ack_ooo: u64,
    pub unacked_read: u64,
    pub unread: u64,
    pub truncated: u64,
    pub foreign: u64,
    pub stale: u64,
    pub bad: u64,
    pub bad_frames: u64,
    pub broken: u64,
    pub login_failed: u64,
    pub stalled: bool,
    pub aborted: bool,
    pub proto_errors: u64,
    pub last_ack_us: u64,
    pub last_read_us: u64,
    pub first_error: Option<String>,
}

pub struct Offline {
    users: Users,
    pairs: Vec<Pair>,
    conf: Conf,
    shared: Arc<Shared>,
    phase_done: [bool; 3],
    phase_seen: usize,
    last_progress: Instant,
    stalled: bool,
    last_ack: Option<Instant>,
    last_read: Option<Instant>,
    stale: u64,
    bad_frames: u64,
    buf: Vec<u8>,
    local: [u64; 4],
    published: [u64; 4],
}

impl Offline {
    pub fn new(
        pairs: &[usize],
        prefix: &str,
        uconf: &UsersConf,
        conf: Conf,
        shared: Arc<Shared>,
    ) -> Offline {
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
        Offline {
            users,
            pairs: pairs
                .iter()
                .map(|&i| Pair {
                    g: i + 1,
                    st: Ps::Login,
                    sent: 0,
                    acked: 0,
                    next_ack: 0,
                    acks: vec![0; m],
                    read: vec![0; m],
                    read_back: 0,
                    dup: 0,
                    ooo: 0,
                    ack_ooo: 0,
                    truncated: 0,
                    foreign: 0,
                    bad: 0,
                    pending: Vec::new(),
                    rounds: 0,
                })
                .collect(),
            conf,
            shared,
            phase_done: [false; 3],
            phase_seen: 0,
            last_progress: Instant::now(),
            stalled: false,
            last_ack: None,
            last_read: None,
            stale: 0,
            bad_frames: 0,
            buf: Vec::new(),
            local: [0; 4],
            published: [0; 4],
        }
    }

    fn publish(&mut self) {
        self.local[C_LOGINS] = self.users.ok;
        for i in 0..4 {
            self.shared.add(i, self.local[i] - self.published[i]);
            self.published[i] = self.local[i];
        }
    }

    fn broken(&mut self, net: &mut Net, k: usize) {
        if self.pairs[k].st != Ps::Done {
            self.pairs[k].st = Ps::Broken;
            self.users.close(net, 2 * k);
            self.users.close(net, 2 * k + 1);
        }
    }

    fn fill(&mut self, net: &mut Net, k: usize) {
        let (from, to, tok) = (
            self.users.u[2 * k].id,
            self.users.u[2 * k + 1].id,
            self.users.u[2 * k].tok,
        );
        let c = self.conf;
        let p = &mut self.pairs[k];
        while p.st == Ps::Sending && p.sent < c.messages && p.sent - p.acked < c.window {
            let seq = p.sent;
            body(&mut self.buf, c.nonce, p.g, seq, c.size);
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
        let p = &mut self.pairs[k];
        if a.seq_no >= p.sent {
            p.bad += 1;
            return;
        }
        let i = a.seq_no as usize;
        p.acks[i] = p.acks[i].saturating_add(1);
        if p.acks[i] > 1 {
            p.bad += 1;
            return;
        }
        if a.seq_no != p.next_ack {
            p.ack_ooo += 1;
        }
        p.next_ack = a.seq_no + 1;
        p.acked += 1;
        self.local[C_ACKED] += 1;
        self.last_ack = Some(now);
        self.last_progress = now;
        if p.acked == self.conf.messages {
            p.st = Ps::Acked;
            self.users.close(net, 2 * k);
        } else {
            self.fill(net, k);
        }
    }

    /// 3/8 on the receiver: fetch each peer with unread messages, or finish.
    fn on_counts(&mut self, net: &mut Net, k: usize, body: &[u8]) {
        let Ok(Some(Pdu::UnreadCountResponse(r))) = Pdu::decode(Dir::ToClient, 3, 8, body) else {
            self.bad_frames += 1;
            self.broken(net, k);
            return;
        };
        let p = &mut self.pairs[k];
        p.pending = r
            .counts
            .iter()
            .filter_map(|c| c.peer_id.value().map(|id| (id, c.unread_cnt)))
            .rev()
            .collect();
        p.rounds += 1;
        if p.pending.is_empty() || p.rounds > MAX_ROUNDS {
            let now = Instant::now();
            p.st = Ps::Done;
            self.last_read = Some(now);
            self.last_progress = now;
            self.users.close(net, 2 * k + 1);
        } else {
            self.next_fetch(net, k);
        }
    }

    fn next_fetch(&mut self, net: &mut Net, k: usize) {
        let tok = self.users.u[2 * k + 1].tok;
        match self.pairs[k].pending.last() {
            Some(&(peer, _)) => net.send(
                tok,
                &Pdu::UnreadMsgRequest(UnreadMsgRequest {
                    peer_id: Id::Num(peer),
                }),
                3,
            ),
            None => net.send(tok, &Pdu::UnreadCountRequest, 2),
        }
    }

    /// 3/14 on the receiver: record, mark read (3/3), go on.
    fn on_msgs(&mut self, net: &mut Net, k: usize, body: &[u8]) {
        let Ok(Some(Pdu::UnreadMsgResponse(r))) = Pdu::decode(Dir::ToClient, 3, 14, body) else {
            self.bad_frames += 1;
            self.broken(net, k);
            return;
        };
        let sender = self.users.u[2 * k].id;
        let nonce = self.conf.nonce;
        let now = Instant::now();
        let p = &mut self.pairs[k];
        let Some((peer, cnt)) = p.pending.pop() else {
            p.bad += 1;
            return;
        };
        if r.peer_id.value() != Some(peer) {
            p.bad += 1;
        }
        if (r.msgs.len() as u64) < u64::from(cnt) {
            p.truncated += u64::from(cnt) - r.msgs.len() as u64;
        }
        let mut prev: Option<u32> = None;
        for m in &r.msgs {
            if peer != sender || m.from_id.value() != Some(sender) {
                p.foreign += 1;
                continue;
            }
            match parse_body(m.msg_data) {
                Some((n, g, seq)) if n == nonce && g == p.g && seq < p.sent => {
                    let i = seq as usize;
                    p.read[i] = p.read[i].saturating_add(1);
                    if p.read[i] > 1 {
                        p.dup += 1;
                    } else {
                        p.read_back += 1;
                        self.local[C_READ] += 1;
                    }
                    // newest first within one 3/14
                    if prev.is_some_and(|q| seq >= q) {
                        p.ooo += 1;
                    }
                    prev = Some(seq);
                }
                Some((n, _, _)) if n != nonce => self.stale += 1,
                _ => p.bad += 1,
            }
        }
        self.last_read = Some(now);
        self.last_progress = now;
        let tok = self.users.u[2 * k + 1].tok;
        net.send(
            tok,
            &Pdu::MsgReadAck(MsgReadAck {
                peer_id: Id::Num(peer),
            }),
            4,
        );
        self.next_fetch(net, k);
    }

    pub fn finish(mut self, aborted: bool, net: &Net) -> Out {
        self.publish();
        let mut o = Out {
            stale: self.stale,
            bad_frames: self.bad_frames,
            login_failed: self.users.failed,
            stalled: self.stalled,
            aborted,
            proto_errors: net.proto_errors,
            last_ack_us: self.last_ack.map_or(0, |t| self.shared.us(t)),
            last_read_us: self.last_read.map_or(0, |t| self.shared.us(t)),
            first_error: self.users.first_error.take(),
            ..Out::default()
        };
        for p in &self.pairs {
            o.sent += u64::from(p.sent);
            o.acked += u64::from(p.acked);
            o.read_back += u64::from(p.read_back);
            o.dup += p.dup;
            o.ooo += p.ooo;
            o.ack_ooo += p.ack_ooo;
            o.truncated += p.truncated;
            o.foreign += p.foreign;
            o.bad += p.bad;
            o.broken += u64::from(p.st == Ps::Broken);
            for (a, r) in p.acks.iter().zip(&p.read) {
                if *a > 0 && *r == 0 {
                    o.unread += 1;
                }
                if *a == 0 && *r > 0 {
                    o.unacked_read += 1;
                }
            }
        }
        o
    }
}

impl Handler for Offline {
    fn frame(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) {
        match self.users.on_frame(net, tok, h, body) {
            Outcome::LoggedIn(ui) => {
                self.last_progress = Instant::now();
                let k = ui / 2;
                match self.pairs[k].st {
                    Ps::Login if self.users.online(2 * k) && self.users.online(2 * k + 1) => {
                        let r = self.users.u[2 * k + 1].tok;
                        let peer = self.users.u[2 * k].id;
                        net.send(
                            r,
                            &Pdu::MsgReadAck(MsgReadAck {
                                peer_id: Id::Num(peer),
                            }),
                            1,
                        );
                        net.send(r, &Pdu::Heartbeat, CLEAN_RESERVED);
                        self.pairs[k].st = Ps::Cleaning;
                    }
                    Ps::Reading if ui % 2 == 1 => net.send(tok, &Pdu::UnreadCountRequest, 2),
                    _ => {}
                }
            }
            Outcome::Pass(ui) => {
                let k = ui / 2;
                match (ui % 2, self.pairs[k].st, h.module, h.command) {
                    (1, Ps::Cleaning, 7, 1) if h.reserved == CLEAN_RESERVED => {
                        self.pairs[k].st = Ps::Ready;
                        self.users.close(net, ui);
                    }
                    (0, Ps::Sending, 3, 2) => self.on_ack(net, k, body),
                    (1, Ps::Reading, 3, 8) => self.on_counts(net, k, body),
                    (1, Ps::Reading, 3, 14) => self.on_msgs(net, k, body),
                    _ => {}
                }
            }
            Outcome::Failed(ui) => self.broken(net, ui / 2),
            Outcome::Handled => {}
        }
    }

    fn closed(&mut self, net: &mut Net, tok: usize, tag: u64, why: &str) {
        match self.users.on_closed(tok, tag, why) {
            Outcome::Pass(ui) | Outcome::Failed(ui) => self.broken(net, ui / 2),
            _ => {}
        }
    }
}

impl Scenario for Offline {
    fn tick(&mut self, net: &mut Net, now: Instant) -> bool {
        self.publish();
        for ui in self.users.pump(net, now) {
            self.broken(net, ui / 2);
        }
        self.users.heartbeats(net, now);
        let phase = self.shared.phase();
        if phase > self.phase_seen {
            self.phase_seen = phase;
            self.last_progress = now;
            for k in 0..self.pairs.len() {
                match (phase, self.pairs[k].st) {
                    (1, Ps::Ready) => {
                        self.pairs[k].st = Ps::Sending;
                        self.fill(net, k);
                    }
                    (2, Ps::Acked) => {
                        self.pairs[k].st = Ps::Reading;
                        self.users.enqueue(2 * k + 1);
                    }
                    _ => {}
                }
            }
        }
        let all = |pairs: &[Pair], ok: &[Ps]| pairs.iter().all(|p| ok.contains(&p.st));
        match phase {
            0 if !self.phase_done[0]
                && self.users.settled()
                && all(&self.pairs, &[Ps::Ready, Ps::Broken]) =>
            {
                self.phase_done[0] = true;
                self.shared.finish_phase(0);
            }
            1 if !self.phase_done[1] && all(&self.pairs, &[Ps::Acked, Ps::Broken]) => {
                self.phase_done[1] = true;
                self.shared.finish_phase(1);
            }
            2 if all(&self.pairs, &[Ps::Done, Ps::Broken]) => return true,
            _ => {}
        }
        if phase >= 1 && now.duration_since(self.last_progress) > STALL {
            self.stalled = true;
            return true;
        }
        false
    }
}

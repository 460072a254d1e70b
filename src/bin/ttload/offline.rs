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
use std::time::Instant;

use ttserver::proto::frame::Header;
use ttserver::proto::{Dir, Id, MsgReadAck, Pdu, UnreadMsgRequest};

use crate::args::Common;
use crate::flow::{bit_set, body, lost_unacked, parse_body, send_msg, words, Load};
use crate::meter::{Meter, Tally, C_ACKED, C_DELIV, C_LOGINS, C_SENT};
use crate::net::{Handler, Net};
use crate::run::{first_error, start_pairs, supervise, Scenario, Shared};
use crate::session::{Outcome, Users};
use crate::stats::per_s;

const CLEAN_RESERVED: u16 = 0x0C1E;
/// A receiver gives up after this many 3/7 rounds.
const MAX_ROUNDS: u32 = 100_000;

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
    /// A bit per seq acked, and per seq read back.
    acks: Vec<u64>,
    read: Vec<u64>,
    read_back: u32,
    /// (peer, unread count) of the last 3/8, fetched from the end.
    pending: Vec<(u32, u32)>,
    rounds: u32,
}

pub struct Out {
    pub t: Tally,
    /// Messages beyond MaxUnreadMsgs, marked read unseen.
    pub truncated: u64,
    /// Messages read back from another user than the pair's sender.
    pub foreign: u64,
}

pub struct Offline {
    m: Meter,
    pairs: Vec<Pair>,
    load: Load,
    phase_done: [bool; 3],
    phase_seen: usize,
    truncated: u64,
    foreign: u64,
}

impl Offline {
    /// `pairs`: the 0-based global indices of this thread's pairs; `users`: their sender and
    /// receiver each (`Roster::pairs`).
    pub fn new(pairs: &[usize], users: Users, load: Load, shared: Arc<Shared>) -> Offline {
        let w = words(load.messages);
        Offline {
            m: Meter::new(users, shared),
            pairs: pairs
                .iter()
                .map(|&i| Pair {
                    g: i + 1,
                    st: Ps::Login,
                    sent: 0,
                    acked: 0,
                    next_ack: 0,
                    acks: vec![0; w],
                    read: vec![0; w],
                    read_back: 0,
                    pending: Vec::new(),
                    rounds: 0,
                })
                .collect(),
            load,
            phase_done: [false; 3],
            phase_seen: 0,
            truncated: 0,
            foreign: 0,
        }
    }

    fn broken(&mut self, net: &mut Net, k: usize) {
        if self.pairs[k].st != Ps::Done {
            self.pairs[k].st = Ps::Broken;
            self.m.users.close(net, 2 * k);
            self.m.users.close(net, 2 * k + 1);
        }
    }

    fn fill(&mut self, net: &mut Net, k: usize) {
        let u = &self.m.users.u;
        let (from, to, tok) = (u[2 * k].id, u[2 * k + 1].id, u[2 * k].tok);
        let (l, p) = (&self.load, &mut self.pairs[k]);
        while p.st == Ps::Sending && p.sent < l.messages && p.sent - p.acked < l.window {
            let seq = p.sent;
            body(&mut self.m.buf, l.nonce, p.g, seq, l.size);
            send_msg(net, tok, from, to, 1, seq, &self.m.buf);
            p.sent += 1;
            self.m.count(C_SENT);
        }
    }

    fn on_ack(&mut self, net: &mut Net, k: usize, body: &[u8]) {
        let Ok(Some(Pdu::MsgDataAck(a))) = Pdu::decode(Dir::ToClient, 3, 2, body) else {
            self.m.t.bad_frames += 1;
            return;
        };
        let now = Instant::now();
        let p = &mut self.pairs[k];
        // A second ack of a seq counts as bad here.
        if a.seq_no >= p.sent || bit_set(&mut p.acks, a.seq_no as usize) {
            self.m.t.bad += 1;
            return;
        }
        if a.seq_no != p.next_ack {
            self.m.t.ack_ooo += 1;
        }
        p.next_ack = a.seq_no + 1;
        p.acked += 1;
        self.m.count(C_ACKED);
        self.m.last_ack = Some(now);
        self.m.last_progress = now;
        if p.acked == self.load.messages {
            p.st = Ps::Acked;
            self.m.users.close(net, 2 * k);
        } else {
            self.fill(net, k);
        }
    }

    /// 3/8 on the receiver: fetch each peer with unread messages, or finish.
    fn on_counts(&mut self, net: &mut Net, k: usize, body: &[u8]) {
        let Ok(Some(Pdu::UnreadCountResponse(r))) = Pdu::decode(Dir::ToClient, 3, 8, body) else {
            self.m.t.bad_frames += 1;
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
            self.m.last_deliv = Some(now);
            self.m.last_progress = now;
            self.m.users.close(net, 2 * k + 1);
        } else {
            self.next_fetch(net, k);
        }
    }

    fn next_fetch(&mut self, net: &mut Net, k: usize) {
        let tok = self.m.users.u[2 * k + 1].tok;
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
            self.m.t.bad_frames += 1;
            self.broken(net, k);
            return;
        };
        let sender = self.m.users.u[2 * k].id;
        let nonce = self.load.nonce;
        let now = Instant::now();
        let p = &mut self.pairs[k];
        let Some((peer, cnt)) = p.pending.pop() else {
            self.m.t.bad += 1;
            return;
        };
        if r.peer_id.value() != Some(peer) {
            self.m.t.bad += 1;
        }
        if (r.msgs.len() as u64) < u64::from(cnt) {
            self.truncated += u64::from(cnt) - r.msgs.len() as u64;
        }
        let mut prev: Option<u32> = None;
        for m in &r.msgs {
            if peer != sender || m.from_id.value() != Some(sender) {
                self.foreign += 1;
                continue;
            }
            match parse_body(m.msg_data) {
                Some((n, (g, seq))) if n == nonce && g == p.g && seq < p.sent => {
                    if bit_set(&mut p.read, seq as usize) {
                        self.m.t.dup += 1;
                    } else {
                        p.read_back += 1;
                        self.m.count(C_DELIV);
                    }
                    // newest first within one 3/14
                    if prev.is_some_and(|q| seq >= q) {
                        self.m.t.ooo += 1;
                    }
                    prev = Some(seq);
                }
                Some((n, _)) if n != nonce => self.m.t.stale += 1,
                _ => self.m.t.bad += 1,
            }
        }
        self.m.last_deliv = Some(now);
        self.m.last_progress = now;
        let tok = self.m.users.u[2 * k + 1].tok;
        net.send(
            tok,
            &Pdu::MsgReadAck(MsgReadAck {
                peer_id: Id::Num(peer),
            }),
            4,
        );
        self.next_fetch(net, k);
    }
}

impl Handler for Offline {
    fn frame(&mut self, net: &mut Net, tok: usize, h: &Header, body: &[u8]) {
        match self.m.users.on_frame(net, tok, h, body) {
            Outcome::LoggedIn(ui) => {
                self.m.last_progress = Instant::now();
                let k = ui / 2;
                let users = &self.m.users;
                match self.pairs[k].st {
                    Ps::Login if users.online(2 * k) && users.online(2 * k + 1) => {
                        let r = users.u[2 * k + 1].tok;
                        let peer = users.u[2 * k].id;
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
                        self.m.users.close(net, ui);
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
        match self.m.users.on_closed(tok, tag, why) {
            Outcome::Pass(ui) | Outcome::Failed(ui) => self.broken(net, ui / 2),
            _ => {}
        }
    }
}

impl Scenario for Offline {
    type Out = Out;

    fn tick(&mut self, net: &mut Net, now: Instant) -> bool {
        for ui in self.m.logins(net, now) {
            self.broken(net, ui / 2);
        }
        let phase = self.m.shared.phase();
        if phase > self.phase_seen {
            self.phase_seen = phase;
            self.m.last_progress = now;
            for k in 0..self.pairs.len() {
                match (phase, self.pairs[k].st) {
                    (1, Ps::Ready) => {
                        self.pairs[k].st = Ps::Sending;
                        self.fill(net, k);
                    }
                    (2, Ps::Acked) => {
                        self.pairs[k].st = Ps::Reading;
                        self.m.users.enqueue(2 * k + 1);
                    }
                    _ => {}
                }
            }
        }
        let all = |pairs: &[Pair], ok: &[Ps]| pairs.iter().all(|p| ok.contains(&p.st));
        match phase {
            0 if !self.phase_done[0]
                && self.m.users.settled()
                && all(&self.pairs, &[Ps::Ready, Ps::Broken]) =>
            {
                self.phase_done[0] = true;
                self.m.shared.finish_phase(0);
            }
            1 if !self.phase_done[1] && all(&self.pairs, &[Ps::Acked, Ps::Broken]) => {
                self.phase_done[1] = true;
                self.m.shared.finish_phase(1);
            }
            2 if all(&self.pairs, &[Ps::Done, Ps::Broken]) => return true,
            _ => {}
        }
        phase >= 1 && self.m.stalled(now)
    }

    fn finish(mut self, done: bool, net: &Net) -> Out {
        let t = &mut self.m.t;
        for p in &self.pairs {
            t.sent += u64::from(p.sent);
            t.acked += u64::from(p.acked);
            t.delivered += u64::from(p.read_back);
            t.broken += u64::from(p.st == Ps::Broken);
            let (unread, unacked) = lost_unacked(&p.acks, &p.read);
            t.lost += unread;
            t.unacked += unacked;
        }
        Out {
            truncated: self.truncated,
            foreign: self.foreign,
            t: self.m.finish(done, net),
        }
    }
}

/// Sends `load` from each of `pairs` senders to its offline receiver, has the receivers read it
/// back, and prints the result line; Ok(false) unless all was read back exactly once.
pub fn run(c: &Common, pairs: usize, load: Load) -> Result<bool, String> {
    let (shared, handles) = start_pairs(c, pairs, load, Offline::new)?;
    let expected = pairs as u64 * u64::from(load.messages);
    let r = supervise(
        &shared,
        handles,
        2,
        |t| {
            format!(
                "offline: {t:.0}s phase {} logins {} sent {} acked {}/{expected} read {}",
                shared.phase(),
                shared.get(C_LOGINS),
                shared.get(C_SENT),
                shared.get(C_ACKED),
                shared.get(C_DELIV)
            )
        },
        |p| match p {
            1 => eprintln!("offline: receivers offline, sending"),
            _ => eprintln!("offline: all acked, receivers reading"),
        },
    )?;
    let truncated: u64 = r.iter().map(|o| o.truncated).sum();
    let foreign: u64 = r.iter().map(|o| o.foreign).sum();
    let t = Tally::merge(r.into_iter().map(|o| o.t));
    first_error(std::iter::once(&t.first_error));
    if truncated > 0 {
        eprintln!(
            "ttload: {truncated} messages were beyond the server's MaxUnreadMsgs and were marked \
             read unseen: raise MaxUnreadMsgs above --messages"
        );
    }
    let (p1, p2) = (shared.opened(1), shared.opened(2));
    let send_us = t.last_ack_us.saturating_sub(p1);
    let read_us = if p2 > 0 {
        t.last_deliv_us.saturating_sub(p2)
    } else {
        0
    };
    let exactly_once = t.exactly_once() && truncated == 0;
    let complete = t.complete(expected, expected);
    let Tally {
        sent,
        acked,
        delivered: read_back,
        lost: unread,
        unacked,
        dup,
        ooo,
        ack_ooo,
        stale,
        bad,
        bad_frames,
        proto_errors,
        login_failed,
        broken,
        stalled,
        ..
    } = t;
    let Load {
        messages,
        window,
        size,
        ..
    } = load;
    let (send_s, read_s) = (send_us as f64 / 1e6, read_us as f64 / 1e6);
    let (ack_per_s, read_per_s) = (per_s(acked, send_us), per_s(read_back, read_us));
    println!(
        "result scenario=offline pairs={pairs} messages={messages} window={window} size={size} \
         threads={threads} sent={sent} acked={acked} read_back={read_back} unread={unread} \
         dup={dup} out_of_order={ooo} unacked_read={unacked} ack_out_of_order={ack_ooo} \
         truncated={truncated} foreign={foreign} stale={stale} bad={bad} \
         bad_frames={bad_frames} proto_errors={proto_errors} login_failed={login_failed} \
         broken_pairs={broken} stalled={stalled} send_s={send_s:.3} ack_per_s={ack_per_s:.1} \
         read_s={read_s:.3} read_per_s={read_per_s:.1} complete={complete} \
         exactly_once={exactly_once}",
        threads = c.threads,
    );
    Ok(exactly_once && complete)
}

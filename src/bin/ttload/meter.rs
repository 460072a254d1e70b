//! What p2p, offline and group do alike in each driver thread: log the users in, publish
//! progress, match acks and deliveries, notice a stall; and what they count alike (`Tally`),
//! which the main thread merges over the threads for the result line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ttserver::proto::{Dir, MsgData, Pdu};

use crate::flow::{bit_set, Flow};
use crate::net::Net;
use crate::run::{first_error, Published, Shared};
use crate::session::{Outcome, Users};
use crate::stats::Lat;

/// Progress counters (`Shared::count`).
pub const C_LOGINS: usize = 0;
pub const C_SENT: usize = 1;
pub const C_ACKED: usize = 2;
/// Messages delivered (offline: read back).
pub const C_DELIV: usize = 3;

/// The run ends when nothing was acked or delivered for this long.
pub const STALL: Duration = Duration::from_secs(10);

/// The progress lines of p2p and group: counts, and the rates since the line before.
pub struct Progress {
    /// The scenario.
    what: &'static str,
    users: usize,
    /// Acks expected in all.
    acks: u64,
    /// Deliveries expected in all, if shown.
    deliveries: Option<u64>,
    /// (acked, delivered) at the line before.
    prev: (u64, u64),
}

impl Progress {
    pub fn new(what: &'static str, users: usize, acks: u64, deliveries: Option<u64>) -> Progress {
        Progress {
            what,
            users,
            acks,
            deliveries,
            prev: (0, 0),
        }
    }

    /// The line `t` seconds into the run.
    pub fn line(&mut self, shared: &Shared, t: f64) -> String {
        let (ack, del) = (shared.get(C_ACKED), shared.get(C_DELIV));
        let of = self.deliveries.map_or(String::new(), |n| format!("/{n}"));
        let s = format!(
            "{}: {t:.0}s logged_in {}/{} sent {} acked {ack}/{} delivered {del}{of} ({}/s acked, \
             {}/s delivered)",
            self.what,
            shared.get(C_LOGINS),
            self.users,
            shared.get(C_SENT),
            self.acks,
            ack - self.prev.0,
            del - self.prev.1
        );
        self.prev = (ack, del);
        s
    }
}

/// A thread's counts, or (merged) the run's.
#[derive(Default)]
pub struct Tally {
    pub sent: u64,
    pub acked: u64,
    /// First deliveries (offline: messages read back).
    pub delivered: u64,
    /// Acked but never delivered (offline: never read).
    pub lost: u64,
    /// Delivered but never acked.
    pub unacked: u64,
    pub dup: u64,
    pub ooo: u64,
    pub dup_ack: u64,
    pub ack_ooo: u64,
    /// Acks and deliveries that match nothing sent.
    pub bad: u64,
    /// Bodies of another run (another nonce) or not ours at all.
    pub stale: u64,
    /// Frames that do not decode as what they claim to be.
    pub bad_frames: u64,
    pub proto_errors: u64,
    pub login_failed: u64,
    /// Online connections lost.
    pub lost_conns: u64,
    /// Pairs given up (a login failed or a connection was lost).
    pub broken: u64,
    pub stalled: bool,
    pub aborted: bool,
    /// Latencies in µs: send -> ack, send -> delivery, 1/1 -> 1/4.
    pub ack_lat: Vec<u32>,
    pub del_lat: Vec<u32>,
    pub login_lat: Vec<u32>,
    /// µs since the shared epoch (0: none).
    pub last_ack_us: u64,
    pub last_deliv_us: u64,
    pub first_error: Option<String>,
}

impl Tally {
    /// The threads' tallies as one: sums, the latest times, the first error in thread order.
    pub fn merge(parts: impl IntoIterator<Item = Tally>) -> Tally {
        let mut t = Tally::default();
        for p in parts {
            t.sent += p.sent;
            t.acked += p.acked;
            t.delivered += p.delivered;
            t.lost += p.lost;
            t.unacked += p.unacked;
            t.dup += p.dup;
            t.ooo += p.ooo;
            t.dup_ack += p.dup_ack;
            t.ack_ooo += p.ack_ooo;
            t.bad += p.bad;
            t.stale += p.stale;
            t.bad_frames += p.bad_frames;
            t.proto_errors += p.proto_errors;
            t.login_failed += p.login_failed;
            t.lost_conns += p.lost_conns;
            t.broken += p.broken;
            t.stalled |= p.stalled;
            t.aborted |= p.aborted;
            t.ack_lat.extend(p.ack_lat);
            t.del_lat.extend(p.del_lat);
            t.login_lat.extend(p.login_lat);
            t.last_ack_us = t.last_ack_us.max(p.last_ack_us);
            t.last_deliv_us = t.last_deliv_us.max(p.last_deliv_us);
            t.first_error = t.first_error.or(p.first_error);
        }
        t
    }

    /// Prints the first error and, if the run stalled, that it stopped.
    pub fn report_errors(&self) {
        first_error(std::iter::once(&self.first_error));
        if self.stalled {
            eprintln!("ttload: nothing acked or delivered for {STALL:?}: stopped");
        }
    }

    /// Every message arrived once, in order, matching what was sent and acked.
    pub fn exactly_once(&self) -> bool {
        self.lost == 0
            && self.dup == 0
            && self.ooo == 0
            && self.unacked == 0
            && self.ack_ooo == 0
            && self.dup_ack == 0
            && self.bad == 0
            && self.bad_frames == 0
            && self.proto_errors == 0
    }

    /// Everything sent, acked and delivered, with no failure on the way.
    pub fn complete(&self, sent: u64, delivered: u64) -> bool {
        self.sent == sent
            && self.acked == sent
            && self.delivered == delivered
            && self.login_failed == 0
            && self.lost_conns == 0
            && self.broken == 0
            && !self.stalled
            && !self.aborted
    }

    /// `unacked_delivered=.. ack_out_of_order=.. dup_acks=.. bad=.. stale=.. bad_frames=..
    /// proto_errors=.. login_failed=.. conns_lost=..` of the p2p and group result lines.
    pub fn fault_keys(&self) -> String {
        format!(
            "unacked_delivered={} ack_out_of_order={} dup_acks={} bad={} stale={} bad_frames={} \
             proto_errors={} login_failed={} conns_lost={}",
            self.unacked,
            self.ack_ooo,
            self.dup_ack,
            self.bad,
            self.stale,
            self.bad_frames,
            self.proto_errors,
            self.login_failed,
            self.lost_conns
        )
    }

    /// `{p50_ms..max_ms}{ack_p50_ms..ack_max_ms} login_p50_ms=.. login_p99_ms=..` of the result
    /// line (the samples are used up).
    pub fn latency_keys(&mut self) -> String {
        let del = Lat::new([std::mem::take(&mut self.del_lat)]);
        let ack = Lat::new([std::mem::take(&mut self.ack_lat)]);
        let login = Lat::new([std::mem::take(&mut self.login_lat)]);
        format!(
            "{}{} login_p50_ms={:.3} login_p99_ms={:.3}",
            del.keys(""),
            ack.keys("ack_"),
            login.ms(0.5),
            login.ms(0.99)
        )
    }
}

/// A message scenario's per-thread state besides its own.
pub struct Meter {
    pub users: Users,
    pub shared: Arc<Shared>,
    /// This thread's progress counters (`C_*`).
    local: [u64; 4],
    published: Published<4>,
    phase0_done: bool,
    /// When this thread saw phase 1 (sending) open.
    pub go: Option<Instant>,
    pub last_progress: Instant,
    pub last_ack: Option<Instant>,
    pub last_deliv: Option<Instant>,
    /// This thread's counts; `finish` completes them.
    pub t: Tally,
    /// A message body being built.
    pub buf: Vec<u8>,
}

impl Meter {
    pub fn new(users: Users, shared: Arc<Shared>) -> Meter {
        Meter {
            users,
            shared,
            local: [0; 4],
            published: Published::default(),
            phase0_done: false,
            go: None,
            last_progress: Instant::now(),
            last_ack: None,
            last_deliv: None,
            t: Tally::default(),
            buf: Vec::new(),
        }
    }

    pub fn count(&mut self, c: usize) {
        self.local[c] += 1;
    }

    /// The progress counter `c` as last published.
    pub fn published(&self, c: usize) -> u64 {
        self.published.get(c)
    }

    pub fn publish(&mut self) {
        self.local[C_LOGINS] = self.users.ok;
        self.published.publish(&self.shared, self.local);
    }

    /// The start of a tick: publishes progress, starts queued logins (returns the users whose
    /// login failed at once) and sends the heartbeats due.
    pub fn logins(&mut self, net: &mut Net, now: Instant) -> Vec<usize> {
        self.publish();
        let failed = self.users.pump(net, now);
        self.users.heartbeats(net, now);
        failed
    }

    /// p2p and group: this thread's phase 0 ends when no login is pending; true once phase 1
    /// is open (`go`, and the stall clock, start when this thread first sees it).
    pub fn sending(&mut self, now: Instant) -> bool {
        if !self.phase0_done && self.users.settled() {
            self.phase0_done = true;
            self.shared.finish_phase(0);
        }
        if self.go.is_none() && self.shared.phase() >= 1 {
            self.go = Some(now);
            self.last_progress = now;
        }
        self.go.is_some()
    }

    /// A connection went away (`Handler::closed`): the user whose login failed, or whose
    /// online connection was lost (counted), if any.
    pub fn closed(&mut self, tok: usize, tag: u64, why: &str) -> Option<usize> {
        match self.users.on_closed(tok, tag, why) {
            Outcome::Pass(ui) => {
                self.t.lost_conns += 1;
                Some(ui)
            }
            Outcome::Failed(ui) => Some(ui),
            Outcome::LoggedIn(_) | Outcome::Handled => None,
        }
    }

    /// True (and counted) when nothing moved for `STALL`.
    pub fn stalled(&mut self, now: Instant) -> bool {
        if now.duration_since(self.last_progress) > STALL {
            self.t.stalled = true;
        }
        self.t.stalled
    }

    /// A 3/2 for `flow`, matched to its seq and counted; the time, if it acked a new seq.
    pub fn ack(&mut self, flow: &mut Flow, body: &[u8]) -> Option<Instant> {
        let Ok(Some(Pdu::MsgDataAck(a))) = Pdu::decode(Dir::ToClient, 3, 2, body) else {
            self.t.bad_frames += 1;
            return None;
        };
        let now = Instant::now();
        let now_us = self.shared.us(now) as u32;
        let seq = a.seq_no;
        if seq >= flow.sent {
            self.t.bad += 1;
            return None;
        }
        if bit_set(&mut flow.acks, seq as usize) {
            self.t.dup_ack += 1;
            return None;
        }
        if seq != flow.next_ack {
            self.t.ack_ooo += 1;
        }
        flow.next_ack = seq + 1;
        flow.acked += 1;
        self.count(C_ACKED);
        self.t
            .ack_lat
            .push(now_us.saturating_sub(flow.sent_at(seq)));
        self.last_ack = Some(now);
        self.last_progress = now;
        Some(now)
    }

    /// A 3/1 whose body is tagged with this run's `nonce` (`parse` reads the tag: the nonce,
    /// then the rest); else None, counted as a bad frame or stale.
    pub fn delivery<'a, T>(
        &mut self,
        body: &'a [u8],
        nonce: u32,
        parse: impl FnOnce(&[u8]) -> Option<(u32, T)>,
    ) -> Option<(MsgData<'a>, T)> {
        let Ok(Some(Pdu::MsgData(d))) = Pdu::decode(Dir::ToClient, 3, 1, body) else {
            self.t.bad_frames += 1;
            return None;
        };
        match parse(d.msg_data) {
            Some((n, tag)) if n == nonce => Some((d, tag)),
            _ => {
                self.t.stale += 1;
                None
            }
        }
    }

    /// Counts the delivery of `seq` (at `now`, `lat` µs after its send) from one sender to one
    /// receiver: `got` has a bit per seq that receiver got from that sender, `last` is the
    /// highest of them. True if it is new (the caller counts it delivered).
    pub fn delivered(
        &mut self,
        got: &mut [u64],
        last: &mut Option<u32>,
        seq: u32,
        lat: u32,
        now: Instant,
    ) -> bool {
        if bit_set(got, seq as usize) {
            self.t.dup += 1;
            return false;
        }
        if last.is_some_and(|l| seq < l) {
            self.t.ooo += 1;
        }
        *last = Some(last.map_or(seq, |l| l.max(seq)));
        self.count(C_DELIV);
        self.t.del_lat.push(lat);
        self.last_deliv = Some(now);
        self.last_progress = now;
        true
    }

    /// The thread's tally, completed with what the users and the connections saw.
    pub fn finish(mut self, done: bool, net: &Net) -> Tally {
        self.publish();
        let us = |t: Option<Instant>| t.map_or(0, |t| self.shared.us(t));
        Tally {
            login_failed: self.users.failed,
            proto_errors: net.proto_errors,
            aborted: !done,
            login_lat: std::mem::take(&mut self.users.lat_us),
            last_ack_us: us(self.last_ack),
            last_deliv_us: us(self.last_deliv),
            first_error: self.users.first_error.take(),
            ..self.t
        }
    }
}

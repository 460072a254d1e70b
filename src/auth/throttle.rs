//! Login throttling (behaviour.md B-LOGIN-7, B-LOGIN-8).
//!
//! Every failed password verification is recorded against the login name and against the peer
//! IP. When either reaches `limit` failures within `window`, it is locked for `lockout` counted
//! from that failure. The caller asks [`LoginThrottle::is_locked`] before verifying; a locked
//! attempt is answered without verification and is *not* recorded. A success clears the name's
//! record, not the IP's.
//!
//! Pure logic: the caller passes `now`, nothing here reads a clock.
//!
//! Memory is bounded:
//! - names are stored as a 64-bit keyed hash (SipHash with a per-process random key), so a peer
//!   sending megabyte-long names costs a fixed amount per entry;
//! - an IPv6 peer is tracked by its /64 prefix (one host's usual allocation, so rotating through
//!   its own addresses does not escape the limit); an IPv4-mapped IPv6 address counts as IPv4;
//! - each entry keeps at most `limit` failure times;
//! - entries whose window and lockout have both passed are dropped: lazily when looked up, and
//!   in a full sweep whenever the table has doubled since the last sweep (amortised O(1));
//! - the table never holds more than [`MAX_TRACKED`] entries. On overflow, after a sweep, the
//!   oldest eighth of the entries (those that expire soonest) is evicted, so a new failure is
//!   always tracked. Evicting rather than refusing new entries means that an attacker spraying
//!   names cannot make further names throttle-free; to evict one victim's record it must cause
//!   about `MAX_TRACKED / 8` failed verifications, each costing it an argon2 round trip, while
//!   locked entries (which expire last) are the last to go.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most entries (names plus IPs) the throttle tracks at once.
pub const MAX_TRACKED: usize = 100_000;
/// The table is swept when it reaches this size (then twice its size after the sweep).
const MIN_SWEEP_AT: usize = 1024;
/// Window and lockout are clamped to this, so `Instant + Duration` cannot overflow.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// Keyed hash of the login name.
    Name(u64),
    /// IPv4 address, or the high 64 bits of an IPv6 address.
    V4(u32),
    V6Prefix(u64),
}

#[derive(Debug)]
struct Record {
    /// Times of the most recent failures, oldest first, at most `limit` of them.
    failures: VecDeque<Instant>,
    /// Locked while `now < locked_until`.
    locked_until: Option<Instant>,
    /// When the record stops mattering: the later of lock end and last failure + window.
    expires: Instant,
}

/// Failed-login bookkeeping per login name and per peer IP. See the module doc.
#[derive(Debug)]
pub struct LoginThrottle {
    limit: u32,
    window: Duration,
    lockout: Duration,
    hasher: RandomState,
    table: HashMap<Key, Record>,
    sweep_at: usize,
}

impl LoginThrottle {
    /// `limit` failures (at least 1) within `window` lock for `lockout`. Durations longer than a
    /// year are clamped to a year.
    pub fn new(limit: u32, window: Duration, lockout: Duration) -> Self {
        LoginThrottle {
            limit: limit.max(1),
            window: window.min(MAX_DURATION),
            lockout: lockout.min(MAX_DURATION),
            hasher: RandomState::new(),
            table: HashMap::new(),
            sweep_at: MIN_SWEEP_AT,
        }
    }

    /// True if the name or the IP is locked at `now`.
    pub fn is_locked(&mut self, name: &[u8], ip: IpAddr, now: Instant) -> bool {
        let name_key = self.name_key(name);
        // Evaluate both so that both expired entries get dropped.
        let name_locked = self.check(name_key, now);
        let ip_locked = self.check(ip_key(ip), now);
        name_locked || ip_locked
    }

    /// Records one failed verification of `name` from `ip` at `now`.
    pub fn record_failure(&mut self, name: &[u8], ip: IpAddr, now: Instant) {
        let name_key = self.name_key(name);
        self.record(name_key, now);
        self.record(ip_key(ip), now);
    }

    /// A successful login of `name`: clears the name's record (not the IP's, B-LOGIN-8).
    pub fn record_success(&mut self, name: &[u8]) {
        let key = self.name_key(name);
        self.table.remove(&key);
    }

    /// Entries (names plus IPs) currently tracked, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn name_key(&self, name: &[u8]) -> Key {
        Key::Name(self.hasher.hash_one(name))
    }

    /// Whether `key` is locked at `now`; drops its record if it has expired.
    fn check(&mut self, key: Key, now: Instant) -> bool {
        let Entry::Occupied(entry) = self.table.entry(key) else {
            return false;
        };
        let rec = entry.get();
        if rec.expires <= now {
            entry.remove();
            return false;
        }
        rec.locked_until.is_some_and(|until| now < until)
    }

    fn record(&mut self, key: Key, now: Instant) {
        if !self.table.contains_key(&key) {
            self.make_room(now);
        }
        let (limit, window, lockout) = (self.limit, self.window, self.lockout);
        let rec = self.table.entry(key).or_insert_with(|| Record {
            failures: VecDeque::new(),
            locked_until: None,
            expires: now,
        });
        rec.failures.push_back(now);
        // Keep only failures inside the window ending now, and at most `limit` of them.
        while let Some(&first) = rec.failures.front() {
            let too_many = rec.failures.len() > limit as usize;
            if too_many || now.saturating_duration_since(first) >= window {
                rec.failures.pop_front();
            } else {
                break;
            }
        }
        if rec.failures.len() >= limit as usize {
            let until = later(now, lockout);
            rec.locked_until = Some(rec.locked_until.map_or(until, |u| u.max(until)));
        }
        let window_end = later(now, window);
        rec.expires = rec.locked_until.map_or(window_end, |u| u.max(window_end));
    }

    /// Called before inserting a new key: sweep when the table has grown enough, and evict when
    /// it is full.
    fn make_room(&mut self, now: Instant) {
        if self.table.len() >= self.sweep_at || self.table.len() >= MAX_TRACKED {
            self.table.retain(|_, rec| rec.expires > now);
            self.sweep_at = (self.table.len() * 2).clamp(MIN_SWEEP_AT, MAX_TRACKED);
        }
        if self.table.len() >= MAX_TRACKED {
            self.evict_oldest_eighth();
        }
    }

    /// Drops the eighth of the entries that expire soonest (at least one).
    fn evict_oldest_eighth(&mut self) {
        let mut expiries: Vec<Instant> = self.table.values().map(|r| r.expires).collect();
        let nth = expiries.len() / 8;
        if nth >= expiries.len() {
            return;
        }
        let (_, cutoff, _) = expiries.select_nth_unstable(nth);
        let cutoff = *cutoff;
        self.table.retain(|_, rec| rec.expires > cutoff);
    }
}

/// `now + d`, or `now` in the (clamped-away) case of overflow.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

fn ip_key(ip: IpAddr) -> Key {
    match ip {
        IpAddr::V4(v4) => Key::V4(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Key::V4(u32::from(v4)),
            None => Key::V6Prefix((u128::from(v6) >> 64) as u64),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const IP1: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const IP2: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(5, secs(60), secs(60))
    }

    #[test]
    fn b_login_7_example() {
        // Five wrong passwords in 10 s lock the name; the sixth attempt is refused (even with the
        // right password, i.e. without verification); 61 s after the fifth failure it is free.
        let mut t = throttle();
        let t0 = Instant::now();
        for i in 0..5 {
            let now = t0 + secs(i * 2);
            assert!(!t.is_locked(b"alice", IP1, now));
            t.record_failure(b"alice", IP1, now);
        }
        let fifth = t0 + secs(8);
        assert!(t.is_locked(b"alice", IP1, t0 + secs(10)));
        // The name is locked from any IP.
        assert!(t.is_locked(b"alice", IP2, t0 + secs(10)));
        assert!(t.is_locked(b"alice", IP2, fifth + secs(59)));
        assert!(!t.is_locked(b"alice", IP2, fifth + secs(61)));
        // The IP (five failures too) is unlocked at the same time.
        assert!(!t.is_locked(b"bob", IP1, fifth + secs(61)));
        t.record_success(b"alice");
        assert!(!t.is_locked(b"alice", IP1, fifth + secs(61)));
    }

    #[test]
    fn four_failures_do_not_lock() {
        let mut t = throttle();
        let t0 = Instant::now();
        for i in 0..4 {
            t.record_failure(b"alice", IP1, t0 + secs(i));
        }
        assert!(!t.is_locked(b"alice", IP1, t0 + secs(5)));
    }

    #[test]
    fn ip_lock_across_names() {
        let mut t = throttle();
        let t0 = Instant::now();
        for (i, name) in [b"a", b"b", b"c", b"d", b"e"].iter().enumerate() {
            t.record_failure(*name, IP1, t0 + secs(i as u64));
        }
        // A sixth name from the same IP is locked; the same names from another IP are not.
        assert!(t.is_locked(b"f", IP1, t0 + secs(6)));
        assert!(!t.is_locked(b"a", IP2, t0 + secs(6)));
        assert!(!t.is_locked(b"f", IP1, t0 + secs(4 + 61)));
    }

    #[test]
    fn ipv6_by_prefix_and_mapped_v4() {
        let mut t = throttle();
        let t0 = Instant::now();
        for i in 0..5u16 {
            let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, i + 1));
            t.record_failure(format!("u{i}").as_bytes(), ip, t0);
        }
        let same_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
        let other_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(t.is_locked(b"x", same_64, t0 + secs(1)));
        assert!(!t.is_locked(b"x", other_64, t0 + secs(1)));

        for i in 0..5u8 {
            t.record_failure(&[b'v', i], IP2, t0);
        }
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped());
        assert!(t.is_locked(b"y", mapped, t0 + secs(1)));
    }

    #[test]
    fn success_clears_name_not_ip() {
        let mut t = throttle();
        let t0 = Instant::now();
        for i in 0..4 {
            t.record_failure(b"alice", IP1, t0 + secs(i));
        }
        t.record_success(b"alice");
        // One more failure: the name starts again at 1, the IP reaches 5 and locks.
        t.record_failure(b"alice", IP1, t0 + secs(5));
        assert!(!t.is_locked(b"alice", IP2, t0 + secs(6)));
        assert!(t.is_locked(b"zed", IP1, t0 + secs(6)));
    }

    #[test]
    fn failures_spread_over_more_than_the_window_do_not_lock() {
        let mut t = throttle();
        let t0 = Instant::now();
        // One failure every 15 s: any 60 s window holds at most 4.
        for i in 0..20 {
            let now = t0 + secs(i * 15);
            assert!(!t.is_locked(b"alice", IP1, now), "attempt {i}");
            t.record_failure(b"alice", IP1, now);
        }
        // Five within 60 s (a sliding window, not fixed buckets) do lock.
        let mut t = throttle();
        for s in [0, 50, 61, 62, 63, 64] {
            t.record_failure(b"bob", IP1, t0 + secs(s));
        }
        assert!(t.is_locked(b"bob", IP2, t0 + secs(65)));
    }

    #[test]
    fn lockout_counts_from_the_locking_failure() {
        // Late failures (in-flight verifications finishing) extend the lock.
        let mut t = LoginThrottle::new(2, secs(60), secs(30));
        let t0 = Instant::now();
        t.record_failure(b"a", IP1, t0);
        t.record_failure(b"a", IP1, t0 + secs(1));
        t.record_failure(b"a", IP1, t0 + secs(20));
        assert!(t.is_locked(b"a", IP2, t0 + secs(49)));
        assert!(!t.is_locked(b"a", IP2, t0 + secs(50)));
    }

    #[test]
    fn expired_entries_are_dropped() {
        let mut t = throttle();
        let t0 = Instant::now();
        t.record_failure(b"alice", IP1, t0);
        assert_eq!(t.len(), 2);
        assert!(!t.is_locked(b"alice", IP1, t0 + secs(60)));
        assert!(t.is_empty());

        // A sweep on growth removes expired entries that are never looked up again.
        for i in 0..(MIN_SWEEP_AT - 1) as u32 {
            t.record_failure(&i.to_be_bytes(), IP1, t0);
        }
        assert_eq!(t.len(), MIN_SWEEP_AT);
        t.record_failure(b"late", IP2, t0 + secs(120));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn bounded_under_name_spray() {
        let mut t = LoginThrottle::new(5, secs(60), secs(60));
        let t0 = Instant::now();
        // A spray of distinct names from distinct IPs, all within the window.
        for i in 0..(MAX_TRACKED as u32 + 5000) {
            let ip = IpAddr::V4(Ipv4Addr::from(i));
            t.record_failure(
                &i.to_le_bytes(),
                ip,
                t0 + Duration::from_millis(u64::from(i)),
            );
            assert!(t.len() <= MAX_TRACKED);
        }
        // The spray pushed out the oldest entries; the newest failure is tracked.
        let last = MAX_TRACKED as u32 + 4999;
        assert!(t.table.contains_key(&t.name_key(&last.to_le_bytes())));
    }

    #[test]
    fn long_names_cost_a_fixed_amount() {
        let mut t = throttle();
        let name = vec![b'x'; 1 << 20];
        t.record_failure(&name, IP1, Instant::now());
        assert!(std::mem::size_of::<Key>() <= 16);
        assert_eq!(t.len(), 2);
    }
}

//! What the driver threads share with the main thread: phases (a barrier the main thread lifts),
//! progress counters, the hard deadline; plus latency statistics and /proc readings.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::net::{Handler, Net};

pub const PHASES: usize = 4;
pub const COUNTERS: usize = 6;

pub struct Shared {
    pub threads: usize,
    pub epoch: Instant,
    pub deadline: Instant,
    /// The phase the main thread has opened (0 = setup).
    pub phase: AtomicUsize,
    /// Per phase: how many threads finished it.
    pub done: [AtomicUsize; PHASES],
    /// Per phase: when the main thread opened it (µs since `epoch`).
    pub opened_us: [AtomicU64; PHASES],
    /// Set when the run must end now (deadline or failure).
    pub abort: AtomicBool,
    /// Progress counters; their meaning is the scenario's.
    pub count: [AtomicU64; COUNTERS],
}

impl Shared {
    pub fn new(threads: usize, limit: Duration) -> Arc<Shared> {
        let epoch = Instant::now();
        Arc::new(Shared {
            threads,
            epoch,
            deadline: epoch + limit,
            phase: AtomicUsize::new(0),
            done: Default::default(),
            opened_us: Default::default(),
            abort: AtomicBool::new(false),
            count: Default::default(),
        })
    }

    pub fn us(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_micros() as u64
    }

    pub fn phase(&self) -> usize {
        self.phase.load(Ordering::Acquire)
    }

    pub fn finish_phase(&self, p: usize) {
        if let Some(d) = self.done.get(p) {
            d.fetch_add(1, Ordering::AcqRel);
        }
    }

    pub fn add(&self, i: usize, v: u64) {
        if let Some(c) = self.count.get(i) {
            c.fetch_add(v, Ordering::Relaxed);
        }
    }

    pub fn get(&self, i: usize) -> u64 {
        self.count.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub fn opened(&self, p: usize) -> u64 {
        self.opened_us
            .get(p)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// A scenario's per-thread state: a connection handler that also runs on a timer.
pub trait Scenario: Handler {
    /// Called after every poll; true when this thread is finished.
    fn tick(&mut self, net: &mut Net, now: Instant) -> bool;
    /// How long poll may sleep.
    fn poll_timeout(&self) -> Duration {
        Duration::from_millis(20)
    }
}

/// Runs a thread's loop until the scenario is finished, or the run is aborted (returns false).
pub fn drive(net: &mut Net, sc: &mut impl Scenario, shared: &Shared) -> io::Result<bool> {
    loop {
        net.poll_once(sc, sc.poll_timeout())?;
        let now = Instant::now();
        if sc.tick(net, now) {
            return Ok(true);
        }
        if shared.abort.load(Ordering::Relaxed) || now >= shared.deadline {
            return Ok(false);
        }
    }
}

/// The main thread's side: opens phase k+1 once every thread finished phase k (up to `last`),
/// prints `progress(elapsed_s)` to stderr once a second, sets `abort` at the deadline, and waits
/// for every thread. `on_phase(k)` runs just before phase k (k >= 1) is opened.
pub fn supervise<T>(
    shared: &Shared,
    handles: Vec<JoinHandle<T>>,
    last: usize,
    mut progress: impl FnMut(f64) -> String,
    mut on_phase: impl FnMut(usize),
) -> Vec<Option<T>> {
    let mut next_print = Instant::now() + Duration::from_secs(1);
    let mut warned = false;
    loop {
        let p = shared.phase();
        if p < last && shared.done.get(p).map_or(0, |d| d.load(Ordering::Acquire)) >= shared.threads
        {
            on_phase(p + 1);
            if let Some(o) = shared.opened_us.get(p + 1) {
                o.store(shared.us(Instant::now()), Ordering::Relaxed);
            }
            shared.phase.store(p + 1, Ordering::Release);
        }
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
        let now = Instant::now();
        if now >= shared.deadline && !warned {
            eprintln!("ttload: duration limit reached, stopping");
            shared.abort.store(true, Ordering::Relaxed);
            warned = true;
        }
        if now >= next_print {
            eprintln!(
                "{}",
                progress(now.duration_since(shared.epoch).as_secs_f64())
            );
            while next_print <= now {
                next_print += Duration::from_secs(1);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    handles.into_iter().map(|h| h.join().ok()).collect()
}

/// Exact percentiles (nearest rank) of a sample of microsecond values.
pub struct Lat {
    sorted: Vec<u32>,
}

impl Lat {
    pub fn new(parts: impl IntoIterator<Item = Vec<u32>>) -> Lat {
        let mut sorted: Vec<u32> = parts.into_iter().flatten().collect();
        sorted.sort_unstable();
        Lat { sorted }
    }

    /// The q-quantile in milliseconds (0 for an empty sample).
    pub fn ms(&self, q: f64) -> f64 {
        let n = self.sorted.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.sorted[rank - 1]) / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.sorted.last().map_or(0.0, |v| f64::from(*v) / 1000.0)
    }

    /// ` {prefix}p50_ms=.. {prefix}p90_ms=.. {prefix}p99_ms=.. {prefix}p999_ms=.. {prefix}max_ms=..`
    pub fn keys(&self, prefix: &str) -> String {
        format!(
            " {prefix}p50_ms={:.3} {prefix}p90_ms={:.3} {prefix}p99_ms={:.3} {prefix}p999_ms={:.3} \
             {prefix}max_ms={:.3}",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.max_ms()
        )
    }
}

pub fn per_s(n: u64, us: u64) -> f64 {
    if us == 0 {
        0.0
    } else {
        n as f64 * 1e6 / us as f64
    }
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The command name (field 2) may contain spaces; fields after it start after the last ')'.
    let rest = s.rfind(')').map(|i| &s[i + 1..]).ok_or("bad /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime = field 14, stime = field 15.
    let get = |i: usize| -> Result<u64, String> {
        f.get(i - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("bad field {i} in /proc/{pid}/stat"))
    };
    Ok(get(14)? + get(15)?)
}

pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The body of a test message: `ttload <nonce> <pair> <seq> ` padded with 'x' to `size`.
pub fn body(out: &mut Vec<u8>, nonce: u32, pair: usize, seq: u32, size: usize) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "ttload {nonce:08x} {pair} {seq} ");
    if out.len() < size {
        out.resize(size, b'x');
    }
}

/// Parses a body written by [`body`]: (nonce, pair, seq).
pub fn parse_body(b: &[u8]) -> Option<(u32, usize, u32)> {
    let text = std::str::from_utf8(b.get(..b.len().min(64))?).ok()?;
    let mut it = text.split(' ');
    if it.next()? != "ttload" {
        return None;
    }
    let nonce = u32::from_str_radix(it.next()?, 16).ok()?;
    let pair = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    Some((nonce, pair, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_roundtrip_and_percentiles() {
        let mut b = Vec::new();
        body(&mut b, 0xdead, 12, 345, 100);
        assert_eq!(b.len(), 100);
        assert_eq!(parse_body(&b), Some((0xdead, 12, 345)));
        body(&mut b, 1, 1, 1, 5);
        assert_eq!(parse_body(&b), Some((1, 1, 1)));
        assert_eq!(parse_body(b"hello"), None);
        let l = Lat::new([vec![4000, 1000], vec![3000, 2000]]);
        assert_eq!(l.ms(0.5), 2.0);
        assert_eq!(l.ms(0.99), 4.0);
        assert_eq!(l.max_ms(), 4.0);
        assert_eq!(Lat::new([]).ms(0.5), 0.0);
    }
}

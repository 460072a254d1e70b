//! The driver threads of a scenario and what they share with the main thread: phases (a barrier
//! the main thread lifts), progress counters, the hard deadline; starting the threads, and
//! supervising them until their results are in.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::args::Common;
use crate::flow::Load;
use crate::net::{Handler, Net};
use crate::session::Users;

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

/// A thread's progress counters as last added to [`Shared::count`]: publishing adds what grew
/// since.
pub struct Published<const N: usize>([u64; N]);

impl<const N: usize> Default for Published<N> {
    fn default() -> Self {
        Published([0; N])
    }
}

impl<const N: usize> Published<N> {
    /// `now`: the thread's counters, in the order of `Shared::count`.
    pub fn publish(&mut self, shared: &Shared, now: [u64; N]) {
        for (i, (v, p)) in now.iter().zip(&mut self.0).enumerate() {
            shared.add(i, v - *p);
            *p = *v;
        }
    }

    pub fn get(&self, i: usize) -> u64 {
        self.0[i]
    }
}

/// A scenario's per-thread state: a connection handler that also runs on a timer.
pub trait Scenario: Handler {
    /// What the thread hands back to the main thread.
    type Out: Send + 'static;
    /// Called after every poll; true when this thread is finished.
    fn tick(&mut self, net: &mut Net, now: Instant) -> bool;
    /// How long poll may sleep.
    fn poll_timeout(&self) -> Duration {
        Duration::from_millis(20)
    }
    /// The thread's result; `done` is false if the run was aborted before `tick` said finished.
    fn finish(self, done: bool, net: &Net) -> Self::Out;
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

/// The result of one driver thread (Err: it failed).
pub type Driver<T> = JoinHandle<Result<T, String>>;

/// A started run: the state its driver threads share with the main thread, and the threads.
pub type Started<T> = (Arc<Shared>, Vec<Driver<T>>);

/// Starts one driver thread per `shared.threads`. Thread t has its own `Net` (outgoing sockets
/// bound round robin to `sources`, from the t-th on) and runs the scenario `make` builds for
/// its share of `items` (the 0-based indices t, t + threads, ...) until it is finished or the
/// run is aborted. A thread that fails aborts the run.
pub fn spawn_drivers<S: Scenario>(
    shared: &Arc<Shared>,
    sources: &[IpAddr],
    items: usize,
    make: impl Fn(&[usize], Arc<Shared>) -> S + Send + Sync + 'static,
) -> Result<Vec<Driver<S::Out>>, String> {
    let make = Arc::new(make);
    let threads = shared.threads;
    (0..threads)
        .map(|t| {
            let (shared, make, sources) = (shared.clone(), make.clone(), sources.to_vec());
            std::thread::Builder::new()
                .name(format!("ttload-{t}"))
                .spawn(move || {
                    let r = (|| {
                        let mut net = Net::new(sources, t).map_err(|e| e.to_string())?;
                        let mine: Vec<usize> = (t..items).step_by(threads).collect();
                        let mut sc = make(&mine, shared.clone());
                        let done = drive(&mut net, &mut sc, &shared).map_err(|e| e.to_string())?;
                        Ok(sc.finish(done, &net))
                    })();
                    if r.is_err() {
                        shared.abort.store(true, Ordering::Relaxed);
                    }
                    r
                })
                .map_err(|e| format!("spawn: {e}"))
        })
        .collect()
}

/// Starts a run: checks that `conns` connections fit (`Common::reserve`), then starts the
/// driver threads (`spawn_drivers`) with the shared state they report to.
pub fn start<S: Scenario>(
    c: &Common,
    conns: usize,
    items: usize,
    make: impl Fn(&[usize], Arc<Shared>) -> S + Send + Sync + 'static,
) -> Result<Started<S::Out>, String> {
    c.reserve(conns)?;
    let shared = Shared::new(c.threads, c.limit);
    let handles = spawn_drivers(&shared, &c.sources, items, make)?;
    Ok((shared, handles))
}

/// `start` for p2p and offline: `pairs` pairs, each sender sending `load`; `new` builds a
/// thread's scenario for its pairs and their users.
pub fn start_pairs<S: Scenario + 'static>(
    c: &Common,
    pairs: usize,
    load: Load,
    new: fn(&[usize], Users, Load, Arc<Shared>) -> S,
) -> Result<Started<S::Out>, String> {
    let roster = c.roster(None);
    start(c, 2 * pairs, pairs, move |mine, shared| {
        new(mine, roster.pairs(mine), load, shared)
    })
}

/// The main thread's side: opens phase k+1 once every thread finished phase k (up to `last`),
/// prints `progress(elapsed_s)` to stderr once a second, sets `abort` at the deadline, and waits
/// for every thread. `on_phase(k)` runs just before phase k (k >= 1) is opened. Returns every
/// thread's result, or the first error.
pub fn supervise<T>(
    shared: &Shared,
    handles: Vec<Driver<T>>,
    last: usize,
    mut progress: impl FnMut(f64) -> String,
    mut on_phase: impl FnMut(usize),
) -> Result<Vec<T>, String> {
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
    // Every thread is joined before an error is returned.
    let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|_| Err("driver thread panicked".into())))
        .collect()
}

/// Prints the first of the threads' first errors, if any.
pub fn first_error<'a>(errs: impl Iterator<Item = &'a Option<String>>) {
    if let Some(e) = errs.flatten().next() {
        eprintln!("ttload: first error: {e}");
    }
}

/// A number that differs between runs, written in test message bodies: what an earlier run
/// left behind is told apart.
pub fn nonce() -> u32 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ (t >> 32) ^ u64::from(std::process::id()).rotate_left(16)) as u32
}

//! The event loop driven by a toy newline-framed service over real sockets on 127.0.0.1.
//!
//! Each test runs one or two [`EventLoop`]s on their own threads and talks to them with
//! blocking clients; it waits on replies (or on a polled condition, bounded), never on a sleep,
//! and ends by asking the loops to exit and joining them.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream as StdStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Poll, Waker};

use super::{EventLoop, InputBudget, ListenerSpec, LoopConfig, WAKER};
use crate::net::listener::bind_reuseport;
use crate::net::service::{Action, Bytes, Close, Conns, Framing, Outbox, Service, Verdict};
use crate::net::{ConnId, WorkerHandle, Workers};
use crate::stats::Counters;

/// Longest line the toy framer buffers.
const MAX_LINE: usize = 4096;
/// How long a test waits for anything before it fails.
const WAIT: Duration = Duration::from_secs(3);
/// What a `w` frame costs while `Log::slow` is set.
const WORK: Duration = Duration::from_micros(2);

// ------------------------------------------------------------------ the toy service

/// What the toy service saw, in order (all loops of a test share one log).
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Accepted(ConnId, usize),
    /// `frame` was offered this many bytes without a whole line.
    Partial(ConnId, usize),
    Frame(ConnId, String),
    Timeout(ConnId, Instant),
    Closed(ConnId, String),
    /// Loop `.0` got `Seq(.1, .2)`.
    Got(u16, u16, u32),
    /// A barrier message was handled.
    Ack(u64),
}

#[derive(Default)]
struct Log {
    evs: Mutex<Vec<Ev>>,
    /// `w` frames handled (not logged as events).
    worked: AtomicU64,
    /// Whether a `w` frame costs [`WORK`] of busy time.
    slow: AtomicBool,
}

impl Log {
    fn push(&self, e: Ev) {
        self.evs.lock().unwrap().push(e);
    }

    fn snapshot(&self) -> Vec<Ev> {
        self.evs.lock().unwrap().clone()
    }
}

enum Msg {
    /// Release the held frame of the connection that said `name <n>`, and resume it.
    Resume(String),
    /// A post between loops: the sender's loop and a sequence number.
    Seq(u16, u32),
    /// Logs `Ev::Ack`: everything sent to the loop before it has been handled.
    Ack(u64),
    StopReading,
    Exit(Duration),
}

struct Toy {
    id: u16,
    log: Arc<Log>,
    names: HashMap<String, ConnId>,
}

#[derive(Default)]
struct ToyConn {
    /// The next `hold`/`holdfor` presented is consumed.
    release: bool,
    /// When `holdfor` asked to be resumed.
    resume_at: Option<Instant>,
}

/// `n` bytes of a recognisable pattern.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn ms(s: &str) -> Duration {
    Duration::from_millis(s.parse().unwrap())
}

impl Service for Toy {
    type Conn = ToyConn;
    type Msg = Msg;

    fn accept(
        &mut self,
        _out: &mut Outbox<Msg>,
        id: ConnId,
        listener: usize,
        _peer: SocketAddr,
    ) -> Option<ToyConn> {
        self.log.push(Ev::Accepted(id, listener));
        Some(ToyConn::default())
    }

    fn frame(
        &mut self,
        _out: &mut Outbox<Msg>,
        id: ConnId,
        _conn: &mut ToyConn,
        input: &[u8],
    ) -> Framing {
        match input.iter().position(|&b| b == b'\n') {
            Some(i) => Framing::Complete(i + 1),
            None if input.len() > MAX_LINE => Framing::Invalid("line too long".into()),
            None => {
                self.log.push(Ev::Partial(id, input.len()));
                Framing::Partial
            }
        }
    }

    fn on_frame(
        &mut self,
        out: &mut Outbox<Msg>,
        id: ConnId,
        conn: &mut ToyConn,
        frame: &[u8],
    ) -> Verdict {
        if frame == b"w\n" {
            if self.log.slow.load(Ordering::Relaxed) {
                let t = Instant::now();
                while t.elapsed() < WORK {}
            }
            self.log.worked.fetch_add(1, Ordering::Relaxed);
            return Verdict::Consumed;
        }
        let line = String::from_utf8_lossy(frame).trim_end().to_string();
        self.log.push(Ev::Frame(id, line.clone()));
        let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let args: Vec<&str> = arg.split(' ').collect();
        match cmd {
            "name" => {
                self.names.insert(arg.to_string(), id);
                out.send(id, b"ok\n".to_vec());
            }
            "echo" => out.send(id, format!("{arg}\n").into_bytes()),
            "hold" if !conn.release => return Verdict::Hold,
            "hold" => {
                conn.release = false;
                out.send(id, b"released\n".to_vec());
            }
            "holdfor" if !conn.release => {
                let at = Instant::now() + ms(arg);
                conn.release = true;
                conn.resume_at = Some(at);
                out.push(Action::ResumeAt(id, at));
                return Verdict::Hold;
            }
            "holdfor" => {
                conn.release = false;
                let on_time = conn.resume_at.take().is_some_and(|at| Instant::now() >= at);
                let reply: &[u8] = if on_time { b"released\n" } else { b"early\n" };
                out.send(id, reply.to_vec());
            }
            "big" => out.send(id, pattern(arg.parse().unwrap())),
            "bigs" => {
                for _ in 0..args[0].parse().unwrap() {
                    out.send(id, pattern(args[1].parse().unwrap()));
                }
            }
            "answer" => out.push(Action::Answer(
                id,
                Bytes::Owned(pattern(arg.parse().unwrap())),
            )),
            "closeafter" => {
                out.push(Action::Answer(
                    id,
                    Bytes::Owned(pattern(args[0].parse().unwrap())),
                ));
                out.close_after_flush(id, ms(args[1]));
                // Nothing after the close is queued.
                out.send(id, b"too late\n".to_vec());
            }
            "linger" => {
                out.send(id, b"bye\n".to_vec());
                out.push(Action::Close(id, Close::Linger(ms(arg))));
            }
            "closenow" => {
                out.send(id, b"dropped\n".to_vec());
                out.close_now(id, "asked");
            }
            "closetwice" => {
                out.close_after_flush(id, Duration::from_secs(1));
                out.close_now(id, "second");
                out.close_now(id, "third");
            }
            "deadline" => {
                let at = (arg != "none").then(|| Instant::now() + ms(arg));
                out.deadline(id, at);
                out.send(id, b"ok\n".to_vec());
            }
            "idle" => {
                out.push(Action::IdleTimeout(id, Some(ms(arg))));
                out.send(id, b"ok\n".to_vec());
            }
            "post" => {
                let to: u16 = args[0].parse().unwrap();
                for i in 0..args[1].parse().unwrap() {
                    out.post(to, Msg::Seq(self.id, i));
                }
                out.send(id, b"posted\n".to_vec());
            }
            _ => out.send(id, format!("unknown {line}\n").into_bytes()),
        }
        Verdict::Consumed
    }

    fn on_bad_input(&mut self, out: &mut Outbox<Msg>, id: ConnId, _conn: &mut ToyConn, why: &str) {
        out.send(id, format!("bad: {why}\n").into_bytes());
        out.close_after_flush(id, Duration::from_secs(1));
    }

    fn on_message(&mut self, out: &mut Outbox<Msg>, conns: &mut dyn Conns<ToyConn>, msg: Msg) {
        match msg {
            Msg::Resume(name) => {
                let id = self.names[&name];
                if let Some(c) = conns.get_mut(id) {
                    c.release = true;
                    out.push(Action::Resume(id));
                }
            }
            Msg::Seq(from, i) => self.log.push(Ev::Got(self.id, from, i)),
            Msg::Ack(n) => self.log.push(Ev::Ack(n)),
            Msg::StopReading => out.push(Action::StopReading),
            Msg::Exit(d) => out.push(Action::Exit {
                deadline: Instant::now() + d,
            }),
        }
    }

    fn on_timeout(&mut self, out: &mut Outbox<Msg>, id: ConnId, _conn: &mut ToyConn) {
        self.log.push(Ev::Timeout(id, Instant::now()));
        out.send(id, b"timeout\n".to_vec());
    }

    fn on_closed(&mut self, _out: &mut Outbox<Msg>, id: ConnId, _conn: ToyConn, why: &str) {
        self.names.retain(|_, v| *v != id);
        self.log.push(Ev::Closed(id, why.to_string()));
    }
}

// ------------------------------------------------------------------ harness

struct Opts {
    /// Per listener: (max_conns, max_per_ip). Listener `i` of every loop shares one count.
    listeners: Vec<(usize, usize)>,
    out_cap: usize,
    input_limit: usize,
    chan_cap: usize,
    read_budget: usize,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            listeners: vec![(100, 0)],
            out_cap: 1 << 20,
            input_limit: 1 << 20,
            chan_cap: 64,
            read_budget: 64 << 10,
        }
    }
}

struct Loop {
    /// One address per listener.
    addrs: Vec<SocketAddr>,
    handle: WorkerHandle<Msg>,
    thread: Option<JoinHandle<()>>,
}

struct Net {
    loops: Vec<Loop>,
    log: Arc<Log>,
    counters: Arc<Counters>,
    budget: Arc<InputBudget>,
    /// The shared open count of each listener.
    open: Vec<Arc<AtomicUsize>>,
    acks: AtomicU64,
}

/// Polls `cond` until it holds or `WAIT` passes.
fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + WAIT;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn start(n: usize, opts: Opts) -> Net {
    let log = Arc::new(Log::default());
    let counters = Arc::new(Counters::default());
    let budget = InputBudget::new(opts.input_limit);
    let open: Vec<Arc<AtomicUsize>> = opts.listeners.iter().map(|_| Arc::default()).collect();
    let mut polls = Vec::new();
    let mut handles = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..n {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).unwrap());
        let (tx, rx) = crossbeam_channel::bounded(opts.chan_cap);
        polls.push(poll);
        handles.push(WorkerHandle { tx, waker });
        rxs.push(rx);
    }
    let workers = Workers::new(handles.clone());
    let mut loops = Vec::new();
    for (i, (poll, rx)) in polls.into_iter().zip(rxs).enumerate() {
        let id = u16::try_from(i).unwrap();
        let mut addrs = Vec::new();
        let mut specs = Vec::new();
        for (j, &(max_conns, max_per_ip)) in opts.listeners.iter().enumerate() {
            let listener = bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
            addrs.push(listener.local_addr().unwrap());
            specs.push(ListenerSpec {
                listener,
                name: "toy",
                open: Arc::clone(&open[j]),
                max_conns,
                max_per_ip,
            });
        }
        let cfg = LoopConfig {
            id,
            name: "toy",
            read_chunk: 4096,
            read_budget: opts.read_budget,
            out_cap: opts.out_cap,
            input_budget: Arc::clone(&budget),
            counters: Arc::clone(&counters),
        };
        let svc = Toy {
            id,
            log: Arc::clone(&log),
            names: HashMap::new(),
        };
        let peers = workers.clone();
        let el = EventLoop::new(cfg, poll, rx, peers, svc, specs).unwrap();
        let thread = std::thread::Builder::new()
            .name(format!("toy-loop-{i}"))
            .spawn(move || el.run())
            .unwrap();
        loops.push(Loop {
            addrs,
            handle: handles[i].clone(),
            thread: Some(thread),
        });
    }
    Net {
        loops,
        log,
        counters,
        budget,
        open,
        acks: AtomicU64::new(0),
    }
}

impl Net {
    fn addr(&self, lp: usize, listener: usize) -> SocketAddr {
        self.loops[lp].addrs[listener]
    }

    fn send(&self, lp: usize, m: Msg) {
        self.loops[lp].handle.send(m);
    }

    /// Returns once loop `lp` has handled everything sent to it before.
    fn barrier(&self, lp: usize) {
        let n = self.acks.fetch_add(1, Ordering::Relaxed);
        self.send(lp, Msg::Ack(n));
        assert!(self.wait_log(|evs| evs.contains(&Ev::Ack(n))), "no ack {n}");
    }

    fn wait_log(&self, mut cond: impl FnMut(&[Ev]) -> bool) -> bool {
        wait_until(|| cond(&self.log.evs.lock().unwrap()))
    }

    /// The connection that sent `line` first.
    fn id_of(&self, line: &str) -> ConnId {
        self.log
            .snapshot()
            .into_iter()
            .find_map(|e| match e {
                Ev::Frame(id, l) if l == line => Some(id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("nobody sent {line:?}"))
    }

    fn frames_of(&self, id: ConnId) -> Vec<String> {
        self.log
            .snapshot()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Frame(i, l) if i == id => Some(l),
                _ => None,
            })
            .collect()
    }

    fn closes_of(&self, id: ConnId) -> Vec<String> {
        self.log
            .snapshot()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Closed(i, why) if i == id => Some(why),
                _ => None,
            })
            .collect()
    }

    fn wait_closed(&self, id: ConnId) -> String {
        assert!(
            self.wait_log(|evs| evs
                .iter()
                .any(|e| matches!(e, Ev::Closed(i, _) if *i == id))),
            "{id:?} not closed"
        );
        self.closes_of(id).remove(0)
    }

    fn accepted(&self) -> usize {
        let evs = self.log.snapshot();
        evs.iter().filter(|e| matches!(e, Ev::Accepted(..))).count()
    }

    fn count(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    fn finished(&self, lp: usize) -> bool {
        self.loops[lp]
            .thread
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }

    /// Waits for loop `lp` to leave its `run` (bounded) and joins it.
    fn join(&mut self, lp: usize) {
        assert!(wait_until(|| self.finished(lp)), "loop {lp} did not exit");
        if let Some(t) = self.loops[lp].thread.take() {
            t.join().unwrap();
        }
    }

    /// Asks every loop to exit and joins them.
    fn stop(mut self) {
        for lp in 0..self.loops.len() {
            self.send(lp, Msg::Exit(Duration::from_secs(1)));
        }
        for lp in 0..self.loops.len() {
            self.join(lp);
        }
    }
}

impl Drop for Net {
    /// A failed test still stops its loops (without waiting on one that hangs).
    fn drop(&mut self) {
        for lp in &mut self.loops {
            if let Some(t) = lp.thread.take() {
                let _ = lp.handle.tx.try_send(Msg::Exit(Duration::ZERO));
                lp.handle.wake();
                if wait_until(|| t.is_finished()) {
                    let _ = t.join();
                }
            }
        }
    }
}

struct Client {
    r: BufReader<StdStream>,
    w: StdStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let w = StdStream::connect(addr).unwrap();
        w.set_read_timeout(Some(WAIT)).unwrap();
        w.set_nodelay(true).unwrap();
        Client {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        }
    }

    /// Connects and names the connection (one round trip: it is accepted).
    fn named(addr: SocketAddr, name: &str) -> Client {
        let mut c = Client::connect(addr);
        assert_eq!(c.cmd(&format!("name {name}")), "ok");
        c
    }

    fn write(&mut self, b: &[u8]) {
        self.w.write_all(b).unwrap();
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.r.read_line(&mut s).unwrap();
        assert!(s.ends_with('\n'), "no whole line: {s:?}");
        s.pop();
        s
    }

    fn cmd(&mut self, c: &str) -> String {
        self.write(format!("{c}\n").as_bytes());
        self.line()
    }

    fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.r.read_exact(&mut v).unwrap();
        v
    }

    /// The server closed: EOF (or a reset) with nothing more to read.
    fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "got {} bytes before EOF", rest.len()),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        }
    }

    /// EOF, exactly (no reset).
    fn expect_eof(&mut self) {
        let mut b = [0u8; 1];
        assert_eq!(self.r.read(&mut b).unwrap(), 0);
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn frames_split_over_reads_and_batched_in_one_read_are_each_handled_once_in_order() {
    // A read budget of one byte sends every connection back to the ready list after each read.
    let net = start(
        1,
        Opts {
            read_budget: 1,
            ..Opts::default()
        },
    );
    let mut a = Client::named(net.addr(0, 0), "A");
    let id = net.id_of("name A");

    // Byte by byte, each byte read before the next is written: the partial line is kept and
    // extended across reads.
    let line = b"echo hello\n";
    for (k, b) in line.iter().enumerate() {
        a.write(std::slice::from_ref(b));
        if k + 1 < line.len() {
            assert!(net.wait_log(|evs| evs.contains(&Ev::Partial(id, k + 1))));
        }
    }
    assert_eq!(a.line(), "hello");
    let mut partials: Vec<usize> = net
        .log
        .snapshot()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Partial(i, n) if i == id => Some(n),
            _ => None,
        })
        .collect();
    // (The same partial input may be offered again, e.g. when the connection is serviced
    // again for its read budget; never fewer bytes than before.)
    partials.dedup();
    assert_eq!(partials, (1..line.len()).collect::<Vec<_>>());

    // Several frames in one write, and a frame split between two writes.
    a.write(b"echo 1\necho 2\necho 3\nech");
    a.write(b"o 4\necho 5\n");
    for want in ["1", "2", "3", "4", "5"] {
        assert_eq!(a.line(), want);
    }

    // Many frames in one write (several reads of at most one chunk each).
    let mut many = Vec::new();
    for i in 0..500 {
        many.extend_from_slice(format!("echo n{i}\n").as_bytes());
    }
    a.write(&many);
    for i in 0..500 {
        assert_eq!(a.line(), format!("n{i}"));
    }

    let mut want = vec!["name A".to_string(), "echo hello".to_string()];
    want.extend((1..=5).map(|i| format!("echo {i}")));
    want.extend((0..500).map(|i| format!("echo n{i}")));
    assert_eq!(net.frames_of(id), want);
    net.stop();
}

#[test]
fn held_frame_is_presented_again_after_resume_and_later_frames_wait_behind_it() {
    let net = start(1, Opts::default());
    let mut a = Client::named(net.addr(0, 0), "A");
    let mut b = Client::named(net.addr(0, 0), "B");
    let id = net.id_of("name A");

    a.write(b"hold\necho a\n");
    assert!(net.wait_log(|evs| evs.contains(&Ev::Frame(id, "hold".into()))));
    a.write(b"echo b\n");
    // Another connection's round trip and a message: the loop went round while A is held.
    assert_eq!(b.cmd("echo sync"), "sync");
    net.barrier(0);
    assert_eq!(net.frames_of(id), ["name A", "hold"]);

    net.send(0, Msg::Resume("A".into()));
    assert_eq!(a.line(), "released");
    assert_eq!(a.line(), "a");
    assert_eq!(a.line(), "b");
    assert_eq!(
        net.frames_of(id),
        ["name A", "hold", "hold", "echo a", "echo b"]
    );

    // ResumeAt: held until its time, then the frame and those behind it.
    let t0 = Instant::now();
    a.write(b"holdfor 150\necho c\n");
    assert_eq!(a.line(), "released");
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert_eq!(a.line(), "c");
    assert_eq!(a.cmd("echo d"), "d");
    net.stop();
}

#[test]
fn closes_after_flush_now_and_lingering_and_on_closed_runs_once_per_connection() {
    let net = start(1, Opts::default());
    let addr = net.addr(0, 0);

    // AfterFlush: the queued reply (larger than the socket buffers) arrives, then EOF.
    let mut a = Client::named(addr, "A");
    a.write(b"closeafter 4000000 3000\n");
    assert_eq!(a.read_exact(4_000_000), pattern(4_000_000));
    a.expect_eof();
    assert_eq!(net.wait_closed(net.id_of("name A")), "closed after flush");

    // Now: what was queued is dropped.
    let mut b = Client::named(addr, "B");
    b.write(b"closenow\n");
    b.expect_closed();
    assert_eq!(net.wait_closed(net.id_of("name B")), "asked");

    // Closed twice in one callback: one on_closed.
    let mut c = Client::named(addr, "C");
    c.write(b"closetwice\n");
    c.expect_closed();
    assert_eq!(net.wait_closed(net.id_of("name C")), "second");

    // AfterFlush with a peer that does not read: closed at the flush limit.
    let mut d = Client::named(addr, "D");
    d.write(b"closeafter 32000000 100\n");
    assert_eq!(net.wait_closed(net.id_of("name D")), "flush limit reached");

    // Linger: the reply, then the server's FIN while the peer may still send; closed when
    // the peer closes.
    let mut e = Client::named(addr, "E");
    e.write(b"linger 3000\n");
    assert_eq!(e.line(), "bye");
    e.expect_eof();
    e.write(b"ignored\n");
    e.w.shutdown(Shutdown::Write).unwrap();
    assert_eq!(net.wait_closed(net.id_of("name E")), "closed after flush");

    // The peer closes.
    let f = Client::named(addr, "F");
    drop(f);
    assert_eq!(net.wait_closed(net.id_of("name F")), "peer closed");

    net.barrier(0);
    let evs = net.log.snapshot();
    let accepted: Vec<ConnId> = evs
        .iter()
        .filter_map(|e| match e {
            Ev::Accepted(id, _) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(accepted.len(), 6);
    for id in accepted {
        let closes = net.closes_of(id);
        assert_eq!(closes.len(), 1, "{id:?}: {closes:?}");
        assert!(!closes[0].is_empty());
    }
    assert!(!net
        .frames_of(net.id_of("name A"))
        .contains(&"too late".to_string()));
    drop(d);
    net.stop();
}

#[test]
fn deadlines_fire_and_idle_timeout_moves_with_received_bytes() {
    let net = start(1, Opts::default());
    let mut a = Client::named(net.addr(0, 0), "A");
    let ida = net.id_of("name A");

    let t0 = Instant::now();
    assert_eq!(a.cmd("deadline 100"), "ok");
    assert_eq!(a.line(), "timeout");
    assert!(t0.elapsed() >= Duration::from_millis(100));

    // A cleared deadline does not fire; a later one replaces an earlier one ...
    let t0 = Instant::now();
    a.write(b"deadline 50\ndeadline none\ndeadline 200\n");
    for _ in 0..3 {
        assert_eq!(a.line(), "ok");
    }
    assert_eq!(a.line(), "timeout");
    assert!(t0.elapsed() >= Duration::from_millis(200));
    // ... and an earlier one replaces a later one.
    let t0 = Instant::now();
    a.write(b"deadline 2500\ndeadline 100\n");
    assert_eq!(a.line(), "ok");
    assert_eq!(a.line(), "ok");
    assert_eq!(a.line(), "timeout");
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(100) && took < Duration::from_millis(2000));
    let timeouts = |id| {
        let evs = net.log.snapshot();
        evs.into_iter()
            .filter_map(|e| match e {
                Ev::Timeout(i, at) if i == id => Some(at),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(timeouts(ida).len(), 3);

    // Idle: each byte received (no whole frame among them) moves the deadline.
    let mut b = Client::named(net.addr(0, 0), "B");
    let idb = net.id_of("name B");
    let idle = Duration::from_millis(400);
    let t_idle = Instant::now();
    assert_eq!(b.cmd("idle 400"), "ok");
    let mut last = Instant::now();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(50)); // pacing the input, not synchronising
        last = Instant::now();
        b.write(b"x");
    }
    assert_eq!(b.line(), "timeout");
    let fired = timeouts(idb);
    assert_eq!(fired.len(), 1, "idle deadline fired while bytes came in");
    assert!(fired[0] >= last + idle);
    assert!(fired[0] >= t_idle + 2 * idle);
    net.stop();
}

#[test]
fn listener_cap_rejects_over_max_conns_and_gives_the_count_back_on_close() {
    // Two loops; listener 0 (cap 2) is one port shared by both, listener 1 has room.
    let net = start(
        2,
        Opts {
            listeners: vec![(2, 0), (100, 0)],
            ..Opts::default()
        },
    );
    let a = Client::named(net.addr(0, 0), "A");
    let _b = Client::named(net.addr(1, 0), "B");
    let mut c = Client::connect(net.addr(0, 0));
    c.expect_closed();
    assert_eq!(net.count(&net.counters.conn_cap_rejects), 1);
    // The cap is the listener's: the other listener accepts.
    let mut d = Client::named(net.addr(0, 1), "D");
    assert_eq!(d.cmd("echo d"), "d");

    let ida = net.id_of("name A");
    drop(a);
    assert_eq!(net.wait_closed(ida), "peer closed");
    let mut e = Client::named(net.addr(1, 0), "E");
    assert_eq!(e.cmd("echo e"), "e");
    assert_eq!(net.count(&net.counters.conn_cap_rejects), 1);
    let mut f = Client::connect(net.addr(1, 0));
    f.expect_closed();
    assert_eq!(net.count(&net.counters.conn_cap_rejects), 2);
    assert_eq!(net.open[0].load(Ordering::Relaxed), 2);
    assert_eq!(net.open[1].load(Ordering::Relaxed), 1);
    assert_eq!(net.accepted(), 4);
    let open = net.open.clone();
    net.stop();
    assert_eq!(open[0].load(Ordering::Relaxed), 0);
    assert_eq!(open[1].load(Ordering::Relaxed), 0);
}

#[test]
fn per_address_cap_rejects_and_gives_the_count_back_on_close() {
    let net = start(
        1,
        Opts {
            listeners: vec![(100, 2)],
            ..Opts::default()
        },
    );
    let addr = net.addr(0, 0);
    let _a = Client::named(addr, "A");
    let b = Client::named(addr, "B");
    let mut c = Client::connect(addr);
    c.expect_closed();
    assert_eq!(net.count(&net.counters.conn_cap_rejects), 1);
    let idb = net.id_of("name B");
    drop(b);
    net.wait_closed(idb);
    let mut d = Client::named(addr, "D");
    assert_eq!(d.cmd("echo d"), "d");
    let mut e = Client::connect(addr);
    e.expect_closed();
    assert_eq!(net.count(&net.counters.conn_cap_rejects), 2);
    assert_eq!(net.accepted(), 3);
    assert_eq!(net.open[0].load(Ordering::Relaxed), 2);
    let open = net.open.clone();
    net.stop();
    assert_eq!(open[0].load(Ordering::Relaxed), 0);
}

#[test]
fn send_past_out_cap_closes_as_slow_consumer_but_answer_does_not() {
    let net = start(
        1,
        Opts {
            out_cap: 64 << 10,
            ..Opts::default()
        },
    );
    let addr = net.addr(0, 0);

    let mut a = Client::named(addr, "A");
    a.write(b"big 100000\n");
    a.expect_closed();
    assert!(net
        .wait_closed(net.id_of("name A"))
        .starts_with("slow consumer"));
    assert_eq!(net.count(&net.counters.slow_consumer_closes), 1);

    // Several sends in one callback add up.
    let mut b = Client::named(addr, "B");
    b.write(b"bigs 3 30000\n");
    b.expect_closed();
    assert!(net
        .wait_closed(net.id_of("name B"))
        .starts_with("slow consumer"));
    assert_eq!(net.count(&net.counters.slow_consumer_closes), 2);

    // At the cap exactly: sent.
    let mut c = Client::named(addr, "C");
    c.write(b"big 65536\n");
    assert_eq!(c.read_exact(65536), pattern(65536));
    assert_eq!(c.cmd("echo c"), "c");

    // An answer is not capped.
    let mut d = Client::named(addr, "D");
    d.write(b"answer 1000000\n");
    assert_eq!(d.read_exact(1_000_000), pattern(1_000_000));
    assert_eq!(d.cmd("echo d"), "d");
    assert_eq!(net.count(&net.counters.slow_consumer_closes), 2);
    net.stop();
}

#[test]
fn input_budget_closes_the_connection_that_would_pass_it_and_returns_to_zero() {
    let net = start(
        1,
        Opts {
            input_limit: 1000,
            ..Opts::default()
        },
    );
    let addr = net.addr(0, 0);
    let mut a = Client::named(addr, "A");
    let ida = net.id_of("name A");
    let mut line = b"echo ".to_vec();
    line.extend(std::iter::repeat_n(b'a', 595));
    a.write(&line);
    assert!(wait_until(|| net.budget.used() == 600));

    // 600 more would make 1200 > 1000: this connection is closed, A keeps its bytes.
    let mut b = Client::named(addr, "B");
    let idb = net.id_of("name B");
    b.write(&[b'b'; 600]);
    b.expect_closed();
    assert_eq!(net.wait_closed(idb), "MaxBufferedInput reached");
    assert_eq!(net.count(&net.counters.input_budget_closes), 1);
    assert_eq!(net.budget.used(), 600);

    // A's line completes: its bytes are given back.
    a.write(b"\n");
    assert_eq!(a.line().len(), 595);
    assert_eq!(net.budget.used(), 0);

    // A partial line within the budget, then the peer leaves: given back on close.
    let mut c = Client::named(addr, "C");
    let idc = net.id_of("name C");
    c.write(&[b'c'; 900]);
    assert!(wait_until(|| net.budget.used() == 900));
    a.write(&[b'a'; 200]);
    a.expect_closed();
    assert_eq!(net.wait_closed(ida), "MaxBufferedInput reached");
    assert_eq!(net.count(&net.counters.input_budget_closes), 2);
    drop(c);
    net.wait_closed(idc);
    assert_eq!(net.budget.used(), 0);

    let mut d = Client::named(addr, "D");
    d.write(&[b'd'; 500]);
    assert!(wait_until(|| net.budget.used() == 500));
    let budget = Arc::clone(&net.budget);
    net.stop();
    // Exit gives back what the connections still held.
    assert_eq!(budget.used(), 0);
    drop(d);
}

#[test]
fn posts_through_a_full_peer_channel_wait_in_the_backlog_and_all_arrive_in_order() {
    const N: u32 = 200;
    let net = start(
        2,
        Opts {
            chan_cap: 1,
            ..Opts::default()
        },
    );
    let mut a = Client::named(net.addr(0, 0), "A");
    let mut b = Client::named(net.addr(1, 0), "B");
    // Both ways at once, and loop 0 to itself.
    a.write(format!("post 1 {N}\npost 0 5\n").as_bytes());
    b.write(format!("post 0 {N}\n").as_bytes());
    assert_eq!(a.line(), "posted");
    assert_eq!(a.line(), "posted");
    assert_eq!(b.line(), "posted");
    // A loop with a backlog reads no input: by the time this is answered, every post of
    // loop 0 left its backlog (the channel holds one, the peer may be handling another).
    assert_eq!(a.cmd("echo after"), "after");
    let got = |to: u16, from: u16| {
        let evs = net.log.snapshot();
        evs.into_iter()
            .filter_map(|e| match e {
                Ev::Got(t, f, i) if t == to && f == from => Some(i),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(got(1, 0).len() >= N as usize - 2, "{}", got(1, 0).len());
    assert!(wait_until(|| got(1, 0).len() == N as usize
        && got(0, 1).len() == N as usize
        && got(0, 0).len() == 5));
    assert_eq!(got(1, 0), (0..N).collect::<Vec<_>>());
    assert_eq!(got(0, 1), (0..N).collect::<Vec<_>>());
    assert_eq!(got(0, 0), (0..5).collect::<Vec<_>>());
    assert!(got(1, 1).is_empty());
    assert!(net.count(&net.counters.channel_full_waits) >= 1);
    net.stop();
}

#[test]
fn stop_reading_accepts_and_reads_nothing_more_and_exit_flushes_queued_output() {
    const BIG: usize = 16_000_000;
    let mut net = start(1, Opts::default());
    let addr = net.addr(0, 0);
    let mut a = Client::named(addr, "A");
    let ida = net.id_of("name A");
    // Queued and not read yet: far more than the socket buffers hold.
    a.write(format!("answer {BIG}\n").as_bytes());
    assert!(net.wait_log(|evs| evs.contains(&Ev::Frame(ida, format!("answer {BIG}")))));

    net.send(0, Msg::StopReading);
    net.barrier(0);
    let accepted = net.accepted();
    let mut late = Client::connect(addr); // completes in the kernel's backlog only
    late.write(b"echo late\n");
    a.write(b"echo unread\n");
    net.barrier(0);
    assert_eq!(net.accepted(), accepted);
    assert_eq!(
        net.frames_of(ida),
        ["name A".to_string(), format!("answer {BIG}")]
    );

    net.send(0, Msg::Exit(Duration::from_secs(3)));
    assert_eq!(a.read_exact(BIG), pattern(BIG));
    a.expect_eof();
    net.join(0);
    assert_eq!(net.accepted(), accepted);
    assert!(net.closes_of(ida).is_empty(), "on_closed at exit");
    late.expect_closed();
    net.stop();
}

#[test]
fn exit_deadline_ends_the_loop_with_output_still_queued() {
    let mut net = start(1, Opts::default());
    let mut a = Client::named(net.addr(0, 0), "A");
    let ida = net.id_of("name A");
    a.write(b"answer 32000000\n");
    assert!(net.wait_log(|evs| evs.contains(&Ev::Frame(ida, "answer 32000000".into()))));
    let t0 = Instant::now();
    net.send(0, Msg::Exit(Duration::from_millis(200)));
    net.join(0);
    assert!(t0.elapsed() >= Duration::from_millis(200));
    // The connection is gone: the client reads what reached it, then EOF.
    let mut rest = Vec::new();
    let _ = a.r.read_to_end(&mut rest);
    assert!(rest.len() < 32_000_000);
    net.stop();
}

#[test]
fn invalid_input_goes_to_on_bad_input() {
    let net = start(1, Opts::default());
    let mut a = Client::named(net.addr(0, 0), "A");
    a.write(&[b'z'; MAX_LINE + 1]);
    assert_eq!(a.line(), "bad: line too long");
    a.expect_eof();
    assert_eq!(net.wait_closed(net.id_of("name A")), "closed after flush");
    net.stop();
}

#[test]
fn a_connection_that_always_has_input_does_not_starve_the_others() {
    // Frames that cost more to handle than to send: the streaming connection's socket never
    // drains, so only its read budget lets the loop go round.
    let net = start(
        1,
        Opts {
            read_budget: 4096,
            ..Opts::default()
        },
    );
    let mut p = Client::named(net.addr(0, 0), "P");
    let s = Client::named(net.addr(0, 0), "S");
    net.log.slow.store(true, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let mut w = s.w.try_clone().unwrap();
        w.set_write_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        std::thread::spawn(move || {
            let chunk = b"w\n".repeat(32 << 10);
            let mut off = 0;
            while !stop.load(Ordering::Relaxed) {
                match w.write(chunk.get(off..).unwrap()) {
                    Ok(n) => off = (off + n) % 2,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        })
    };
    assert!(wait_until(|| net.log.worked.load(Ordering::Relaxed) > 0));
    let t0 = Instant::now();
    p.w.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    p.write(b"echo ping\n");
    let mut reply = String::new();
    let answered = p.r.read_line(&mut reply).is_ok();
    let took = t0.elapsed();
    net.log.slow.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    drop(s);
    assert!(
        answered,
        "no reply within 1 s while another connection streams"
    );
    assert_eq!(reply, "ping\n");
    assert!(took < Duration::from_secs(1));
    net.stop();
}

#[test]
fn exit_delivers_posts_still_waiting_in_the_backlog() {
    const N: u32 = 200;
    let mut net = start(
        2,
        Opts {
            chan_cap: 1,
            ..Opts::default()
        },
    );
    let mut a = Client::named(net.addr(0, 0), "A");
    assert_eq!(a.cmd(&format!("post 1 {N}")), "posted");
    // Loop 0 is asked to leave while most of its posts wait for room in loop 1's channel.
    net.send(0, Msg::Exit(Duration::from_secs(3)));
    net.join(0);
    net.barrier(1);
    let got: Vec<u32> = net
        .log
        .snapshot()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Got(1, 0, i) => Some(i),
            _ => None,
        })
        .collect();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    net.stop();
}

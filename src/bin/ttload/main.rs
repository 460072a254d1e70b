//! `ttload`: the load generator of ttserver (issue #3). Loopback only, bounded in count and
//! time. Many connections per thread: each driver thread owns a mio `Poll` and a slab of
//! non-blocking connections (see `net.rs`); no async runtime.
//!
//! Progress goes to stderr once a second; the last stdout line is
//! `result scenario=<name> key=value ...`. Run `ttload --help` for the scenarios and flags.

mod file;
mod group;
mod idle;
mod login;
mod net;
mod offline;
mod p2p;
mod relay;
mod run;
mod session;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use net::Net;
use run::{drive, per_s, supervise, Lat, Shared};
use session::{Users, UsersConf};

const HELP: &str = "\
ttload: load generator for ttserver (loopback targets only; every run bounded in count and time)

usage:
  ttload login   --login HOST:PORT --users N --user-prefix P --password PW [--rate R]
  ttload p2p     --login HOST:PORT --pairs N --messages M --user-prefix P --password PW
                 [--window W | --rate R] [--size BYTES]
  ttload idle    --login HOST:PORT --users N --user-prefix P --password PW --server-pid PID
                 [--hold S] [--heartbeat S]
  ttload offline --login HOST:PORT --pairs N --messages M --user-prefix P --password PW
                 [--window W] [--size BYTES]
  ttload group   --login HOST:PORT --group G --members M --senders S --messages K
                 --user-prefix P --password PW [--window W | --rate R] [--size BYTES]
                 [--client-type 1|0x12]
  ttload relay   --listen 127.0.0.1:PORT [--threads T] [--duration-limit S]
  ttload file    --login HOST:PORT --user-prefix P --password PW [--size BYTES]
                 [--chunk BYTES] [--window W] [--download-only TASK] [--duration-limit S]
  ttload tcpcopy [--size BYTES] [--dir DIR] [--duration-limit S]

users are <P>1 .. <P>N (login, idle); p2p/offline pair i (1-based) is sender <P><2i-1> and
receiver <P><2i>; group members are <P>1 .. <P>M (all members of group G, made by the caller,
e.g. `ttserver admin group add`), the senders <P>1 .. <P>S. Every user logs in through the login port (1/1 -> 1/2 gives the msg
server, which must be a loopback address too), then 1/3 -> 1/4 on the msg port, client_type 1
(group: 0x12 by default).

common flags (driver scenarios):
  --threads T          driver threads, each with its own mio Poll (default 1, so that on a
                       small machine the load generator leaves the other cores to the server)
  --duration-limit S   hard cap on the whole run, seconds (default 300, at most 3600)
  --source-addrs LIST  comma-separated loopback addresses to bind outgoing sockets to, round
                       robin (needed beyond ~28,000 connections: one source address has only
                       that many ephemeral ports towards one server port)
  --concurrency C      logins in flight per thread (default 64)
  --heartbeat S        7/1 interval of logged-in connections (default 10; PC sessions are closed
                       after 30 s of silence)

scenario flags:
  login:   --users N (<= 200000)  --rate R  logins started per second, all threads together
           (default: as fast as --concurrency allows)
  p2p:     --pairs N (<= 100000)  --messages M per pair (pairs x M <= 20,000,000)
           --window W  messages in flight per sender (default 64)
           --rate R    messages per second per sender instead (in-flight cap: --window if
                       given, else 100000)
           --size B    message body bytes (default 100; at least the ~30-byte tag
                       `ttload <nonce> <pair> <seq> ` that lets the receiver match it)
  idle:    --users N (<= 200000)  --server-pid PID  --hold S (default 10) seconds to hold
           all connections while measuring the server's RSS and CPU from /proc/PID
  offline: --pairs N  --messages M  --window W (default 64)  --size B (default 100)
           the server returns at most MaxUnreadMsgs (default 100) messages per 3/14, so M
           above it needs a conf with a larger MaxUnreadMsgs (else: truncated > 0)
  group:   --group G  the group id (normal group, every user <P>1..<P>M a member)
           --members M (<= 200000)  --senders S (1 ..= M)  --messages K per sender
           (S x K <= 20,000,000; M x S x K <= 4,000,000,000)
           --window W  group messages (0x11) in flight per sender (default 16)
           --rate R    messages per second per sender instead (in-flight cap: --window if
                       given, else 100000)
           --size B    body bytes (default 100; at least the ~45-byte tag)
           --client-type 1 (PC) or 0x12 (Android, default: mobile sessions get no presence
                       pushes; pushes that arrive anyway are ignored)
           every member session must get each message of every other sender exactly once, in
           that sender's order; the sending connection gets none of its own (B-GRP-8/9)
  file:    sender <P>1 uploads an offline file of --size bytes (default 1073741824, at most
           the server's MaxFileSize) to receiver <P>2 through the file port (6/10, 6/1 mode 3,
           answering the server's 6/4 pulls with generated data), then <P>2 downloads it
           (6/1 mode 4) with 6/4 pulls of --chunk bytes (default 262144, at most 262144),
           --window W of them outstanding (default 4), checking every byte against the
           pattern. --download-only TASK: no upload; <P>2 finds TASK in its 6/17 (size must
           equal --size) and downloads it again. One connection each, blocking sockets.
  tcpcopy: the baseline of `file`: writes --size bytes (default 1073741824) of the same
           pattern to a file in a new temp dir under --dir (default $TMPDIR or /tmp), then a
           server thread reads it with 256 KiB std::fs::File reads and writes it to one
           127.0.0.1 connection; the client thread checks every byte as `file` does. The temp
           dir is removed afterwards.

result line keys:
  login:   users logins failed elapsed_s logins_per_s p50_ms p90_ms p99_ms p999_ms max_ms
  p2p:     sent acked delivered lost dup out_of_order unacked_delivered ack_out_of_order ...
           ack_per_s deliv_per_s p50_ms p90_ms p99_ms p999_ms max_ms (send -> delivery)
           ack_p50_ms ... ack_max_ms (send -> ack) complete exactly_once
  idle:    conns failed lost rss_before_kib rss_after_kib rss_per_conn_bytes server_cpu_pct
  offline: sent acked read_back ... read_per_s complete exactly_once
  file:    mode size chunk window task upload_s upload_mb_s (not with --download-only)
           download_s download_mb_s (first 6/4 -> 6/3 done) pulls bytes ok; MB = 10^6 bytes
  tcpcopy: size copy_s mb_s (connect -> last byte) bytes ok
  group:   group members senders messages sent acked expected_deliveries delivered lost dup
           out_of_order own_deliveries ... deliv_per_s (first send -> last delivery) ack_per_s
           p50_ms p90_ms p99_ms p999_ms max_ms (send -> delivery, over all deliveries)
           ack_p50_ms ... ack_max_ms complete exactly_once
exit status: 0 ok; 1 the run completed wrongly or incompletely (exactly_once=false,
complete=false, failed logins, lost connections); 2 usage or setup error.
";

/// Parsed `--key value` flags.
struct Args {
    m: HashMap<String, String>,
}

impl Args {
    fn parse(rest: &[String], allowed: &[&str]) -> Result<Args, String> {
        let mut m = HashMap::new();
        let mut it = rest.iter();
        while let Some(k) = it.next() {
            let key = k
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {k:?}"))?;
            if !allowed.contains(&key) {
                return Err(format!("unknown flag --{key} (see ttload --help)"));
            }
            let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            if m.insert(key.to_string(), v.clone()).is_some() {
                return Err(format!("--{key} given twice"));
            }
        }
        Ok(Args { m })
    }

    fn has(&self, k: &str) -> bool {
        self.m.contains_key(k)
    }

    fn str(&self, k: &str) -> Result<String, String> {
        self.m
            .get(k)
            .cloned()
            .ok_or_else(|| format!("--{k} is required"))
    }

    fn num<T>(&self, k: &str, default: Option<T>, min: T, max: T) -> Result<T, String>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let v = match self.m.get(k) {
            Some(v) => v
                .parse::<T>()
                .map_err(|_| format!("--{k}: bad value {v:?}"))?,
            None => default.ok_or_else(|| format!("--{k} is required"))?,
        };
        if v < min || v > max {
            return Err(format!("--{k} must be in {min} ..= {max}, got {v}"));
        }
        Ok(v)
    }
}

fn loopback(addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "{addr} is not a loopback address: ttload only targets 127.0.0.0/8 and ::1"
        ))
    }
}

fn sock_addr(a: &Args, k: &str) -> Result<SocketAddr, String> {
    let s = a.str(k)?;
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| format!("--{k}: {s:?} is not IP:PORT"))?;
    loopback(addr)
}

/// Flags shared by the driver scenarios.
struct Common {
    login: SocketAddr,
    prefix: String,
    password: String,
    threads: usize,
    limit: Duration,
    sources: Vec<IpAddr>,
    concurrency: usize,
    heartbeat: Duration,
}

const COMMON: &[&str] = &[
    "login",
    "user-prefix",
    "password",
    "threads",
    "duration-limit",
    "source-addrs",
    "concurrency",
    "heartbeat",
];

fn common(a: &Args) -> Result<Common, String> {
    let login = sock_addr(a, "login")?;
    let mut sources = Vec::new();
    if a.has("source-addrs") {
        for s in a.str("source-addrs")?.split(',').filter(|s| !s.is_empty()) {
            let ip: IpAddr = s
                .trim()
                .parse()
                .map_err(|_| format!("--source-addrs: {s:?} is not an IP address"))?;
            if !ip.is_loopback() {
                return Err(format!("--source-addrs: {ip} is not a loopback address"));
            }
            if ip.is_ipv4() != login.is_ipv4() {
                return Err(format!(
                    "--source-addrs: {ip} is not of the same family as {login}"
                ));
            }
            sources.push(ip);
        }
        if sources.len() > 256 {
            return Err("--source-addrs: at most 256 addresses".into());
        }
    }
    Ok(Common {
        login,
        prefix: a.str("user-prefix")?,
        password: a.str("password")?,
        threads: a.num("threads", Some(1), 1, 64)?,
        limit: Duration::from_secs(a.num("duration-limit", Some(300), 1, 3600)?),
        sources,
        concurrency: a.num("concurrency", Some(64), 1, 10_000)?,
        heartbeat: Duration::from_secs(a.num("heartbeat", Some(10), 1, 300)?),
    })
}

impl Common {
    fn users_conf(&self, rate: Option<f64>) -> UsersConf {
        UsersConf {
            login_addr: self.login,
            password: self.password.clone(),
            client_type: 1,
            concurrency: self.concurrency,
            rate: rate.map(|r| r / self.threads as f64),
            heartbeat: self.heartbeat,
        }
    }

    /// Checks descriptors and ephemeral ports for `conns` simultaneous connections.
    fn check_capacity(&self, conns: usize) -> Result<(), String> {
        let need = conns + self.concurrency * self.threads + 64;
        let have = nofile();
        if need as u64 > have {
            return Err(format!(
                "about {need} descriptors needed but RLIMIT_NOFILE is {have} (raise the hard \
                 limit, e.g. ulimit -Hn)"
            ));
        }
        let ports = ephemeral_ports();
        let per_source = ports.saturating_sub(1000);
        let sources = self.sources.len().max(1);
        if conns > per_source * sources {
            eprintln!(
                "ttload: warning: {conns} connections but only {ports} ephemeral ports per \
                 source address ({sources} in use): pass more --source-addrs"
            );
        }
        Ok(())
    }
}

/// Raises RLIMIT_NOFILE to the hard limit; returns the new soft limit.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        let old = r.rlim_cur;
        if r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 {
                eprintln!(
                    "ttload: RLIMIT_NOFILE raised from {old} to the hard limit {}",
                    r.rlim_cur
                );
            } else {
                r.rlim_cur = old;
            }
        } else {
            eprintln!("ttload: RLIMIT_NOFILE is {} (already the hard limit)", old);
        }
    }
    r.rlim_cur as u64
}

#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
fn nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    r.rlim_cur as u64
}

fn ephemeral_ports() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let v: Vec<usize> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            match v.as_slice() {
                [lo, hi] if hi >= lo => Some(hi - lo + 1),
                _ => None,
            }
        })
        .unwrap_or(28_232)
}

fn nonce() -> u32 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ (t >> 32) ^ u64::from(std::process::id()).rotate_left(16)) as u32
}

/// Spawns one driver thread per `t`; a thread that fails aborts the run.
fn spawn<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl Fn(usize, Arc<Shared>) -> Result<T, String> + Send + Sync + 'static,
) -> Result<Vec<std::thread::JoinHandle<Result<T, String>>>, String> {
    let f = Arc::new(f);
    (0..shared.threads)
        .map(|t| {
            let shared = shared.clone();
            let f = f.clone();
            std::thread::Builder::new()
                .name(format!("ttload-{t}"))
                .spawn(move || {
                    let r = f(t, shared.clone());
                    if r.is_err() {
                        shared.abort.store(true, Ordering::Relaxed);
                    }
                    r
                })
                .map_err(|e| format!("spawn: {e}"))
        })
        .collect()
}

/// The threads' results, or the first error.
fn collect<T>(results: Vec<Option<Result<T, String>>>) -> Result<Vec<T>, String> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("driver thread panicked".into())))
        .collect()
}

/// The indices (0-based) of thread t's share of n items.
fn share(n: usize, threads: usize, t: usize) -> Vec<usize> {
    (t..n).step_by(threads).collect()
}

fn first_error<'a>(errs: impl Iterator<Item = &'a Option<String>>) {
    if let Some(e) = errs.flatten().next() {
        eprintln!("ttload: first error: {e}");
    }
}

fn scenario_login(a: &Args) -> Result<bool, String> {
    let c = common(a)?;
    let n: usize = a.num("users", None, 1, 200_000)?;
    let rate = if a.has("rate") {
        Some(a.num("rate", None, 0.001, 1e6)?)
    } else {
        None
    };
    raise_nofile();
    c.check_capacity(0)?;
    let shared = Shared::new(c.threads, c.limit);
    let (uconf, prefix, threads, sources) = (
        c.users_conf(rate),
        c.prefix.clone(),
        c.threads,
        c.sources.clone(),
    );
    let handles = spawn(&shared, move |t, shared| {
        let mut net = Net::new(sources.clone(), t).map_err(|e| e.to_string())?;
        let names = share(n, threads, t)
            .into_iter()
            .map(|i| format!("{prefix}{}", i + 1))
            .collect();
        let mut users = Users::new(names, &uconf);
        for ui in 0..users.u.len() {
            users.enqueue(ui);
        }
        let mut sc = login::Login::new(users, shared.clone());
        let done = drive(&mut net, &mut sc, &shared).map_err(|e| e.to_string())?;
        sc.finish();
        Ok((done, sc.users))
    })?;
    let mut prev = 0;
    let results = supervise(
        &shared,
        handles,
        0,
        |t| {
            let ok = shared.get(login::C_OK);
            let s = format!(
                "login: {t:.0}s logins {ok}/{n} failed {} ({}/s)",
                shared.get(login::C_FAILED),
                ok - prev
            );
            prev = ok;
            s
        },
        |_| {},
    );
    let results = collect(results)?;
    let logins: u64 = results.iter().map(|r| r.1.ok).sum();
    let failed: u64 = results.iter().map(|r| r.1.failed).sum();
    let last = results
        .iter()
        .filter_map(|r| r.1.last_login)
        .max()
        .map_or(0, |t| shared.us(t));
    let complete = results.iter().all(|r| r.0);
    first_error(results.iter().map(|r| &r.1.first_error));
    let lat = Lat::new(results.into_iter().map(|r| r.1.lat_us));
    println!(
        "result scenario=login users={n} threads={threads} logins={logins} failed={failed} \
         elapsed_s={:.3} logins_per_s={:.1}{} complete={complete}",
        last as f64 / 1e6,
        per_s(logins, last),
        lat.keys("")
    );
    Ok(complete && failed == 0 && logins == n as u64)
}

fn scenario_p2p(a: &Args) -> Result<bool, String> {
    let c = common(a)?;
    let pairs: usize = a.num("pairs", None, 1, 100_000)?;
    let messages: u32 = a.num("messages", None, 1, 20_000_000)?;
    if pairs as u64 * u64::from(messages) > 20_000_000 {
        return Err("pairs x messages must be at most 20,000,000".into());
    }
    if a.has("rate") && a.has("window") {
        eprintln!("ttload: --rate with --window: the window caps messages in flight");
    }
    let rate = if a.has("rate") {
        Some(a.num("rate", None, 0.001, 1e6)?)
    } else {
        None
    };
    let window = a.num(
        "window",
        Some(if rate.is_some() { 100_000 } else { 64 }),
        1,
        100_000,
    )?;
    let size = a.num("size", Some(100), 1, 65_536)?;
    raise_nofile();
    c.check_capacity(2 * pairs)?;
    let conf = p2p::Conf {
        messages,
        window,
        rate,
        size,
        nonce: nonce(),
    };
    let shared = Shared::new(c.threads, c.limit);
    let (uconf, prefix, threads, sources) = (
        c.users_conf(None),
        c.prefix.clone(),
        c.threads,
        c.sources.clone(),
    );
    let handles = spawn(&shared, move |t, shared| {
        let mut net = Net::new(sources.clone(), t).map_err(|e| e.to_string())?;
        let mine = share(pairs, threads, t);
        let mut sc = p2p::P2p::new(&mine, &prefix, &uconf, conf, shared.clone());
        let done = drive(&mut net, &mut sc, &shared).map_err(|e| e.to_string())?;
        Ok(sc.finish(!done, &net))
    })?;
    let expected = pairs as u64 * u64::from(messages);
    let mut prev = (0, 0);
    let results = supervise(
        &shared,
        handles,
        1,
        |t| {
            let (ack, del) = (shared.get(p2p::C_ACKED), shared.get(p2p::C_DELIV));
            let s = format!(
                "p2p: {t:.0}s logged_in {}/{} sent {} acked {ack}/{expected} delivered {del} \
                 ({}/s acked, {}/s delivered)",
                shared.get(p2p::C_LOGINS),
                2 * pairs,
                shared.get(p2p::C_SENT),
                ack - prev.0,
                del - prev.1
            );
            prev = (ack, del);
            s
        },
        |_| eprintln!("p2p: all users logged in, sending"),
    );
    let r = collect(results)?;
    let sum = |f: fn(&p2p::Out) -> u64| r.iter().map(f).sum::<u64>();
    let (sent, acked, delivered) = (sum(|o| o.sent), sum(|o| o.acked), sum(|o| o.delivered));
    let (lost, dup, ooo, unacked) = (
        sum(|o| o.lost),
        sum(|o| o.dup),
        sum(|o| o.ooo),
        sum(|o| o.unacked_deliv),
    );
    let (ack_ooo, dup_ack, bad, stale) = (
        sum(|o| o.ack_ooo),
        sum(|o| o.dup_ack),
        sum(|o| o.bad),
        sum(|o| o.stale),
    );
    let (bad_frames, proto_errors, login_failed, lost_conns, broken) = (
        sum(|o| o.bad_frames),
        sum(|o| o.proto_errors),
        sum(|o| o.login_failed),
        sum(|o| o.lost_conns),
        sum(|o| o.broken),
    );
    let stalled = r.iter().any(|o| o.stalled);
    let aborted = r.iter().any(|o| o.aborted);
    let go = shared.opened(1);
    let last_ack = r.iter().map(|o| o.last_ack_us).max().unwrap_or(0);
    let last_deliv = r.iter().map(|o| o.last_deliv_us).max().unwrap_or(0);
    let ack_us = last_ack.saturating_sub(go);
    let deliv_us = last_deliv.saturating_sub(go);
    first_error(r.iter().map(|o| &o.first_error));
    if stalled {
        eprintln!(
            "ttload: nothing acked or delivered for {:?}: stopped",
            p2p::STALL
        );
    }
    let exactly_once = lost == 0
        && dup == 0
        && ooo == 0
        && unacked == 0
        && ack_ooo == 0
        && dup_ack == 0
        && bad == 0
        && bad_frames == 0
        && proto_errors == 0;
    let complete = sent == expected
        && acked == expected
        && delivered == expected
        && login_failed == 0
        && broken == 0
        && !stalled
        && !aborted;
    let mut ack_lat = Vec::new();
    let mut del_lat = Vec::new();
    let mut login_lat = Vec::new();
    for o in r {
        ack_lat.push(o.ack_lat);
        del_lat.push(o.del_lat);
        login_lat.push(o.login_lat);
    }
    let (ack_lat, del_lat, login_lat) = (Lat::new(ack_lat), Lat::new(del_lat), Lat::new(login_lat));
    println!(
        "result scenario=p2p pairs={pairs} messages={messages} window={window} rate={} \
         size={size} threads={threads} sent={sent} acked={acked} delivered={delivered} \
         lost={lost} dup={dup} out_of_order={ooo} unacked_delivered={unacked} \
         ack_out_of_order={ack_ooo} dup_acks={dup_ack} bad={bad} stale={stale} \
         bad_frames={bad_frames} proto_errors={proto_errors} login_failed={login_failed} \
         conns_lost={lost_conns} broken_pairs={broken} stalled={stalled} ack_s={:.3} \
         deliv_s={:.3} ack_per_s={:.1} deliv_per_s={:.1}{}{} login_p50_ms={:.3} \
         login_p99_ms={:.3} complete={complete} exactly_once={exactly_once}",
        rate.unwrap_or(0.0),
        ack_us as f64 / 1e6,
        deliv_us as f64 / 1e6,
        per_s(acked, ack_us),
        per_s(delivered, deliv_us),
        del_lat.keys(""),
        ack_lat.keys("ack_"),
        login_lat.ms(0.5),
        login_lat.ms(0.99),
    );
    Ok(exactly_once && complete)
}

fn scenario_idle(a: &Args) -> Result<bool, String> {
    let c = common(a)?;
    let n: usize = a.num("users", None, 1, 200_000)?;
    let pid: u32 = a.num("server-pid", None, 1, u32::MAX)?;
    let hold: u64 = a.num("hold", Some(10), 1, 3600)?;
    if Duration::from_secs(hold) >= c.limit {
        return Err("--hold must be shorter than --duration-limit".into());
    }
    raise_nofile();
    c.check_capacity(n)?;
    let rss_before = run::rss_kib(pid)?;
    let cpu_before_login = run::cpu_ticks(pid)?;
    let shared = Shared::new(c.threads, c.limit);
    let (uconf, prefix, threads, sources) = (
        c.users_conf(None),
        c.prefix.clone(),
        c.threads,
        c.sources.clone(),
    );
    let handles = spawn(&shared, move |t, shared| {
        let mut net = Net::new(sources.clone(), t).map_err(|e| e.to_string())?;
        let names = share(n, threads, t)
            .into_iter()
            .map(|i| format!("{prefix}{}", i + 1))
            .collect();
        let mut users = Users::new(names, &uconf);
        for ui in 0..users.u.len() {
            users.enqueue(ui);
        }
        let mut sc = idle::Idle::new(users, shared.clone());
        let done = drive(&mut net, &mut sc, &shared).map_err(|e| e.to_string())?;
        let alive = sc.finish();
        Ok((done, alive, sc))
    })?;
    // Phase 1 is opened by the supervisor once everyone is logged in and synced; the hold runs
    // here, in the progress callback's thread, before that.
    let mut measured: Option<(u64, u64, u64, f64, f64)> = None;
    let hold_d = Duration::from_secs(hold);
    let mut hold_err = None;
    let results = supervise(
        &shared,
        handles,
        1,
        |t| {
            format!(
                "idle: {t:.0}s logged_in {}/{n} synced {} failed {} lost {}",
                shared.get(idle::C_OK),
                shared.get(idle::C_SYNCED),
                shared.get(idle::C_FAILED),
                shared.get(idle::C_LOST)
            )
        },
        |_| {
            let login_s = shared.epoch.elapsed().as_secs_f64();
            eprintln!("idle: all connections set up in {login_s:.1}s, holding {hold}s");
            let r = (|| -> Result<(u64, u64, u64, f64, f64), String> {
                let rss_mid = run::rss_kib(pid)?;
                let cpu0 = run::cpu_ticks(pid)?;
                let t0 = Instant::now();
                let mut next = t0 + Duration::from_secs(1);
                while t0.elapsed() < hold_d && Instant::now() < shared.deadline {
                    std::thread::sleep(Duration::from_millis(50));
                    if Instant::now() >= next {
                        next += Duration::from_secs(1);
                        eprintln!(
                            "idle: holding {:.0}/{hold}s conns lost {}",
                            t0.elapsed().as_secs_f64(),
                            shared.get(idle::C_LOST)
                        );
                    }
                }
                let cpu1 = run::cpu_ticks(pid)?;
                let rss_after = run::rss_kib(pid)?;
                let secs = t0.elapsed().as_secs_f64();
                let pct =
                    (cpu1.saturating_sub(cpu0)) as f64 / run::clock_ticks_per_s() as f64 / secs
                        * 100.0;
                Ok((rss_mid, rss_after, cpu0, pct, login_s))
            })();
            match r {
                Ok(m) => measured = Some(m),
                Err(e) => hold_err = Some(e),
            }
        },
    );
    let r = collect(results)?;
    if let Some(e) = hold_err {
        return Err(e);
    }
    let conns: u64 = r.iter().map(|x| x.1).sum();
    let failed: u64 = r.iter().map(|x| x.2.users.failed).sum();
    let lost: u64 = r.iter().map(|x| x.2.lost).sum();
    let logins: u64 = r.iter().map(|x| x.2.users.ok).sum();
    let done = r.iter().all(|x| x.0);
    first_error(r.iter().map(|x| &x.2.users.first_error));
    let Some((rss_mid, rss_after, cpu0, pct, login_s)) = measured else {
        return Err("the run ended before every connection was set up".into());
    };
    let login_pct = (cpu0.saturating_sub(cpu_before_login)) as f64
        / run::clock_ticks_per_s() as f64
        / login_s.max(1e-9)
        * 100.0;
    let per_conn = rss_after.saturating_sub(rss_before) as f64 * 1024.0 / conns.max(1) as f64;
    let lat = Lat::new(
        r.into_iter()
            .map(|mut x| std::mem::take(&mut x.2.users.lat_us)),
    );
    println!(
        "result scenario=idle users={n} threads={threads} conns={conns} failed={failed} \
         lost={lost} hold_s={hold} login_s={login_s:.3} logins_per_s={:.1} \
         login_p50_ms={:.3} login_p99_ms={:.3} rss_before_kib={rss_before} \
         rss_loggedin_kib={rss_mid} rss_after_kib={rss_after} rss_per_conn_bytes={per_conn:.0} \
         server_cpu_pct={pct:.2} server_login_cpu_pct={login_pct:.1} complete={}",
        logins as f64 / login_s.max(1e-9),
        lat.ms(0.5),
        lat.ms(0.99),
        done && conns == n as u64
    );
    Ok(done && conns == n as u64 && failed == 0 && lost == 0)
}

fn scenario_offline(a: &Args) -> Result<bool, String> {
    let c = common(a)?;
    let pairs: usize = a.num("pairs", None, 1, 100_000)?;
    let messages: u32 = a.num("messages", None, 1, 20_000_000)?;
    if pairs as u64 * u64::from(messages) > 20_000_000 {
        return Err("pairs x messages must be at most 20,000,000".into());
    }
    let window = a.num("window", Some(64), 1, 100_000)?;
    let size = a.num("size", Some(100), 1, 65_536)?;
    raise_nofile();
    c.check_capacity(2 * pairs)?;
    let conf = offline::Conf {
        messages,
        window,
        size,
        nonce: nonce(),
    };
    let shared = Shared::new(c.threads, c.limit);
    let (uconf, prefix, threads, sources) = (
        c.users_conf(None),
        c.prefix.clone(),
        c.threads,
        c.sources.clone(),
    );
    let handles = spawn(&shared, move |t, shared| {
        let mut net = Net::new(sources.clone(), t).map_err(|e| e.to_string())?;
        let mine = share(pairs, threads, t);
        let mut sc = offline::Offline::new(&mine, &prefix, &uconf, conf, shared.clone());
        let done = drive(&mut net, &mut sc, &shared).map_err(|e| e.to_string())?;
        Ok(sc.finish(!done, &net))
    })?;
    let expected = pairs as u64 * u64::from(messages);
    let results = supervise(
        &shared,
        handles,
        2,
        |t| {
            format!(
                "offline: {t:.0}s phase {} logins {} sent {} acked {}/{expected} read {}",
                shared.phase(),
                shared.get(offline::C_LOGINS),
                shared.get(offline::C_SENT),
                shared.get(offline::C_ACKED),
                shared.get(offline::C_READ)
            )
        },
        |p| match p {
            1 => eprintln!("offline: receivers offline, sending"),
            _ => eprintln!("offline: all acked, receivers reading"),
        },
    );
    let r = collect(results)?;
    let sum = |f: fn(&offline::Out) -> u64| r.iter().map(f).sum::<u64>();
    let (sent, acked, read_back) = (sum(|o| o.sent), sum(|o| o.acked), sum(|o| o.read_back));
    let (dup, ooo, ack_ooo, unacked, unread) = (
        sum(|o| o.dup),
        sum(|o| o.ooo),
        sum(|o| o.ack_ooo),
        sum(|o| o.unacked_read),
        sum(|o| o.unread),
    );
    let (truncated, foreign, stale, bad, bad_frames) = (
        sum(|o| o.truncated),
        sum(|o| o.foreign),
        sum(|o| o.stale),
        sum(|o| o.bad),
        sum(|o| o.bad_frames),
    );
    let (broken, login_failed, proto_errors) = (
        sum(|o| o.broken),
        sum(|o| o.login_failed),
        sum(|o| o.proto_errors),
    );
    let stalled = r.iter().any(|o| o.stalled);
    let aborted = r.iter().any(|o| o.aborted);
    first_error(r.iter().map(|o| &o.first_error));
    if truncated > 0 {
        eprintln!(
            "ttload: {truncated} messages were beyond the server's MaxUnreadMsgs and were marked \
             read unseen: raise MaxUnreadMsgs above --messages"
        );
    }
    let (p1, p2) = (shared.opened(1), shared.opened(2));
    let last_ack = r.iter().map(|o| o.last_ack_us).max().unwrap_or(0);
    let last_read = r.iter().map(|o| o.last_read_us).max().unwrap_or(0);
    let send_us = last_ack.saturating_sub(p1);
    let read_us = if p2 > 0 {
        last_read.saturating_sub(p2)
    } else {
        0
    };
    let exactly_once = unread == 0
        && dup == 0
        && ooo == 0
        && unacked == 0
        && ack_ooo == 0
        && truncated == 0
        && bad == 0
        && bad_frames == 0
        && proto_errors == 0;
    let complete = sent == expected
        && acked == expected
        && read_back == expected
        && broken == 0
        && login_failed == 0
        && !stalled
        && !aborted;
    println!(
        "result scenario=offline pairs={pairs} messages={messages} window={window} size={size} \
         threads={threads} sent={sent} acked={acked} read_back={read_back} unread={unread} \
         dup={dup} out_of_order={ooo} unacked_read={unacked} ack_out_of_order={ack_ooo} \
         truncated={truncated} foreign={foreign} stale={stale} bad={bad} \
         bad_frames={bad_frames} proto_errors={proto_errors} login_failed={login_failed} \
         broken_pairs={broken} stalled={stalled} send_s={:.3} ack_per_s={:.1} read_s={:.3} \
         read_per_s={:.1} complete={complete} exactly_once={exactly_once}",
        send_us as f64 / 1e6,
        per_s(acked, send_us),
        read_us as f64 / 1e6,
        per_s(read_back, read_us),
    );
    Ok(exactly_once && complete)
}

fn scenario_group(a: &Args) -> Result<bool, String> {
    let c = common(a)?;
    let group_id: u32 = a.num("group", None, 1, u32::MAX)?;
    let members: usize = a.num("members", None, 2, 200_000)?;
    let senders: usize = a.num("senders", None, 1, members)?;
    let messages: u32 = a.num("messages", None, 1, 20_000_000)?;
    if senders as u64 * u64::from(messages) > 20_000_000 {
        return Err("senders x messages must be at most 20,000,000".into());
    }
    if members as u64 * senders as u64 * u64::from(messages) > 4_000_000_000 {
        return Err("members x senders x messages must be at most 4,000,000,000".into());
    }
    let client_type = match a.m.get("client-type").map(String::as_str) {
        None => 0x12,
        Some("1") | Some("0x01") | Some("0x1") => 1,
        Some("0x12") | Some("18") => 0x12,
        Some(v) => return Err(format!("--client-type: {v:?} is not 1 or 0x12")),
    };
    if a.has("rate") && a.has("window") {
        eprintln!("ttload: --rate with --window: the window caps messages in flight");
    }
    let rate = if a.has("rate") {
        Some(a.num("rate", None, 0.001, 1e6)?)
    } else {
        None
    };
    let window = a.num(
        "window",
        Some(if rate.is_some() { 100_000 } else { 16 }),
        1,
        100_000,
    )?;
    let size = a.num("size", Some(100), 1, 65_536)?;
    raise_nofile();
    c.check_capacity(members)?;
    let conf = group::Conf {
        group: group_id,
        senders,
        messages,
        window,
        rate,
        size,
        nonce: nonce(),
    };
    let shared = Shared::new(c.threads, c.limit);
    let mut uconf = c.users_conf(None);
    uconf.client_type = client_type;
    let ids: Arc<Vec<AtomicU32>> = Arc::new((0..senders).map(|_| AtomicU32::new(0)).collect());
    let (prefix, threads, sources) = (c.prefix.clone(), c.threads, c.sources.clone());
    let handles = spawn(&shared, move |t, shared| {
        let mut net = Net::new(sources.clone(), t).map_err(|e| e.to_string())?;
        let mine = share(members, threads, t);
        let mut sc = group::Group::new(&mine, &prefix, &uconf, conf, ids.clone(), shared.clone());
        let done = drive(&mut net, &mut sc, &shared).map_err(|e| e.to_string())?;
        Ok(sc.finish(!done, &net))
    })?;
    let total = senders as u64 * u64::from(messages);
    let expected = total * (members as u64 - 1);
    let mut prev = (0, 0);
    let results = supervise(
        &shared,
        handles,
        1,
        |t| {
            let (ack, del) = (shared.get(group::C_ACKED), shared.get(group::C_DELIV));
            let s = format!(
                "group: {t:.0}s logged_in {}/{members} sent {} acked {ack}/{total} delivered \
                 {del}/{expected} ({}/s acked, {}/s delivered)",
                shared.get(group::C_LOGINS),
                shared.get(group::C_SENT),
                ack - prev.0,
                del - prev.1
            );
            prev = (ack, del);
            s
        },
        |_| eprintln!("group: all members logged in, sending"),
    );
    let mut r = collect(results)?;
    let (lost, unacked) = group::lost(&r, senders, messages);
    let sum = |f: fn(&group::Out) -> u64| r.iter().map(f).sum::<u64>();
    let (sent, acked, delivered) = (sum(|o| o.sent), sum(|o| o.acked), sum(|o| o.delivered));
    let (dup, ooo, own, dup_ack, ack_ooo) = (
        sum(|o| o.dup),
        sum(|o| o.ooo),
        sum(|o| o.own),
        sum(|o| o.dup_ack),
        sum(|o| o.ack_ooo),
    );
    let (bad, stale, bad_frames, proto_errors, login_failed, lost_conns) = (
        sum(|o| o.bad),
        sum(|o| o.stale),
        sum(|o| o.bad_frames),
        sum(|o| o.proto_errors),
        sum(|o| o.login_failed),
        sum(|o| o.lost_conns),
    );
    let stalled = r.iter().any(|o| o.stalled);
    let aborted = r.iter().any(|o| o.aborted);
    let first_send = r
        .iter()
        .filter_map(|o| o.first_send_us)
        .min()
        .unwrap_or_else(|| shared.opened(1));
    let last_ack = r.iter().map(|o| o.last_ack_us).max().unwrap_or(0);
    let last_deliv = r.iter().map(|o| o.last_deliv_us).max().unwrap_or(0);
    let ack_us = last_ack.saturating_sub(first_send);
    let deliv_us = last_deliv.saturating_sub(first_send);
    first_error(r.iter().map(|o| &o.first_error));
    if stalled {
        eprintln!(
            "ttload: nothing acked or delivered for {:?}: stopped",
            group::STALL
        );
    }
    let exactly_once = lost == 0
        && dup == 0
        && ooo == 0
        && own == 0
        && unacked == 0
        && ack_ooo == 0
        && dup_ack == 0
        && bad == 0
        && bad_frames == 0
        && proto_errors == 0;
    let complete = sent == total
        && acked == total
        && delivered == expected
        && login_failed == 0
        && lost_conns == 0
        && !stalled
        && !aborted;
    let mut ack_lat = Vec::new();
    let mut del_lat = Vec::new();
    let mut login_lat = Vec::new();
    for o in &mut r {
        ack_lat.push(std::mem::take(&mut o.ack_lat));
        del_lat.push(std::mem::take(&mut o.del_lat));
        login_lat.push(std::mem::take(&mut o.login_lat));
    }
    drop(r);
    let (ack_lat, del_lat, login_lat) = (Lat::new(ack_lat), Lat::new(del_lat), Lat::new(login_lat));
    println!(
        "result scenario=group group={group_id} members={members} senders={senders} \
         messages={messages} window={window} rate={} size={size} client_type={client_type:#x} \
         threads={threads} sent={sent} acked={acked} expected_deliveries={expected} \
         delivered={delivered} lost={lost} dup={dup} out_of_order={ooo} own_deliveries={own} \
         unacked_delivered={unacked} ack_out_of_order={ack_ooo} dup_acks={dup_ack} bad={bad} \
         stale={stale} bad_frames={bad_frames} proto_errors={proto_errors} \
         login_failed={login_failed} conns_lost={lost_conns} stalled={stalled} ack_s={:.3} \
         deliv_s={:.3} deliv_per_s={:.1} ack_per_s={:.1}{}{} login_p50_ms={:.3} \
         login_p99_ms={:.3} complete={complete} exactly_once={exactly_once}",
        rate.unwrap_or(0.0),
        ack_us as f64 / 1e6,
        deliv_us as f64 / 1e6,
        per_s(delivered, deliv_us),
        per_s(acked, ack_us),
        del_lat.keys(""),
        ack_lat.keys("ack_"),
        login_lat.ms(0.5),
        login_lat.ms(0.99),
    );
    Ok(exactly_once && complete)
}

fn scenario_relay(a: &Args) -> Result<bool, String> {
    let addr = sock_addr(a, "listen")?;
    let threads = a.num("threads", Some(1), 1, 64)?;
    let limit = a.num("duration-limit", Some(300), 1, 86_400)?;
    raise_nofile();
    relay::run(addr, threads, Duration::from_secs(limit))
}

fn scenario_file(a: &Args) -> Result<bool, String> {
    let conf = file::FileConf {
        login: sock_addr(a, "login")?,
        prefix: a.str("user-prefix")?,
        password: a.str("password")?,
        size: a.num("size", Some(1 << 30), 1, u32::MAX)?,
        chunk: a.num("chunk", Some(file::MAX_CHUNK), 1, file::MAX_CHUNK)?,
        window: a.num("window", Some(4), 1, 1024)?,
        limit: Duration::from_secs(a.num("duration-limit", Some(300), 1, 3600)?),
        download_only: if a.has("download-only") {
            Some(a.str("download-only")?)
        } else {
            None
        },
    };
    file::run_file(&conf)
}

fn scenario_tcpcopy(a: &Args) -> Result<bool, String> {
    let size = a.num("size", Some(1u64 << 30), 1, u64::from(u32::MAX))?;
    let dir = if a.has("dir") {
        std::path::PathBuf::from(a.str("dir")?)
    } else {
        std::env::temp_dir()
    };
    let limit = Duration::from_secs(a.num("duration-limit", Some(300), 1, 3600)?);
    file::run_tcpcopy(size, &dir, limit)
}

/// The common flags plus a scenario's own.
fn with(extra: &[&'static str]) -> Vec<&'static str> {
    COMMON.iter().chain(extra).copied().collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((scenario, rest)) = args.split_first() else {
        eprint!("{HELP}");
        return ExitCode::from(2);
    };
    if matches!(scenario.as_str(), "-h" | "--help" | "help")
        || rest.iter().any(|a| a == "--help" || a == "-h")
    {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let run = match scenario.as_str() {
        "login" => Args::parse(rest, &with(&["users", "rate"])).and_then(|a| scenario_login(&a)),
        "p2p" => Args::parse(
            rest,
            &with(&["pairs", "messages", "window", "rate", "size"]),
        )
        .and_then(|a| scenario_p2p(&a)),
        "idle" => Args::parse(rest, &with(&["users", "server-pid", "hold"]))
            .and_then(|a| scenario_idle(&a)),
        "offline" => Args::parse(rest, &with(&["pairs", "messages", "window", "size"]))
            .and_then(|a| scenario_offline(&a)),
        "relay" => Args::parse(rest, &["listen", "threads", "duration-limit"])
            .and_then(|a| scenario_relay(&a)),
        "file" => Args::parse(
            rest,
            &[
                "login",
                "user-prefix",
                "password",
                "size",
                "chunk",
                "window",
                "download-only",
                "duration-limit",
            ],
        )
        .and_then(|a| scenario_file(&a)),
        "tcpcopy" => {
            Args::parse(rest, &["size", "dir", "duration-limit"]).and_then(|a| scenario_tcpcopy(&a))
        }
        "group" => Args::parse(
            rest,
            &with(&[
                "group",
                "members",
                "senders",
                "messages",
                "window",
                "rate",
                "size",
                "client-type",
            ]),
        )
        .and_then(|a| scenario_group(&a)),
        other => Err(format!("unknown scenario {other:?} (see ttload --help)")),
    };
    match run {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ttload: {e}");
            ExitCode::from(2)
        }
    }
}

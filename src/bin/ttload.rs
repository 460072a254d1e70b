//! `ttload`: load generator for ttserver (loopback only, bounded in count and time).
//!
//! First cut, built on the crate's blocking client with one thread per connection role:
//!   ttload p2p  --msg HOST:PORT --sender NAME --receiver NAME --password PW --messages M [--window W] [--size B]
//!   ttload idle --msg HOST:PORT --user-prefix P --count N --password PW --server-pid PID [--hold S]
//! Progress goes to stderr; the last stdout line is `result scenario=<name> key=value ...`.
//! (The many-connections-per-thread mio driver of issue #3 replaces the threads later.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ttserver::client::Client;
use ttserver::proto::msg::MsgData;
use ttserver::proto::{Id, Pdu};

/// Hard limits that keep every run bounded.
const MAX_MESSAGES: u64 = 10_000_000;
const MAX_CONNS: usize = 60_000;
const RUN_LIMIT: Duration = Duration::from_secs(600);

fn args_map(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut m = HashMap::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let key = k
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {k}"))?;
        let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        m.insert(key.to_string(), v.clone());
    }
    Ok(m)
}

fn get<T: std::str::FromStr>(
    m: &HashMap<String, String>,
    k: &str,
    default: Option<T>,
) -> Result<T, String> {
    match m.get(k) {
        Some(v) => v.parse().map_err(|_| format!("bad value for --{k}: {v}")),
        None => default.ok_or_else(|| format!("--{k} is required")),
    }
}

fn loopback(addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "{addr} is not a loopback address: ttload only targets 127.0.0.0/8 or ::1"
        ))
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One sender keeps `window` messages in flight to one receiver; every ack and delivery is
/// matched by seq_no, so loss and duplicates are counted, not assumed.
fn p2p(m: &HashMap<String, String>) -> Result<bool, String> {
    let addr = loopback(get(m, "msg", None)?)?;
    let sender_name: String = get(m, "sender", None)?;
    let receiver_name: String = get(m, "receiver", None)?;
    let pw: String = get(m, "password", None)?;
    let total: u64 = get::<u64>(m, "messages", None)?.min(MAX_MESSAGES);
    let window: u64 = get(m, "window", Some(64))?;
    let size: usize = get(m, "size", Some(100))?;

    let mut sender = Client::connect(addr).map_err(|e| e.to_string())?;
    let s = sender
        .login(&sender_name, &pw, 1, 1)
        .map_err(|e| e.to_string())?;
    let mut receiver = Client::connect(addr).map_err(|e| e.to_string())?;
    let r = receiver
        .login(&receiver_name, &pw, 1, 1)
        .map_err(|e| e.to_string())?;
    if s.result != 0 || r.result != 0 {
        return Err("login failed".into());
    }
    let (from, to) = (s.user_id.to_string(), r.user_id.to_string());
    let body = vec![b'x'; size];

    let start = Instant::now();
    let recv_thread = std::thread::spawn(move || -> Result<(u64, u64, Vec<u32>), String> {
        let mut seen = vec![0u8; total as usize];
        let (mut delivered, mut dup) = (0u64, 0u64);
        let mut order_violations = Vec::new();
        let mut last: Option<u32> = None;
        while delivered < total {
            if start.elapsed() > RUN_LIMIT {
                break;
            }
            let f = receiver.recv_until(3, 1).map_err(|e| e.to_string())?;
            if let Ok(Pdu::MsgData(d)) = f.pdu() {
                let i = d.seq_no as usize;
                match seen.get_mut(i) {
                    Some(slot @ 0) => {
                        *slot = 1;
                        delivered += 1;
                    }
                    Some(_) => dup += 1,
                    None => {}
                }
                if let Some(l) = last {
                    if d.seq_no <= l {
                        order_violations.push(d.seq_no);
                    }
                }
                last = Some(d.seq_no);
            }
        }
        Ok((delivered, dup, order_violations))
    });

    let mut sent_at = vec![Instant::now(); total as usize];
    let mut ack_lat = Vec::with_capacity(total as usize);
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut buf = Vec::new();
    let mut last_report = Instant::now();
    while acked < total && start.elapsed() < RUN_LIMIT {
        buf.clear();
        while sent < total && sent - acked < window {
            let seq = sent as u32;
            Pdu::MsgData(MsgData {
                seq_no: seq,
                from_id: Id::Raw(from.as_bytes()),
                to_id: Id::Raw(to.as_bytes()),
                create_time: 0,
                msg_type: 1,
                msg_data: &body,
                attach: b"",
            })
            .encode(0, &mut buf);
            sent_at[sent as usize] = Instant::now();
            sent += 1;
        }
        if !buf.is_empty() {
            sender.send_raw(&buf).map_err(|e| e.to_string())?;
        }
        let f = sender.recv_until(3, 2).map_err(|e| e.to_string())?;
        if let Ok(Pdu::MsgDataAck(k)) = f.pdu() {
            if let Some(t) = sent_at.get(k.seq_no as usize) {
                ack_lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            acked += 1;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "p2p: acked {acked}/{total} ({:.0}/s)",
                acked as f64 / start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    let ack_elapsed = start.elapsed().as_secs_f64();
    let (delivered, dup, order) = recv_thread
        .join()
        .map_err(|_| "receiver thread panicked")??;
    let deliv_elapsed = start.elapsed().as_secs_f64();
    ack_lat.sort_by(|a, b| a.total_cmp(b));
    let lost = acked.saturating_sub(delivered);
    let exactly_once = lost == 0 && dup == 0 && order.is_empty() && acked == total;
    println!(
        "result scenario=p2p sent={sent} acked={acked} delivered={delivered} lost={lost} dup={dup} \
         out_of_order={} ack_per_s={:.0} deliv_per_s={:.0} ack_p50_ms={:.2} ack_p99_ms={:.2} \
         ack_p999_ms={:.2} window={window} size={size} exactly_once={exactly_once}",
        order.len(),
        acked as f64 / ack_elapsed,
        delivered as f64 / deliv_elapsed,
        percentile(&ack_lat, 0.5),
        percentile(&ack_lat, 0.99),
        percentile(&ack_lat, 0.999),
    );
    Ok(exactly_once)
}

fn rss_kib(pid: u32) -> Result<u64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

/// Logs in `count` users (`<prefix>1` ..) and holds the connections; reports the server's RSS
/// growth per connection.
fn idle(m: &HashMap<String, String>) -> Result<bool, String> {
    let addr = loopback(get(m, "msg", None)?)?;
    let prefix: String = get(m, "user-prefix", None)?;
    let pw: String = get(m, "password", None)?;
    let count: usize = get::<usize>(m, "count", None)?.min(MAX_CONNS);
    let pid: u32 = get(m, "server-pid", None)?;
    let hold: u64 = get(m, "hold", Some(2))?;
    let before = rss_kib(pid)?;
    let start = Instant::now();
    let mut conns = Vec::with_capacity(count);
    for i in 1..=count {
        let mut c = Client::connect(addr).map_err(|e| e.to_string())?;
        // Mobile class: 300 s idle timeout, so no heartbeats are needed while holding.
        let info = c
            .login(&format!("{prefix}{i}"), &pw, 1, 0x12)
            .map_err(|e| e.to_string())?;
        if info.result != 0 {
            return Err(format!("login of {prefix}{i} failed: {}", info.result));
        }
        conns.push(c);
        if i % 1000 == 0 {
            eprintln!("idle: {i}/{count} logged in");
        }
    }
    let login_s = start.elapsed().as_secs_f64();
    // Everyone answered a heartbeat: every session is fully set up on the server.
    for c in &mut conns {
        c.send(&Pdu::Heartbeat, 1).map_err(|e| e.to_string())?;
    }
    for c in &mut conns {
        c.recv_until(7, 1).map_err(|e| e.to_string())?;
    }
    std::thread::sleep(Duration::from_secs(hold.min(60)));
    let after = rss_kib(pid)?;
    let per_conn = (after.saturating_sub(before)) as f64 * 1024.0 / count.max(1) as f64;
    println!(
        "result scenario=idle conns={count} rss_before_kib={before} rss_after_kib={after} \
         rss_per_conn_bytes={per_conn:.0} logins_per_s={:.0}",
        count as f64 / login_s
    );
    Ok(true)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((scenario, rest)) = args.split_first() else {
        eprintln!("usage: ttload p2p|idle --msg HOST:PORT ... (see src/bin/ttload.rs)");
        return ExitCode::from(2);
    };
    let run = args_map(rest).and_then(|m| match scenario.as_str() {
        "p2p" => p2p(&m),
        "idle" => idle(&m),
        other => Err(format!("unknown scenario {other}")),
    });
    match run {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ttload: {e}");
            ExitCode::from(2)
        }
    }
}

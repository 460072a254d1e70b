//! `ttload`: the load generator of ttserver (issue #3). Loopback only, bounded in count and
//! time. Many connections per thread: each driver thread owns a mio `Poll` and a slab of
//! non-blocking connections (see `net.rs`); no async runtime.
//!
//! Progress goes to stderr once a second; the last stdout line is
//! `result scenario=<name> key=value ...`. Run `ttload --help` for the scenarios and flags.

mod args;
mod file;
mod flow;
mod group;
mod idle;
mod limits;
mod login;
mod meter;
mod net;
mod offline;
mod p2p;
mod relay;
mod run;
mod session;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use args::{common, sock_addr, with, Args, Common};
use flow::Load;

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

fn scenario_login(a: &Args) -> Result<bool, String> {
    let c = common(a)?;
    let n = a.num("users", None, 1, 200_000)?;
    let rate = a.opt_num("rate", 0.001, 1e6)?;
    login::run(&c, n, rate)
}

/// p2p and offline: --pairs and what each sender sends.
fn scenario_pairs(
    a: &Args,
    run: fn(&Common, usize, Load) -> Result<bool, String>,
) -> Result<bool, String> {
    let c = common(a)?;
    let pairs = a.num("pairs", None, 1, 100_000)?;
    let messages = a.messages(pairs, "pairs")?;
    run(&c, pairs, a.load(messages, 64)?)
}

fn scenario_idle(a: &Args) -> Result<bool, String> {
    let c = common(a)?;
    let n = a.num("users", None, 1, 200_000)?;
    let pid = a.num("server-pid", None, 1, u32::MAX)?;
    let hold = a.num("hold", Some(10), 1, 3600)?;
    if Duration::from_secs(hold) >= c.limit {
        return Err("--hold must be shorter than --duration-limit".into());
    }
    idle::run(&c, n, pid, hold)
}

fn scenario_group(a: &Args) -> Result<bool, String> {
    let c = common(a)?;
    let group = a.num("group", None, 1, u32::MAX)?;
    let members: usize = a.num("members", None, 2, 200_000)?;
    let senders: usize = a.num("senders", None, 1, members)?;
    let messages = a.messages(senders, "senders")?;
    if members as u64 * senders as u64 * u64::from(messages) > 4_000_000_000 {
        return Err("members x senders x messages must be at most 4,000,000,000".into());
    }
    let client_type = match a.get("client-type") {
        None => 0x12,
        Some("1") | Some("0x01") | Some("0x1") => 1,
        Some("0x12") | Some("18") => 0x12,
        Some(v) => return Err(format!("--client-type: {v:?} is not 1 or 0x12")),
    };
    let load = a.load(messages, 16)?;
    let conf = group::Conf {
        group,
        senders,
        load,
    };
    group::run(&c, members, client_type, conf)
}

fn scenario_relay(a: &Args) -> Result<bool, String> {
    let addr = sock_addr(a, "listen")?;
    let threads = a.num("threads", Some(1), 1, 64)?;
    let limit = a.num("duration-limit", Some(300), 1, 86_400)?;
    limits::raise_nofile();
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
        download_only: a.get("download-only").map(String::from),
    };
    file::run_file(&conf)
}

fn scenario_tcpcopy(a: &Args) -> Result<bool, String> {
    let size = a.num("size", Some(1u64 << 30), 1, u64::from(u32::MAX))?;
    let dir = a.get("dir").map_or_else(std::env::temp_dir, PathBuf::from);
    let limit = Duration::from_secs(a.num("duration-limit", Some(300), 1, 3600)?);
    file::run_tcpcopy(size, &dir, limit)
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
        .and_then(|a| scenario_pairs(&a, p2p::run)),
        "idle" => Args::parse(rest, &with(&["users", "server-pid", "hold"]))
            .and_then(|a| scenario_idle(&a)),
        "offline" => Args::parse(rest, &with(&["pairs", "messages", "window", "size"]))
            .and_then(|a| scenario_pairs(&a, offline::run)),
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

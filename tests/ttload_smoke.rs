//! Smoke test of the load generator: every scenario once, at a small size, against the real
//! `ttserver` binary, and `p2p` against `ttload relay`.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::Server;

const TTLOAD: &str = env!("CARGO_BIN_EXE_ttload");

/// Runs ttload; returns (exit success, the `result` line's key=value pairs).
fn ttload(args: &[&str]) -> (bool, HashMap<String, String>) {
    let out = Command::new(TTLOAD)
        .args(args)
        .args(["--duration-limit", "60"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output from ttload {args:?}; stderr: {stderr}"));
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("result"), "{line}");
    let kv = words
        .map(|w| {
            let (k, v) = w.split_once('=').unwrap_or_else(|| panic!("{w} in {line}"));
            (k.to_string(), v.to_string())
        })
        .collect::<HashMap<_, _>>();
    assert_eq!(kv["scenario"], args[0], "{line}");
    if !out.status.success() {
        eprintln!("ttload {args:?} failed: {line}\n{stderr}");
    }
    (out.status.success(), kv)
}

fn assert_p2p(kv: &HashMap<String, String>, total: u64) {
    for k in ["sent", "acked", "delivered"] {
        assert_eq!(kv[k].parse::<u64>().unwrap(), total, "{k}: {kv:?}");
    }
    for k in ["lost", "dup"] {
        assert_eq!(kv[k], "0", "{k}: {kv:?}");
    }
    for k in [
        "ack_per_s",
        "deliv_per_s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p999_ms",
        "ack_p50_ms",
        "ack_p99_ms",
    ] {
        assert!(kv[k].parse::<f64>().unwrap() > 0.0, "{k}: {kv:?}");
    }
    assert_eq!(kv["exactly_once"], "true", "{kv:?}");
}

#[test]
fn scenarios_against_ttserver() {
    let (mut srv, _) = Server::start_with("MsgRateLimit=1000000\n", &[]);
    // Users are imported while the server is stopped (one admin run for all of them).
    assert!(srv.terminate());
    let mut csv = String::new();
    for i in 1..=8 {
        csv.push_str(&format!("p{i},pw\n"));
    }
    for i in 1..=50 {
        csv.push_str(&format!("l{i},pw\ni{i},pw\n"));
    }
    for i in 1..=4 {
        csv.push_str(&format!("o{i},pw\n"));
    }
    for i in 1..=2 {
        csv.push_str(&format!("f{i},pw\n"));
    }
    let file = srv.dir.join("users.csv");
    std::fs::write(&file, csv).unwrap();
    assert_eq!(
        srv.admin(&["user", "import", file.to_str().unwrap()]),
        "114"
    );
    // group: 20 users, all members of one normal group (made before the server starts)
    let gids: Vec<String> = (1..=20)
        .map(|i| srv.admin(&["user", "add", &format!("g{i}"), "--password", "pw"]))
        .collect();
    let group = srv.admin(&["group", "add", "load", "--members", &gids.join(",")]);
    srv.spawn();
    let login = srv.login.to_string();
    let pid = srv.pid().unwrap().to_string();
    let common = |prefix: &'static str| -> Vec<String> {
        [
            "--login",
            &login,
            "--user-prefix",
            prefix,
            "--password",
            "pw",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |scenario: &str, prefix: &'static str, extra: &[&str]| {
        let mut args: Vec<String> = vec![scenario.to_string()];
        args.extend(common(prefix));
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        ttload(&refs)
    };

    let (ok, kv) = run(
        "p2p",
        "p",
        &["--pairs", "4", "--messages", "200", "--window", "16"],
    );
    assert!(ok, "{kv:?}");
    assert_p2p(&kv, 800);

    let (ok, kv) = run("login", "l", &["--users", "50"]);
    assert!(ok, "{kv:?}");
    assert_eq!(kv["logins"], "50", "{kv:?}");
    assert_eq!(kv["failed"], "0", "{kv:?}");
    assert!(kv["logins_per_s"].parse::<f64>().unwrap() > 0.0);
    assert!(kv["p99_ms"].parse::<f64>().unwrap() > 0.0);

    let (ok, kv) = run(
        "idle",
        "i",
        &["--users", "50", "--server-pid", &pid, "--hold", "1"],
    );
    assert!(ok, "{kv:?}");
    assert_eq!(kv["conns"], "50", "{kv:?}");
    assert!(kv["rss_after_kib"].parse::<u64>().unwrap() > 0);
    for k in ["rss_before_kib", "rss_per_conn_bytes", "server_cpu_pct"] {
        assert!(kv[k].parse::<f64>().is_ok(), "{k}: {kv:?}");
    }

    let (ok, kv) = run("offline", "o", &["--pairs", "2", "--messages", "50"]);
    assert!(ok, "{kv:?}");
    for k in ["sent", "acked", "read_back"] {
        assert_eq!(kv[k], "100", "{k}: {kv:?}");
    }
    assert!(kv["read_per_s"].parse::<f64>().unwrap() > 0.0);
    assert_eq!(kv["exactly_once"], "true", "{kv:?}");

    let (ok, kv) = run(
        "group",
        "g",
        &[
            "--group",
            &group,
            "--members",
            "20",
            "--senders",
            "2",
            "--messages",
            "50",
        ],
    );
    assert!(ok, "{kv:?}");
    assert_eq!(kv["exactly_once"], "true", "{kv:?}");
    assert_eq!(kv["complete"], "true", "{kv:?}");
    for (k, v) in [
        ("sent", 100),
        ("acked", 100),
        ("expected_deliveries", 2 * 50 * 19),
        ("delivered", 2 * 50 * 19),
    ] {
        assert_eq!(kv[k], v.to_string(), "{k}: {kv:?}");
    }
    for k in ["lost", "dup", "out_of_order", "own_deliveries"] {
        assert_eq!(kv[k], "0", "{k}: {kv:?}");
    }
    for k in ["deliv_per_s", "ack_per_s", "p50_ms", "p99_ms", "ack_p50_ms"] {
        assert!(kv[k].parse::<f64>().unwrap() > 0.0, "{k}: {kv:?}");
    }

    // file: f1 uploads 3,000,000 bytes to f2, who downloads them (window 4), every byte checked;
    // then f2 downloads the stored file again (window 1, 100,000-byte pulls).
    let (ok, kv) = run("file", "f", &["--size", "3000000"]);
    assert!(ok, "{kv:?}");
    assert_eq!(kv["ok"], "true", "{kv:?}");
    assert_eq!(kv["mode"], "full", "{kv:?}");
    assert_eq!(kv["bytes"], "3000000", "{kv:?}");
    // 12 pulls of 262,144 bytes (the last one shorter) and the empty one at the end
    assert_eq!(kv["pulls"], "13", "{kv:?}");
    for k in ["upload_mb_s", "download_mb_s"] {
        assert!(kv[k].parse::<f64>().unwrap() > 0.0, "{k}: {kv:?}");
    }
    let task = kv["task"].clone();
    let (ok, kv) = run(
        "file",
        "f",
        &[
            "--size",
            "3000000",
            "--download-only",
            &task,
            "--window",
            "1",
            "--chunk",
            "100000",
        ],
    );
    assert!(ok, "{kv:?}");
    assert_eq!(kv["ok"], "true", "{kv:?}");
    assert_eq!(
        (kv["bytes"].as_str(), kv["pulls"].as_str()),
        ("3000000", "31")
    );
    assert!(!kv.contains_key("upload_mb_s"), "{kv:?}");
    // a task f2 does not have fails the run (exit 1), with ok=false
    let (ok, kv) = run(
        "file",
        "f",
        &["--size", "3000000", "--download-only", "no-such-task"],
    );
    assert!(!ok, "{kv:?}");
    assert_eq!(kv["ok"], "false", "{kv:?}");

    // refusals are usage errors (exit 2)
    for args in [
        vec!["group", "--login", login.as_str()],
        vec![
            "p2p",
            "--login",
            "192.0.2.1:8008",
            "--pairs",
            "1",
            "--messages",
            "1",
            "--user-prefix",
            "p",
            "--password",
            "pw",
        ],
    ] {
        let st = Command::new(TTLOAD)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(2), "{args:?}");
    }
    assert!(srv.terminate());
}

#[test]
fn tcpcopy_baseline() {
    let dir = std::env::temp_dir().join(format!("ttload-smoke-tcpcopy.{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, kv) = ttload(&[
        "tcpcopy",
        "--size",
        "3000000",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    // its own temp dir under --dir is gone
    let left = std::fs::read_dir(&dir).unwrap().count();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(ok, "{kv:?}");
    assert_eq!(kv["ok"], "true", "{kv:?}");
    assert_eq!(kv["bytes"], "3000000", "{kv:?}");
    assert!(kv["mb_s"].parse::<f64>().unwrap() > 0.0, "{kv:?}");
    assert_eq!(left, 0);
}

#[test]
fn p2p_against_relay() {
    let mut cmd = Command::new(TTLOAD);
    // The relay dies with the test process.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut relay = cmd
        .args([
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--duration-limit",
            "60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(relay.stdout.take().unwrap()).lines();
    let mut addr = String::new();
    loop {
        let line = lines.next().expect("relay exited before ready").unwrap();
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["listening", "relay", a] => addr = a.to_string(),
            ["ready"] => break,
            _ => {}
        }
    }
    let (ok, kv) = ttload(&[
        "p2p",
        "--login",
        &addr,
        "--pairs",
        "4",
        "--messages",
        "200",
        "--window",
        "16",
        "--user-prefix",
        "r",
        "--password",
        "x",
    ]);
    assert!(ok, "{kv:?}");
    assert_p2p(&kv, 800);
    unsafe {
        libc::kill(relay.id() as i32, libc::SIGTERM);
    }
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(relay.wait().unwrap().success());
    let last = rest.last().expect("relay result line");
    assert!(
        last.starts_with("result scenario=relay ") && last.contains(" forwarded=800 "),
        "{last}"
    );
}

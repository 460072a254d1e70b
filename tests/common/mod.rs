//! Test harness: the real `ttserver` binary on 127.0.0.1 ephemeral ports, a fresh DataDir per
//! server, users created with `ttserver admin` before start.
#![allow(dead_code)]

pub mod http;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ttserver::client::{Client, ClientError, Frame};

pub const BIN: &str = env!("CARGO_BIN_EXE_ttserver");
pub const PC: u32 = 0x01;
pub const MAC: u32 = 0x02;
pub const IOS: u32 = 0x11;
pub const ANDROID: u32 = 0x12;

/// `AdminToken` of every test server (at least 16 characters, B-ADM-1).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

static NEXT: AtomicUsize = AtomicUsize::new(0);

pub struct Server {
    child: Option<Child>,
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub msg: SocketAddr,
    pub login: SocketAddr,
    /// The msfs image store (`listening msfs ADDR`).
    pub msfs: SocketAddr,
    /// The admin HTTP API (`listening admin ADDR`).
    pub admin: SocketAddr,
    /// The file port (`listening file ADDR`).
    pub file: SocketAddr,
}

/// The conf every test server starts from; `extra` lines are appended, and a key given there
/// (also as a comment, `# Key=`, which just drops the default) replaces the default.
fn base_conf(dir: &Path, extra: &str) -> String {
    let mut keys = vec![
        ("ClientListen", "127.0.0.1:0".to_string()),
        ("MsgListen", "127.0.0.1:0".to_string()),
        ("FileListen", "127.0.0.1:0".to_string()),
        ("MsfsListen", "127.0.0.1:0".to_string()),
        ("AdminListen", "127.0.0.1:0".to_string()),
        ("AdminToken", ADMIN_TOKEN.to_string()),
        ("DataDir", dir.join("data").display().to_string()),
        ("PasswordHashCost", "low".to_string()),
        ("Workers", "2".to_string()),
    ];
    let mut out = String::new();
    for line in extra.lines() {
        if let Some((k, _)) = line.split_once('=') {
            let k = k.trim_start_matches(|c: char| c == '#' || c.is_whitespace());
            keys.retain(|(key, _)| *key != k.trim());
        }
        out.push_str(line);
        out.push('\n');
    }
    for (k, v) in keys {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

impl Server {
    /// A server with the default test conf and these users (name, password).
    pub fn start(users: &[(&str, &str)]) -> (Server, Vec<u32>) {
        Server::start_with("", users)
    }

    pub fn start_with(extra: &str, users: &[(&str, &str)]) -> (Server, Vec<u32>) {
        let mut s = Server::prepare(extra);
        let ids = users
            .iter()
            .map(|(name, pw)| {
                s.admin(&["user", "add", name, "--password", pw])
                    .parse::<u32>()
                    .unwrap()
            })
            .collect();
        s.spawn();
        (s, ids)
    }

    /// A fresh directory with the test conf (plus `extra`), not started yet.
    pub fn prepare(extra: &str) -> Server {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ttserver-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("test.conf");
        std::fs::write(&conf, base_conf(&dir, extra)).unwrap();
        Server {
            child: None,
            dir,
            conf,
            msg: "127.0.0.1:1".parse().unwrap(),
            login: "127.0.0.1:1".parse().unwrap(),
            msfs: "127.0.0.1:1".parse().unwrap(),
            admin: "127.0.0.1:1".parse().unwrap(),
            file: "127.0.0.1:1".parse().unwrap(),
        }
    }

    /// The DataDir of the test conf.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs `ttserver run` and expects it to refuse to start: panics if it gets to `ready`
    /// (it is killed first); returns its stderr.
    pub fn run_refused(&self) -> String {
        let mut child = Command::new(BIN)
            .args(["run", "-c"])
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // stdout ends when the process exits; a `ready` line means it started after all.
        let stdout = child.stdout.take().unwrap();
        for line in BufReader::new(stdout).lines() {
            if line.unwrap() == "ready" {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server started with {}", self.conf.display());
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Starts the binary and waits for its `ready` line.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(BIN);
        // The server dies with the test thread that started it, even if the test process is
        // killed, so no server outlives its test.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .args(["run", "-c"])
            .arg(&self.conf)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines.next().expect("server exited before ready").unwrap();
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["listening", "msg", a] => self.msg = a.parse().unwrap(),
                ["listening", "login", a] => self.login = a.parse().unwrap(),
                ["listening", "msfs", a] => self.msfs = a.parse().unwrap(),
                ["listening", "admin", a] => self.admin = a.parse().unwrap(),
                ["listening", "file", a] => self.file = a.parse().unwrap(),
                ["ready"] => break,
                _ => {}
            }
        }
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    /// SIGKILL: no chance to flush anything (B-MSG-3).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status success.
    pub fn terminate(&mut self) -> bool {
        match self.child.take() {
            Some(mut c) => {
                unsafe {
                    libc::kill(c.id() as i32, libc::SIGTERM);
                }
                c.wait().unwrap().success()
            }
            None => true,
        }
    }

    /// Waits for the server to exit (after a signal the test sent itself, e.g. `libc::kill` on
    /// [`Server::pid`]); true if it exited successfully.
    pub fn wait_exit(&mut self) -> bool {
        match self.child.take() {
            Some(mut c) => c.wait().unwrap().success(),
            None => true,
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.msg).unwrap()
    }

    /// Connects and logs in; panics unless the login succeeds.
    pub fn login(&self, name: &str, pw: &str, client_type: u32) -> (Client, u32) {
        let mut c = self.connect();
        let info = c.login(name, pw, 1, client_type).unwrap();
        assert_eq!(info.result, 0, "login of {name} failed");
        (c, info.user_id)
    }

    /// Like [`Server::login`], also returning the session token (B-TOK-1).
    pub fn login_token(&self, name: &str, pw: &str, client_type: u32) -> (Client, u32, String) {
        let mut c = self.connect();
        let info = c.login(name, pw, 1, client_type).unwrap();
        assert_eq!(info.result, 0, "login of {name} failed");
        (c, info.user_id, info.token)
    }

    /// A connection to the file port.
    pub fn file_conn(&self) -> Client {
        Client::connect(self.file).unwrap()
    }

    pub fn admin(&self, args: &[&str]) -> String {
        admin(&self.conf, args)
    }

    /// A connection to the HTTP admin API with the test token.
    pub fn http(&self) -> http::Http {
        http::Http::connect(self.admin, ADMIN_TOKEN)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `ttserver admin -c conf args...`; returns stdout trimmed, panics on failure.
pub fn admin(conf: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("admin")
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "admin {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Receives frames until one with (module, command) arrives; fails after `timeout`.
pub fn recv_mc(c: &mut Client, module: u16, command: u16) -> Frame {
    c.recv_until(module, command)
        .unwrap_or_else(|e| panic!("waiting for {module}/{command}: {e}"))
}

/// The next frame, whatever it is.
pub fn recv(c: &mut Client) -> Frame {
    c.recv().unwrap_or_else(|e| panic!("recv: {e}"))
}

/// Asserts that nothing arrives within `d` (used only to show an absence, after a
/// synchronising round trip has already proven the server processed everything before it).
pub fn assert_silent(c: &mut Client, d: Duration) {
    c.set_timeout(Some(d));
    match c.recv() {
        Err(ClientError::Timeout) => {}
        Ok(f) => panic!("unexpected {:?}", f.module_command()),
        Err(e) => panic!("unexpected error {e}"),
    }
    c.set_timeout(Some(Duration::from_secs(10)));
}

/// A heartbeat round trip: proves every earlier PDU of this connection was processed (B-GEN-1).
pub fn sync(c: &mut Client) {
    c.send(&ttserver::proto::Pdu::Heartbeat, 0x5a5a).unwrap();
    let f = recv_mc(c, 7, 1);
    assert_eq!(f.header.reserved, 0x5a5a);
}

/// Polls `cond` until true or the deadline (for state outside the protocol, e.g. a process exit).
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Compares an in-repo copy of a vectors file with the project's shared original at
/// `../shared/vectors/<name>` beside the checkout. A user's clone has no `shared/`: the check
/// is then skipped and says so; CI (`CI` set) always has it, so there a missing file fails.
pub fn check_shared_copy(name: &str, in_repo: &str) {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/vectors")
        .join(name);
    match std::fs::read_to_string(&shared) {
        Ok(text) => assert_eq!(text, in_repo, "tests/vectors/{name} is out of date"),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "SKIPPED: {} not readable ({e}); in-repo copy not compared",
                shared.display()
            );
        }
        Err(e) => panic!("CI: {} not readable: {e}", shared.display()),
    }
}

/// A 3/1 as a client writes it: `create_time` 0, no `attach`, `reserved` = `seq` (truncated).
pub fn msg_frame(from: u32, to: u32, msg_type: u8, seq: u32, body: &[u8]) -> Vec<u8> {
    use ttserver::proto::{msg::MsgData, Id, Pdu};
    Pdu::MsgData(MsgData {
        seq_no: seq,
        from_id: Id::Num(from),
        to_id: Id::Num(to),
        create_time: 0,
        msg_type,
        msg_data: body,
        attach: b"",
    })
    .to_frame(seq as u16)
}

/// `c` creates a temporary group (5/12) with `members` (ids) and gets its id from the 5/13;
/// panics unless it succeeds.
pub fn create_temp_group(c: &mut Client, name: &str, members: &[u32]) -> u32 {
    use ttserver::proto::group::CreateTempGroupRequest;
    use ttserver::proto::{Id, Pdu};
    let req = Pdu::CreateTempGroupRequest(CreateTempGroupRequest {
        group_name: name.as_bytes(),
        group_avatar: b"",
        member_ids: members.iter().map(|m| Id::Num(*m)).collect(),
    });
    c.send(&req, 1).unwrap();
    let f = recv_mc(c, 5, 13);
    let Ok(Pdu::CreateTempGroupResponse(r)) = f.pdu() else {
        panic!("not a 5/13")
    };
    assert_eq!(r.result, 0, "5/12 of {name} failed");
    r.group_id.value().unwrap()
}

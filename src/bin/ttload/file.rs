//! `file`: offline file transfer throughput (behaviour.md B-FILE-8 .. B-FILE-11), and `tcpcopy`,
//! its baseline.
//!
//! `file`: the sender `<P>1` and the receiver `<P>2` log in (1/1 on the login port, 1/3 on the msg
//! port); the sender asks for an offline task (6/10 -> 6/11), logs in to the file port (6/1 mode
//! 3) and answers the server's 65,536-byte pulls (6/4 -> 6/5) with generated data until 6/3
//! done; then the receiver logs in to the file port (6/1 mode 4) and pulls the file back with
//! `--chunk`-byte 6/4s, `--window` of them outstanding (the server answers in order), checking
//! every byte as it arrives. `--download-only TASK` skips the upload: the receiver finds TASK in
//! its offline-file list (6/16 -> 6/17) and downloads it again (any number of downloads are
//! allowed, B-FILE-4), so one upload serves several measured downloads.
//!
//! `tcpcopy`: the same number of bytes, written with the same pattern to a file in a temp dir,
//! then copied over one loopback TCP connection by a plain server thread (std::fs::File reads of
//! 256 KiB, write_all to the socket) to a client in the same process that checks them the same
//! way. What TCP over loopback does with no protocol around it.
//!
//! Both are blocking, one connection each: one transfer, so no event loop. The data is a
//! pattern generated per segment (never the whole file in memory): 8-byte little-endian word i
//! of the file is `i * K ^ SEED`, so a segment at the wrong offset, a shifted or a corrupted
//! byte is caught. Client work per byte is the same in both scenarios (one read, one check).
//! MB = 10^6 bytes.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ttserver::client::{Client, ClientError};
use ttserver::proto::file::{FileLogin, PullDataRequest, PullDataResponse};
use ttserver::proto::frame::{self, Header, HEADER_LEN};
use ttserver::proto::{Dir, Id, Pdu};

/// B-FILE-11: the most one download pull returns.
pub const MAX_CHUNK: u32 = 262_144;
/// Reads and writes of the tcpcopy baseline (and the file it reads).
const COPY_BUF: usize = 256 * 1024;
/// Largest PDU accepted from the server.
const MAX_PDU: u32 = 16 * 1024 * 1024;
/// Socket read timeout: a silent server fails the run after this long.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// 7/1 on the idle msg connections (PC sessions are closed after 30 s of silence).
const KEEPALIVE: Duration = Duration::from_secs(5);

const SEED: u64 = 0x7474_6c6f_6164_6669; // "ttloadfi"
const K: u64 = 0x9E37_79B9_7F4A_7C15; // odd: i -> i * K is a bijection, every word differs

fn word(i: u64) -> u64 {
    i.wrapping_mul(K) ^ SEED
}

fn byte_at(pos: u64) -> u8 {
    word(pos / 8).to_le_bytes()[(pos % 8) as usize]
}

/// Fills `buf` with the pattern bytes [offset, offset + buf.len()).
pub fn fill(offset: u64, buf: &mut [u8]) {
    let len = buf.len();
    let head = (((8 - offset % 8) % 8) as usize).min(buf.len());
    let (h, rest) = buf.split_at_mut(head);
    for (k, b) in h.iter_mut().enumerate() {
        *b = byte_at(offset + k as u64);
    }
    let first = (offset + head as u64) / 8;
    let mut words = rest.chunks_exact_mut(8);
    for (k, w) in (&mut words).enumerate() {
        w.copy_from_slice(&word(first + k as u64).to_le_bytes());
    }
    let tail = words.into_remainder();
    let tail_pos = offset + (len - tail.len()) as u64;
    for (k, b) in tail.iter_mut().enumerate() {
        *b = byte_at(tail_pos + k as u64);
    }
}

/// The position (in the file) of the first byte of `buf` that differs from the pattern at
/// `offset`, if any.
pub fn check(offset: u64, buf: &[u8]) -> Option<u64> {
    let head = (((8 - offset % 8) % 8) as usize).min(buf.len());
    let (h, rest) = buf.split_at(head);
    let bad_byte = |pos: u64, bytes: &[u8]| {
        bytes
            .iter()
            .enumerate()
            .find(|&(k, &b)| b != byte_at(pos + k as u64))
            .map(|(k, _)| pos + k as u64)
    };
    if let Some(p) = bad_byte(offset, h) {
        return Some(p);
    }
    let first = (offset + head as u64) / 8;
    let words = rest.chunks_exact(8);
    let tail = words.remainder();
    // One pass that the compiler can keep branch-free; find the place only on a mismatch.
    let diff = words.clone().enumerate().fold(0u64, |acc, (k, w)| {
        let got = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        acc | (got ^ word(first + k as u64))
    });
    if diff != 0 {
        let start = offset + head as u64;
        return bad_byte(start, &rest[..rest.len() - tail.len()]);
    }
    bad_byte(offset + (buf.len() - tail.len()) as u64, tail)
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

fn loopback(addr: SocketAddr, what: &str) -> Result<SocketAddr, String> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!("{what} {addr} is not a loopback address"))
    }
}

fn cerr(what: &str) -> impl Fn(ClientError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A blocking file-port connection with reusable buffers: frames are read straight into one
/// body buffer and decoded in place (no copy per frame besides the kernel's).
struct Conn {
    s: TcpStream,
    out: Vec<u8>,
    body: Vec<u8>,
    deadline: Instant,
}

impl Conn {
    fn connect(addr: SocketAddr, deadline: Instant) -> Result<Conn, String> {
        let s = TcpStream::connect_timeout(&addr, READ_TIMEOUT)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        Ok(Conn {
            s,
            out: Vec::with_capacity(64 * 1024),
            body: Vec::new(),
            deadline,
        })
    }

    /// Appends a PDU to the output (sent by `flush`).
    fn queue(&mut self, pdu: &Pdu<'_>, reserved: u16) {
        pdu.encode(reserved, &mut self.out);
    }

    fn flush(&mut self) -> Result<(), String> {
        self.s
            .write_all(&self.out)
            .map_err(|e| format!("write: {e}"))?;
        self.out.clear();
        Ok(())
    }

    /// The next frame's header; its body is `self.body(&h)`.
    fn recv(&mut self) -> Result<Header, String> {
        if Instant::now() >= self.deadline {
            return Err("duration limit reached".into());
        }
        let mut hb = [0u8; HEADER_LEN];
        self.s.read_exact(&mut hb).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => "connection closed by the server".to_string(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("nothing from the server for {READ_TIMEOUT:?}")
            }
            _ => format!("read: {e}"),
        })?;
        let h = frame::header(&hb).ok_or("bad header")?;
        if h.length > MAX_PDU || (h.length as usize) < HEADER_LEN {
            return Err(format!("PDU length {} out of range", h.length));
        }
        let n = h.body_len();
        if self.body.len() < n {
            self.body.resize(n, 0);
        }
        self.s
            .read_exact(&mut self.body[..n])
            .map_err(|e| format!("read body: {e}"))?;
        Ok(h)
    }

    fn pdu(&self, h: &Header) -> Result<Pdu<'_>, String> {
        Pdu::decode(
            Dir::ToClient,
            h.module,
            h.command,
            &self.body[..h.body_len()],
        )
        .map_err(|e| format!("{}/{}: {e}", h.module, h.command))?
        .ok_or_else(|| format!("unknown PDU {}/{}", h.module, h.command))
    }

    /// 6/1 -> 6/2; Err unless result 0.
    fn file_login(&mut self, user: u32, token: &str, task: &str, mode: u32) -> Result<(), String> {
        self.queue(
            &Pdu::FileLogin(FileLogin {
                user_id: Id::Num(user),
                token: token.as_bytes(),
                task_id: task.as_bytes(),
                client_mode: mode,
            }),
            1,
        );
        self.flush()?;
        loop {
            let h = self.recv()?;
            match self.pdu(&h)? {
                Pdu::FileLoginResponse(r) if r.result == 0 => return Ok(()),
                Pdu::FileLoginResponse(r) => {
                    return Err(format!("6/1 mode {mode} refused: result {}", r.result))
                }
                Pdu::Heartbeat => {}
                other => return Err(format!("before 6/2: {other:?}")),
            }
        }
    }
}

/// Logged-in msg connections that must stay alive (7/1 every few seconds) while the file
/// transfer runs; their input (7/1 answers, 6/12 notices) is left unread in the socket.
struct Keep {
    clients: Vec<Client>,
    next: Instant,
}

impl Keep {
    fn tick(&mut self) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + KEEPALIVE;
        for c in &mut self.clients {
            if let Err(e) = c.send(&Pdu::Heartbeat, 0) {
                eprintln!("file: 7/1 on a msg connection failed: {e}");
            }
        }
    }
}

/// 1/1 on the login port, then 1/3 on the msg port; returns the client, its id and token.
fn login(login_addr: SocketAddr, name: &str, pw: &str) -> Result<(Client, u32, String), String> {
    let ms = Client::request_msg_server(login_addr).map_err(cerr("1/1"))?;
    if ms.result != 0 {
        return Err(format!("1/2 result {}", ms.result));
    }
    let addr: SocketAddr = format!("{}:{}", ms.ip1, ms.port)
        .parse()
        .map_err(|_| format!("1/2 gave a bad msg server {}:{}", ms.ip1, ms.port))?;
    let mut c = Client::connect(loopback(addr, "msg server")?).map_err(cerr("connect"))?;
    let info = c.login(name, pw, 1, 1).map_err(cerr("1/3"))?;
    if info.result != 0 {
        return Err(format!(
            "login of {name} refused: 1/4 result {}",
            info.result
        ));
    }
    Ok((c, info.user_id, info.token))
}

pub struct FileConf {
    pub login: SocketAddr,
    pub prefix: String,
    pub password: String,
    pub size: u32,
    pub chunk: u32,
    pub window: usize,
    pub limit: Duration,
    pub download_only: Option<String>,
}

#[derive(Default)]
struct FileOut {
    task: String,
    upload: Option<Duration>,
    download: Option<Duration>,
    /// Bytes downloaded and checked.
    bytes: u64,
    pulls: u64,
}

/// Runs the `file` scenario and prints its result line; Ok(false) if the run failed.
pub fn run_file(c: &FileConf) -> Result<bool, String> {
    let mut out = FileOut::default();
    let r = file_inner(c, &mut out);
    if let Err(e) = &r {
        eprintln!("ttload: file: {e}");
    }
    let ok = r.is_ok();
    let mode = if c.download_only.is_some() {
        "download-only"
    } else {
        "full"
    };
    let mut line = format!(
        "result scenario=file mode={mode} size={} chunk={} window={} task={}",
        c.size,
        c.chunk,
        c.window,
        if out.task.is_empty() { "-" } else { &out.task }
    );
    if let Some(d) = out.upload {
        line.push_str(&format!(
            " upload_s={:.3} upload_mb_s={:.1}",
            d.as_secs_f64(),
            mb_s(u64::from(c.size), d)
        ));
    }
    if let Some(d) = out.download {
        line.push_str(&format!(
            " download_s={:.3} download_mb_s={:.1}",
            d.as_secs_f64(),
            mb_s(out.bytes, d)
        ));
    }
    line.push_str(&format!(" pulls={} bytes={} ok={ok}", out.pulls, out.bytes));
    println!("{line}");
    Ok(ok)
}

fn file_inner(c: &FileConf, out: &mut FileOut) -> Result<(), String> {
    let deadline = Instant::now() + c.limit;
    let sender_name = format!("{}1", c.prefix);
    let receiver_name = format!("{}2", c.prefix);
    let (mut rcv, rcv_id, rcv_token) = login(c.login, &receiver_name, &c.password)?;
    let (task, file_addr, size, sender_id, mut keep) = match &c.download_only {
        Some(task) => {
            // 6/16 -> 6/17: the record's size, sender and the file address.
            rcv.send(&Pdu::OfflineFileListRequest, 7)
                .map_err(cerr("6/16"))?;
            let f = rcv.recv_until(6, 17).map_err(cerr("6/17"))?;
            let Pdu::OfflineFileListResponse(list) = f.pdu().map_err(cerr("6/17"))? else {
                return Err("6/17 expected".into());
            };
            let rec = list
                .files
                .iter()
                .find(|r| r.task_id == task.as_bytes())
                .ok_or_else(|| format!("task {task} is not in {receiver_name}'s 6/17"))?;
            let a = list.addrs.first().ok_or("6/17 lists no file address")?;
            let addr: SocketAddr = format!("{}:{}", String::from_utf8_lossy(a.ip), a.port)
                .parse()
                .map_err(|_| "6/17 gave a bad file address".to_string())?;
            if rec.file_size != c.size {
                return Err(format!(
                    "task {task} has {} bytes, --size says {}",
                    rec.file_size, c.size
                ));
            }
            let from = rec.from_id.value().unwrap_or(0);
            let keep = Keep {
                clients: vec![rcv],
                next: Instant::now() + KEEPALIVE,
            };
            (task.clone(), addr, rec.file_size, from, keep)
        }
        None => {
            let (mut snd, snd_id, snd_token) = login(c.login, &sender_name, &c.password)?;
            let t = snd
                .request_file(snd_id, rcv_id, b"ttload.bin", c.size, 2)
                .map_err(cerr("6/10"))?;
            if t.result != 0 || t.trans_mode != 2 {
                return Err(format!(
                    "6/11 result {} trans_mode {} (want 0, offline)",
                    t.result, t.trans_mode
                ));
            }
            let addr = t.addr().ok_or("6/11 lists no file address")?;
            let addr = loopback(addr, "file address")?;
            out.task = t.task_id.clone();
            let mut keep = Keep {
                clients: vec![snd, rcv],
                next: Instant::now() + KEEPALIVE,
            };
            let d = upload(
                addr, &t.task_id, snd_id, &snd_token, c.size, deadline, &mut keep,
            )?;
            eprintln!(
                "file: uploaded {} bytes in {:.3}s ({:.1} MB/s), task {}",
                c.size,
                d.as_secs_f64(),
                mb_s(u64::from(c.size), d),
                t.task_id
            );
            out.upload = Some(d);
            (t.task_id, addr, c.size, snd_id, keep)
        }
    };
    out.task = task.clone();
    let file_addr = loopback(file_addr, "file address")?;
    let d = download(
        file_addr, &task, rcv_id, &rcv_token, sender_id, size, c, deadline, &mut keep, out,
    )?;
    eprintln!(
        "file: downloaded {} bytes in {:.3}s ({:.1} MB/s), chunk {} window {}",
        out.bytes,
        d.as_secs_f64(),
        mb_s(out.bytes, d),
        c.chunk,
        c.window
    );
    out.download = Some(d);
    Ok(())
}

/// 6/1 mode 3, then answers the server's pulls until 6/3 done. The time from the 6/1 to the
/// 6/3 (which comes after the server's fsync and commit, B-FILE-9).
fn upload(
    addr: SocketAddr,
    task: &str,
    sender: u32,
    token: &str,
    size: u32,
    deadline: Instant,
    keep: &mut Keep,
) -> Result<Duration, String> {
    let mut conn = Conn::connect(addr, deadline)?;
    let t0 = Instant::now();
    conn.file_login(sender, token, task, 3)?;
    let mut seg = Vec::new();
    let mut sent: u64 = 0;
    loop {
        keep.tick();
        let h = conn.recv()?;
        let (offset, want) = match conn.pdu(&h)? {
            Pdu::PullDataRequest(r) => (r.offset, r.size),
            Pdu::FileState(s) if s.state == 3 => break,
            Pdu::FileState(s) => return Err(format!("upload: 6/3 state {}", s.state)),
            Pdu::Heartbeat => continue,
            other => return Err(format!("upload: unexpected {other:?}")),
        };
        let end = u64::from(offset) + u64::from(want);
        if end > u64::from(size) || want > MAX_PDU / 2 {
            return Err(format!("upload: server asked for {want} bytes at {offset}"));
        }
        seg.resize(want as usize, 0);
        fill(u64::from(offset), &mut seg);
        conn.queue(
            &Pdu::PullDataResponse(PullDataResponse {
                result: 0,
                task_id: task.as_bytes(),
                user_id: Id::Num(sender),
                offset,
                data: &seg,
            }),
            h.reserved,
        );
        conn.flush()?;
        sent += u64::from(want);
    }
    let d = t0.elapsed();
    if sent < u64::from(size) {
        return Err(format!("upload: done after only {sent} of {size} bytes"));
    }
    Ok(d)
}

/// 6/1 mode 4, then `window` pulls outstanding until the empty 6/5 and 6/3 done. The time from
/// the first 6/4 to the 6/3.
#[allow(clippy::too_many_arguments)]
fn download(
    addr: SocketAddr,
    task: &str,
    receiver: u32,
    token: &str,
    sender: u32,
    size: u32,
    c: &FileConf,
    deadline: Instant,
    keep: &mut Keep,
    out: &mut FileOut,
) -> Result<Duration, String> {
    let mut conn = Conn::connect(addr, deadline)?;
    conn.file_login(receiver, token, task, 4)?;
    let size = u64::from(size);
    let chunk = u64::from(c.chunk);
    // (offset, expected length) of each pull in flight, oldest first.
    let mut inflight: VecDeque<(u64, u64)> = VecDeque::with_capacity(c.window);
    let mut next: u64 = 0;
    let mut asked_end = false;
    let mut reserved: u16 = 1;
    let t0 = Instant::now();
    loop {
        while inflight.len() < c.window && !asked_end {
            let n = chunk.min(size - next);
            reserved = reserved.checked_add(1).unwrap_or(1);
            conn.queue(
                &Pdu::PullDataRequest(PullDataRequest {
                    task_id: task.as_bytes(),
                    user_id: Id::Num(receiver),
                    mode: 2,
                    offset: next as u32,
                    size: c.chunk,
                }),
                reserved,
            );
            inflight.push_back((next, n));
            out.pulls += 1;
            next += n;
            asked_end = n == 0;
        }
        if !conn.out.is_empty() {
            conn.flush()?;
        }
        keep.tick();
        let h = conn.recv()?;
        let r = match conn.pdu(&h)? {
            Pdu::PullDataResponse(r) => r,
            Pdu::Heartbeat => continue,
            other => return Err(format!("download: unexpected {other:?}")),
        };
        let (off, n) = inflight
            .pop_front()
            .ok_or("download: a 6/5 nobody asked for")?;
        if r.result != 0 {
            return Err(format!("download: 6/5 result {} at {off}", r.result));
        }
        if u64::from(r.offset) != off || r.data.len() as u64 != n {
            return Err(format!(
                "download: 6/5 offset {} with {} bytes, expected {off} with {n}",
                r.offset,
                r.data.len()
            ));
        }
        if r.user_id.value() != Some(sender) || r.task_id != task.as_bytes() {
            return Err("download: 6/5 names another task or sender".into());
        }
        if let Some(p) = check(off, r.data) {
            return Err(format!("download: wrong byte at offset {p}"));
        }
        out.bytes += n;
        if n == 0 {
            break;
        }
    }
    loop {
        let h = conn.recv()?;
        match conn.pdu(&h)? {
            Pdu::FileState(s) if s.state == 3 => break,
            Pdu::Heartbeat => {}
            other => return Err(format!("download: after the last 6/5: {other:?}")),
        }
    }
    let d = t0.elapsed();
    if out.bytes != size {
        return Err(format!("download: {} of {size} bytes", out.bytes));
    }
    Ok(d)
}

/// Removes the tcpcopy temp dir however the run ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the `tcpcopy` baseline and prints its result line; Ok(false) if the run failed.
pub fn run_tcpcopy(size: u64, dir: &Path, limit: Duration) -> Result<bool, String> {
    let deadline = Instant::now() + limit;
    let tmp = TempDir(dir.join(format!(
        "ttload-tcpcopy.{}.{:08x}",
        std::process::id(),
        crate::run::nonce()
    )));
    std::fs::create_dir(&tmp.0).map_err(|e| format!("mkdir {}: {e}", tmp.0.display()))?;
    let path = tmp.0.join("data.bin");
    let t = Instant::now();
    write_pattern(&path, size)?;
    eprintln!(
        "tcpcopy: wrote {size} bytes to {} in {:.3}s",
        path.display(),
        t.elapsed().as_secs_f64()
    );
    let r = copy(&path, size, deadline);
    let (ok, bytes, d) = match r {
        Ok((bytes, d)) => (bytes == size, bytes, Some(d)),
        Err(e) => {
            eprintln!("ttload: tcpcopy: {e}");
            (false, 0, None)
        }
    };
    let mut line = format!("result scenario=tcpcopy size={size}");
    if let Some(d) = d {
        line.push_str(&format!(
            " copy_s={:.3} mb_s={:.1}",
            d.as_secs_f64(),
            mb_s(bytes, d)
        ));
    }
    line.push_str(&format!(" bytes={bytes} ok={ok}"));
    println!("{line}");
    Ok(ok)
}

fn write_pattern(path: &Path, size: u64) -> Result<(), String> {
    let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; COPY_BUF];
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(COPY_BUF as u64) as usize;
        fill(off, &mut buf[..n]);
        f.write_all(&buf[..n])
            .map_err(|e| format!("{}: {e}", path.display()))?;
        off += n as u64;
    }
    Ok(())
}

/// Serves the file to one loopback connection from a thread; the client checks every byte.
/// Returns (bytes received, time from connect to the last byte).
fn copy(path: &Path, size: u64, deadline: Instant) -> Result<(u64, Duration), String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let path = path.to_path_buf();
    let server = std::thread::Builder::new()
        .name("tcpcopy-server".into())
        .spawn(move || -> Result<u64, String> {
            let (mut s, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
            s.set_write_timeout(Some(READ_TIMEOUT))
                .map_err(|e| e.to_string())?;
            let mut f =
                std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut buf = vec![0u8; COPY_BUF];
            let mut sent = 0u64;
            loop {
                let n = match f.read(&mut buf) {
                    Ok(0) => return Ok(sent),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("read {}: {e}", path.display())),
                };
                s.write_all(&buf[..n])
                    .map_err(|e| format!("server write: {e}"))?;
                sent += n as u64;
                if Instant::now() >= deadline {
                    return Err("duration limit reached".into());
                }
            }
        })
        .map_err(|e| format!("spawn: {e}"))?;
    let t0 = Instant::now();
    let client = (|| -> Result<u64, String> {
        let mut s = TcpStream::connect_timeout(&addr, READ_TIMEOUT)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; COPY_BUF];
        let mut got = 0u64;
        loop {
            if Instant::now() >= deadline {
                return Err("duration limit reached".into());
            }
            let n = match s.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("client read: {e}")),
            };
            if let Some(p) = check(got, &buf[..n]) {
                return Err(format!("wrong byte at offset {p}"));
            }
            got += n as u64;
            if got > size {
                return Err(format!("more than {size} bytes"));
            }
        }
    })();
    let d = t0.elapsed();
    let served = server
        .join()
        .map_err(|_| "tcpcopy server thread panicked".to_string())?;
    let got = client?;
    let sent = served?;
    if sent != size || got != size {
        return Err(format!("sent {sent}, received {got}, expected {size}"));
    }
    Ok((got, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_position_dependent_and_checkable_at_any_offset() {
        let mut whole = vec![0u8; 1000];
        fill(0, &mut whole);
        for (start, len) in [(0, 1000), (3, 17), (8, 64), (13, 0), (999, 1), (5, 995)] {
            let mut part = vec![0u8; len];
            fill(start as u64, &mut part);
            assert_eq!(part, whole[start..start + len], "{start} {len}");
            assert_eq!(check(start as u64, &part), None);
        }
        assert_ne!(whole[0..8], whole[8..16]);
        let mut bad = whole.clone();
        bad[517] ^= 1;
        assert_eq!(check(0, &bad), Some(517));
        assert_eq!(check(2, &bad[2..]), Some(517));
        // the right bytes at the wrong offset
        assert_eq!(check(8, &whole[..64]), Some(8));
    }
}

//! The msfs image store (behaviour.md section 13, B-MSFS) against the real binary, with a tiny
//! blocking HTTP/1.1 client on std::net.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;
use ttserver::client::Client;

/// One keep-alive HTTP connection.
struct Http {
    r: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Http {
    fn connect(addr: SocketAddr) -> Http {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Http {
            r: BufReader::new(s),
        }
    }

    /// Sends raw bytes and reads one response (no body for HEAD).
    fn raw(&mut self, req: &[u8], head: bool) -> Resp {
        self.r.get_mut().write_all(req).unwrap();
        self.read_resp(head)
    }

    fn read_resp(&mut self, head: bool) -> Resp {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0u8; if head { 0 } else { len }];
        self.r.read_exact(&mut body).unwrap();
        Resp {
            status,
            headers,
            body,
        }
    }

    fn get(&mut self, method: &str, path: &str) -> Resp {
        let r = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        self.raw(r.as_bytes(), method == "HEAD")
    }

    /// POST `body` with these extra header lines (each ending in CRLF).
    fn post(&mut self, target: &str, headers: &str, body: &[u8]) -> Resp {
        let mut r = format!(
            "POST {target} HTTP/1.1\r\nHost: evil.example.org\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        self.raw(&r, false)
    }

    /// A POST announcing `len` body bytes of which only `sent` follow: for requests the server
    /// must answer from the head, without reading the body.
    fn post_announced(&mut self, headers: &str, len: usize, sent: &[u8]) -> Resp {
        let mut r = format!("POST / HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {len}\r\n\r\n")
            .into_bytes();
        r.extend_from_slice(sent);
        self.raw(&r, false)
    }

    fn upload(&mut self, target: &str, token: Option<&str>, name: &str, data: &[u8]) -> Resp {
        let mut headers = format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n");
        if let Some(t) = token {
            headers.push_str(&format!("X-TT-Token: {t}\r\n"));
        }
        self.post(target, &headers, &multipart(name, data))
    }

    /// True once the server has closed the connection (EOF, after any unread response).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 64];
        matches!(self.r.read(&mut b), Ok(0))
    }
}

const BOUNDARY: &str = "------------------------d74496d66958873e";

fn multipart(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"uid\"\r\n\r\n7\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

/// Bytes that look like multipart framing in places.
fn sample(n: usize) -> Vec<u8> {
    let pattern = b"\x00\xff\r\n--\r\n\r\n--abc";
    (0..n)
        .map(|i| pattern[i % pattern.len()] ^ (i / 7) as u8)
        .collect()
}

/// Logs `name` in; the client must stay open for the token to stay valid.
fn token_of(srv: &Server, name: &str, pw: &str) -> (Client, String) {
    let mut c = srv.connect();
    let info = c.login(name, pw, 1, PC).unwrap();
    assert_eq!(info.result, 0);
    assert_eq!(info.token.len(), 36);
    (c, info.token)
}

/// Every file under `DataDir/msfs`.
fn stored_files(srv: &Server) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut out = Vec::new();
    walk(&srv.dir.join("data").join("msfs"), &mut out);
    out
}

/// `g0/NNN/MMM/<32 hex><suffix>`.
fn assert_path_shape(path: &str, suffix: &str) {
    let parts: Vec<&str> = path.split('/').collect();
    assert_eq!(parts.len(), 4, "{path}");
    assert_eq!(parts[0], "g0");
    for d in &parts[1..3] {
        assert!(
            d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit()),
            "{path}"
        );
    }
    let (hex, rest) = parts[3].split_at(32);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{path}"
    );
    assert_eq!(rest, suffix, "{path}");
}

/// The upload of the 2014 iOS app, as its own code builds it: `POST /`, a `type=im_image` field,
/// then the picture as part `image` named `image.png_0x0.png` with type image/jpeg, no token.
fn ios2014_upload(data: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nim_image\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; \
         filename=\"image.png_0x0.png\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

#[test]
fn ios2014_app_upload_gets_a_text_html_reply_it_accepts() {
    let (srv, _) = Server::start_with("MsfsRequireToken=false\n", &[("alice", "a")]);
    let data = sample(30_000);
    let mut h = Http::connect(srv.msfs);
    let r = h.post(
        "/",
        &format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"),
        &ios2014_upload(&data),
    );
    // The app's library insists on exactly this type; the body is the usual JSON.
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let v = r.json();
    assert_eq!(v["error_code"], 0, "{v}");
    let path = v["path"].as_str().unwrap();
    assert_path_shape(path, "_0x0.png");
    let got = h.get("GET", &format!("/{path}"));
    assert_eq!((got.status, got.body), (200, data));
}

#[test]
fn upload_then_download() {
    let (srv, _) = Server::start_with("MsfsBaseUrl=http://img.example.test\n", &[("alice", "a")]);
    let (_session, token) = token_of(&srv, "alice", "a");
    let data = sample(200_000);
    let mut h = Http::connect(srv.msfs);
    let v = h
        .upload("/upload", Some(&token), "C:\\pics\\shot_640x480.jpg", &data)
        .json();
    assert_eq!(v["error_code"], 0, "{v}");
    assert_eq!(v["error_msg"], "ok");
    let path = v["path"].as_str().unwrap().to_string();
    assert_path_shape(&path, "_640x480.jpg");
    assert_eq!(v["url"], format!("http://img.example.test/{path}"));
    assert_eq!(
        std::fs::read(srv.dir.join("data/msfs").join(&path)).unwrap(),
        data
    );

    // Same connection (keep-alive): GET, HEAD, GET again.
    let r = h.get("GET", &format!("/{path}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.body, data);
    let r = h.get("HEAD", &format!("/{path}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.header("content-length"), Some("200000"));
    let r = h.get("GET", &format!("/{path}?v=2"));
    assert_eq!(r.body, data);

    // Token in the query; no dimensions; other types.
    for (name, suffix, ctype) in [
        ("a.png", ".png", "image/png"),
        ("b_1x2.GIF", "_1x2.GIF", "image/gif"),
        ("voice.amr", ".amr", "application/octet-stream"),
        ("noext", "", "application/octet-stream"),
        ("bad.ex-t", "", "application/octet-stream"),
    ] {
        let v = h
            .upload(&format!("/?token={token}"), None, name, b"xyz")
            .json();
        assert_eq!(v["error_code"], 0, "{v}");
        let p = v["path"].as_str().unwrap();
        assert_path_shape(p, suffix);
        let r = h.get("GET", &format!("/{p}"));
        assert_eq!((r.status, r.header("content-type")), (200, Some(ctype)));
        assert_eq!(r.body, b"xyz");
    }

    // An empty file is a file.
    let v = h.upload("/", Some(&token), "e.jpg", b"").json();
    assert_eq!(v["error_code"], 0, "{v}");
    let r = h.get("GET", &format!("/{}", v["path"].as_str().unwrap()));
    assert_eq!((r.status, r.body.len()), (200, 0));
}

#[test]
fn default_url_uses_the_bound_port() {
    let (srv, _) = Server::start_with("MsfsRequireToken=false\n", &[]);
    let mut h = Http::connect(srv.msfs);
    let v = h.upload("/", None, "a.jpg", b"1").json();
    assert_eq!(v["error_code"], 0, "{v}");
    assert_eq!(
        v["url"],
        format!(
            "http://127.0.0.1:{}/{}",
            srv.msfs.port(),
            v["path"].as_str().unwrap()
        )
    );
}

#[test]
fn tokens_are_required() {
    let (srv, _) = Server::start(&[("alice", "a")]);
    let (_session, token) = token_of(&srv, "alice", "a");
    let check = |v: Value| {
        assert_eq!(v["error_code"], 3, "{v}");
        assert!(!v["error_msg"].as_str().unwrap().is_empty());
        assert_eq!(v["path"], "");
        assert_eq!(v["url"], "");
    };
    for (target, token) in [
        ("/", None),
        ("/", Some("00000000-0000-0000-0000-000000000000")),
        ("/?token=nope", None),
        ("/", Some(&token[..35])),
    ] {
        let mut h = Http::connect(srv.msfs);
        check(h.upload(target, token, "a.jpg", b"123").json());
        assert!(h.closed());
    }
    // Token first: an oversized, non-multipart upload without a token is still a 3.
    let mut h = Http::connect(srv.msfs);
    check(
        h.post_announced("Content-Type: text/plain\r\n", 6 << 20, &[b'x'; 5000])
            .json(),
    );
    assert!(h.closed());
    assert!(stored_files(&srv).is_empty(), "{:?}", stored_files(&srv));

    let mut h = Http::connect(srv.msfs);
    let v = h.upload("/", Some(&token), "a.jpg", b"123").json();
    assert_eq!(v["error_code"], 0, "{v}");
}

#[test]
fn tokens_can_be_turned_off() {
    let (srv, _) = Server::start_with("MsfsRequireToken=false\n", &[]);
    let mut h = Http::connect(srv.msfs);
    let v = h.upload("/", None, "a.jpg", b"123").json();
    assert_eq!(v["error_code"], 0, "{v}");
    let v = h.upload("/", Some("whatever"), "b.jpg", b"456").json();
    assert_eq!(v["error_code"], 0, "{v}");
}

#[test]
fn oversized_uploads_store_nothing() {
    let (srv, _) = Server::start_with("MsfsMaxFileSize=1000\nMsfsRequireToken=false\n", &[]);
    // A file part one byte over the limit, the body within it.
    let mut h = Http::connect(srv.msfs);
    let v = h.upload("/", None, "a.jpg", &sample(1001)).json();
    assert_eq!(v["error_code"], 1, "{v}");
    assert_eq!(
        (v["path"].as_str(), v["url"].as_str()),
        (Some(""), Some(""))
    );
    assert!(h.closed());

    // A body announced over the limit + 64 KiB: answered from the head, the body never read.
    let mut h = Http::connect(srv.msfs);
    let v = h
        .post_announced(
            &format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"),
            1000 + 64 * 1024 + 1,
            &multipart("a.jpg", &sample(4000))[..4000],
        )
        .json();
    assert_eq!(v["error_code"], 1, "{v}");
    assert!(h.closed());

    // Too large and not multipart: size is checked before format.
    let mut h = Http::connect(srv.msfs);
    let v = h
        .post_announced("Content-Type: text/plain\r\n", 70_000, b"xx")
        .json();
    assert_eq!(v["error_code"], 1, "{v}");
    assert!(h.closed());

    assert!(stored_files(&srv).is_empty(), "{:?}", stored_files(&srv));

    // Exactly at the limit is fine.
    let mut h = Http::connect(srv.msfs);
    let v = h.upload("/", None, "a.jpg", &sample(1000)).json();
    assert_eq!(v["error_code"], 0, "{v}");
    assert_eq!(stored_files(&srv).len(), 1);
}

#[test]
fn bad_uploads_are_error_2() {
    let (srv, _) = Server::start_with("MsfsRequireToken=false\n", &[]);
    let mut h = Http::connect(srv.msfs);
    let v = h
        .post("/", "Content-Type: application/octet-stream\r\n", b"raw")
        .json();
    assert_eq!(v["error_code"], 2, "{v}");

    // Body-level problems keep the connection open.
    let mut h = Http::connect(srv.msfs);
    let ct = format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n");
    for body in [
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--{BOUNDARY}--\r\n")
            .into_bytes(),
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; filename=\"a.jpg\"\r\n\r\nno end")
            .into_bytes(),
        b"garbage".to_vec(),
        Vec::new(),
    ] {
        let v = h.post("/", &ct, &body).json();
        assert_eq!(v["error_code"], 2, "{v}");
        assert_eq!(v["path"], "");
    }
    let v = h.post("/", "", b"").json();
    assert_eq!(v["error_code"], 2, "{v}");
    assert!(stored_files(&srv).is_empty(), "{:?}", stored_files(&srv));
}

#[test]
fn downloads_only_of_stored_names() {
    let (srv, _) = Server::start_with("MsfsRequireToken=false\n", &[]);
    let mut h = Http::connect(srv.msfs);
    let v = h.upload("/", None, "a.jpg", b"img").json();
    let path = v["path"].as_str().unwrap().to_string();
    let name = path.rsplit('/').next().unwrap().to_string();
    let zeros = "0".repeat(32);
    for target in [
        "/".to_string(),
        "/test.conf".to_string(),
        "/../test.conf".to_string(),
        "/g0/../../test.conf".to_string(),
        "/g0/000/000/../../../test.conf".to_string(),
        "/%2e%2e/test.conf".to_string(),
        "/g0/%2e%2e/%2e%2e/test.conf".to_string(),
        "/data/ttserver.db".to_string(),
        format!("/g0/000/000/{zeros}.jpg"),
        format!("/g0/000/000/{name}"),
        format!("/g0/{}", path.trim_start_matches("g0/").replace('/', "%2f")),
        format!("/{}", path.to_uppercase()),
        format!("/{path}/"),
        format!("//{path}"),
        format!("/./{path}"),
        format!("http://x/{path}"),
    ] {
        let r = h.get("GET", &target);
        assert_eq!(r.status, 404, "{target}");
        let r = h.get("HEAD", &target);
        assert_eq!(r.status, 404, "{target}");
    }
    for m in ["DELETE", "PUT", "PATCH", "OPTIONS"] {
        let r = h.get(m, &format!("/{path}"));
        assert_eq!(r.status, 405, "{m}");
        assert!(r.header("allow").is_some());
    }
    // Still served, still on the same connection.
    let r = h.get("GET", &format!("/{path}"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"img"[..]));
    // A malformed request is a 400 and closes.
    let r = h.raw(b"\x01\x02 / HTTP/1.1\r\n\r\n", false);
    assert_eq!(r.status, 400);
    assert!(h.closed());
}

#[test]
fn pipelined_requests_and_expect_continue() {
    let (srv, _) = Server::start_with("MsfsRequireToken=false\n", &[]);
    let mut h = Http::connect(srv.msfs);
    let body = multipart("p.png", b"png!");
    let mut req = format!(
        "POST / HTTP/1.1\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .into_bytes();
    h.r.get_mut().write_all(&req).unwrap();
    assert_eq!(h.read_resp(false).status, 100);
    let v = h.raw(&body, false).json();
    assert_eq!(v["error_code"], 0, "{v}");
    let path = v["path"].as_str().unwrap().to_string();

    // Two uploads and two GETs in one write: answered in order.
    req = Vec::new();
    for name in ["1.jpg", "2.jpg"] {
        let b = multipart(name, name.as_bytes());
        req.extend_from_slice(
            format!(
                "POST / HTTP/1.1\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
                 Content-Length: {}\r\n\r\n",
                b.len()
            )
            .as_bytes(),
        );
        req.extend_from_slice(&b);
    }
    req.extend_from_slice(
        format!("GET /{path} HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n").as_bytes(),
    );
    h.r.get_mut().write_all(&req).unwrap();
    for name in ["1.jpg", "2.jpg"] {
        let v = h.read_resp(false).json();
        let p = v["path"].as_str().unwrap().to_string();
        let mut g = Http::connect(srv.msfs);
        assert_eq!(g.get("GET", &format!("/{p}")).body, name.as_bytes());
    }
    let r = h.read_resp(false);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"png!"[..]));
    assert_eq!(h.read_resp(false).status, 404);

    // Connection: close is honoured.
    let r = h.raw(
        format!("GET /{path} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes(),
        false,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(h.closed());
}

/// Reads until the server closes the connection (EOF or reset); false if `within` passes first.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Writes `bytes` one at a time, `gap` apart, until done or the connection fails.
fn trickle(mut s: TcpStream, bytes: Vec<u8>, gap: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for b in bytes {
            if s.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(gap);
        }
    })
}

#[test]
fn slow_clients_cannot_hold_msfs_connections() {
    // MsfsHeadTimeout: a silent connection, and a head trickled in a byte at a time (each byte
    // resets the 30 s idle time), are closed once the head is overdue; MsfsMinBodyRate: a body
    // trickled far below the rate is closed after the grace. Before, each held a slot for up to
    // 300 s.
    let (srv, _) = Server::start_with(
        "MsfsHeadTimeout=2\nMsfsMinBodyRate=100000\nMsfsRequireToken=false\n",
        &[("alice", "a")],
    );
    let mut silent = TcpStream::connect(srv.msfs).unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(20)),
        "silent"
    );

    let mut head = TcpStream::connect(srv.msfs).unwrap();
    let t = trickle(
        head.try_clone().unwrap(),
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .to_vec(),
        Duration::from_millis(200),
    );
    assert!(
        closed_within(&mut head, Duration::from_secs(20)),
        "trickled head"
    );
    t.join().unwrap();

    let mut body = TcpStream::connect(srv.msfs).unwrap();
    body.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; \
             boundary={BOUNDARY}\r\nContent-Length: 1000000\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let t = trickle(
        body.try_clone().unwrap(),
        vec![b'x'; 200],
        Duration::from_millis(100),
    );
    assert!(
        closed_within(&mut body, Duration::from_secs(30)),
        "trickled body"
    );
    t.join().unwrap();

    // A normal upload right after is served.
    let mut h = Http::connect(srv.msfs);
    let r = h.upload("/", None, "a.png", b"fine");
    assert_eq!(r.json()["error_code"], 0);
}

/// A TCP connection to `to` from source address `from` (any 127.0.0.0/8 address works).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&src.into()).unwrap();
    s.connect(&to.into()).unwrap();
    s.into()
}

#[test]
fn connections_per_ip_are_capped() {
    // MsfsMaxConnsPerIp=3: a fourth connection from the same address is closed at once; another
    // address is not affected; closing one frees its place.
    let (srv, _) = Server::start_with(
        "MsfsMaxConnsPerIp=3\nMsfsRequireToken=false\n",
        &[("alice", "a")],
    );
    let held: Vec<TcpStream> = (0..3)
        .map(|_| connect_from("127.0.0.1", srv.msfs))
        .collect();
    let mut fourth = connect_from("127.0.0.1", srv.msfs);
    assert!(closed_within(&mut fourth, Duration::from_secs(5)), "fourth");
    // Another source address still gets in and is served.
    let mut other = connect_from("127.0.0.2", srv.msfs);
    other
        .write_all(b"GET /g0/000/000/none HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&mut other).read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 404"), "{line}");
    // One of the three leaves: a new connection from 127.0.0.1 is served again.
    drop(held);
    wait_until("a place for 127.0.0.1", Duration::from_secs(10), || {
        let mut s = connect_from("127.0.0.1", srv.msfs);
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
            return false;
        }
        let mut line = String::new();
        BufReader::new(&mut s).read_line(&mut line).is_ok() && line.starts_with("HTTP/1.1 404")
    });
}

//! A blocking TT client over `std::net::TcpStream`, for integration tests, the load generator and
//! the CLI. One [`Client`] is one TCP connection; received PDUs come back as owned [`Frame`]s.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use crate::proto::frame::{self, Header, HEADER_LEN};
use crate::proto::{Dir, Id, LoginRequest, MsgData, Pdu, ProtoError};

pub mod file;

/// Default read timeout of a new client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest PDU the client accepts (well above the server's `MaxOutPduSize`).
pub const CLIENT_MAX_PDU: u32 = 16 * 1024 * 1024;

/// Lowercase hex MD5 of a password (the 1/3 `password` field).
pub use crate::auth::password::md5_hex;

/// One whole received PDU (header included in `bytes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub bytes: Vec<u8>,
}

impl Frame {
    /// Decodes the PDU as a client does (`Dir::ToClient`); an unknown command is an error.
    pub fn pdu(&self) -> Result<Pdu<'_>, ClientError> {
        let (m, c) = self.module_command();
        Pdu::decode(Dir::ToClient, m, c, self.body())?
            .ok_or_else(|| ClientError::Unexpected(format!("unknown PDU {m}/{c}")))
    }

    pub fn module_command(&self) -> (u16, u16) {
        (self.header.module, self.header.command)
    }

    /// The body (the bytes after the 12-byte header).
    pub fn body(&self) -> &[u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or(&[])
    }
}

/// What can go wrong on a client connection.
#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    Proto(ProtoError),
    /// The peer closed the connection.
    Closed,
    /// No data within the read timeout.
    Timeout,
    /// A PDU or value the caller did not expect.
    Unexpected(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "i/o error: {e}"),
            ClientError::Proto(e) => write!(f, "protocol error: {e}"),
            ClientError::Closed => f.write_str("connection closed by peer"),
            ClientError::Timeout => f.write_str("timed out"),
            ClientError::Unexpected(s) => write!(f, "unexpected: {s}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) => Some(e),
            ClientError::Proto(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ProtoError> for ClientError {
    fn from(e: ProtoError) -> Self {
        ClientError::Proto(e)
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout,
            _ => ClientError::Io(e),
        }
    }
}

/// The answer to 1/1 (owned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgServer {
    pub result: u32,
    pub ip1: String,
    pub ip2: String,
    pub port: u16,
}

/// The answer to 1/3 (owned). Fields after `result` are zero/empty when `result != 0`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LoginInfo {
    pub result: u32,
    pub server_time: u32,
    /// 0 if the server sent a non-canonical id.
    pub user_id: u32,
    pub online_status: u32,
    pub nickname: String,
    pub token: String,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A blocking client connection.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    /// Received bytes not yet framed.
    buf: Vec<u8>,
    /// Frames skipped by `recv_until`, returned first by `recv`.
    queue: VecDeque<Frame>,
    max_pdu: u32,
    next_reserved: u16,
}

impl Client {
    /// Connects, sets TCP_NODELAY and a read timeout of 10 s.
    pub fn connect(addr: SocketAddr) -> Result<Client, ClientError> {
        let stream = TcpStream::connect_timeout(&addr, DEFAULT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(DEFAULT_TIMEOUT))?;
        stream.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            queue: VecDeque::new(),
            max_pdu: CLIENT_MAX_PDU,
            next_reserved: 1,
        })
    }

    /// Read timeout (`None` = block forever). A zero duration is treated as 1 ms.
    pub fn set_timeout(&mut self, d: Option<Duration>) {
        let d = d.map(|d| d.max(Duration::from_millis(1)));
        // set_read_timeout fails only for a zero duration, excluded above.
        let _ = self.stream.set_read_timeout(d);
    }

    /// Largest PDU accepted from the peer (default [`CLIENT_MAX_PDU`]).
    pub fn set_max_pdu(&mut self, max: u32) {
        self.max_pdu = max;
    }

    pub fn local_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.stream.local_addr()?)
    }

    pub fn peer_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.stream.peer_addr()?)
    }

    /// A fresh `reserved` value (1, 2, …, wrapping, never 0) for requests.
    pub fn next_reserved(&mut self) -> u16 {
        let r = self.next_reserved;
        self.next_reserved = self.next_reserved.checked_add(1).unwrap_or(1);
        r
    }

    /// Encodes and sends one PDU.
    pub fn send(&mut self, pdu: &Pdu<'_>, reserved: u16) -> Result<(), ClientError> {
        self.send_raw(&pdu.to_frame(reserved))
    }

    /// Sends bytes as they are (malformed PDUs, several PDUs at once, fragments).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Half-closes the write side (the server sees EOF).
    pub fn shutdown_write(&mut self) -> Result<(), ClientError> {
        self.stream.shutdown(Shutdown::Write)?;
        Ok(())
    }

    /// Reads more bytes into `buf`; `Closed` on EOF.
    fn fill(&mut self) -> Result<(), ClientError> {
        let mut tmp = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(tmp.get(..n).unwrap_or(&[]));
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next frame from the socket, ignoring the queue.
    fn read_frame(&mut self) -> Result<Frame, ClientError> {
        loop {
            if let Some(header) = frame::check(&self.buf, self.max_pdu)? {
                let len = header.length as usize;
                let rest = self.buf.split_off(len.min(self.buf.len()));
                let bytes = std::mem::replace(&mut self.buf, rest);
                return Ok(Frame { header, bytes });
            }
            self.fill()?;
        }
    }

    /// The next whole PDU: first the ones queued by [`Client::recv_until`], then from the
    /// socket. `Closed` on EOF, `Timeout` on the read timeout.
    pub fn recv(&mut self) -> Result<Frame, ClientError> {
        match self.queue.pop_front() {
            Some(f) => Ok(f),
            None => self.read_frame(),
        }
    }

    /// The next PDU with this `(module, command)`; the others are kept (in order) for later
    /// `recv` calls.
    pub fn recv_until(&mut self, module: u16, command: u16) -> Result<Frame, ClientError> {
        if let Some(pos) = self
            .queue
            .iter()
            .position(|f| f.module_command() == (module, command))
        {
            if let Some(f) = self.queue.remove(pos) {
                return Ok(f);
            }
        }
        loop {
            let f = self.read_frame()?;
            if f.module_command() == (module, command) {
                return Ok(f);
            }
            self.queue.push_back(f);
        }
    }

    /// Frames received and queued but not returned yet.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Reads until the peer closes: `Ok` on EOF (or reset), frames in between are discarded;
    /// `Timeout` if the peer keeps the connection open.
    pub fn expect_closed(&mut self) -> Result<(), ClientError> {
        self.queue.clear();
        self.buf.clear();
        loop {
            match self.fill() {
                Ok(()) => self.buf.clear(),
                Err(ClientError::Closed) => return Ok(()),
                Err(ClientError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Ok(())
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// 1/1 → 1/2 on a login port (a connection of its own, closed afterwards).
    pub fn request_msg_server(login_addr: SocketAddr) -> Result<MsgServer, ClientError> {
        let mut c = Client::connect(login_addr)?;
        let reserved = c.next_reserved();
        c.send(&Pdu::MsgServRequest, reserved)?;
        let f = c.recv_until(1, 2)?;
        match f.pdu()? {
            Pdu::MsgServResponse(r) => Ok(match r.ok {
                Some(ok) => MsgServer {
                    result: r.result,
                    ip1: lossy(ok.ip1),
                    ip2: lossy(ok.ip2),
                    port: ok.port,
                },
                None => MsgServer {
                    result: r.result,
                    ip1: String::new(),
                    ip2: String::new(),
                    port: 0,
                },
            }),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// 1/3 (password sent as `md5_hex(password_plain)`, client version "ttclient/1") → 1/4.
    pub fn login(
        &mut self,
        name: &str,
        password_plain: &str,
        status: u32,
        client_type: u32,
    ) -> Result<LoginInfo, ClientError> {
        let password = md5_hex(password_plain);
        let req = Pdu::LoginRequest(LoginRequest {
            user_name: name.as_bytes(),
            password: password.as_bytes(),
            online_status: status,
            client_type,
            client_version: b"ttclient/1",
        });
        let reserved = self.next_reserved();
        self.send(&req, reserved)?;
        let f = self.recv_until(1, 4)?;
        match f.pdu()? {
            Pdu::LoginResponse(r) => {
                let mut info = LoginInfo {
                    result: r.result,
                    server_time: r.server_time,
                    ..LoginInfo::default()
                };
                if let Some(ok) = r.ok {
                    info.user_id = ok.user_id.value().unwrap_or(0);
                    info.online_status = ok.online_status;
                    info.nickname = lossy(ok.nickname);
                    info.token = lossy(ok.token);
                }
                Ok(info)
            }
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// 3/1 p2p text (type 0x01, `create_time` 0, empty attach).
    pub fn send_text(
        &mut self,
        seq_no: u32,
        from: u32,
        to: u32,
        text: &[u8],
        reserved: u16,
    ) -> Result<(), ClientError> {
        let pdu = Pdu::MsgData(MsgData {
            seq_no,
            from_id: Id::Num(from),
            to_id: Id::Num(to),
            create_time: 0,
            msg_type: 0x01,
            msg_data: text,
            attach: b"",
        });
        self.send(&pdu, reserved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{LoginOk, LoginResponse, MsgServOk, MsgServResponse};
    use std::net::TcpListener;
    use std::thread;

    /// A one-connection fake server: reads PDUs and answers with `answer`.
    fn serve(
        answer: impl Fn(&Header, &[u8]) -> Vec<u8> + Send + 'static,
    ) -> (SocketAddr, thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            loop {
                while let Some(h) = frame::check(&buf, 1 << 20).unwrap() {
                    let rest = buf.split_off(h.length as usize);
                    let out = answer(&h, &buf[HEADER_LEN..]);
                    buf = rest;
                    if out.is_empty() {
                        return; // close
                    }
                    s.write_all(&out).unwrap();
                }
                match s.read(&mut tmp) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
        });
        (addr, h)
    }

    #[test]
    fn msg_server_request() {
        let (addr, h) = serve(|h, body| {
            assert_eq!((h.module, h.command, body.len()), (1, 1, 0));
            Pdu::MsgServResponse(MsgServResponse {
                result: 0,
                ok: Some(MsgServOk {
                    ip1: b"10.0.0.1",
                    ip2: b"10.0.0.2",
                    port: 8000,
                }),
            })
            .to_frame(h.reserved)
        });
        let m = Client::request_msg_server(addr).unwrap();
        assert_eq!(
            m,
            MsgServer {
                result: 0,
                ip1: "10.0.0.1".into(),
                ip2: "10.0.0.2".into(),
                port: 8000
            }
        );
        h.join().unwrap();
    }

    #[test]
    fn login_recv_until_queue_and_close() {
        let (addr, h) = serve(|h, body| match (h.module, h.command) {
            (1, 3) => {
                let Ok(Some(Pdu::LoginRequest(r))) = Pdu::decode(Dir::ToServer, 1, 3, body) else {
                    panic!("bad 1/3");
                };
                assert_eq!(r.password, md5_hex("123456").as_bytes());
                // a push first, then the answer split in two writes' worth of bytes
                let mut out = Pdu::Heartbeat.to_frame(0);
                Pdu::LoginResponse(LoginResponse {
                    server_time: 1_700_000_000,
                    result: 0,
                    ok: Some(LoginOk {
                        online_status: 1,
                        user_id: Id::Num(10035),
                        nickname: b"Alice",
                        avatar_url: b"",
                        title: b"",
                        position: b"",
                        role_status: 0,
                        sex: 0,
                        depart_id: Id::Num(1),
                        job_num: 0,
                        telephone: b"",
                        email: b"",
                        token: b"0f8fad5b-d9cb-469f-a165-70867728950e",
                    }),
                })
                .encode(h.reserved, &mut out);
                out
            }
            (3, 1) => {
                assert!(Pdu::decode(Dir::ToServer, 3, 1, body).unwrap().is_some());
                Pdu::Heartbeat.to_frame(h.reserved)
            }
            _ => Vec::new(),
        });
        let mut c = Client::connect(addr).unwrap();
        let info = c.login("alice", "123456", 1, 1).unwrap();
        assert_eq!(info.result, 0);
        assert_eq!(info.user_id, 10035);
        assert_eq!(info.nickname, "Alice");
        assert_eq!(info.token.len(), 36);
        assert_eq!(c.queued(), 1);
        let hb = c.recv().unwrap();
        assert_eq!(hb.module_command(), (7, 1));
        assert_eq!(hb.pdu().unwrap(), Pdu::Heartbeat);
        c.send_text(1, 10035, 10036, b"hi", 77).unwrap();
        let echo = c.recv().unwrap();
        assert_eq!(echo.header.reserved, 77);
        // anything else: the fake server closes
        c.send(&Pdu::TimeRequest, 5).unwrap();
        c.expect_closed().unwrap();
        assert!(matches!(c.recv(), Err(ClientError::Closed)));
        h.join().unwrap();
    }

    #[test]
    fn timeout_and_unknown() {
        let (addr, h) = serve(|h, _| {
            // 7/53 is unknown to a client
            let mut out = vec![0, 0, 0, 12, 0, 7, 0, 53, 0, 1];
            out.extend_from_slice(&h.reserved.to_be_bytes());
            out
        });
        let mut c = Client::connect(addr).unwrap();
        c.set_timeout(Some(Duration::from_millis(50)));
        assert!(matches!(c.recv(), Err(ClientError::Timeout)));
        assert!(matches!(c.expect_closed(), Err(ClientError::Timeout)));
        c.send(&Pdu::Heartbeat, 3).unwrap();
        let f = c.recv().unwrap();
        assert_eq!(f.header.reserved, 3);
        assert!(matches!(f.pdu(), Err(ClientError::Unexpected(_))));
        assert!(f.body().is_empty());
        drop(c);
        h.join().unwrap();
    }
}

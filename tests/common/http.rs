//! A tiny HTTP/1.1 client on std::net for the admin API: one keep-alive connection, JSON bodies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// One keep-alive HTTP connection; `token` goes in every [`Http::req`].
pub struct Http {
    pub r: BufReader<TcpStream>,
    token: String,
}

impl Http {
    pub fn connect(addr: SocketAddr, token: &str) -> Http {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Http {
            r: BufReader::new(s),
            token: token.to_string(),
        }
    }

    /// Sends a raw request and reads one response: (status, body as JSON or Null).
    pub fn raw(&mut self, req: &[u8]) -> (u16, Value) {
        self.r.get_mut().write_all(req).unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            self.r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        self.r.read_exact(&mut body).unwrap();
        let v = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        (status, v)
    }

    /// A request with this `Authorization: Bearer` token (none if `None`) and raw body.
    pub fn req_with(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let mut r = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n");
        if let Some(t) = auth {
            r.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if !body.is_empty() {
            r.push_str("Content-Type: application/json\r\n");
        }
        r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.raw(r.as_bytes())
    }

    /// An authenticated request with an optional JSON body.
    pub fn req(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let b = body.map(|v| v.to_string()).unwrap_or_default();
        let token = self.token.clone();
        self.req_with(method, path, Some(&token), &b)
    }

    /// `req` that must answer `want`; returns the body.
    pub fn ok(&mut self, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let (st, v) = self.req(method, path, body);
        assert_eq!(st, want, "{method} {path}: {v}");
        v
    }
}

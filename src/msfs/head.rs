//! Request heads: parsing (`httparse`) into what the msfs loop needs to know about a request.

use super::{MAX_HEAD, MAX_HEADERS};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Head,
    Post,
    Other,
}

/// A parsed request head.
#[derive(Debug)]
pub(super) struct Head {
    /// Bytes of the head, up to and including the empty line.
    pub(super) len: usize,
    pub(super) method: Method,
    pub(super) target: String,
    /// `Content-Length` (0 without one; `usize::MAX` when too large to represent).
    pub(super) body_len: usize,
    pub(super) close: bool,
    pub(super) expect_continue: bool,
    /// Any `Transfer-Encoding`: not supported.
    pub(super) chunked: bool,
    pub(super) content_type: Option<Vec<u8>>,
    /// `X-TT-Token`.
    pub(super) token: Option<Vec<u8>>,
}

#[derive(Debug)]
pub(super) enum HeadParse {
    Incomplete,
    Bad(&'static str),
    Done(Head),
}

pub(super) fn parse_head(buf: &[u8]) -> HeadParse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return HeadParse::Bad("request head too large")
        }
        Ok(httparse::Status::Partial) => return HeadParse::Incomplete,
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => {
            return HeadParse::Bad("request head too large")
        }
        Ok(httparse::Status::Complete(n)) => n,
        Err(httparse::Error::TooManyHeaders) => return HeadParse::Bad("too many headers"),
        Err(_) => return HeadParse::Bad("malformed request"),
    };
    let http10 = req.version == Some(0);
    let mut head = Head {
        len,
        method: match req.method.unwrap_or("") {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            _ => Method::Other,
        },
        target: req.path.unwrap_or("").to_string(),
        body_len: 0,
        close: http10,
        expect_continue: false,
        chunked: false,
        content_type: None,
        token: None,
    };
    let mut content_length = None;
    for h in req.headers.iter() {
        let (name, v) = (h.name, h.value);
        if name.eq_ignore_ascii_case("content-length") {
            let v = v.trim_ascii();
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                return HeadParse::Bad("bad Content-Length");
            }
            // All digits: only overflow can fail, which is "too large".
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            if content_length.is_some_and(|old| old != n) {
                return HeadParse::Bad("conflicting Content-Length");
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = true;
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = v.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(v.to_vec());
        } else if name.eq_ignore_ascii_case("x-tt-token") {
            head.token = Some(v.trim_ascii().to_vec());
        } else if name.eq_ignore_ascii_case("connection") {
            for t in v.split(|&c| c == b',').map(<[u8]>::trim_ascii) {
                if t.eq_ignore_ascii_case(b"close") {
                    head.close = true;
                } else if http10 && t.eq_ignore_ascii_case(b"keep-alive") {
                    head.close = false;
                }
            }
        }
    }
    head.body_len = content_length.unwrap_or(0);
    HeadParse::Done(head)
}

/// The `token` query parameter of a request target.
pub(super) fn query_token(target: &str) -> Option<&[u8]> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::as_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &[u8]) -> Head {
        match parse_head(buf) {
            HeadParse::Done(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn heads() {
        let r = b"POST /up?token=abc HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nX-TT-Token:  t1 \r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\nbody";
        let h = done(r);
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.target, "/up?token=abc");
        assert_eq!(h.len, r.len() - 4);
        assert_eq!(h.body_len, 12);
        assert!(h.expect_continue && !h.close && !h.chunked);
        assert_eq!(h.token.as_deref(), Some(&b"t1"[..]));
        assert_eq!(
            h.content_type.as_deref(),
            Some(&b"multipart/form-data; boundary=b"[..])
        );
        let h = done(b"HEAD /x HTTP/1.0\r\n\r\n");
        assert_eq!((h.method, h.close, h.body_len), (Method::Head, true, 0));
        let h = done(b"GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(!h.close);
        let h = done(b"GET /x HTTP/1.1\r\nConnection: foo, close\r\n\r\n");
        assert!(h.close);
        let h = done(b"DELETE /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.method, Method::Other);
        assert!(h.chunked);
        let h = done(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert_eq!(h.body_len, usize::MAX);
        let h = done(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.body_len, 5);
    }

    #[test]
    fn bad_heads() {
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nHost"),
            HeadParse::Incomplete
        ));
        assert!(matches!(parse_head(b""), HeadParse::Incomplete));
        for bad in [
            &b"\x01 / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(bad), HeadParse::Bad(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect();
        let r = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parse_head(r.as_bytes()), HeadParse::Bad(_)));
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(parse_head(big.as_bytes()), HeadParse::Bad(_)));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(parse_head(big.as_bytes()), HeadParse::Bad(_)));
    }

    #[test]
    fn query_tokens() {
        assert_eq!(query_token("/?token=abc"), Some(&b"abc"[..]));
        assert_eq!(query_token("/u?a=1&token=x-y&b"), Some(&b"x-y"[..]));
        assert_eq!(query_token("/u?tokens=1"), None);
        assert_eq!(query_token("/token=1"), None);
        assert_eq!(query_token("/u"), None);
    }
}

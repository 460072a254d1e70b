//! The HTTP/1.1 request framer of the admin API: request heads parsed with `httparse` (at most
//! 64 headers, head at most 16 KiB), bodies by `Content-Length` (at most [`MAX_BODY`], else
//! 413; `Transfer-Encoding` is refused with 400). Nothing here keeps state: the loop hands the
//! whole buffered input again after each read, and a head is re-parsed (it is small) rather
//! than remembered.

use super::api::Response;

const MAX_HEADERS: usize = 64;
pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_BODY: usize = 1024 * 1024;

/// One complete request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub auth: Option<Vec<u8>>,
    /// `Connection: close` (or HTTP/1.0 without keep-alive): close once answered.
    pub close: bool,
    pub body: Vec<u8>,
    /// Bytes of the input this request took (head and body).
    pub consumed: usize,
}

#[derive(Debug)]
pub enum Parsed {
    Incomplete,
    /// The head is complete and announces `Expect: 100-continue`; the body is still missing.
    NeedBody,
    /// The answer to send before closing.
    Bad(Response),
    Request(Request),
}

fn bad(msg: &str) -> Parsed {
    Parsed::Bad(Response::error(400, "bad_request", msg))
}

/// The request at the front of `buf`, if it is complete.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return bad("request head larger than 16 KiB");
            }
            return Parsed::Incomplete;
        }
        Ok(httparse::Status::Complete(n)) => n,
        Err(httparse::Error::TooManyHeaders) => return bad("more than 64 headers"),
        Err(e) => return bad(&format!("malformed request: {e}")),
    };
    if head_len > MAX_HEAD {
        return bad("request head larger than 16 KiB");
    }
    let mut content_length: Option<usize> = None;
    let mut auth = None;
    let mut expect_continue = false;
    let http10 = req.version == Some(0);
    let mut close = http10;
    for h in req.headers.iter() {
        let v = h.value;
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok());
            match (n, content_length) {
                (None, _) => return bad("bad Content-Length"),
                (Some(n), Some(old)) if n != old => return bad("conflicting Content-Length"),
                (Some(n), _) => content_length = Some(n),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return bad("Transfer-Encoding is not supported; send a Content-Length");
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = v.eq_ignore_ascii_case(b"100-continue");
        } else if h.name.eq_ignore_ascii_case("authorization") {
            auth = Some(v.to_vec());
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(v).to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                close = true;
            } else if http10 && v.split(',').any(|t| t.trim() == "keep-alive") {
                close = false;
            }
        }
    }
    let len = content_length.unwrap_or(0);
    if len > MAX_BODY {
        return Parsed::Bad(Response::error(413, "too_large", "body larger than 1 MiB"));
    }
    let Some(body) = buf.get(head_len..head_len + len) else {
        return if expect_continue && buf.len() == head_len {
            Parsed::NeedBody
        } else {
            Parsed::Incomplete
        };
    };
    Parsed::Request(Request {
        method: req.method.unwrap_or("").to_string(),
        target: req.path.unwrap_or("").to_string(),
        auth,
        close,
        body: body.to_vec(),
        consumed: head_len + len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_requests() {
        let r = b"POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 2\r\n\r\n{}GET";
        let Parsed::Request(req) = parse(r) else {
            panic!()
        };
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, "/v1/users");
        assert_eq!(req.body, b"{}");
        assert_eq!(req.auth.as_deref(), Some(&b"Bearer t"[..]));
        assert!(!req.close);
        assert_eq!(req.consumed, r.len() - 3);
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost"),
            Parsed::Incomplete
        ));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"),
            Parsed::Incomplete
        ));
        let Parsed::Bad(b) = parse(b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n") else {
            panic!()
        };
        assert_eq!(b.status, 413);
        let Parsed::Bad(b) = parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") else {
            panic!()
        };
        assert_eq!(b.status, 400);
        assert!(matches!(
            parse(b"\x01\x02 / HTTP/1.1\r\n\r\n"),
            Parsed::Bad(_)
        ));
        let Parsed::Request(req) = parse(b"GET / HTTP/1.0\r\n\r\n") else {
            panic!()
        };
        assert!(req.close);
        let Parsed::Request(req) = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n") else {
            panic!()
        };
        assert!(req.close);
        let many: String = (0..70).map(|i| format!("X-{i}: 1\r\n")).collect();
        let r = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parse(r.as_bytes()), Parsed::Bad(_)));
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD + 1));
        assert!(matches!(parse(big.as_bytes()), Parsed::Bad(_)));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
            Parsed::NeedBody
        ));
    }
}

//! The endpoints of the HTTP admin API (behaviour.md section 14): routing, JSON bodies and
//! answers. A handler checks on the loop thread what needs no database (body, ids, lengths,
//! the in-memory directory) and returns the rest as a job ([`Step`]): reads on the reader pool,
//! the change through the storage writer, cache updates and client pushes after the commit.

mod departs;
mod groups;
mod push;
mod users;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use super::job::Step;
use crate::admin::check;
use crate::msg::state::State;
use crate::store::StoreError;

/// An HTTP response: status and JSON body (none for 204).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Option<String>,
}

impl Response {
    fn json(status: u16, v: &Value) -> Response {
        Response {
            status,
            body: Some(v.to_string()),
        }
    }

    /// The B-ADM-3 error shape.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(status, &json!({ "error": code, "message": message }))
    }

    /// The answer when the reader pool, the writer's queue or the admin loop's own job limit is
    /// full: 503 with `Retry-After` (see [`Response::encode`]), rather than waiting on the loop.
    pub fn busy() -> Response {
        Response::error(503, "busy", "the server is busy; retry later")
    }

    /// The bytes on the wire.
    pub fn encode(&self, close: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            201 => "Created",
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            413 => "Payload Too Large",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        };
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", self.status);
        if let Some(b) = &self.body {
            out.push_str("Content-Type: application/json\r\n");
            out.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        if self.status == 401 {
            out.push_str("WWW-Authenticate: Bearer\r\n");
        }
        if self.status == 503 {
            // A full queue drains within milliseconds; a second is plenty.
            out.push_str("Retry-After: 1\r\n");
        }
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        if let Some(b) = &self.body {
            out.push_str(b);
        }
        out.into_bytes()
    }
}

/// A failed request: its answer.
pub struct ApiError(pub Response);

fn bad(msg: impl AsRef<str>) -> ApiError {
    ApiError(Response::error(400, "bad_request", msg.as_ref()))
}

fn not_found(msg: impl AsRef<str>) -> ApiError {
    ApiError(Response::error(404, "not_found", msg.as_ref()))
}

fn conflict(msg: impl AsRef<str>) -> ApiError {
    ApiError(Response::error(409, "conflict", msg.as_ref()))
}

pub fn internal(msg: impl AsRef<str>) -> ApiError {
    ApiError(Response::error(500, "internal", msg.as_ref()))
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => conflict(m),
            StoreError::NotFound(m) => not_found(m),
            StoreError::Invalid(m) => bad(m),
            other => {
                log::error!(target: "admin", "storage error: {other}");
                internal(other.to_string())
            }
        }
    }
}

fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("bad JSON body: {e}")))
}

/// The `{id}` of a path: canonical decimal as on the wire (P-19), else 400. Rust's `parse`
/// alone would take `+1` and `01` as aliases of 1.
fn parse_id(s: &str) -> Result<u32, ApiError> {
    crate::proto::parse_id(s.as_bytes()).ok_or_else(|| {
        bad(format!(
            "bad id {s:?}: expected 1 to 4294967295 in decimal, without sign or leading zero"
        ))
    })
}

/// [`check::label`] as a 400.
fn label(what: &str, v: Option<&str>, min: usize, max: usize) -> Result<(), ApiError> {
    v.map_or(Ok(()), |v| check::label(what, v, min, max).map_err(bad))
}

/// Decodes `%XX` and `+` of a query value.
fn url_decode(s: &str) -> Result<String, ApiError> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(c) = it.next() {
        match c {
            b'%' => {
                let hex = [it.next(), it.next()];
                let v = match hex {
                    [Some(h), Some(l)] => std::str::from_utf8(&[h, l])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok()),
                    _ => None,
                };
                out.push(v.ok_or_else(|| bad("bad percent-encoding in the query"))?);
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
    }
    String::from_utf8(out).map_err(|_| bad("query is not UTF-8"))
}

/// Members without repeats, first occurrence kept.
fn dedup(ids: &[u32]) -> Vec<u32> {
    let mut seen = HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// Whether a request can change something. Changes run one at a time, in arrival order, as
/// when the API answered on one thread: a PATCH reads, then writes the whole row, and two
/// interleaved ones would lose one's fields.
pub fn is_change(method: &str) -> bool {
    method != "GET"
}

/// The API state of the admin loop.
pub struct Api {
    st: Arc<State>,
    started: Instant,
}

impl Api {
    pub fn new(st: Arc<State>) -> Api {
        Api {
            st,
            started: Instant::now(),
        }
    }

    pub fn state(&self) -> &Arc<State> {
        &self.st
    }

    pub fn authorized(&self, header: Option<&[u8]>) -> bool {
        // `ttserver run` always sets the token; without one nothing matches.
        let token = self.st.cfg.admin.admin_token.as_deref().unwrap_or_default();
        super::token_matches(header, token)
    }

    /// The job of one authenticated request (its answer, if it needs no database).
    pub fn route(&self, method: &str, target: &str, body: &[u8]) -> Step {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let st = &self.st;
        let r = match (method, segs.as_slice()) {
            ("GET", ["v1", "health"]) => Step::done(self.health()),
            ("GET", ["v1", "stats"]) => Step::done(self.stats()),
            ("POST", ["v1", "users"]) => users::create(st, body),
            ("GET", ["v1", "users"]) => users::find(st, query),
            ("GET", ["v1", "users", id]) => users::get(st, id),
            ("PATCH", ["v1", "users", id]) => users::patch(st, id, body),
            ("GET", ["v1", "departments"]) => departs::list(),
            ("POST", ["v1", "departments"]) => departs::create(st, body),
            ("PATCH", ["v1", "departments", id]) => departs::patch(st, id, body),
            ("POST", ["v1", "groups"]) => groups::create(st, body),
            ("GET", ["v1", "groups", id]) => groups::get(id),
            ("PATCH", ["v1", "groups", id]) => groups::patch(id, body),
            ("PUT", ["v1", "groups", id, "members"]) => groups::set_members(st, id, body),
            ("DELETE", ["v1", "groups", id]) => groups::delete(st, id),
            ("POST", ["v1", "messages"]) => groups::post_message(st, body),
            (_, s) if known_path(s) => Err(ApiError(Response::error(
                405,
                "method_not_allowed",
                &format!("{method} is not allowed on {path}"),
            ))),
            _ => Err(not_found(format!("no endpoint {path}"))),
        };
        Step::resolve(r)
    }

    fn health(&self) -> Response {
        Response::json(
            200,
            &json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": self.started.elapsed().as_secs(),
            }),
        )
    }

    fn stats(&self) -> Response {
        use std::sync::atomic::Ordering::Relaxed;
        let st = &self.st;
        let counters: serde_json::Map<String, Value> = st
            .counters
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let ids: Vec<u32> = st.directory.read().active_users().map(|u| u.id).collect();
        // Sessions per msg worker: shows how the kernel spread them (SO_REUSEPORT).
        let mut per_worker = vec![0u64; st.workers().all().len()];
        let mut sessions = 0usize;
        for s in ids.iter().flat_map(|id| st.presence.sessions(*id)) {
            sessions += 1;
            if let Some(n) = per_worker.get_mut(usize::from(s.conn.worker)) {
                *n += 1;
            }
        }
        Response::json(
            200,
            &json!({
                "connections": {
                    "login": st.login_conns.load(Relaxed),
                    "msg": st.msg_conns.load(Relaxed),
                    "file": 0,
                },
                "sessions": sessions,
                "worker_sessions": per_worker,
                "online_users": st.presence.online_users(),
                "counters": counters,
            }),
        )
    }
}

fn known_path(segs: &[&str]) -> bool {
    matches!(
        segs,
        [
            "v1",
            "health" | "stats" | "users" | "departments" | "groups" | "messages"
        ] | ["v1", "users" | "departments" | "groups", _]
            | ["v1", "groups", _, "members"]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(url_decode("a%20b+c%2B").ok().unwrap(), "a b c+");
        assert!(url_decode("%zz").is_err());
        assert_eq!(dedup(&[3, 1, 3, 2, 1]), vec![3, 1, 2]);
        for bad in ["0", "x", "+1", "01", "4294967296", "%31", ""] {
            let Err(ApiError(r)) = parse_id(bad) else {
                panic!("{bad:?} accepted")
            };
            assert_eq!(r.status, 400, "{bad:?}");
        }
        assert_eq!(parse_id("12").ok(), Some(12));
        assert_eq!(parse_id("4294967295").ok(), Some(u32::MAX));
        assert!(known_path(&["v1", "groups", "3", "members"]));
        assert!(!known_path(&["v2"]));
        let r = Response::error(404, "not_found", "x").encode(true);
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("{\"error\":\"not_found\",\"message\":\"x\"}"));
        let r = Response {
            status: 204,
            body: None,
        }
        .encode(false);
        assert_eq!(r, b"HTTP/1.1 204 No Content\r\n\r\n");
        let s = String::from_utf8(Response::busy().encode(false)).unwrap();
        assert!(s.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(s.contains("Retry-After: 1\r\n"));
    }
}

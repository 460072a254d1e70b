//! What each request does: checks made from the head, uploads, downloads, and the answers of
//! the io thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use super::conn::Conn;
use super::head::{query_token, Head, Method};
use super::io::{Done, Job, ReadResult};
use super::{multipart, names};
use super::{BAD_REQUEST, MAX_OTHER_BODY, OK, STORE_FAILED, TOO_LARGE, UNAUTHORIZED};
use crate::msg::state::State;
use crate::net::timer::{DeadlineHeap, TimerKey};
use crate::stats::bump;

/// What the loop needs besides its connections.
/// How fast a request must arrive (`MsfsHeadTimeout`, `MsfsMinBodyRate`): a client that sends
/// a byte now and then cannot hold a connection (idle is reset by every byte).
#[derive(Clone, Copy, Debug)]
pub(super) struct Pace {
    pub(super) head: Duration,
    /// Bytes per second, at least 1.
    pub(super) min_body_rate: u64,
}

pub(super) struct Ctx {
    pub(super) st: Arc<State>,
    pub(super) base_url: String,
    pub(super) require_token: bool,
    pub(super) max_file: usize,
    pub(super) body_limit: usize,
    pub(super) pace: Pace,
    pub(super) jobs: Sender<Job>,
    pub(super) timers: DeadlineHeap,
}

impl Ctx {
    /// Checks made as soon as a head is complete; `true` = rejected (reply queued, the
    /// connection closes after it).
    pub(super) fn reject_head(&self, key: TimerKey, c: &mut Conn, h: &Head) -> bool {
        if h.method != Method::Post {
            if h.chunked || h.body_len > MAX_OTHER_BODY {
                c.close_after = true;
                c.respond_text(400, "bad request: request body too large");
                return true;
            }
            return false;
        }
        let code = if self.require_token && !self.token_ok(key, h) {
            UNAUTHORIZED
        } else if h.body_len > self.body_limit {
            TOO_LARGE
        } else if h.chunked
            || h.content_type
                .as_deref()
                .and_then(multipart::boundary)
                .is_none()
        {
            BAD_REQUEST
        } else {
            return false;
        };
        bump(&self.st.counters.msfs_rejects);
        log::debug!(target: "msfs", "conn={key:?} upload rejected from its head: {code}");
        c.close_after = true;
        c.upload_error(code);
        true
    }

    fn token_ok(&self, key: TimerKey, h: &Head) -> bool {
        let Some(token) = h.token.as_deref().or_else(|| query_token(&h.target)) else {
            return false;
        };
        let user = self.st.tokens.lock().owner_of(token, Instant::now());
        if let Some(u) = user {
            log::debug!(target: "msfs", "conn={key:?} user={u} upload");
        }
        user.is_some()
    }

    /// A complete request: answers it or hands it to the io thread.
    pub(super) fn handle(&mut self, key: TimerKey, c: &mut Conn, h: &Head, bytes: Vec<u8>) {
        match h.method {
            Method::Post => self.upload(key, c, h, bytes),
            Method::Get | Method::Head => match names::parse_target(&h.target) {
                None => c.respond_text(404, "not found"),
                Some(path) => {
                    let job = Job::Read {
                        key,
                        path: path.to_string(),
                        head_only: h.method == Method::Head,
                    };
                    if self.send(job) {
                        c.busy = true;
                    } else {
                        c.respond_text(503, "busy");
                    }
                }
            },
            Method::Other => {
                const TEXT: &[u8] = b"method not allowed\n";
                c.respond_head(
                    405,
                    "text/plain; charset=utf-8",
                    TEXT.len() as u64,
                    "Allow: GET, HEAD, POST\r\n",
                );
                c.out.push_back(TEXT.to_vec());
            }
        }
    }

    fn upload(&mut self, key: TimerKey, c: &mut Conn, h: &Head, bytes: Vec<u8>) {
        let body = bytes.get(h.len..).unwrap_or_default();
        let part = h
            .content_type
            .as_deref()
            .and_then(multipart::boundary)
            .ok_or(multipart::MultipartError::Broken("no boundary"))
            .and_then(|b| multipart::file_part(body, &b));
        let part = match part {
            Ok(p) if p.content.len() > self.max_file => {
                bump(&self.st.counters.msfs_rejects);
                c.close_after = true;
                return c.upload_error(TOO_LARGE);
            }
            Ok(p) => p,
            Err(e) => {
                bump(&self.st.counters.msfs_rejects);
                log::debug!(target: "msfs", "conn={key:?} bad upload: {e:?}");
                return c.upload_error(BAD_REQUEST);
            }
        };
        let mut random = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut random) {
            log::error!(target: "msfs", "no OS randomness: {e}");
            return c.upload_error(STORE_FAILED);
        }
        let path = names::new_path(&part.filename, &random);
        let range = part.content.start + h.len..part.content.end + h.len;
        let job = Job::Store {
            key,
            data: bytes,
            range,
            path,
        };
        if self.send(job) {
            c.busy = true;
        } else {
            c.upload_error(STORE_FAILED);
        }
    }

    fn send(&self, job: Job) -> bool {
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                // Cannot happen (one job per connection, capacity MAX_CONNS); answered anyway.
                log::error!(target: "msfs", "io queue full");
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                log::error!(target: "msfs", "io thread gone");
                false
            }
        }
    }

    /// An answer of the io thread for connection `c`.
    pub(super) fn finish(&mut self, c: &mut Conn, d: Done) {
        c.busy = false;
        c.last = Instant::now();
        match d {
            Done::Stored {
                path,
                result: Ok(()),
                ..
            } => {
                bump(&self.st.counters.msfs_uploads);
                let url = format!("{}/{path}", self.base_url);
                c.upload_reply(OK, "ok", &path, &url);
            }
            Done::Stored {
                path,
                result: Err(e),
                ..
            } => {
                bump(&self.st.counters.msfs_store_failures);
                log::error!(target: "msfs", "storing {path} failed: {e}");
                c.upload_error(STORE_FAILED);
            }
            Done::Read { path, result, .. } => match result {
                ReadResult::Found { len, bytes } => {
                    bump(&self.st.counters.msfs_downloads);
                    let ctype = names::content_type(&path);
                    c.respond_head(200, ctype, len, "");
                    if !bytes.is_empty() {
                        c.out.push_back(bytes);
                    }
                }
                ReadResult::NotFound => c.respond_text(404, "not found"),
                ReadResult::Failed(e) => {
                    log::error!(target: "msfs", "reading {path} failed: {e}");
                    c.respond_text(500, "read failed");
                }
            },
        }
    }
}

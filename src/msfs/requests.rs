//! What each request does: checks made from the head, uploads, downloads, and the answers of
//! the io thread.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use parking_lot::Mutex;

use super::conn::{answer, Conn, Phase};
use super::head::{query_token, Head, Method};
use super::io::{Done, Job, ReadResult};
use super::service::Msg;
use super::{multipart, names};
use super::{BAD_REQUEST, MAX_OTHER_BODY, OK, STORE_FAILED, TOO_LARGE, UNAUTHORIZED};
use crate::auth::token_registry::TokenRegistry;
use crate::net::service::Outbox;
use crate::net::ConnId;
use crate::stats::{bump, Counters};

/// How fast a request must arrive (`MsfsHeadTimeout`, `MsfsMinBodyRate`): a client that sends
/// a byte now and then cannot hold a connection (idle is reset by every byte).
#[derive(Clone, Copy, Debug)]
pub(super) struct Pace {
    pub(super) head: Duration,
    /// Bytes per second, at least 1.
    pub(super) min_body_rate: u64,
}

/// What became of a complete request.
pub(super) enum Handled {
    /// A response is queued.
    Answered,
    /// A job went to the io thread.
    Job,
    /// The io queue is full (or others wait for it): the request waits its turn.
    Full,
}

/// The msfs service: what the loop needs besides its connections.
pub(super) struct Ctx {
    pub(super) counters: Arc<Counters>,
    /// Session tokens (B-TOK-2).
    pub(super) tokens: Arc<Mutex<TokenRegistry>>,
    pub(super) base_url: String,
    pub(super) require_token: bool,
    pub(super) max_file: usize,
    pub(super) body_limit: usize,
    pub(super) pace: Pace,
    pub(super) jobs: Sender<Job>,
    /// Connections whose complete request waits for room in `jobs`, in arrival order.
    pub(super) waiting: VecDeque<ConnId>,
}

impl Ctx {
    /// Checks made as soon as a head is complete; `true` = rejected (reply queued, the
    /// connection closes after it).
    pub(super) fn reject_head(
        &self,
        out: &mut Outbox<Msg>,
        key: ConnId,
        c: &mut Conn,
        h: &Head,
    ) -> bool {
        if h.method != Method::Post {
            if h.chunked || h.body_len > MAX_OTHER_BODY {
                c.close_after = true;
                c.respond_text(out, key, 400, "bad request: request body too large");
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
        bump(&self.counters.msfs_rejects);
        log::debug!(target: "msfs", "conn={key:?} upload rejected from its head: {code}");
        c.close_after = true;
        c.upload_error(out, key, code);
        true
    }

    fn token_ok(&self, key: ConnId, h: &Head) -> bool {
        let Some(token) = h.token.as_deref().or_else(|| query_token(&h.target)) else {
            return false;
        };
        let user = self.tokens.lock().owner_of(token, Instant::now());
        if let Some(u) = user {
            log::debug!(target: "msfs", "conn={key:?} user={u} upload");
        }
        user.is_some()
    }

    /// A complete request (`bytes`: head and body): answers it or hands it to the io thread.
    pub(super) fn handle(
        &mut self,
        out: &mut Outbox<Msg>,
        key: ConnId,
        c: &mut Conn,
        h: &Head,
        bytes: &[u8],
    ) -> Handled {
        match h.method {
            Method::Post => self.upload(out, key, c, h, bytes),
            Method::Get | Method::Head => match names::parse_target(&h.target) {
                None => {
                    c.respond_text(out, key, 404, "not found");
                    Handled::Answered
                }
                Some(path) => {
                    if !self.has_room(c) {
                        return Handled::Full;
                    }
                    let job = Job::Read {
                        key,
                        path: path.to_string(),
                        head_only: h.method == Method::Head,
                    };
                    if self.send(job) {
                        Handled::Job
                    } else {
                        c.respond_text(out, key, 503, "busy");
                        Handled::Answered
                    }
                }
            },
            Method::Other => {
                const TEXT: &[u8] = b"method not allowed\n";
                c.respond_head(
                    out,
                    key,
                    405,
                    "text/plain; charset=utf-8",
                    TEXT.len() as u64,
                    "Allow: GET, HEAD, POST\r\n",
                );
                answer(out, key, TEXT.to_vec());
                Handled::Answered
            }
        }
    }

    fn upload(
        &mut self,
        out: &mut Outbox<Msg>,
        key: ConnId,
        c: &mut Conn,
        h: &Head,
        bytes: &[u8],
    ) -> Handled {
        let body = bytes.get(h.len..).unwrap_or_default();
        let part = h
            .content_type
            .as_deref()
            .and_then(multipart::boundary)
            .ok_or(multipart::MultipartError::Broken("no boundary"))
            .and_then(|b| multipart::file_part(body, &b));
        let part = match part {
            Ok(p) if p.content.len() > self.max_file => {
                bump(&self.counters.msfs_rejects);
                c.close_after = true;
                c.upload_error(out, key, TOO_LARGE);
                return Handled::Answered;
            }
            Ok(p) => p,
            Err(e) => {
                bump(&self.counters.msfs_rejects);
                log::debug!(target: "msfs", "conn={key:?} bad upload: {e:?}");
                c.upload_error(out, key, BAD_REQUEST);
                return Handled::Answered;
            }
        };
        if !self.has_room(c) {
            return Handled::Full;
        }
        let mut random = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut random) {
            log::error!(target: "msfs", "no OS randomness: {e}");
            c.upload_error(out, key, STORE_FAILED);
            return Handled::Answered;
        }
        let path = names::new_path(&part.filename, &random);
        // The file's bytes are copied out of the loop's input buffer, which the next request
        // reuses.
        let data = body.get(part.content).unwrap_or_default().to_vec();
        if self.send(Job::Store { key, data, path }) {
            Handled::Job
        } else {
            c.upload_error(out, key, STORE_FAILED);
            Handled::Answered
        }
    }

    /// Whether `c`'s job may go to the io queue now: there is room, and no earlier request
    /// waits for it (a request resumed from the wait list is that earlier one).
    fn has_room(&self, c: &Conn) -> bool {
        !self.jobs.is_full() && (c.phase == Phase::Queued || self.waiting.is_empty())
    }

    fn send(&self, job: Job) -> bool {
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                // Cannot happen: only this thread sends, and it checked for room.
                log::error!(target: "msfs", "io queue full");
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                log::error!(target: "msfs", "io thread gone");
                false
            }
        }
    }

    /// Room in the io queue: how many waiting requests may try again now.
    pub(super) fn room(&self) -> usize {
        self.jobs
            .capacity()
            .unwrap_or(usize::MAX)
            .saturating_sub(self.jobs.len())
    }

    /// An answer of the io thread for connection `c`.
    pub(super) fn finish(&mut self, out: &mut Outbox<Msg>, key: ConnId, c: &mut Conn, d: Done) {
        match d {
            Done::Stored {
                path,
                result: Ok(()),
                ..
            } => {
                bump(&self.counters.msfs_uploads);
                let url = format!("{}/{path}", self.base_url);
                c.upload_reply(out, key, OK, "ok", &path, &url);
            }
            Done::Stored {
                path,
                result: Err(e),
                ..
            } => {
                bump(&self.counters.msfs_store_failures);
                log::error!(target: "msfs", "storing {path} failed: {e}");
                c.upload_error(out, key, STORE_FAILED);
            }
            Done::Read { path, result, .. } => match result {
                ReadResult::Found { len, bytes } => {
                    bump(&self.counters.msfs_downloads);
                    let ctype = names::content_type(&path);
                    c.respond_head(out, key, 200, ctype, len, "");
                    if !bytes.is_empty() {
                        answer(out, key, bytes);
                    }
                }
                ReadResult::NotFound => c.respond_text(out, key, 404, "not found"),
                ReadResult::Failed(e) => {
                    log::error!(target: "msfs", "reading {path} failed: {e}");
                    c.respond_text(out, key, 500, "read failed");
                }
            },
        }
    }
}

//! The admin API as a [`Service`] of the event loop: HTTP/1.1 framing, deadlines, keep-alive,
//! the bearer token, and the jobs of requests that need the database.
//!
//! A request needing no database (health, stats, a refused token, a bad body) is answered in
//! [`Service::on_frame`]. Any other one becomes a job ([`super::job`]): the connection's input
//! is held until its answer is sent, so answers keep request order, and the job's steps come
//! back as messages. Changes (every method but GET) run one at a time in arrival order; reads
//! run side by side.
//!
//! Overflow: a full reader pool or writer queue, or `AdminMaxJobs` jobs in flight (more than connections: a job goes on
//! after its connection closed), answers 503
//! with `Retry-After` before anything changed. A read that follows a commit is never refused:
//! it waits in [`AdminService::retry`] until a reader thread takes a job and rings the storage
//! room (`store::room`), which wakes this loop (the commit happened; its answer and cache
//! reload must follow).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use super::api::{internal, is_change, Api, Response};
use super::frame::{self, Parsed, Request};
use super::job::{read_job, AdminMsg, Pending, Step, WriteStep};
use crate::msg::outlet::{AdminCache, WriteTag};
use crate::net::service::{Action, Bytes, Close, Conns, Framing, Outbox, Service, Verdict};
use crate::net::{ConnId, WorkerHandle};
use crate::store::readers::ReadJob;
use crate::store::writer::WriteJob;

/// The admin API's one loop (`ConnId::worker`).
pub const LOOP_ID: u16 = 0;
/// A started request (the first one: counted from the accept) must be complete within this
/// time.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// An idle keep-alive connection is closed after this time.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// After a last answer: time to write it and see the peer close.
const LINGER: Duration = Duration::from_secs(5);
/// Room in the loop's channel beyond one message per job in flight (`AdminMaxJobs`; each job
/// has at most one step outstanding, so the channel never fills): the stop message and slack.
pub const CHANNEL_SLACK: usize = 8;
/// Per connection.
pub struct HttpConn {
    /// No byte of the next request seen yet: its first one starts the request deadline.
    fresh: bool,
    /// `100 Continue` was sent for the pending request.
    continued: bool,
    /// The request [`Service::frame`] found complete, for [`Service::on_frame`].
    parsed: Option<Request>,
    /// The answer to input the framer refused.
    refused: Option<Response>,
    /// The job answering the current request; the input is held meanwhile.
    job: Option<u64>,
    held: bool,
    /// Close once the current request is answered.
    close: bool,
    /// The peer closed its side while a job ran.
    eof: bool,
}

struct Job {
    conn: ConnId,
    /// Holds the change slot.
    change: bool,
    /// Its write committed.
    committed: bool,
}

pub struct AdminService {
    api: Api,
    /// This loop's channel and waker: reader jobs answer through it.
    me: WorkerHandle<AdminMsg>,
    /// Writes accepted by the writer, to the commit relay.
    relay: Sender<Pending>,
    next_job: u64,
    jobs: HashMap<u64, Job>,
    change_running: bool,
    /// Changes waiting for the one before them, routed when their turn comes (their checks see
    /// what the earlier ones did).
    changes: VecDeque<(u64, Request)>,
    /// Post-commit reads the pool had no room for.
    retry: VecDeque<ReadJob>,
    /// This loop's number at the storage room.
    room_id: u16,
    /// Answers of finished jobs, sent at the end of the callback.
    answers: Vec<(ConnId, u64, Response)>,
}

impl AdminService {
    pub fn new(api: Api, me: WorkerHandle<AdminMsg>, relay: Sender<Pending>) -> AdminService {
        let waker = me.clone();
        let room_id = api.state().room.add(Box::new(move || waker.wake()));
        AdminService {
            api,
            me,
            relay,
            next_job: 1,
            jobs: HashMap::new(),
            change_running: false,
            changes: VecDeque::new(),
            retry: VecDeque::new(),
            room_id,
            answers: Vec::new(),
        }
    }

    /// Offers the waiting post-commit reads to the pool again, in order; waits for the room
    /// again if it is still full.
    fn submit_retries(&mut self) {
        let st = Arc::clone(self.api.state());
        let mut refusals = 0;
        while let Some(work) = self.retry.pop_front() {
            if let Err(work) = st.readers.submit(work) {
                self.retry.push_front(work);
                st.room.wait(self.room_id);
                refusals += 1;
                // Room came between the refusal and the wait (no ring for it): try again, a
                // bounded number of times.
                if st.readers.all_full() || refusals >= 3 {
                    break;
                }
            }
        }
    }

    /// Carries out one step of `job`.
    fn drive(&mut self, job: u64, step: Step) {
        let st = Arc::clone(self.api.state());
        match step {
            Step::Done(resp) => self.finish(job, resp),
            Step::Read(f) => {
                let work = read_job(f, self.me.clone(), job);
                if let Err(work) = st.readers.submit(work) {
                    if self.jobs.get(&job).is_some_and(|j| j.committed) {
                        self.retry.push_back(work);
                        // Waiting first, then looking again: a job taken in between rings.
                        st.room.wait(self.room_id);
                        if !st.readers.all_full() {
                            self.submit_retries();
                        }
                    } else {
                        self.finish(job, Response::busy());
                    }
                }
            }
            Step::Write(w) => {
                let WriteStep { op, deliver, then } = *w;
                let (tx, reply) = crossbeam_channel::bounded(1);
                let tag = WriteTag::admin(tx, AdminCache::of(&op), deliver);
                match st.writer.try_send(WriteJob { op, tag }) {
                    Ok(()) => {
                        if self.relay.send(Pending { job, reply, then }).is_err() {
                            self.finish(job, internal("the commit relay has stopped").0);
                        }
                    }
                    // A job writes once, so nothing of it is committed yet.
                    Err(TrySendError::Full(_)) => self.finish(job, Response::busy()),
                    Err(TrySendError::Disconnected(_)) => {
                        self.finish(job, internal("the storage writer has stopped").0);
                    }
                }
            }
        }
    }

    fn finish(&mut self, job: u64, resp: Response) {
        if let Some(j) = self.jobs.remove(&job) {
            if j.change {
                self.change_running = false;
            }
            self.answers.push((j.conn, job, resp));
        }
    }

    /// Starts waiting changes while none runs.
    fn grant_changes(&mut self) {
        while !self.change_running {
            let Some((job, req)) = self.changes.pop_front() else {
                return;
            };
            if !self.jobs.contains_key(&job) {
                continue;
            }
            self.change_running = true;
            let step = self.api.route(&req.method, &req.target, &req.body);
            self.drive(job, step);
        }
    }

    /// Sends the answers of finished jobs whose connections are still there.
    fn deliver(&mut self, out: &mut Outbox<AdminMsg>, conns: &mut dyn Conns<HttpConn>) {
        for (id, job, resp) in std::mem::take(&mut self.answers) {
            if let Some(c) = conns.get_mut(id).filter(|c| c.job == Some(job)) {
                respond(out, id, c, &resp);
            }
        }
    }
}

/// Queues `resp` as the answer to the connection's current request, then closes or waits for
/// the next request.
fn respond(out: &mut Outbox<AdminMsg>, id: ConnId, c: &mut HttpConn, resp: &Response) {
    out.push(Action::Answer(id, Bytes::Owned(resp.encode(c.close))));
    c.job = None;
    if c.close {
        out.push(Action::Close(id, Close::Linger(LINGER)));
    } else if c.eof {
        out.close_after_flush(id, LINGER);
    } else {
        out.deadline(id, Some(Instant::now() + IDLE_TIMEOUT));
        if c.held {
            out.push(Action::Resume(id));
        }
    }
    c.held = false;
}

impl Service for AdminService {
    type Conn = HttpConn;
    type Msg = AdminMsg;

    fn accept(
        &mut self,
        out: &mut Outbox<AdminMsg>,
        id: ConnId,
        _listener: usize,
        _peer: SocketAddr,
    ) -> Option<HttpConn> {
        // The first request is due REQUEST_DEADLINE after the accept (and again after its first
        // byte), so a connection that sends nothing does not hold a slot for IDLE_TIMEOUT.
        out.deadline(id, Some(Instant::now() + REQUEST_DEADLINE));
        Some(HttpConn {
            fresh: true,
            continued: false,
            parsed: None,
            refused: None,
            job: None,
            held: false,
            close: false,
            eof: false,
        })
    }

    fn frame(
        &mut self,
        out: &mut Outbox<AdminMsg>,
        id: ConnId,
        conn: &mut HttpConn,
        input: &[u8],
    ) -> Framing {
        if conn.fresh {
            conn.fresh = false;
            out.deadline(id, Some(Instant::now() + REQUEST_DEADLINE));
        }
        match frame::parse(input) {
            Parsed::Incomplete => Framing::Partial,
            Parsed::NeedBody => {
                if !conn.continued {
                    conn.continued = true;
                    let cont = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
                    out.push(Action::Answer(id, Bytes::Owned(cont)));
                }
                Framing::Partial
            }
            Parsed::Bad(resp) => {
                let why = format!("refused request ({})", resp.status);
                conn.refused = Some(resp);
                Framing::Invalid(why)
            }
            Parsed::Request(req) => {
                let n = req.consumed;
                conn.parsed = Some(req);
                Framing::Complete(n)
            }
        }
    }

    fn on_frame(
        &mut self,
        out: &mut Outbox<AdminMsg>,
        id: ConnId,
        conn: &mut HttpConn,
        frame: &[u8],
    ) -> Verdict {
        conn.fresh = true;
        conn.continued = false;
        let parsed = conn
            .parsed
            .take()
            .map_or_else(|| frame::parse(frame), Parsed::Request);
        let req = match parsed {
            Parsed::Request(r) => r,
            // frame() found this request complete; nothing else can come back.
            _ => {
                conn.close = true;
                respond(out, id, conn, &internal("request framing failed").0);
                return Verdict::Consumed;
            }
        };
        conn.close = req.close;
        // B-ADM-2: the token first, before anything is looked at.
        if !self.api.authorized(req.auth.as_deref()) {
            let resp = Response::error(401, "unauthorized", "missing or wrong bearer token");
            respond(out, id, conn, &resp);
            return Verdict::Consumed;
        }
        let change = is_change(&req.method);
        let step = if change {
            None
        } else {
            match self.api.route(&req.method, &req.target, &req.body) {
                Step::Done(resp) => {
                    respond(out, id, conn, &resp);
                    return Verdict::Consumed;
                }
                step => Some(step),
            }
        };
        if self.jobs.len() >= self.api.state().cfg.admin.admin_max_jobs {
            respond(out, id, conn, &Response::busy());
            return Verdict::Consumed;
        }
        let job = self.next_job;
        self.next_job += 1;
        self.jobs.insert(
            job,
            Job {
                conn: id,
                change,
                committed: false,
            },
        );
        conn.job = Some(job);
        match step {
            Some(step) => self.drive(job, step),
            None => self.changes.push_back((job, req)),
        }
        self.grant_changes();
        // Answers found at once (an error, a full queue) go out now; any other connection's
        // (none is expected here) through this loop's own queue.
        for (cid, j, resp) in std::mem::take(&mut self.answers) {
            if cid == id && conn.job == Some(j) {
                respond(out, id, conn, &resp);
            } else {
                out.post(
                    LOOP_ID,
                    AdminMsg::Answer {
                        conn: cid,
                        job: j,
                        resp,
                    },
                );
            }
        }
        if conn.job.is_some() {
            conn.held = true;
            out.push(Action::Hold(id));
            out.deadline(id, None);
        }
        Verdict::Consumed
    }

    fn on_bad_input(
        &mut self,
        out: &mut Outbox<AdminMsg>,
        id: ConnId,
        conn: &mut HttpConn,
        why: &str,
    ) {
        let resp = conn
            .refused
            .take()
            .unwrap_or_else(|| Response::error(400, "bad_request", why));
        out.push(Action::Answer(id, Bytes::Owned(resp.encode(true))));
        out.push(Action::Close(id, Close::Linger(LINGER)));
    }

    fn on_eof(&mut self, out: &mut Outbox<AdminMsg>, id: ConnId, conn: &mut HttpConn) {
        if conn.job.is_some() {
            conn.eof = true; // closed once answered
        } else {
            out.close_after_flush(id, LINGER);
        }
    }

    fn on_message(
        &mut self,
        out: &mut Outbox<AdminMsg>,
        conns: &mut dyn Conns<HttpConn>,
        msg: AdminMsg,
    ) {
        match msg {
            AdminMsg::Step {
                job,
                committed,
                step,
            } => {
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.committed |= committed;
                    self.drive(job, step);
                }
            }
            AdminMsg::Answer { conn, job, resp } => self.answers.push((conn, job, resp)),
            AdminMsg::Stop => out.push(Action::Exit {
                deadline: Instant::now(),
            }),
        }
        self.grant_changes();
        self.deliver(out, conns);
    }

    fn on_timeout(&mut self, out: &mut Outbox<AdminMsg>, id: ConnId, _conn: &mut HttpConn) {
        out.close_now(id, "request deadline or keep-alive idle time passed");
    }

    fn on_closed(&mut self, _out: &mut Outbox<AdminMsg>, _id: ConnId, _conn: HttpConn, _why: &str) {
        // A job of the connection goes on (a change is made even if nobody waits for its
        // answer); its answer finds no connection and is dropped.
    }

    fn on_tick(&mut self, _out: &mut Outbox<AdminMsg>, _now: Instant) {
        if !self.retry.is_empty() && self.api.state().room.rang(self.room_id) {
            self.submit_retries();
        }
    }
}

#[cfg(test)]
mod tests;

//! A request that needs the database is a job: a chain of [`Step`]s. The loop thread only routes
//! and validates; a read runs on the reader pool, a change goes through the group-commit
//! writer, and each step's outcome comes back to the loop as an [`AdminMsg`] through its bounded
//! channel and waker, which then starts the next step or sends the answer.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crossbeam_channel::Receiver;
use rusqlite::Connection;

use super::api::{internal, ApiError, Response};
use crate::msg::outlet::AdminDelivery;
use crate::net::WorkerHandle;
use crate::store::writer::{WriteOp, WriteOut};
use crate::store::StoreError;

/// What a step leads to; an error is the answer.
pub type StepResult = Result<Step, ApiError>;

/// A read, run on a reader thread.
pub type ReadFn = Box<dyn FnOnce(&Connection) -> StepResult + Send>;
/// What follows a committed write. It runs on the commit relay's thread (not the loop): cache
/// updates and pushes to msg workers may wait there for a full channel.
pub type ThenFn = Box<dyn FnOnce(WriteOut) -> StepResult + Send>;

pub enum Step {
    /// The answer.
    Done(Response),
    Read(ReadFn),
    /// One write through the writer (B-ADM-4). Boxed: a write op is large.
    Write(Box<WriteStep>),
}

pub struct WriteStep {
    pub op: WriteOp,
    /// Sent by the writer's outlet right after the commit, in commit order with client
    /// messages (B-ADM-7).
    pub deliver: Option<AdminDelivery>,
    pub then: ThenFn,
}

impl Step {
    pub fn done(r: Response) -> StepResult {
        Ok(Step::Done(r))
    }

    pub fn read(f: impl FnOnce(&Connection) -> StepResult + Send + 'static) -> StepResult {
        Ok(Step::Read(Box::new(f)))
    }

    pub fn write(
        op: WriteOp,
        then: impl FnOnce(WriteOut) -> StepResult + Send + 'static,
    ) -> StepResult {
        Self::write_with(op, None, then)
    }

    pub fn write_with(
        op: WriteOp,
        deliver: Option<AdminDelivery>,
        then: impl FnOnce(WriteOut) -> StepResult + Send + 'static,
    ) -> StepResult {
        Ok(Step::Write(Box::new(WriteStep {
            op,
            deliver,
            then: Box::new(then),
        })))
    }

    /// An error becomes its answer.
    pub fn resolve(r: StepResult) -> Step {
        r.unwrap_or_else(|ApiError(resp)| Step::Done(resp))
    }
}

/// Messages to the admin loop.
pub enum AdminMsg {
    /// The next step of job `job`; `committed` when it follows a committed write.
    Step {
        job: u64,
        committed: bool,
        step: Step,
    },
    /// The answer of a job of another connection, finished while the loop served this one.
    Answer {
        conn: crate::net::ConnId,
        job: u64,
        resp: Response,
    },
    /// Leave the loop (the server stops).
    Stop,
}

/// Sends a job's next step to the loop; if the job panicked instead, a 500 (so its connection
/// and, for a change, every later change are not held forever).
struct Reply {
    to: WorkerHandle<AdminMsg>,
    job: u64,
    sent: bool,
}

impl Reply {
    fn send(mut self, step: Step, committed: bool) {
        self.sent = true;
        // Never waits: the channel has room for one message per job in flight.
        self.to.send(AdminMsg::Step {
            job: self.job,
            committed,
            step,
        });
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.sent {
            log::error!(target: "admin", "admin job {} failed without an answer", self.job);
            self.to.send(AdminMsg::Step {
                job: self.job,
                committed: false,
                step: Step::Done(internal("the request failed").0),
            });
        }
    }
}

/// The reader-pool job of a read step. The reply guard is made when the job runs, so a job the
/// pool refused (and gave back) sends nothing when dropped.
pub fn read_job(f: ReadFn, to: WorkerHandle<AdminMsg>, job: u64) -> crate::store::readers::ReadJob {
    Box::new(move |db: &Connection| {
        let reply = Reply {
            to,
            job,
            sent: false,
        };
        let step = Step::resolve(f(db));
        reply.send(step, false);
    })
}

/// A write accepted by the writer, waiting for its commit.
pub struct Pending {
    pub job: u64,
    pub reply: Receiver<Result<WriteOut, StoreError>>,
    pub then: ThenFn,
}

/// Thread "admin-commit". The writer's outlet answers an admin write on a plain channel
/// (`WriteKind::Admin`), which cannot wake a loop; this thread waits for those answers (in
/// submission order, which is the writer's commit order), runs what follows the commit and hands
/// the next step to the loop through its channel and waker. It ends once the loop is gone and
/// every write it was given is answered.
pub fn relay(pending: Receiver<Pending>, to: WorkerHandle<AdminMsg>) {
    for p in pending {
        let reply = Reply {
            to: to.clone(),
            job: p.job,
            sent: false,
        };
        match p.reply.recv() {
            Ok(Ok(out)) => {
                let then = p.then;
                // A panic after the commit becomes a 500 (the guard), not a dead relay.
                if let Ok(step) = catch_unwind(AssertUnwindSafe(|| Step::resolve(then(out)))) {
                    reply.send(step, true);
                }
            }
            Ok(Err(e)) => reply.send(Step::Done(ApiError::from(e).0), false),
            Err(_) => reply.send(
                Step::Done(internal("the storage writer has stopped").0),
                false,
            ),
        }
    }
}

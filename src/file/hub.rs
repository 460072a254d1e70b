//! The way into the file role from the msg role: new tasks (6/10), offline-file deletions
//! (6/19), and the addresses clients are sent to (6/11, 6/12, 6/17).
//!
//! The file role owns every task; the msg role only announces them. A task is announced on the
//! file loop's announcement channel before its 6/11 is queued, so by the time the client's 6/1
//! arrives on the file port the announcement is already in the channel, and the file service
//! drains that channel before a 6/1 looks its task up (see [`super::service`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use super::io::IoJob;
use super::link::task_frame;
use super::remote::Remote;
use crate::auth::token_gen::new_token;
use crate::proto::internal;

/// 6/10 `trans_mode` / 6/4 `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransMode {
    Online = 1,
    Offline = 2,
}

/// One transfer between a sender and a receiver (B-FILE-3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Server-generated, B-TOK-1 layout: the only client-visible name of the task, and with
    /// the receiver id the only part of a disk path (B-FILE-16).
    pub id: String,
    pub from: u32,
    pub to: u32,
    pub name: Vec<u8>,
    pub size: u32,
    pub mode: TransMode,
}

/// Why a task could not be created (6/11 result 2 or 8).
#[derive(Debug, PartialEq, Eq)]
pub enum CreateError {
    /// No random id, `MaxFileTasks` live tasks, or the file role's queue is full: 6/11
    /// result 2.
    NotCreatable,
    /// The file role is not running: 6/11 result 8.
    NoFileService,
}

/// Token validity as the msg role knows it (B-TOK-2).
pub trait TokenCheck: Send + Sync {
    fn valid_for(&self, token: &[u8], user: u32) -> bool;
}

/// What the file role tells the msg role: an offline upload is complete and recorded, so every
/// session of the receiver gets 6/12 with `offline_ready` 1 (B-FILE-9).
pub trait ReadyNotice: Send + Sync {
    fn upload_complete(&self, task: &Task);
}

/// Where the file role is.
#[derive(Clone)]
enum Route {
    /// In this process: its announcement channel (`FileTaskQueueCap`), the loop's waker and
    /// its io thread (`FileIoQueueCap`). Neither is waited on: a full one refuses (6/11 result 2, a 6/19
    /// not applied).
    Local {
        tasks: Sender<Task>,
        waker: Arc<mio::Waker>,
        io: Sender<IoJob>,
        /// Live tasks (kept by the file role) and `MaxFileTasks`.
        live: Arc<AtomicUsize>,
        max: usize,
    },
    /// Another process, over a link (`FileServer`).
    Remote(Arc<Remote>),
}

/// Shared handle: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct FileHub {
    route: Route,
    /// (ip, port) for every `FileAddr` entry, port = the file port.
    pub addrs: Arc<[(Vec<u8>, u16)]>,
}

impl FileHub {
    pub(super) fn new(
        tasks: Sender<Task>,
        waker: Arc<mio::Waker>,
        io: Sender<IoJob>,
        (live, max): (Arc<AtomicUsize>, usize),
        addrs: Vec<(Vec<u8>, u16)>,
    ) -> FileHub {
        FileHub {
            route: Route::Local {
                tasks,
                waker,
                io,
                live,
                max,
            },
            addrs: addrs.into(),
        }
    }

    /// A hub for a file role in another process, reached through `remote`.
    pub fn remote(remote: Arc<Remote>, addrs: Vec<(Vec<u8>, u16)>) -> FileHub {
        FileHub {
            route: Route::Remote(remote),
            addrs: addrs.into(),
        }
    }

    /// B-FILE-3: a new task with a random id, announced to the file role.
    pub fn create_task(
        &self,
        from: u32,
        to: u32,
        name: &[u8],
        size: u32,
        mode: TransMode,
    ) -> Result<Task, CreateError> {
        let id = new_token().map_err(|_| CreateError::NotCreatable)?;
        let task = Task {
            id,
            from,
            to,
            name: name.to_vec(),
            size,
            mode,
        };
        match &self.route {
            Route::Local {
                tasks,
                waker,
                live,
                max,
                ..
            } => {
                // A place is reserved here, before the announcement; the file role gives it
                // back when the task ends.
                let reserved = live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < *max).then_some(n + 1)
                });
                if reserved.is_err() {
                    return Err(CreateError::NotCreatable);
                }
                let sent = tasks.try_send(task.clone());
                if sent.is_err() {
                    live.fetch_sub(1, Ordering::AcqRel);
                }
                match sent {
                    Ok(()) => {
                        let _ = waker.wake();
                        Ok(task)
                    }
                    Err(TrySendError::Full(_)) => Err(CreateError::NotCreatable),
                    Err(TrySendError::Disconnected(_)) => Err(CreateError::NoFileService),
                }
            }
            Route::Remote(r) => {
                if !r.is_up() {
                    return Err(CreateError::NoFileService);
                }
                match r.tx.try_send(task_frame(internal::TASK, &task)) {
                    Ok(()) => Ok(task),
                    Err(_) => Err(CreateError::NotCreatable),
                }
            }
        }
    }

    /// B-FILE-14: delete the offline file `task_id` if it goes from `from` to `to` (record
    /// first, then the bytes). 6/19 has no reply; `done` runs once the deletion has been
    /// applied (or was not queued), so the requester's later reads can wait for it (B-GEN-1).
    pub fn delete_offline(&self, task_id: &[u8], from: u32, to: u32, done: OnDone) -> bool {
        match &self.route {
            Route::Local { io, .. } => io
                .try_send(IoJob::Delete {
                    task_id: task_id.to_vec(),
                    from,
                    to,
                    done,
                })
                .is_ok(),
            Route::Remote(r) => r.delete(task_id, from, to, done),
        }
    }
}

/// Runs its function exactly once, when dropped. The io thread drops it after it has applied
/// a 6/19 (committed the record's deletion and removed the file); a job that is never handled
/// drops it too, so whoever waits on it is never left waiting.
pub struct OnDone(Option<Box<dyn FnOnce() + Send>>);

impl OnDone {
    pub fn new(f: impl FnOnce() + Send + 'static) -> OnDone {
        OnDone(Some(Box::new(f)))
    }
}

impl Drop for OnDone {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl std::fmt::Debug for OnDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnDone")
    }
}

/// Whether `s` has the layout of a server-generated id (B-TOK-1): 8-4-4-4-12 lowercase hex.
/// Only such strings are ever joined into a disk path (B-FILE-16).
pub fn is_server_id(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_ids_pass() {
        let good = new_token().unwrap();
        assert!(is_server_id(good.as_bytes()));
        for bad in [
            "../x",
            "",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c88",
            "6BA7B810-9DAD-11D1-80B4-00C04FD430C8",
            "6ba7b810/9dad-11d1-80b4-00c04fd430c8",
            "../../../../../../../../etc/passwd/x",
            "6ba7b810-9dad-11d1-80b4-00c04fd4/../",
        ] {
            assert!(!is_server_id(bad.as_bytes()), "{bad}");
        }
    }
}

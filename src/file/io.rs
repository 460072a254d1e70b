//! Thread "file-io": every disk and database operation of the file role, so the file loop never
//! blocks (architecture.md section 2).
//!
//! - Offline uploads go to `DataDir/offline/tmp/<task>.<attempt>.part` (one file per attempt),
//!   one segment at a time; on completion the open file goes to thread "file-sync"
//!   ([`super::place`]), which fsyncs it,
//!   renames it to `DataDir/offline/<to_id>/<task>`, fsyncs the directory and only then commits
//!   the record (B-FILE-9), so one large fsync does not hold up every other transfer's io.
//! - Downloads: the record is checked and the finished file mapped with `memmap2`; the worker
//!   copies pulls straight from the map (B-FILE-11).
//! - The sweeper runs at start-up and every `FileSweepInterval`: records older than
//!   `OfflineFileDays` go first, then their files (B-FILE-15).
//!
//! Records are read on this thread's own connection; they are written (insert, 6/19 delete,
//! expiry) through [`FileRecords`] only: the process's group-commit writer inside `ttserver
//! run`, the role's own write connection in `ttserver file`. A write blocks this thread until
//! it is committed.
//!
//! Paths are built from server-generated ids only: the receiver id (a number) and a task id that
//! passed [`is_server_id`] (B-FILE-16).

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use memmap2::Mmap;
use rusqlite::Connection;

use super::hub::{is_server_id, OnDone, ReadyNotice, Task};
use super::place::{self, PlaceJob, Placer};
use super::records::FileRecords;
use super::{Cid, FileMsg};
use crate::stats::{bump, Counters};
use crate::store::files::{self, OfflineFile};

/// Work for the io thread.
#[derive(Debug)]
pub enum IoJob {
    /// Start (or restart at offset 0) the upload of an offline task.
    Begin { task: Arc<Task>, by: Cid },
    /// Append one verified segment to the task's temporary file.
    Append {
        task_id: String,
        by: Cid,
        data: Vec<u8>,
    },
    /// The last segment is in: fsync, rename, commit the record, tell the receiver.
    Finish { task: Arc<Task>, by: Cid },
    /// Drop the temporary file of an abandoned upload attempt (B-FILE-10).
    Abandon { task_id: String, by: Cid },
    /// 6/1 mode 4: find the record and map the file.
    OpenDownload {
        cid: Cid,
        task_id: Vec<u8>,
        user: u32,
    },
    /// 6/19: delete a record and its file (B-FILE-14); `done` is dropped afterwards.
    Delete {
        task_id: Vec<u8>,
        from: u32,
        to: u32,
        done: OnDone,
    },
    /// End the thread (the file role is stopping).
    Stop,
}

// Jobs waiting for the io thread (`jobs` of [`run`]): `FileIoQueueCap`. Overflow: the file
// loop keeps the job in its [`IoPort`] backlog and holds the connection that submitted it; the
// msg role's 6/19 ([`super::hub::FileHub::delete_offline`]) is refused and counted
// (`file_rejected`), as over a full link. A job holds at most one upload segment
// (`FileSegmentSize`).
/// Finished uploads waiting for thread file-sync; each holds an open file. Overflow: the io
/// thread waits (back-pressure on the uploads behind it).
pub const PLACE_QUEUE: usize = 64;

/// The file loop's end of the io channel. The loop never waits on it: a job that finds the
/// channel full waits in `backlog`, in order (newer jobs queue behind it), and the service
/// holds the connection that submitted it. The io thread, when it next takes a job, sees
/// `full` and posts [`FileMsg::IoRoom`]; the loop then moves the backlog on and resumes those
/// connections. Nothing polls for room. The backlog is bounded by the holds: a connection adds
/// the jobs of one PDU before its input waits; the others come one per closed connection or
/// ended task (`MaxConnCnt`, `MaxFileTasks`).
pub struct IoPort {
    tx: Sender<IoJob>,
    backlog: VecDeque<IoJob>,
    full: Arc<AtomicBool>,
}

impl IoPort {
    /// `full` is shared with [`run`] (see [`IoSetup::full`]).
    pub fn new(tx: Sender<IoJob>, full: Arc<AtomicBool>) -> IoPort {
        IoPort {
            tx,
            backlog: VecDeque::new(),
            full,
        }
    }

    /// Queues `job`; false if it has to wait in the backlog.
    pub fn submit(&mut self, job: IoJob) -> bool {
        self.backlog.push_back(job);
        self.pump()
    }

    /// Moves the backlog into the channel; true once it is empty.
    pub fn pump(&mut self) -> bool {
        let mut asked = false;
        while let Some(job) = self.backlog.pop_front() {
            match self.tx.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job)) => {
                    self.backlog.push_front(job);
                    if asked {
                        return false;
                    }
                    // Ask for an IoRoom, then try once more: a job taken before the flag was
                    // set sent none.
                    self.full.store(true, Ordering::SeqCst);
                    asked = true;
                }
                Err(TrySendError::Disconnected(job)) => {
                    // The io thread failed. The jobs stay (an OnDone in them runs when the
                    // loop ends, not on the loop thread while it runs).
                    self.backlog.push_front(job);
                    log::error!(target: "file", "file-io thread is gone");
                    return false;
                }
            }
        }
        true
    }
}

/// An io result, sent back to the worker. `by` is the uploader connection of the attempt.
pub enum IoDone {
    Began {
        task_id: String,
        by: Cid,
        ok: bool,
    },
    Appended {
        task_id: String,
        by: Cid,
        ok: bool,
    },
    Finished {
        task_id: String,
        by: Cid,
        ok: bool,
    },
    Opened {
        cid: Cid,
        file: Option<(OfflineFile, Arc<Mmap>)>,
    },
}

/// What the io thread needs besides its channel.
pub struct IoSetup {
    /// For reads (`files::get`) only; the file role opens it `query_only`.
    pub db: Connection,
    /// Every write of a record, from this thread and from thread file-sync.
    pub records: Arc<dyn FileRecords>,
    pub data_dir: PathBuf,
    pub offline_days: u32,
    pub sweep_every: Duration,
    pub notice: Arc<dyn ReadyNotice>,
    pub counters: Arc<Counters>,
    /// Set by the loop when a job found the channel full ([`IoPort`]); cleared here with an
    /// [`FileMsg::IoRoom`] once a job was taken.
    pub full: Arc<AtomicBool>,
}

/// `DataDir/offline`.
pub fn offline_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("offline")
}

/// Where a finished offline file lives; `None` unless `task_id` is a server id.
pub fn stored_path(data_dir: &Path, to: u32, task_id: &str) -> Option<PathBuf> {
    is_server_id(task_id.as_bytes())
        .then(|| offline_dir(data_dir).join(to.to_string()).join(task_id))
}

/// Where the upload attempt of connection `by` is written until it is complete; `None` unless
/// `task_id` is a server id. One file per attempt: a restarted upload never writes into the
/// file an earlier attempt is still placing.
pub fn temp_path(data_dir: &Path, task_id: &str, by: Cid) -> Option<PathBuf> {
    is_server_id(task_id.as_bytes()).then(|| {
        offline_dir(data_dir)
            .join("tmp")
            .join(format!("{task_id}.{}.{}.part", by.slot, by.generation))
    })
}

struct Io {
    db: Connection,
    records: Arc<dyn FileRecords>,
    data_dir: PathBuf,
    offline_days: u32,
    sweep_every: Duration,
    counters: Arc<Counters>,
    /// Thread file-sync (None once stopping).
    place: Option<Sender<PlaceJob>>,
    /// Open temporary files by task, with the attempt (uploader connection) they belong to.
    uploads: HashMap<String, (Cid, File)>,
    reply: Sender<FileMsg>,
    waker: Arc<mio::Waker>,
}

/// Runs the io thread until every sender of `jobs` is gone.
pub fn run(setup: IoSetup, jobs: Receiver<IoJob>, reply: Sender<FileMsg>, waker: Arc<mio::Waker>) {
    let IoSetup {
        db,
        records,
        data_dir,
        offline_days,
        sweep_every,
        notice,
        counters,
        full,
    } = setup;
    let (place_tx, place_rx) = crossbeam_channel::bounded(PLACE_QUEUE);
    let placer = Placer {
        records: Arc::clone(&records),
        data_dir: data_dir.clone(),
        notice,
        counters: Arc::clone(&counters),
        reply: reply.clone(),
        waker: Arc::clone(&waker),
    };
    let sync = std::thread::Builder::new()
        .name("file-sync".into())
        .spawn(move || place::run(placer, place_rx));
    let mut io = Io {
        db,
        records,
        data_dir,
        offline_days,
        sweep_every,
        counters,
        place: Some(place_tx),
        uploads: HashMap::new(),
        reply,
        waker,
    };
    io.clear_temp();
    io.sweep();
    let mut next_sweep = Instant::now() + io.sweep_every;
    loop {
        let wait = next_sweep.saturating_duration_since(Instant::now());
        match jobs.recv_timeout(wait) {
            Ok(IoJob::Stop) => break,
            Ok(job) => {
                if full.swap(false, Ordering::SeqCst) {
                    io.send_msg(FileMsg::IoRoom);
                }
                io.handle(job);
            }
            Err(RecvTimeoutError::Timeout) => {
                io.sweep();
                next_sweep = Instant::now() + io.sweep_every;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Let uploads being placed finish before the temp directory is cleared.
    io.place = None;
    if let Ok(t) = sync {
        let _ = t.join();
    }
    io.clear_temp();
}

impl Io {
    fn send(&self, done: IoDone) {
        self.send_msg(FileMsg::Io(done));
    }

    /// Waits while the loop's channel is full (back-pressure on this thread, never the loop's).
    fn send_msg(&self, m: FileMsg) {
        if self.reply.send(m).is_ok() {
            let _ = self.waker.wake();
        }
    }

    fn handle(&mut self, job: IoJob) {
        match job {
            IoJob::Begin { task, by } => {
                let ok = self
                    .begin(&task.id, by)
                    .map_err(|e| log_io("begin", &task.id, e));
                self.send(IoDone::Began {
                    task_id: task.id.clone(),
                    by,
                    ok: ok.is_ok(),
                });
            }
            IoJob::Append { task_id, by, data } => {
                let ok = match self.uploads.get_mut(&task_id) {
                    Some((at, f)) if *at == by => f
                        .write_all(&data)
                        .map_err(|e| log_io("append", &task_id, e)),
                    _ => Err(()),
                };
                if ok.is_err() {
                    self.abandon(&task_id, by);
                }
                self.send(IoDone::Appended {
                    task_id,
                    by,
                    ok: ok.is_ok(),
                });
            }
            IoJob::Finish { task, by } => match self.take_upload(&task.id, by) {
                // The fsync and the rest go to thread file-sync (module place).
                Some(file) => {
                    let job = PlaceJob { task, by, file };
                    let sent = match &self.place {
                        Some(p) => p.send(job).map_err(|e| e.into_inner()),
                        None => Err(job),
                    };
                    if let Err(job) = sent {
                        let task = job.task;
                        self.abandon(&task.id, by);
                        self.send(IoDone::Finished {
                            task_id: task.id.clone(),
                            by,
                            ok: false,
                        });
                    }
                }
                None => self.send(IoDone::Finished {
                    task_id: task.id.clone(),
                    by,
                    ok: false,
                }),
            },
            IoJob::Abandon { task_id, by } => self.abandon(&task_id, by),
            IoJob::OpenDownload { cid, task_id, user } => {
                let file = self.open_download(&task_id, user);
                self.send(IoDone::Opened { cid, file });
            }
            IoJob::Delete {
                task_id,
                from,
                to,
                done,
            } => {
                self.delete(&task_id, from, to);
                drop(done);
            }
            IoJob::Stop => {}
        }
    }

    fn begin(&mut self, task_id: &str, by: Cid) -> io::Result<()> {
        let path = temp_path(&self.data_dir, task_id, by)
            .ok_or_else(|| io::Error::other("not a server id"))?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        self.uploads.insert(task_id.to_string(), (by, f));
        Ok(())
    }

    /// The open file of attempt `by`, if that is the task's current attempt.
    fn take_upload(&mut self, task_id: &str, by: Cid) -> Option<File> {
        match self.uploads.get(task_id) {
            Some((at, _)) if *at == by => self.uploads.remove(task_id).map(|(_, f)| f),
            _ => None,
        }
    }

    fn abandon(&mut self, task_id: &str, by: Cid) {
        drop(self.take_upload(task_id, by));
        if let Some(p) = temp_path(&self.data_dir, task_id, by) {
            let _ = fs::remove_file(p);
        }
    }

    /// The oldest `created` still served.
    fn not_before(&self) -> u32 {
        crate::clock::unix_now().saturating_sub(self.offline_days.saturating_mul(86_400))
    }

    fn open_download(&self, task_id: &[u8], user: u32) -> Option<(OfflineFile, Arc<Mmap>)> {
        if !is_server_id(task_id) {
            return None;
        }
        let task_id = std::str::from_utf8(task_id).ok()?;
        let rec = match files::get(&self.db, task_id, self.not_before()) {
            Ok(Some(r)) if r.to_id == user => r,
            Ok(_) => return None,
            Err(e) => {
                bump(&self.counters.store_failures);
                log::error!(target: "file", "lookup of {task_id}: {e}");
                return None;
            }
        };
        let path = stored_path(&self.data_dir, rec.to_id, &rec.task_id)?;
        let map = (|| -> io::Result<Mmap> {
            let f = File::open(&path)?;
            // SAFETY: the file is never written after its rename into place; deletion only
            // unlinks it, which leaves an existing map valid.
            unsafe { Mmap::map(&f) }
        })();
        match map {
            Ok(m) if m.len() as u64 == u64::from(rec.file_size) => Some((rec, Arc::new(m))),
            Ok(_) => {
                log::error!(target: "file", "{}: size on disk differs from its record", path.display());
                None
            }
            Err(e) => {
                log::error!(target: "file", "open {}: {e}", path.display());
                None
            }
        }
    }

    fn delete(&self, task_id: &[u8], from: u32, to: u32) {
        let Some(task_id) = std::str::from_utf8(task_id)
            .ok()
            .filter(|t| is_server_id(t.as_bytes()))
        else {
            bump(&self.counters.file_rejected);
            return;
        };
        match self.records.delete(task_id, from, to) {
            Ok(true) => {
                if let Some(p) = stored_path(&self.data_dir, to, task_id) {
                    let _ = fs::remove_file(p);
                }
                log::info!(target: "file", "offline file {task_id} deleted by its receiver {to}");
            }
            Ok(false) => bump(&self.counters.file_rejected),
            Err(e) => {
                bump(&self.counters.store_failures);
                log::error!(target: "file", "delete {task_id}: {e}");
            }
        }
    }

    /// B-FILE-15: records first (so nothing lists or serves them), then the files.
    fn sweep(&self) {
        match self.records.delete_older(self.not_before()) {
            Ok(gone) => {
                for (task, to) in &gone {
                    if let Some(p) = stored_path(&self.data_dir, *to, task) {
                        let _ = fs::remove_file(p);
                    }
                }
                if !gone.is_empty() {
                    log::info!(target: "file", "sweeper: {} expired offline files deleted", gone.len());
                }
            }
            Err(e) => {
                bump(&self.counters.store_failures);
                log::error!(target: "file", "sweeper: {e}");
            }
        }
    }

    /// Temporary files of uploads that were running when the process stopped.
    /// (At start-up and stop: an upload cannot outlive the process, its task is in memory.)
    fn clear_temp(&self) {
        let dir = offline_dir(&self.data_dir).join("tmp");
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

fn log_io(what: &str, task: &str, e: io::Error) {
    log::error!(target: "file", "task {task}: {what}: {e}");
}

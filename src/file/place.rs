//! Thread "file-sync": the last step of an offline upload (B-FILE-9), off the io thread so that
//! one large fsync does not stall every other transfer's disk work.
//!
//! fsync the temporary file, rename it to `DataDir/offline/<to_id>/<task>`, fsync the
//! directory, commit the record, tell the receiver (6/12), answer the worker. The record is
//! committed through [`FileRecords`]: the process's group-commit writer inside `ttserver run`,
//! the role's own connection in `ttserver file`; this thread waits for the commit. A crash
//! before the commit leaves a file without a record, which the start-up sweep of the temp
//! directory or the expiry sweep removes; a record never names a missing or partial file.

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::hub::{ReadyNotice, Task};
use super::io::{stored_path, temp_path, IoDone};
use super::records::FileRecords;
use super::{Cid, FileMsg};
use crate::stats::{bump, Counters};
use crate::store::files::OfflineFile;

/// A complete upload to place.
pub struct PlaceJob {
    pub task: Arc<Task>,
    pub by: Cid,
    pub file: File,
}

pub struct Placer {
    /// Where the record is committed.
    pub records: Arc<dyn FileRecords>,
    pub data_dir: PathBuf,
    pub notice: Arc<dyn ReadyNotice>,
    pub counters: Arc<Counters>,
    pub reply: Sender<FileMsg>,
    pub waker: Arc<mio::Waker>,
}

/// Runs until every sender of `jobs` is gone.
pub fn run(p: Placer, jobs: Receiver<PlaceJob>) {
    for job in jobs {
        let ok = p.place(&job.task, job.by, job.file);
        if ok {
            p.notice.upload_complete(&job.task);
        }
        let done = IoDone::Finished {
            task_id: job.task.id.clone(),
            by: job.by,
            ok,
        };
        if p.reply.send(FileMsg::Io(done)).is_ok() {
            let _ = p.waker.wake();
        }
    }
}

impl Placer {
    /// fsync, rename into place, fsync the directory, commit the record (B-FILE-9).
    fn place(&self, task: &Task, by: Cid, file: File) -> bool {
        let (Some(tmp), Some(dest)) = (
            temp_path(&self.data_dir, &task.id, by),
            stored_path(&self.data_dir, task.to, &task.id),
        ) else {
            return false;
        };
        let placed = (|| -> io::Result<()> {
            if file.metadata()?.len() != u64::from(task.size) {
                return Err(io::Error::other("size differs from the task"));
            }
            file.sync_all()?;
            drop(file);
            // Never over a stored file: its record exists, and a failed insert below would
            // delete the bytes it names.
            if dest.exists() {
                return Err(io::Error::other("already stored"));
            }
            let dir = dest.parent().ok_or_else(|| io::Error::other("no parent"))?;
            fs::create_dir_all(dir)?;
            fs::rename(&tmp, &dest)?;
            File::open(dir)?.sync_all()
        })();
        if let Err(e) = placed {
            log::error!(target: "file", "task {}: finish: {e}", task.id);
            let _ = fs::remove_file(&tmp);
            return false;
        }
        let rec = OfflineFile {
            task_id: task.id.clone(),
            from_id: task.from,
            to_id: task.to,
            file_name: task.name.clone(),
            file_size: task.size,
            created: crate::clock::unix_now(),
        };
        if let Err(e) = self.records.insert(&rec) {
            bump(&self.counters.store_failures);
            log::error!(target: "file", "task {}: record not stored: {e}", task.id);
            let _ = fs::remove_file(&dest);
            return false;
        }
        log::info!(target: "file", "task {}: offline file of {} bytes stored for {}", task.id, task.size, task.to);
        true
    }
}

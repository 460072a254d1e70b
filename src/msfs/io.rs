//! Thread "msfs-io": every disk access of msfs. Jobs come from the HTTP loop over a bounded
//! channel (`MsfsIoQueueCap`); each answer goes back over the loop's bounded channel
//! (`MsfsIoQueueCap` + [`super::ANSWER_SLACK`]: this thread waits while it is full), followed by a wake of its Poll.
//!
//! Storing is durable before it is answered (B-MSFS-1): the bytes go to `tmp/<name>.part`,
//! which is fsynced, renamed to `g0/NNN/MMM/<name>`, and the directory is fsynced (and its
//! parent, for a directory created by this upload). A failed store removes the temporary file.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;

use super::service::Msg;
use crate::net::{ConnId, WorkerHandle};

/// Work for the io thread. `key` names the connection that waits for the answer.
pub enum Job {
    /// Store `data` (the file part of an upload) at `path` (a path made by
    /// [`super::names::new_path`]).
    Store {
        key: ConnId,
        data: Vec<u8>,
        path: String,
    },
    /// Read the file at `path` (validated by [`super::names::parse_target`]); only its size for
    /// HEAD.
    Read {
        key: ConnId,
        path: String,
        head_only: bool,
    },
}

/// What became of a [`Job`].
pub enum Done {
    Stored {
        key: ConnId,
        path: String,
        result: io::Result<()>,
    },
    Read {
        key: ConnId,
        path: String,
        result: ReadResult,
    },
}

impl Done {
    /// The connection waiting for it.
    pub fn key(&self) -> ConnId {
        match self {
            Done::Stored { key, .. } | Done::Read { key, .. } => *key,
        }
    }
}

pub enum ReadResult {
    /// The file's size and bytes (empty for HEAD).
    Found {
        len: u64,
        bytes: Vec<u8>,
    },
    NotFound,
    Failed(io::Error),
}

/// Creates `root/tmp` and `root/g0`, empties `tmp` (uploads cut by a crash) and starts the thread.
pub fn spawn(
    root: PathBuf,
    max_file: u64,
    jobs: Receiver<Job>,
    answers: WorkerHandle<Msg>,
) -> io::Result<JoinHandle<()>> {
    fs::create_dir_all(root.join("tmp"))?;
    fs::create_dir_all(root.join("g0"))?;
    for e in fs::read_dir(root.join("tmp"))? {
        let e = e?;
        if e.file_type()?.is_file() {
            let _ = fs::remove_file(e.path());
        }
    }
    std::thread::Builder::new()
        .name("msfs-io".into())
        .spawn(move || {
            // Ends when the HTTP loop drops its sender.
            for job in jobs.iter() {
                let d = match job {
                    Job::Store { key, data, path } => {
                        let result = store(&root, &path, &data);
                        Done::Stored { key, path, result }
                    }
                    Job::Read {
                        key,
                        path,
                        head_only,
                    } => {
                        let result = read(&root, &path, head_only, max_file);
                        Done::Read { key, path, result }
                    }
                };
                // Waits while the loop's channel is full (it never waits for this thread);
                // fails once the loop has exited.
                if answers.tx.send(Msg::Done(d)).is_err() {
                    return;
                }
                // One wake per job: a job costs at least an fsync or a file read, so waking
                // for each is cheap by comparison and keeps replies prompt.
                answers.wake();
            }
        })
}

/// Writes `bytes` durably at `root/path` (`path` = `g0/NNN/MMM/<name>`).
fn store(root: &Path, path: &str, bytes: &[u8]) -> io::Result<()> {
    let mut parts = path.split('/');
    let (Some(g0), Some(d1), Some(d2), Some(name), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(io::Error::other(format!("bad msfs path {path:?}")));
    };
    let tmp = root.join("tmp").join(format!("{name}.part"));
    let res = (|| {
        {
            let mut f = File::create_new(&tmp)?;
            io::Write::write_all(&mut f, bytes)?;
            f.sync_all()?;
        }
        let dir = ensure_dir(&root.join(g0), d1)?;
        let dir = ensure_dir(&dir, d2)?;
        fs::rename(&tmp, dir.join(name))?;
        File::open(&dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// `parent/name` as a directory; when this call creates it, `parent` is fsynced so the new
/// entry is durable too.
fn ensure_dir(parent: &Path, name: &str) -> io::Result<PathBuf> {
    let dir = parent.join(name);
    match fs::create_dir(&dir) {
        Ok(()) => File::open(parent)?.sync_all()?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    Ok(dir)
}

fn read(root: &Path, path: &str, head_only: bool, max_file: u64) -> ReadResult {
    let full = path.split('/').fold(root.to_path_buf(), |p, c| p.join(c));
    let f = match File::open(&full) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return ReadResult::NotFound,
        Err(e) => return ReadResult::Failed(e),
    };
    let len = match f.metadata() {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return ReadResult::NotFound,
        Err(e) => return ReadResult::Failed(e),
    };
    if len > max_file {
        // Never written by msfs (uploads are at most MsfsMaxFileSize); refuse to buffer it.
        return ReadResult::Failed(io::Error::other(format!(
            "{path}: {len} bytes, larger than MsfsMaxFileSize"
        )));
    }
    if head_only {
        return ReadResult::Found {
            len,
            bytes: Vec::new(),
        };
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    match f.take(len).read_to_end(&mut bytes) {
        Ok(_) => ReadResult::Found {
            len: bytes.len() as u64,
            bytes,
        },
        Err(e) => ReadResult::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_read() {
        let root = std::env::temp_dir().join(format!("msfs-io-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("tmp")).unwrap();
        fs::create_dir_all(root.join("g0")).unwrap();
        let p = "g0/001/002/0123456789abcdef0123456789abcdef.png";
        store(&root, p, b"hello").unwrap();
        assert!(fs::read_dir(root.join("tmp")).unwrap().next().is_none());
        let ReadResult::Found { len, bytes } = read(&root, p, false, 10) else {
            panic!()
        };
        assert_eq!((len, bytes.as_slice()), (5, &b"hello"[..]));
        let ReadResult::Found { len, bytes } = read(&root, p, true, 10) else {
            panic!()
        };
        assert_eq!((len, bytes.len()), (5, 0));
        assert!(matches!(read(&root, p, false, 4), ReadResult::Failed(_)));
        assert!(matches!(
            read(&root, "g0/001/002/nope", false, 10),
            ReadResult::NotFound
        ));
        assert!(matches!(
            read(&root, "g0/001", false, 10),
            ReadResult::NotFound
        ));
        assert!(store(&root, "g0/x", b"").is_err());
        let _ = fs::remove_dir_all(&root);
    }
}

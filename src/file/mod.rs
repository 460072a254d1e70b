//! The file role (protocol.md §9.6, behaviour.md B-FILE): 6/1 .. 6/5 on `FileListen`.
//!
//! ```text
//!   msg workers --6/10: TaskCreated--+                     +--> 6/12 "offline ready" to the
//!   (FileHub)   --6/19: Delete----+  |                     |    receiver (ReadyNotice)
//!                                 |  v                     |
//!   file port --> [ file-worker: mio loop, Core ] <--IoDone-- [ file-io: disk + SQLite ]
//!                       |  Act::Io(IoJob) ------------------>      temp files, maps, deletes,
//!                       v                                          sweeper; hands a finished
//!                                                                  upload to [ file-sync:
//!                                                                  fsync, rename, record ]
//!                 sockets: relay 6/4 / 6/5 between online parties, pull offline uploads,
//!                 serve offline downloads from the mmap
//! ```
//!
//! One worker thread serves every file connection; both parties of an online task are then on
//! the same thread, so relaying a PDU is a queue push. Disk and database work happen on the io
//! threads only ([`io`], [`place`]); the worker never blocks. The decisions are in [`core::Core`], a
//! function of state and events that the tests drive without sockets.

pub mod core;
pub mod hub;
pub mod io;
pub mod link;
pub mod place;
pub mod remote;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::config::Config;
pub use crate::net::timer::TimerKey as Cid;
use crate::stats::Counters;
use hub::{FileHub, ReadyNotice, Task, TokenCheck};
use io::{IoDone, IoJob, IoSetup};

/// Messages to the file worker.
pub enum FileMsg {
    /// A task announced by the msg role (6/10).
    TaskCreated(Task),
    /// A result of the io thread.
    Io(IoDone),
    /// An offline upload is stored: tell the linked msg servers (file role alone).
    Ready(Task),
    /// Queue bytes on a connection (a link's answer from the io thread).
    Push(Cid, Vec<u8>),
    Shutdown,
}

/// How many announcements may wait for the file worker before 6/10 answers result 2.
const TASK_QUEUE: usize = 4096;

/// Where the file role learns tokens and tasks, and whom it tells about finished uploads.
pub enum FileDeps {
    /// Inside `ttserver run`: the msg role's registry and presence, directly.
    InProcess {
        tokens: Arc<dyn TokenCheck>,
        notice: Arc<dyn ReadyNotice>,
        counters: Arc<Counters>,
    },
    /// `ttserver file`: msg servers open links (with `ClusterSecret`) on the file port.
    Alone { secret: String },
}

/// The running file role.
pub struct FileRole {
    pub addr: SocketAddr,
    /// The counters it bumps (the msg role's when in-process).
    pub counters: Arc<Counters>,
    worker: Option<JoinHandle<()>>,
    io: Option<JoinHandle<()>>,
    tx: Sender<FileMsg>,
    io_tx: Sender<IoJob>,
    waker: Arc<mio::Waker>,
}

impl FileRole {
    /// Binds nothing: `listener` is already bound to `FileListen`. Starts threads "file-worker"
    /// and "file-io" and returns the role and the hub the msg role talks to.
    pub fn spawn(
        cfg: &Config,
        listener: std::net::TcpListener,
        deps: FileDeps,
    ) -> std::io::Result<(FileRole, FileHub)> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), worker::WAKE)?);
        let (tx, rx) = crossbeam_channel::bounded(TASK_QUEUE);
        let (io_tx, io_rx) = crossbeam_channel::unbounded();
        let (tokens, notice, counters, link): (Arc<dyn TokenCheck>, Arc<dyn ReadyNotice>, _, _) =
            match deps {
                FileDeps::InProcess {
                    tokens,
                    notice,
                    counters,
                } => (tokens, notice, counters, None),
                FileDeps::Alone { secret } => {
                    let mirror = link::MirrorTokens::new(cfg.auth.token_grace);
                    let notice = Arc::new(link::LinkNotice {
                        tx: tx.clone(),
                        waker: Arc::clone(&waker),
                    });
                    let side = worker::LinkSide {
                        secret,
                        mirror: Arc::clone(&mirror),
                        back: tx.clone(),
                        waker: Arc::clone(&waker),
                    };
                    (mirror, notice, Arc::new(Counters::default()), Some(side))
                }
            };
        let open_db = || {
            crate::store::open(&cfg.db_path(), cfg.store.db_sync)
                .map_err(|e| std::io::Error::other(format!("file role database: {e}")))
        };
        let (db, place_db) = (open_db()?, open_db()?);
        let setup = IoSetup {
            db,
            place_db,
            data_dir: cfg.store.data_dir.clone(),
            offline_days: cfg.file.offline_file_days,
            sweep_every: cfg.file.file_sweep_interval.max(Duration::from_secs(1)),
            notice,
            counters: Arc::clone(&counters),
        };
        // The io thread answers on the worker's channel; that send never blocks the io thread
        // for long because the worker drains its channel on every loop iteration.
        let (reply_tx, reply_waker) = (tx.clone(), Arc::clone(&waker));
        let io = std::thread::Builder::new()
            .name("file-io".into())
            .spawn(move || io::run(setup, io_rx, reply_tx, reply_waker))?;
        let limits = core::Limits {
            task_timeout: cfg.file.task_timeout,
            segment: cfg.file.file_segment_size,
            max_tasks: cfg.file.max_file_tasks,
        };
        let live = Arc::new(AtomicUsize::new(0));
        let core = core::Core::new(
            tokens,
            Arc::clone(&counters),
            limits,
            Arc::clone(&live),
            link.is_some(),
        );
        let w = worker::FileWorker::new(
            cfg,
            poll,
            listener,
            (rx, io_tx.clone()),
            core,
            Arc::clone(&counters),
            link,
        )?;
        let worker = std::thread::Builder::new()
            .name("file-worker".into())
            .spawn(move || w.run())?;
        let addrs = cfg
            .file
            .file_addr
            .iter()
            .map(|ip| (ip.clone().into_bytes(), addr.port()))
            .collect();
        let hub = FileHub::new(
            tx.clone(),
            Arc::clone(&waker),
            io_tx.clone(),
            (live, cfg.file.max_file_tasks),
            addrs,
        );
        Ok((
            FileRole {
                addr,
                counters: Arc::clone(&counters),
                worker: Some(worker),
                io: Some(io),
                tx,
                io_tx,
                waker,
            },
            hub,
        ))
    }

    /// Stops the worker, then the io thread (which drops what it borrowed from the msg role).
    pub fn stop(mut self) {
        let _ = self.tx.send(FileMsg::Shutdown);
        let _ = self.waker.wake();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        let _ = self.io_tx.send(IoJob::Stop);
        if let Some(t) = self.io.take() {
            let _ = t.join();
        }
    }
}

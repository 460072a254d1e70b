//! The file role (protocol.md §9.6, behaviour.md B-FILE): 6/1 .. 6/5 on `FileListen`.
//!
//! ```text
//!   msg workers --6/10: Task---------+                     +--> 6/12 "offline ready" to the
//!   (FileHub)   --6/19: Delete----+  |                     |    receiver (ReadyNotice)
//!                                 |  v                     |
//!   file port --> [ file-worker: EventLoop<FileService> ] <--IoDone-- [ file-io: disk + SQLite ]
//!                       |  Act::Io(IoJob) ------------------------->   temp files, maps, deletes,
//!                       v                                              sweeper; hands a finished
//!                                                                      upload to [ file-sync:
//!                                                                      fsync, rename, record ]
//!                 sockets: relay 6/4 / 6/5 between online parties, pull offline uploads,
//!                 serve offline downloads from the mmap
//! ```
//!
//! One loop thread ([`crate::net::event_loop::EventLoop`] running [`service::FileService`])
//! serves every file connection; both parties of an online task are then on the same thread, so
//! relaying a PDU is a queue push. Disk and database work happen on the io threads only ([`io`],
//! [`place`]); the loop never blocks. The decisions are in [`core::Core`], a function of state
//! and events that the tests drive without sockets.
//!
//! Who writes the `offline_files` records ([`records::FileRecords`]): inside `ttserver run`
//! ([`FileDeps::InProcess`]) the msg role's group-commit writer, so the process has one writer
//! connection; `ttserver file` ([`FileDeps::Alone`]) its own connection. Either way the io
//! threads read records on a connection of their own.
//!
//! Every channel is bounded; each cap and what happens when it is reached:
//! - `FileTaskQueueCap` announcements (hub -> loop): 6/10 answers result 2;
//! - [`LOOP_QUEUE`] the loop's channel (io results, link answers, notices, stop): the sending
//!   thread (file-io, file-sync, the stopping thread) waits; the loop never sends on it;
//! - `FileIoQueueCap` jobs (loop, hub -> file-io): the loop keeps the job and holds the
//!   connection that submitted it until the io thread took a job; a 6/19 of the hub is refused;
//! - [`io::PLACE_QUEUE`] finished uploads (file-io -> file-sync): file-io waits;
//! - `remote::LINK_QUEUE` (msg role -> a file role alone): 6/10 answers result 2.

pub mod core;
pub mod hub;
pub mod io;
pub mod link;
pub mod place;
pub mod records;
pub mod remote;
pub mod service;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::config::Config;
use crate::net::event_loop::{self, EventLoop, InputBudget, ListenerSpec, LoopConfig};
pub use crate::net::timer::TimerKey as Cid;
use crate::net::{WorkerHandle, Workers};
use crate::stats::Counters;
use hub::{FileHub, ReadyNotice, Task, TokenCheck};
use io::{IoDone, IoJob, IoPort, IoSetup};
use records::{FileRecords, OwnRecords};
use service::{FileService, LinkSide, PortLimits};

/// Messages to the file loop.
pub enum FileMsg {
    /// A result of the io thread.
    Io(IoDone),
    /// An offline upload is stored: tell the linked msg servers (file role alone).
    Ready(Task),
    /// Queue bytes on a connection (a link's answer from the io thread).
    Push(Cid, Vec<u8>),
    /// The io thread took a job after one found its channel full ([`io::IoPort`]).
    IoRoom,
    Shutdown,
}

/// The file loop's channel; its senders are threads that may wait (see the module doc).
const LOOP_QUEUE: usize = 4096;
/// Bytes asked of a socket per read.
const READ_CHUNK: usize = 256 << 10;
/// Bytes read from one connection before the others get their turn.
const READ_BUDGET: usize = 1 << 20;

/// Where the file role learns tokens and tasks, and whom it tells about finished uploads.
pub enum FileDeps {
    /// Inside `ttserver run`: the msg role's registry and presence, directly.
    InProcess {
        tokens: Arc<dyn TokenCheck>,
        notice: Arc<dyn ReadyNotice>,
        counters: Arc<Counters>,
        /// The process's group-commit writer: every record write goes through it.
        records: Arc<dyn FileRecords>,
    },
    /// `ttserver file`: msg servers open links (with `ClusterSecret`) on the file port; records
    /// are written on the role's own connection ([`OwnRecords`]).
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
    /// and "file-io" and returns the role and the hub the msg role talks to. `input_budget`
    /// bounds the partial input the loop buffers, with every other loop of the process
    /// (`MaxBufferedInput`).
    pub fn spawn(
        cfg: &Config,
        listener: std::net::TcpListener,
        deps: FileDeps,
        input_budget: Arc<InputBudget>,
    ) -> std::io::Result<(FileRole, FileHub)> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), event_loop::WAKER)?);
        let (tx, rx) = crossbeam_channel::bounded(LOOP_QUEUE);
        let (task_tx, task_rx) = crossbeam_channel::bounded(cfg.file.file_task_queue_cap);
        let (io_tx, io_rx) = crossbeam_channel::bounded(cfg.file.file_io_queue_cap);
        let own = WorkerHandle {
            tx: tx.clone(),
            waker: Arc::clone(&waker),
        };
        let db_err = |e| std::io::Error::other(format!("file role database: {e}"));
        // Alone, the write connection is opened first: it creates and migrates the database.
        let records: Arc<dyn FileRecords> = match &deps {
            FileDeps::InProcess { records, .. } => Arc::clone(records),
            FileDeps::Alone { .. } => Arc::new(OwnRecords::new(
                crate::store::open(&cfg.db_path(), cfg.store.db_sync).map_err(db_err)?,
            )),
        };
        let (tokens, notice, counters, link): (Arc<dyn TokenCheck>, Arc<dyn ReadyNotice>, _, _) =
            match deps {
                FileDeps::InProcess {
                    tokens,
                    notice,
                    counters,
                    ..
                } => (tokens, notice, counters, None),
                FileDeps::Alone { secret } => {
                    let mirror = link::MirrorTokens::new(cfg.auth.token_grace);
                    let notice = Arc::new(link::LinkNotice {
                        tx: tx.clone(),
                        waker: Arc::clone(&waker),
                    });
                    let side = LinkSide {
                        secret,
                        mirror: Arc::clone(&mirror),
                        back: own.clone(),
                    };
                    (mirror, notice, Arc::new(Counters::default()), Some(side))
                }
            };
        // Reads only (`query_only`): every write goes through `records`.
        let db = crate::store::open_reader(&cfg.db_path(), cfg.store.db_sync).map_err(db_err)?;
        let io_full = Arc::new(AtomicBool::new(false));
        let setup = IoSetup {
            db,
            records,
            data_dir: cfg.store.data_dir.clone(),
            offline_days: cfg.file.offline_file_days,
            sweep_every: cfg.file.file_sweep_interval.max(Duration::from_secs(1)),
            notice,
            counters: Arc::clone(&counters),
            full: Arc::clone(&io_full),
        };
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
        let port = PortLimits {
            max_pdu: cfg.net.max_pdu_size,
            max_pdu_before_login: cfg.net.max_pdu_size_before_login,
            login_timeout: cfg.net.login_timeout,
            idle_timeout: cfg.file.task_timeout,
        };
        let svc = FileService::new(
            core,
            Arc::clone(&counters),
            port,
            task_rx,
            IoPort::new(io_tx.clone(), io_full),
            link,
        );
        let loop_cfg = LoopConfig {
            id: service::LOOP_ID,
            name: "file",
            read_chunk: READ_CHUNK,
            read_budget: READ_BUDGET,
            out_cap: cfg.net.out_buf_cap,
            input_budget,
            counters: Arc::clone(&counters),
        };
        // B-FLOW-2: over MaxConnCnt a connection is accepted and closed at once.
        let spec = ListenerSpec {
            listener: mio::net::TcpListener::from_std(listener),
            name: "file",
            open: Arc::new(AtomicUsize::new(0)),
            max_conns: cfg.net.max_conn_cnt,
            max_per_ip: 0,
        };
        let ev = EventLoop::new(loop_cfg, poll, rx, Workers::new(vec![own]), svc, vec![spec])?;
        let worker = std::thread::Builder::new()
            .name("file-worker".into())
            .spawn(move || ev.run())?;
        let addrs = cfg
            .file
            .file_addr
            .iter()
            .map(|ip| (ip.clone().into_bytes(), addr.port()))
            .collect();
        let hub = FileHub::new(
            task_tx,
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

    /// Stops the loop, then the io thread (which drops what it borrowed from the msg role).
    /// In-process, a record write in flight on file-io or file-sync is still answered: the
    /// group-commit writer runs until the msg role's state is dropped, after this returns
    /// (`server::Running::stop`).
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

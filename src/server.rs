//! Start-up and shutdown of the all-in-one server: storage, caches, workers, listeners.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::admin::http::AdminHttp;
use crate::admin::token::Origin;
use crate::auth::hashers::Hashers;
use crate::config::Config;
use crate::file::hub::FileHub;
use crate::file::remote::Remote;
use crate::file::{FileDeps, FileRole};
use crate::msfs::Msfs;
use crate::msg::directory::Directory;
use crate::msg::file::MsgSide;
use crate::msg::group_cache::GroupCache;
use crate::msg::outlet::{AdminCache, WorkerOutlet, WriteTag};
use crate::msg::service::{MsgService, WorkerMsg};
use crate::msg::state::{Pools, State};
use crate::net::event_loop::{EventLoop, InputBudget, ListenerSpec, LoopConfig, WAKER};
use crate::net::listener::bind_group;
use crate::net::{WorkerHandle, Workers};
use crate::store::room::{Room, WakeFn};
use crate::store::writer::{WriteJob, WriteOp};
use crate::store::{self, departs, groups, readers::Readers, users, writer};

/// Why the server could not start or stopped badly.
#[derive(Debug)]
pub enum ServerError {
    Config(String),
    Store(store::StoreError),
    Io(String, io::Error),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Config(m) => write!(f, "configuration: {m}"),
            ServerError::Store(e) => write!(f, "storage: {e}"),
            ServerError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<store::StoreError> for ServerError {
    fn from(e: store::StoreError) -> Self {
        ServerError::Store(e)
    }
}

/// A running server: its bound addresses and the handles to stop it.
pub struct Running {
    pub msg_addr: SocketAddr,
    pub login_addr: SocketAddr,
    pub msfs_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The built-in file role's port (None with `FileServer`: the file role runs elsewhere).
    pub file_addr: Option<SocketAddr>,
    msfs: Option<Msfs>,
    admin: Option<AdminHttp>,
    file: Option<FileRole>,
    remote: Option<Arc<Remote>>,
    pub state: Arc<State>,
    threads: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
}

fn io_err(what: &str) -> impl FnOnce(io::Error) -> ServerError + '_ {
    move |e| ServerError::Io(what.to_string(), e)
}

/// Bytes read from one msg-port connection per turn before the others get theirs.
const READ_BUDGET: usize = 256 * 1024;

/// The 2014 mobile apps read the msg port of 1/2 into a signed 16-bit value (README).
const MAX_PORT_FOR_2014_APPS: u16 = 32767;

/// Opens storage, binds every listener and starts the threads. Prints the `listening` lines
/// and `ready` on stdout (architecture.md section 5).
pub fn start(cfg: Config) -> Result<Running, ServerError> {
    let db_path = cfg.db_path();
    let conn = store::open(&db_path, cfg.store.db_sync)?;
    let directory = Directory::new(users::all(&conn)?, departs::all(&conn)?);
    let group_cache = Arc::new(GroupCache::new(groups::all_live(&conn)?));
    let room = Arc::new(Room::default());
    let readers = Readers::spawn(
        &db_path,
        cfg.store.db_sync,
        cfg.db_readers(),
        cfg.store.db_queue_cap,
        Arc::clone(&room),
    )?;
    let (wtx, wrx) = crossbeam_channel::bounded(cfg.store.db_queue_cap);
    let hashers = Hashers::spawn(cfg.hash_threads(), cfg.auth.hash_queue_cap)
        .map_err(io_err("spawn the hashing pool"))?;

    let n = cfg.workers().clamp(1, usize::from(u16::MAX));
    let (msg_addr, msg_listeners) =
        bind_group(cfg.net.msg_listen, n).map_err(io_err("bind MsgListen"))?;
    let (login_addr, login_listeners) =
        bind_group(cfg.net.client_listen, n).map_err(io_err("bind ClientListen"))?;
    let msfs_listener =
        std::net::TcpListener::bind(cfg.net.msfs_listen).map_err(io_err("bind MsfsListen"))?;
    let msfs_addr = msfs_listener
        .local_addr()
        .map_err(io_err("bind MsfsListen"))?;
    let admin_listener =
        std::net::TcpListener::bind(cfg.net.admin_listen).map_err(io_err("bind AdminListen"))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(io_err("bind AdminListen"))?;
    let file_listener = match cfg.file.file_server {
        Some(_) => None,
        None => Some(
            std::net::TcpListener::bind(cfg.net.file_listen).map_err(io_err("bind FileListen"))?,
        ),
    };

    let st = Arc::new(State::new(
        cfg,
        directory,
        Arc::clone(&group_cache),
        Pools {
            writer: wtx,
            readers,
            hashers,
            room: Arc::clone(&room),
        },
        msg_addr,
    ));

    let mut polls = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let poll = mio::Poll::new().map_err(io_err("create poll"))?;
        let waker = mio::Waker::new(poll.registry(), WAKER).map_err(io_err("create waker"))?;
        let (tx, rx) = crossbeam_channel::bounded(st.cfg.net.worker_queue_cap);
        handles.push(WorkerHandle {
            tx,
            waker: Arc::new(waker),
        });
        polls.push(poll);
        receivers.push(rx);
    }
    let workers = Workers::new(handles);
    let _ = st.workers.set(workers.clone());
    // The msg workers' room numbers are their ids: added first, in order.
    for h in workers.all() {
        let h = h.clone();
        room.add(Box::new(move || h.wake()) as WakeFn);
    }

    let outlet = WorkerOutlet::new(
        workers,
        Arc::clone(&st.counters),
        group_cache,
        Arc::clone(&st.presence),
    );
    let writer = writer::spawn_writer(conn, wrx, outlet, st.cfg.store.db_batch_max, room)
        .map_err(io_err("spawn db-writer"))?;

    let mut threads = Vec::with_capacity(n);
    let listeners = msg_listeners.into_iter().zip(login_listeners);
    for (i, ((poll, rx), (ml, ll))) in polls.into_iter().zip(receivers).zip(listeners).enumerate() {
        let id = u16::try_from(i).unwrap_or(u16::MAX);
        let cfg = LoopConfig {
            id,
            name: "msg-worker",
            read_chunk: st.cfg.net.read_buf_size,
            read_budget: READ_BUDGET,
            out_cap: st.cfg.net.out_buf_cap,
            input_budget: Arc::clone(&st.input_budget),
            counters: Arc::clone(&st.counters),
        };
        // In the order of msg::service::{MSG_LISTENER, LOGIN_LISTENER}.
        let specs = vec![
            ListenerSpec {
                listener: ml,
                name: "msg",
                open: Arc::clone(&st.msg_conns),
                max_conns: st.cfg.net.max_conn_cnt,
                max_per_ip: 0,
            },
            ListenerSpec {
                listener: ll,
                name: "login",
                open: Arc::clone(&st.login_conns),
                max_conns: st.cfg.net.max_conn_cnt,
                max_per_ip: 0,
            },
        ];
        let service = MsgService::new(id, Arc::clone(&st));
        let worker = EventLoop::new(cfg, poll, rx, st.workers().clone(), service, specs)
            .map_err(io_err("register listeners"))?;
        let t = std::thread::Builder::new()
            .name(format!("msg-worker-{i}"))
            .spawn(move || worker.run())
            .map_err(io_err("spawn worker"))?;
        threads.push(t);
    }
    let side = MsgSide::new(&st);
    let (file, remote, hub) = match (file_listener, st.cfg.file.file_server) {
        (Some(listener), _) => {
            // Record writes go through the writer above: one writer connection in the process.
            let deps = FileDeps::InProcess {
                tokens: side.clone(),
                notice: side.clone(),
                counters: Arc::clone(&st.counters),
                records: side,
            };
            let (file, hub) =
                FileRole::spawn(&st.cfg, listener, deps, Arc::clone(&st.input_budget))
                    .map_err(io_err("start the file role"))?;
            (Some(file), None, hub)
        }
        (None, Some(server)) => {
            let secret = st.cfg.net.cluster_secret.clone().unwrap_or_default();
            let remote = Remote::spawn(server, secret, Arc::clone(&st.tokens), side)
                .map_err(io_err("start the file link"))?;
            let addrs = st
                .cfg
                .file
                .file_addr
                .iter()
                .map(|ip| (ip.clone().into_bytes(), server.port()))
                .collect();
            (
                None,
                Some(Arc::clone(&remote)),
                FileHub::remote(remote, addrs),
            )
        }
        (None, None) => unreachable_file_conf()?,
    };
    let file_addr = file.as_ref().map(|f| f.addr);
    let _ = st.file.set(hub);
    let msfs = Msfs::spawn(msfs_listener, Arc::clone(&st)).map_err(io_err("start msfs"))?;
    let admin =
        AdminHttp::spawn(admin_listener, Arc::clone(&st)).map_err(io_err("spawn admin-http"))?;
    Ok(Running {
        msg_addr,
        login_addr,
        msfs_addr,
        admin_addr,
        file_addr,
        msfs: Some(msfs),
        admin: Some(admin),
        file,
        remote,
        state: st,
        threads,
        writer: Some(writer),
    })
}

impl Running {
    /// The start-up lines scripts wait for.
    pub fn announce(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "listening login {}", self.login_addr)?;
        writeln!(out, "listening msg {}", self.msg_addr)?;
        // Not for an ephemeral port (0 in the conf: tests and trials).
        if self.state.cfg.net.msg_listen.port() != 0
            && self.msg_addr.port() > MAX_PORT_FOR_2014_APPS
        {
            log::warn!(
                target: "server",
                "msg port {} is above {MAX_PORT_FOR_2014_APPS}: the 2014 mobile apps read it as a signed 16-bit number and cannot connect",
                self.msg_addr.port()
            );
        }
        if let Some(a) = self.file_addr {
            writeln!(out, "listening file {a}")?;
        }
        writeln!(out, "listening msfs {}", self.msfs_addr)?;
        writeln!(out, "listening admin {}", self.admin_addr)?;
        writeln!(out, "ready")?;
        out.flush()
    }

    /// Graceful stop, bounded by `StopTimeout` (README, "Stopping"):
    ///
    /// 1. msfs, the admin API and the file role stop; every msg worker stops accepting and
    ///    reading client input, and says so ([`WorkerMsg::StopReading`]). No request reaches
    ///    storage after that.
    /// 2. A barrier job goes through the writer: when it is answered, every write queued before
    ///    it is committed and its replies (acks, deliveries, other answers) sit in the workers'
    ///    channels. The workers apply them, wait for their reads in flight, and report once
    ///    nothing is outstanding ([`WorkerMsg::WriterDrained`]).
    /// 3. Every worker flushes its output, closes its connections and exits
    ///    ([`WorkerMsg::Shutdown`]); then the writer and the readers end with the state.
    ///
    /// So whatever was committed was also acknowledged (B-MSG-2): a client never resends a
    /// stored message because the server stopped.
    pub fn stop(mut self) {
        let deadline = Instant::now() + self.state.cfg.net.stop_timeout;
        // First msfs and the admin thread: they hold the state (and so the writer's channel)
        // too.
        if let Some(m) = self.msfs.take() {
            m.stop();
        }
        if let Some(a) = self.admin.take() {
            a.stop();
        }
        // Its threads may wait on a record commit; the writer still runs (until the state is
        // dropped below) and answers it, so this join cannot hang on the writer.
        if let Some(f) = self.file.take() {
            f.stop();
        }
        if let Some(r) = self.remote.take() {
            r.stop();
        }
        let workers = self.state.workers().clone();
        let n = workers.all().len();
        let (ack, acks) = crossbeam_channel::unbounded();
        for h in workers.all() {
            h.send(WorkerMsg::StopReading {
                ack: ack.clone(),
                deadline,
            });
        }
        let stopped = count_until(&acks, n, deadline);
        // Run even if a worker did not answer (it died, or StopTimeout passed): bounded too.
        let drained = writer_barrier(&self.state, deadline);
        log::info!(target: "server", "stop: {stopped} of {n} workers stopped reading; writer drained: {drained}");
        let (quiet, quiets) = crossbeam_channel::unbounded();
        for h in workers.all() {
            h.send(WorkerMsg::WriterDrained {
                quiet: quiet.clone(),
            });
        }
        let done = count_until(&quiets, n, deadline);
        if done < n {
            log::warn!(target: "server", "stop: StopTimeout reached, {} of {n} workers still waited for storage replies", n - done);
        }
        for h in workers.all() {
            h.send(WorkerMsg::Shutdown);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        log::info!(target: "server", "counters at stop: {}", nonzero(&self.state.counters));
        // Dropping the state drops the last writer sender once every worker is gone.
        let writer = self.writer.take();
        drop(self);
        if let Some(w) = writer {
            let _ = w.join();
        }
    }
}

/// Receives up to `n` messages by `deadline`; returns how many came.
fn count_until<T>(rx: &crossbeam_channel::Receiver<T>, n: usize, deadline: Instant) -> usize {
    let mut got = 0;
    while got < n && rx.recv_deadline(deadline).is_ok() {
        got += 1;
    }
    got
}

/// Queues [`WriteOp::Barrier`] behind every write already queued and waits (by `deadline`) for
/// its answer, which the writer's outlet sends after the replies of those writes.
fn writer_barrier(st: &State, deadline: Instant) -> bool {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let job = WriteJob {
        op: WriteOp::Barrier,
        tag: WriteTag::admin(tx, AdminCache::Nothing, None),
    };
    let wait = deadline.saturating_duration_since(Instant::now());
    if st.writer.send_timeout(job, wait).is_err() {
        return false;
    }
    // Even a failed barrier is answered after the replies of every job before it.
    rx.recv_deadline(deadline).is_ok()
}

/// `ttserver run`: start, announce, wait for SIGINT/SIGTERM, stop.
pub fn run(mut cfg: Config) -> Result<(), ServerError> {
    cfg.validate_for_run()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    admin_token(&mut cfg)?;
    let signals = crate::signals::block_stop_signals().map_err(io_err("block signals"))?;
    let running = start(cfg)?;
    running
        .announce(&mut io::stdout().lock())
        .map_err(io_err("stdout"))?;
    log::info!(target: "server", "ready: msg {} login {}", running.msg_addr, running.login_addr);
    let sig = signals.wait();
    log::info!(target: "server", "signal {sig}: stopping");
    running.stop();
    Ok(())
}

/// Sets the admin token from `DataDir/admin.token` when the conf has none (creating the file on
/// the first start) and says where it is: the operator needs it for the admin API.
fn admin_token(cfg: &mut Config) -> Result<(), ServerError> {
    let origin =
        crate::admin::token::resolve(cfg).map_err(|e| ServerError::Config(e.to_string()))?;
    match origin {
        Origin::Conf => {}
        Origin::Created(path) => {
            log::info!(target: "server", "admin token in {} (new, mode 0600)", path.display());
        }
        Origin::File { path, warning } => {
            log::info!(target: "server", "admin token in {}", path.display());
            if let Some(w) = warning {
                log::warn!(target: "server", "{w}");
            }
        }
    }
    Ok(())
}

/// The listener is bound exactly when `FileServer` is unset, so this cannot happen.
fn unreachable_file_conf<T>() -> Result<T, ServerError> {
    Err(ServerError::Config(
        "FileServer and FileListen both unset".into(),
    ))
}

/// `ttserver file`: the file role alone (B-FILE), linked to by msg servers that name it in
/// `FileServer`. Shares the DataDir (and so the database) with them.
pub fn run_file(cfg: Config) -> Result<(), ServerError> {
    cfg.validate_for_file()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let signals = crate::signals::block_stop_signals().map_err(io_err("block signals"))?;
    let listener =
        std::net::TcpListener::bind(cfg.net.file_listen).map_err(io_err("bind FileListen"))?;
    let secret = cfg.net.cluster_secret.clone().unwrap_or_default();
    let deps = FileDeps::Alone { secret };
    let (file, _hub) = FileRole::spawn(
        &cfg,
        listener,
        deps,
        InputBudget::new(cfg.net.max_buffered_input),
    )
    .map_err(io_err("start the file role"))?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening file {}", file.addr).map_err(io_err("stdout"))?;
    writeln!(out, "ready").map_err(io_err("stdout"))?;
    out.flush().map_err(io_err("stdout"))?;
    drop(out);
    log::info!(target: "server", "file role ready on {}", file.addr);
    let sig = signals.wait();
    log::info!(target: "server", "signal {sig}: stopping");
    let counters = Arc::clone(&file.counters);
    file.stop();
    log::info!(target: "server", "counters at stop: {}", nonzero(&counters));
    Ok(())
}

/// `name=value` for every counter above zero.
fn nonzero(c: &crate::stats::Counters) -> String {
    c.snapshot()
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

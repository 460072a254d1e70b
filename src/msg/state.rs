//! Process-wide state shared by the workers, the storage threads and the roles.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Sender, TrySendError};
use parking_lot::{Mutex, RwLock};

use super::service::WorkerMsg;
use crate::auth::hashers::{HashJob, Hashers};
use crate::auth::throttle::LoginThrottle;
use crate::auth::token_registry::TokenRegistry;
use crate::config::Config;
use crate::msg::directory::Directory;
use crate::msg::group_cache::GroupCache;
use crate::msg::outlet::WriteTag;
use crate::msg::presence::Presence;
use crate::net::event_loop::InputBudget;
use crate::net::Workers;
use crate::stats::Counters;
use crate::store::readers::{ReadJob, Readers};
use crate::store::room::Room;
use crate::store::writer::WriteJob;

pub struct State {
    pub cfg: Config,
    pub counters: Arc<Counters>,
    /// Shared with the writer's outlet, which delivers committed messages.
    pub presence: Arc<Presence>,
    pub directory: RwLock<Directory>,
    /// Group membership (shared with the storage outlet, which updates it after commit).
    pub groups: Arc<GroupCache>,
    pub throttle: Mutex<LoginThrottle>,
    /// Session tokens for the file role and msfs (B-TOK-2).
    pub tokens: Arc<Mutex<TokenRegistry>>,
    pub writer: Sender<WriteJob<WriteTag>>,
    pub readers: Readers,
    /// Password checks (argon2id), off the reader threads.
    pub hashers: Hashers,
    /// The file role's entrance, set once the file role runs (absent: 6/10 answers result 8).
    pub file: OnceLock<crate::file::hub::FileHub>,
    /// Set once the workers exist (they need the state first).
    pub workers: OnceLock<Workers<WorkerMsg>>,
    /// The msg listener's bound address (its port goes into 1/2).
    pub msg_addr: SocketAddr,
    /// Open connections per listener (B-FLOW-2, B-LS-2).
    pub msg_conns: Arc<AtomicUsize>,
    pub login_conns: Arc<AtomicUsize>,
    /// Rung by the storage threads when they take jobs: workers parked on a full queue
    /// resume.
    pub room: Arc<Room>,
    /// Partial input of every connection of every loop of the process (`MaxBufferedInput`).
    pub input_budget: Arc<InputBudget>,
}

/// The threads a state hands work to.
pub struct Pools {
    pub writer: Sender<WriteJob<WriteTag>>,
    pub readers: Readers,
    pub hashers: Hashers,
    /// Rung by the writer and the readers.
    pub room: Arc<Room>,
}

impl State {
    /// A state with no sessions, zeroed counters and the workers still to be set.
    pub fn new(
        cfg: Config,
        directory: Directory,
        groups: Arc<GroupCache>,
        pools: Pools,
        msg_addr: SocketAddr,
    ) -> State {
        let Pools {
            writer,
            readers,
            hashers,
            room,
        } = pools;
        let cfg_budget = cfg.net.max_buffered_input;
        State {
            throttle: Mutex::new(LoginThrottle::new(
                cfg.auth.login_fail_limit,
                cfg.auth.login_fail_window,
                cfg.auth.login_lockout,
            )),
            tokens: Arc::new(Mutex::new(TokenRegistry::new(cfg.auth.token_grace))),
            cfg,
            counters: Arc::new(Counters::default()),
            presence: Arc::new(Presence::default()),
            directory: RwLock::new(directory),
            groups,
            writer,
            readers,
            hashers,
            file: OnceLock::new(),
            workers: OnceLock::new(),
            msg_addr,
            msg_conns: Arc::new(AtomicUsize::new(0)),
            login_conns: Arc::new(AtomicUsize::new(0)),
            room,
            input_budget: InputBudget::new(cfg_budget),
        }
    }

    /// Whether a storage job would not fit now (the writer's queue, or every reader queue).
    pub fn storage_full(&self) -> bool {
        self.writer.is_full() || self.readers.all_full()
    }

    pub fn workers(&self) -> &Workers<WorkerMsg> {
        static NONE: OnceLock<Workers<WorkerMsg>> = OnceLock::new();
        self.workers
            .get()
            .unwrap_or_else(|| NONE.get_or_init(Workers::default))
    }
}

impl super::Jobs for State {
    fn write(&self, job: WriteJob<WriteTag>) -> Result<(), super::Refused> {
        self.writer.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => super::Refused::Full,
            TrySendError::Disconnected(_) => super::Refused::Closed,
        })
    }

    fn read(&self, job: ReadJob) -> Result<(), ReadJob> {
        self.readers.submit(job)
    }

    fn hash(&self, job: HashJob) -> Result<(), HashJob> {
        self.hashers.submit(job)
    }

    fn read_keyed(&self, key: u32, job: ReadJob) -> Result<(), ReadJob> {
        self.readers.submit_keyed(key, job)
    }

    fn storage_full(&self) -> bool {
        State::storage_full(self)
    }
}

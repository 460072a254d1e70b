//! ttserver: a server for the TeamTalk (TT 2014) instant-messaging protocol.
//!
//! One process plays the login, msg, file and msfs roles on embedded SQLite. Threads:
//!
//! ```text
//!              accept: SO_REUSEPORT, one listener per worker and port
//!                 |                 |                 |
//!           +-----------+     +-----------+     +-----------+
//!           | worker 0  |     | worker 1  |     | worker N-1|   N = Workers (default: cores)
//!           | mio Poll  |<--->| mio Poll  |<--->| mio Poll  |   each owns a Slab of connections,
//!           | Slab<Conn>|     | Slab<Conn>|     | Slab<Conn>|   their buffers and deadlines
//!           +-----------+     +-----------+     +-----------+
//!              |  ^  crossbeam channel + mio::Waker (storage replies, cross-worker pushes)
//!              v  |
//!    +---------------------------+      +------------------------------+
//!    | db-writer (1 thread)      |      | db-reader-i (DbReaders)      |
//!    | group commit: drain up to |      | unread, recent contacts,     |
//!    | DbBatchMax jobs -> 1 txn  |      | watchers, password checks    |
//!    +---------------------------+      +------------------------------+
//! ```
//!
//! * [`proto`]: the wire protocol, no I/O. [`net`]: the event loop. [`msg`], [`login`]: the
//!   roles, as handlers from (state, PDU) to effects. [`store`]: SQLite, the group-commit writer
//!   and the reader pool. [`client`]: a blocking client for tests and tools.
//! * A worker never blocks: a storage job leaves on a bounded channel, its answer comes back on
//!   the worker's channel with one wake per batch.
//! * A connection is `(worker, slot, generation)`; replies to a reused slot are dropped.
//! * A 3/1 is acknowledged (3/2) only after its transaction committed, and delivered after that:
//!   the writer's outlet sends each committed message to the recipient sessions' workers (a group
//!   message as one shared buffer, one Fanout per worker) in commit order.
//! * Stop (SIGTERM/SIGINT, [`server::Running::stop`]): workers stop reading, a barrier job
//!   drains the writer, workers apply the replies it sent (acks, deliveries) and flush, then
//!   close; so nothing is committed without being acknowledged. Bounded by `StopTimeout`.
//! * `admin-http` (one mio thread) serves the HTTP admin API; its writes go through the same
//!   writer, its pushes through the workers' channels.
//! * [`file`](mod@file): the file role, one mio thread `file-worker` for every file-port connection (so an
//!   online relay is a queue push) and one thread `file-io` for its disk and SQLite work (temp
//!   files, fsync, rename, records, memory maps, the expiry sweeper). Msg workers announce tasks
//!   through [`file::hub::FileHub`]; with `FileServer` the file role is another process and
//!   thread `file-link` carries the same announcements over TCP.
//! * [`msfs`]: the image store, one thread `msfs-http` (the shared event loop,
//!   [`net::event_loop::EventLoop`], running the msfs service) for every HTTP connection and
//!   one thread `msfs-io` for its disk work (fsync, rename, reads), linked by bounded channels
//!   and a Waker.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod admin;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod file;
pub mod login;
pub mod msfs;
pub mod msg;
pub mod net;
pub mod proto;
pub mod server;
pub mod signals;
pub mod stats;
pub mod store;

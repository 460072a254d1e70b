//! ttserver: a server for the TeamTalk (TT 2014) instant-messaging protocol.
//!
//! One process plays the login, msg, file and msfs roles and the admin API on embedded SQLite.
//! Every thread that owns sockets runs the same event loop, [`net::event_loop::EventLoop`],
//! over a different [`net::service::Service`]:
//!
//! ```text
//!        SO_REUSEPORT: one msg and one login listener per worker
//!              |                  |                  |
//!   +------------------+ +------------------+ +------------------+
//!   | msg-worker-0     | | msg-worker-1     | | msg-worker-N-1   |  N = Workers (default:
//!   | EventLoop<       |<->EventLoop<       |<->EventLoop<       |  cores); each owns a slab
//!   |   MsgService>    | |   MsgService>    | |   MsgService>    |  of connections
//!   +------------------+ +------------------+ +------------------+
//!        |  ^  bounded channels + mio::Waker (storage replies, pushes, fan-out)
//!        v  |
//!   +-----------------+  +-----------------+  +-----------------+
//!   | db-writer       |  | db-reader-i     |  | hasher-i        |
//!   | group commit    |  | unread, lists,  |  | argon2id checks |
//!   | (1 thread)      |  | watchers        |  | (HashThreads)   |
//!   +-----------------+  +-----------------+  +-----------------+
//!
//!   file-worker: EventLoop<FileService> + file-io, file-sync
//!   msfs-http:   EventLoop<msfs service> + msfs-io
//!   admin-http:  EventLoop<AdminService> + admin-commit (waits for its commits)
//! ```
//!
//! * [`proto`]: the wire protocol, no I/O. [`net`]: the event loop, generic over the service,
//!   importing no role. [`msg`], [`login`], [`file`](mod@file), [`msfs`], [`admin`]: the roles,
//!   as services answering events with actions. [`store`]: SQLite, the group-commit writer, the
//!   reader pool and the "room again" bell of full queues. [`client`]: a blocking client for
//!   tests and tools.
//! * A loop never blocks: a storage, disk or hashing job leaves on a bounded channel, its
//!   answer comes back on the loop's bounded channel with one wake per batch. A connection held
//!   for a full queue is woken when a storage thread takes a job (no polling).
//! * A connection is `(loop, slot, generation)`; replies to a reused slot are dropped.
//! * A 3/1 is acknowledged (3/2) only after its transaction committed, and delivered after that:
//!   the writer's outlet sends each committed message to the recipient sessions' workers (a group
//!   message as one shared buffer, one Fanout per worker) in commit order.
//! * Stop (SIGTERM/SIGINT, [`server::Running::stop`]): workers stop reading, a barrier job
//!   drains the writer, workers apply the replies it sent (acks, deliveries) and flush, then
//!   close; so nothing is committed without being acknowledged. Bounded by `StopTimeout`.
//! * `docs/architecture.md` describes the design as built, with the limits and what happens
//!   past each.
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

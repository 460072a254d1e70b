//! ttserver: a server for the TeamTalk (TT 2014) instant-messaging protocol.
//!
//! (Thread diagram and overview: see the crate doc written in `server.rs` / README.)
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod admin;
pub mod auth;
pub mod client;
pub mod config;
pub mod proto;
pub mod store;

//! Process-wide counters (behaviour.md section 17). Each counter sits beside the code that counts;
//! this file only declares them so `GET /v1/stats` and logs can list them all.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Monotonic counters, all zero at process start.
        #[derive(Default)]
        pub struct Counters { $(pub $name: AtomicU64,)* }

        impl Counters {
            /// Every counter with its name, for reports.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters!(
    proto_errors,
    unknown_pdus,
    ignored_before_login,
    ignored_relogin,
    login_timeouts,
    login_failures,
    login_throttled,
    kicks,
    idle_closes,
    identity_rejects,
    msg_rejected,
    cmd_rejected,
    store_failures,
    recv_acks,
    ignored_settings,
    out_truncated,
    slow_consumer_closes,
    conn_cap_rejects,
    file_login_refused,
    file_rejected,
    file_add_reports,
    short_requests,
    msgs_p2p,
    msgs_group,
    stale_replies,
    msfs_uploads,
    msfs_rejects,
    msfs_downloads,
    msfs_store_failures,
    input_budget_closes,
    channel_full_waits,
    storage_full_waits,
);

/// Increment a counter by one.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

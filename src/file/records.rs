//! Who writes the `offline_files` records (B-FILE-9, -14, -15).
//!
//! The file role only writes through [`FileRecords`]. Inside `ttserver run` that is the msg
//! role's group-commit writer (`MsgSide` of the msg role), so the process has one writer
//! connection; `ttserver file` is a process of its own and writes through [`OwnRecords`], its
//! own connection. Reads (`files::get`) stay on the io thread's read connection either way.
//!
//! Every call blocks until the write is committed (or failed), so the callers are the file
//! role's pool threads (file-io, file-sync), never its event loop.

use parking_lot::Mutex;
use rusqlite::Connection;

use crate::store::files::{self, OfflineFile};
use crate::store::StoreError;

/// The three writes of the file role; each returns once committed.
pub trait FileRecords: Send + Sync {
    /// Records a complete file (after fsync and rename, B-FILE-9).
    fn insert(&self, rec: &OfflineFile) -> Result<(), StoreError>;
    /// B-FILE-14: deletes the record of `task_id` from `from` to `to`; whether a row went.
    fn delete(&self, task_id: &str, from: u32, to: u32) -> Result<bool, StoreError>;
    /// B-FILE-15: deletes every record created before `before`; (task_id, to_id) of each.
    fn delete_older(&self, before: u32) -> Result<Vec<(String, u32)>, StoreError>;
}

/// `ttserver file`: the file role's own write connection, shared by file-io and file-sync
/// (SQLite lets one of them write at a time anyway).
pub struct OwnRecords {
    conn: Mutex<Connection>,
}

impl OwnRecords {
    pub fn new(conn: Connection) -> OwnRecords {
        OwnRecords {
            conn: Mutex::new(conn),
        }
    }
}

impl FileRecords for OwnRecords {
    fn insert(&self, rec: &OfflineFile) -> Result<(), StoreError> {
        files::insert(&self.conn.lock(), rec)
    }

    fn delete(&self, task_id: &str, from: u32, to: u32) -> Result<bool, StoreError> {
        files::delete(&self.conn.lock(), task_id, from, to)
    }

    fn delete_older(&self, before: u32) -> Result<Vec<(String, u32)>, StoreError> {
        files::delete_older(&self.conn.lock(), before)
    }
}

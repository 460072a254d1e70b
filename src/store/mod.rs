//! Storage: SQLite schema, queries, the group-commit writer and the reader pool.

/// SQLite `synchronous` setting (`DbSync` conf key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbSync {
    /// fsync before a commit is reported (default): an ack survives power loss.
    Full,
    /// WAL `synchronous=NORMAL`: survives a process crash, not a power loss.
    Normal,
}

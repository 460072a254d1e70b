//! The storage layer's one error type.

use std::fmt;

/// Every failure of the storage layer. Callers decide per site: error reply, drop, or refuse to start.
#[derive(Debug)]
pub enum StoreError {
    /// SQLite reported an error (I/O, busy, constraint, corruption, ...).
    Sqlite(rusqlite::Error),
    /// A uniqueness rule would be broken, e.g. a login name that is taken.
    Conflict(String),
    /// A referenced row does not exist.
    NotFound(String),
    /// A value is out of range or malformed (a stored value or a caller's argument).
    Invalid(String),
    /// A file-system error (creating the data directory, reading an import file, ...).
    Io(std::io::Error),
}

impl StoreError {
    /// An equivalent error, for reporting one failure to several waiters (a failed batch commit).
    /// `rusqlite::Error` is not `Clone`; non-SQLite-code variants keep their message only.
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, msg)) => {
                StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, msg.clone()))
            }
            StoreError::Sqlite(other) => StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(other.to_string()),
            )),
            StoreError::Conflict(s) => StoreError::Conflict(s.clone()),
            StoreError::NotFound(s) => StoreError::NotFound(s.clone()),
            StoreError::Invalid(s) => StoreError::Invalid(s.clone()),
            StoreError::Io(e) => StoreError::Io(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Sqlite(e) => write!(f, "database error: {e}"),
            StoreError::Conflict(s) => write!(f, "conflict: {s}"),
            StoreError::NotFound(s) => write!(f, "not found: {s}"),
            StoreError::Invalid(s) => write!(f, "invalid: {s}"),
            StoreError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Sqlite(e) => Some(e),
            StoreError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keeps_code_and_message() {
        let e = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("disk full".into()),
        ));
        let d = e.duplicate();
        assert_eq!(e.to_string(), d.to_string());
        assert!(StoreError::Conflict("x".into())
            .duplicate()
            .to_string()
            .contains("x"));
    }
}

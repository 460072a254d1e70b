//! Storage: SQLite schema, queries, the group-commit writer and the reader pool.
//!
//! One module per table or area: [`users`], [`departs`], [`messages`] (p2p), [`unread`],
//! [`recent`], [`groups`] (groups, members with their read cursors, group messages); plus the threads: [`writer`] (the single writer, group commit) and [`readers`]
//! (the reader pool). The schema is embedded at build time: [`open`] creates a new database from
//! `sql/schema.sql` (the complete current schema) and upgrades an existing one with the
//! migrations `sql/NNN_*.sql` in order; `PRAGMA user_version` records the version.
//!
//! Users and groups share one id space (B-GRP-20): both take their ids from [`next_id`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

pub mod departs;
mod error;
pub mod files;
pub mod groups;
pub mod messages;
pub mod readers;
pub mod recent;
pub mod room;
pub mod unread;
pub mod users;
pub mod writer;

pub use error::StoreError;

/// SQLite `synchronous` setting (`DbSync` conf key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbSync {
    /// fsync before a commit is reported (default): an ack survives power loss.
    Full,
    /// WAL `synchronous=NORMAL`: survives a process crash, not a power loss.
    Normal,
}

/// Client family (behaviour.md section 0): unread state is kept per family (B-UNR-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Pc,
    Ios,
    Android,
}

/// The migrations, in order: `MIGRATIONS[i]` brings `user_version` from `i` to `i + 1`.
/// A new database does not run them: it gets [`SCHEMA`] at once.
const MIGRATIONS: &[&str] = &[
    include_str!("../../sql/001_init.sql"),
    include_str!("../../sql/002_groups.sql"),
    include_str!("../../sql/003_files.sql"),
    include_str!("../../sql/004_ids.sql"),
];

/// The complete schema at [`SCHEMA_VERSION`], as a new database gets it. Must equal the result
/// of the migrations (tested).
const SCHEMA: &str = include_str!("../../sql/schema.sql");

/// The `user_version` that `004_ids.sql` upgrades from: it renumbers the groups whose id is
/// also a user id (B-GRP-20), which `migrate` counts for the log.
const IDS_MIGRATION_FROM: u32 = 3;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// How long a connection waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database file inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("ttserver.db")
}

/// Opens (creating if needed) the database at `path`, sets the connection pragmas (WAL,
/// busy timeout 5 s, `synchronous` per `sync`, foreign keys) and brings the schema up to date.
/// A database written by a newer ttserver (higher `user_version`) is refused.
/// `path` may be `:memory:` (tests).
pub fn open(path: &Path, sync: DbSync) -> Result<Connection, StoreError> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let mut conn = Connection::open(path)?;
    // journal_mode answers with the resulting mode ("memory" for :memory:).
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    configure(&conn, sync)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens a further connection on an existing database (reader threads): same pragmas, no
/// migrations, and `query_only` so a bug cannot write outside the writer thread.
pub fn open_reader(path: &Path, sync: DbSync) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    configure(&conn, sync)?;
    conn.pragma_update(None, "query_only", true)?;
    let version = user_version(&conn)?;
    if version != SCHEMA_VERSION {
        return Err(StoreError::Invalid(format!(
            "database {} has schema version {version}, expected {SCHEMA_VERSION}",
            path.display()
        )));
    }
    Ok(conn)
}

fn configure(conn: &Connection, sync: DbSync) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let level = match sync {
        DbSync::Full => "FULL",
        DbSync::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", level)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    u32::try_from(v).map_err(|_| StoreError::Invalid(format!("bad schema version {v}")))
}

/// Brings the schema up to date. A new database (version 0, no tables) gets [`SCHEMA`] and
/// [`SCHEMA_VERSION`] in one transaction; an existing one gets every migration above its
/// `user_version`, each in its own transaction. The version is re-read under the write lock,
/// so two processes opening at once are safe.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version = user_version(&tx)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Invalid(format!(
                "database schema version {version} is newer than this ttserver knows \
                 ({SCHEMA_VERSION}); use a newer ttserver"
            )));
        }
        if version == 0 && is_empty(&tx)? {
            tx.execute_batch(SCHEMA)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
            log::info!(target: "store", "new database created at schema version {SCHEMA_VERSION}");
            return Ok(());
        }
        let Some(sql) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Ok(()); // up to date; dropping tx rolls back the empty transaction
        };
        let renumbered = if version == IDS_MIGRATION_FROM {
            Some(colliding_groups(&tx)?)
        } else {
            None
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
        log::info!(target: "store", "database migrated to schema version {}", version + 1);
        if let Some(n) = renumbered {
            log::info!(
                target: "store",
                "{n} groups whose id was also a user id got new ids (B-GRP-20)"
            );
        }
    }
}

/// Whether the database holds no schema object at all (a new file).
fn is_empty(conn: &Connection) -> Result<bool, StoreError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    Ok(n == 0)
}

/// The number of groups whose id is also a user id (what `004_ids.sql` renumbers).
fn colliding_groups(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM groups WHERE id IN (SELECT id FROM users)",
        [],
        |r| r.get(0),
    )?)
}

/// B-GRP-20: the next id of the one sequence shared by users and groups (normal and
/// temporary). Call it inside the transaction that inserts the row with this id: a rolled-back
/// transaction gives the id back (a gap is possible only outside a transaction, never a
/// repeat). `Invalid` once the ids no longer fit 32 bits.
pub(crate) fn next_id(conn: &Connection) -> Result<u32, StoreError> {
    let last: i64 = conn
        .prepare_cached("UPDATE id_seq SET last = last + 1 WHERE id = 1 RETURNING last")?
        .query_row([], |r| r.get(0))
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => {
                StoreError::Invalid("the id sequence (table id_seq) has no row".into())
            }
            e => e.into(),
        })?;
    id_u32(last, "new user or group id")
}

/// A column value that must fit a u32 id, as a conversion error otherwise.
pub(crate) fn id_u32(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Invalid(format!("{what} {v} does not fit 32 bits")))
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh, unique path under the temp dir; the directory is removed on drop.
    pub struct TempDb {
        pub dir: PathBuf,
    }

    impl TempDb {
        pub fn new(tag: &str) -> TempDb {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "ttserver-test-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            TempDb { dir }
        }
        pub fn path(&self) -> PathBuf {
            db_path(&self.dir)
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    pub fn mem() -> Connection {
        open(Path::new(":memory:"), DbSync::Normal).unwrap()
    }

    /// Inserts users named u1..=un (ids 1..=n in a fresh db).
    pub fn users(conn: &Connection, n: u32) {
        for i in 1..=n {
            let u = users::NewUser {
                name: format!("u{i}"),
                password_hash: "x".into(),
                ..Default::default()
            };
            assert_eq!(users::insert(conn, &u).unwrap(), i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::TempDb;
    use super::*;

    #[test]
    fn fresh_db_gets_latest_version_and_wal() {
        let t = TempDb::new("mig");
        let conn = open(&t.path(), DbSync::Full).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2); // FULL
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        for table in [
            "users",
            "departs",
            "messages",
            "unread",
            "recent_contacts",
            "groups",
            "group_members",
            "group_messages",
        ] {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "table {table}");
        }
    }

    #[test]
    fn reopen_is_a_noop_and_keeps_data() {
        let t = TempDb::new("reopen");
        {
            let conn = open(&t.path(), DbSync::Normal).unwrap();
            testutil::users(&conn, 2);
        }
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(users::all(&conn).unwrap().len(), 2);
    }

    #[test]
    fn newer_version_is_refused() {
        let t = TempDb::new("newer");
        {
            let conn = open(&t.path(), DbSync::Normal).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = open(&t.path(), DbSync::Normal).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
        assert!(open_reader(&t.path(), DbSync::Normal).is_err());
    }

    /// `sql` without `--` comments, whitespace collapsed, none around `(`, `)` and `,`.
    fn normalise(sql: &str) -> String {
        let no_comments: Vec<&str> = sql
            .lines()
            .map(|l| l.find("--").map_or(l, |at| l.get(..at).unwrap_or(l)))
            .collect();
        let collapsed = no_comments
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut out = String::with_capacity(collapsed.len());
        let mut chars = collapsed.chars().peekable();
        while let Some(c) = chars.next() {
            if c == ' '
                && (out.ends_with(['(', ')', ',']) || matches!(chars.peek(), Some('(' | ')' | ',')))
            {
                continue;
            }
            out.push(c);
        }
        out
    }

    /// Every schema object (type, name, table, normalised SQL) and, per table and index, what
    /// SQLite makes of it (columns, index columns, foreign keys), in a stable order.
    fn schema_of(c: &Connection) -> Vec<String> {
        let mut st = c
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        let objects: Vec<(String, String, String, Option<String>)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let pragma = |sql: String| -> Vec<String> {
            let mut st = c.prepare(&sql).unwrap();
            let n = st.column_count();
            st.query_map([], |r| {
                let vals: Vec<rusqlite::types::Value> =
                    (0..n).map(|i| r.get(i)).collect::<Result<_, _>>()?;
                Ok(format!("  {vals:?}"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let mut out = Vec::new();
        for (kind, name, table, sql) in objects {
            out.push(format!(
                "{kind} {name} on {table}: {}",
                sql.as_deref().map(normalise).unwrap_or_default()
            ));
            match kind.as_str() {
                "table" => {
                    out.extend(pragma(format!("PRAGMA table_xinfo(\"{name}\")")));
                    out.extend(pragma(format!("PRAGMA foreign_key_list(\"{name}\")")));
                }
                "index" => out.extend(pragma(format!("PRAGMA index_xinfo(\"{name}\")"))),
                _ => {}
            }
        }
        out
    }

    /// A database file at `version` written by that build: the first `version` migrations
    /// applied by hand (as open() did then), nothing else.
    fn db_at_version(t: &TempDb, version: u32) -> Connection {
        std::fs::create_dir_all(&t.dir).unwrap();
        let mut conn = Connection::open(t.path()).unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        let tx = conn.transaction().unwrap();
        for sql in MIGRATIONS.iter().take(version as usize) {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", version).unwrap();
        tx.commit().unwrap();
        conn
    }

    #[test]
    fn normalise_strips_comments_and_spacing() {
        assert_eq!(
            normalise("CREATE TABLE t ( -- x\n  a  INTEGER , -- (y)\n b )"),
            "CREATE TABLE t(a INTEGER,b)"
        );
    }

    #[test]
    fn schema_sql_equals_the_migrations_step_by_step() {
        // A version-1 database migrated one step at a time by open() must end up with exactly
        // the schema that a new database gets from sql/schema.sql.
        let old = TempDb::new("schema-v1");
        drop(db_at_version(&old, 1));
        let migrated = open(&old.path(), DbSync::Normal).unwrap();
        let new = TempDb::new("schema-new");
        let fresh = open(&new.path(), DbSync::Normal).unwrap();
        assert_eq!(user_version(&migrated).unwrap(), SCHEMA_VERSION);
        assert_eq!(user_version(&fresh).unwrap(), SCHEMA_VERSION);
        let (a, b) = (schema_of(&migrated), schema_of(&fresh));
        assert!(a.len() > 20, "{a:?}");
        let only_migrated: Vec<&String> = a.iter().filter(|x| !b.contains(x)).collect();
        let only_fresh: Vec<&String> = b.iter().filter(|x| !a.contains(x)).collect();
        assert!(
            a == b,
            "schema differs: only after the migrations {only_migrated:#?}, \
             only from schema.sql {only_fresh:#?}"
        );
        // and schema.sql itself gives exactly that schema
        let raw = Connection::open_in_memory().unwrap();
        raw.execute_batch(SCHEMA).unwrap();
        assert_eq!(schema_of(&raw), b);
        // the sequence row is there in both
        let last = |c: &Connection| -> i64 {
            c.query_row("SELECT last FROM id_seq WHERE id = 1", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!((last(&migrated), last(&fresh)), (0, 0));
    }

    #[test]
    fn new_database_uses_schema_sql_in_one_go() {
        // A database with tables but user_version 0 is not "new": it goes through 001, which
        // refuses to create a table that exists, and nothing is half-applied.
        let t = TempDb::new("not-new");
        std::fs::create_dir_all(&t.dir).unwrap();
        Connection::open(t.path())
            .unwrap()
            .execute_batch("CREATE TABLE users (x)")
            .unwrap();
        assert!(open(&t.path(), DbSync::Normal).is_err());
        let c = Connection::open(t.path()).unwrap();
        assert_eq!(user_version(&c).unwrap(), 0);
        let n: i64 = c
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn ids_migration_renumbers_groups_that_collide_with_users() {
        // B-GRP-20: a version-3 database with users 1..3 and groups 1 (normal), 2 (temporary)
        // and 7. Groups 1 and 2 share ids with users and move to 8 and 9 (above max(3, 7)) with
        // their members, cursors, hidden flags and messages; 7 stays.
        let t = TempDb::new("mig-ids");
        {
            let conn = db_at_version(&t, 3);
            conn.execute_batch(
                "INSERT INTO users (id, name, password_hash) VALUES
                     (1, CAST('u1' AS BLOB), 'x'), (2, CAST('u2' AS BLOB), 'x'),
                     (3, CAST('u3' AS BLOB), 'x');
                 INSERT INTO groups (id, type, name, avatar, creator, created, updated,
                                     last_msg_id, deleted) VALUES
                     (1, 1, x'6e31', x'6176', 0, 10, 20, 3, 0),
                     (2, 2, x'7432', x'', 3, 11, 21, 2, 0),
                     (7, 1, x'6e37', x'', 0, 12, 22, 4, 0);
                 INSERT INTO group_members (group_id, user_id, seq, hidden, read_pc, read_ios,
                                            read_android) VALUES
                     (1, 1, 1, 0, 3, 1, 0), (1, 2, 2, 1, 1, 0, 3),
                     (2, 3, 1, 0, 2, 2, 2), (2, 1, 2, 1, 0, 0, 0),
                     (7, 3, 1, 0, 0, 0, 0);
                 INSERT INTO group_messages (id, group_id, from_id, create_time, msg_type, data)
                     VALUES (1, 1, 1, 15, 17, 'a'), (2, 2, 3, 16, 17, 'b'),
                            (3, 1, 2, 17, 17, 'c'), (4, 7, 3, 18, 17, 'd');",
            )
            .unwrap();
        }
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let rows = |sql: &str| -> Vec<String> {
            let mut st = conn.prepare(sql).unwrap();
            let n = st.column_count();
            st.query_map([], |r| {
                let vals: Vec<rusqlite::types::Value> =
                    (0..n).map(|i| r.get(i)).collect::<Result<_, _>>()?;
                Ok(format!("{vals:?}"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let expect = |sql: &str, want: &[&str]| {
            let got = rows(sql);
            let got: Vec<&str> = got.iter().map(String::as_str).collect();
            assert_eq!(got, want, "{sql}");
        };
        use rusqlite::types::Value::{Blob, Integer as I, Text};
        let b = |s: &[u8]| Blob(s.to_vec());
        let fmt = |v: Vec<rusqlite::types::Value>| format!("{v:?}");
        expect(
            "SELECT * FROM groups ORDER BY id",
            &[
                &fmt(vec![
                    I(7),
                    I(1),
                    b(b"n7"),
                    b(b""),
                    I(0),
                    I(12),
                    I(22),
                    I(4),
                    I(0),
                ]),
                &fmt(vec![
                    I(8),
                    I(1),
                    b(b"n1"),
                    b(b"av"),
                    I(0),
                    I(10),
                    I(20),
                    I(3),
                    I(0),
                ]),
                &fmt(vec![
                    I(9),
                    I(2),
                    b(b"t2"),
                    b(b""),
                    I(3),
                    I(11),
                    I(21),
                    I(2),
                    I(0),
                ]),
            ],
        );
        expect(
            "SELECT * FROM group_members ORDER BY group_id, seq",
            &[
                &fmt(vec![I(7), I(3), I(1), I(0), I(0), I(0), I(0)]),
                &fmt(vec![I(8), I(1), I(1), I(0), I(3), I(1), I(0)]),
                &fmt(vec![I(8), I(2), I(2), I(1), I(1), I(0), I(3)]),
                &fmt(vec![I(9), I(3), I(1), I(0), I(2), I(2), I(2)]),
                &fmt(vec![I(9), I(1), I(2), I(1), I(0), I(0), I(0)]),
            ],
        );
        let txt = |s: &str| Text(s.into());
        expect(
            "SELECT * FROM group_messages ORDER BY id",
            &[
                &fmt(vec![I(1), I(8), I(1), I(15), I(17), txt("a")]),
                &fmt(vec![I(2), I(9), I(3), I(16), I(17), txt("b")]),
                &fmt(vec![I(3), I(8), I(2), I(17), I(17), txt("c")]),
                &fmt(vec![I(4), I(7), I(3), I(18), I(17), txt("d")]),
            ],
        );
        expect("SELECT * FROM id_seq", &[&fmt(vec![I(1), I(9)])]);
        expect("PRAGMA foreign_key_check", &[]);
        expect(
            "SELECT name FROM sqlite_master WHERE name = 'id_renumber'",
            &[],
        );
        // the queries see the groups under their new ids
        assert_eq!(
            groups::unread_counts(&conn, 2, Family::Ios, 150, 10).unwrap(),
            vec![(8, 1)]
        );
        assert!(groups::unread_counts(&conn, 2, Family::Pc, 150, 10)
            .unwrap()
            .is_empty());
        assert_eq!(
            groups::unread_counts(&conn, 1, Family::Ios, 150, 10).unwrap(),
            vec![(8, 1), (9, 1)]
        );
        assert_eq!(groups::get(&conn, 9).unwrap().unwrap().members, vec![3, 1]);
        assert!(groups::get(&conn, 1).unwrap().is_none());
        assert_eq!(
            groups::recent_groups_of(&conn, 1, 10)
                .unwrap()
                .iter()
                .map(|g| g.id)
                .collect::<Vec<_>>(),
            vec![8]
        );
        // the next user and group continue the one sequence
        let u = users::NewUser {
            name: "u4".into(),
            password_hash: "x".into(),
            ..Default::default()
        };
        assert_eq!(users::insert(&conn, &u).unwrap(), 10);
        let (g, _) = groups::create_normal(&conn, b"new", b"", &[10], 30).unwrap();
        assert_eq!(g, 11);
        // reopening migrates nothing again
        drop(conn);
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        assert_eq!(groups::get(&conn, 8).unwrap().unwrap().members, vec![1, 2]);
        assert_eq!(next_id(&conn).unwrap(), 12);
    }

    #[test]
    fn ids_migration_without_collisions_moves_nothing() {
        // Users 1..2 and no groups, or groups above every user id: only the sequence is added.
        let t = TempDb::new("mig-ids-none");
        {
            let conn = db_at_version(&t, 3);
            conn.execute_batch(
                "INSERT INTO users (id, name, password_hash) VALUES
                     (1, CAST('u1' AS BLOB), 'x'), (2, CAST('u2' AS BLOB), 'x');
                 INSERT INTO groups (id, type, name, created, updated) VALUES (5, 1, x'67', 1, 1);
                 INSERT INTO group_members (group_id, user_id, seq) VALUES (5, 2, 1);",
            )
            .unwrap();
        }
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        assert_eq!(groups::get(&conn, 5).unwrap().unwrap().members, vec![2]);
        assert_eq!(next_id(&conn).unwrap(), 6);
        let empty = TempDb::new("mig-ids-empty");
        drop(db_at_version(&empty, 3));
        let conn = open(&empty.path(), DbSync::Normal).unwrap();
        assert_eq!(next_id(&conn).unwrap(), 1);
    }

    #[test]
    fn version_1_database_with_groups_migrates() {
        // A database written by a version-1 build, with a group and its messages: 002 swaps
        // the group message index and adds the hidden partial index; the data stays. 004
        // moves group 1 (also user 1's id) to 3 (B-GRP-20).
        let t = TempDb::new("mig-v1");
        {
            let conn = db_at_version(&t, 1);
            conn.execute_batch(
                "INSERT INTO users (id, name, password_hash) VALUES
                     (1, CAST('u1' AS BLOB), 'x'), (2, CAST('u2' AS BLOB), 'x');
                 INSERT INTO groups (id, type, name, created, updated, last_msg_id)
                     VALUES (1, 2, x'67', 1, 2, 1);
                 INSERT INTO group_members (group_id, user_id, seq, hidden) VALUES (1, 1, 1, 0);
                 INSERT INTO group_members (group_id, user_id, seq, hidden) VALUES (1, 2, 2, 1);
                 INSERT INTO group_messages (group_id, from_id, create_time, msg_type, data)
                     VALUES (1, 1, 2, 17, 'hi');",
            )
            .unwrap();
        }
        let conn = open(&t.path(), DbSync::Normal).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let index_sql = |name: &str| -> String {
            conn.query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert!(index_sql("group_messages_by_group").contains("from_id"));
        assert!(index_sql("group_members_hidden").contains("hidden = 1"));
        assert_eq!(
            groups::unread_counts(&conn, 2, Family::Pc, 150, 10).unwrap(),
            vec![(3, 1)]
        );
        let g = groups::get(&conn, 3).unwrap().unwrap();
        assert_eq!(g.members, vec![1, 2]);
        assert!(groups::get(&conn, 1).unwrap().is_none());
        assert_eq!(groups::recent_groups_of(&conn, 2, 10).unwrap().len(), 0);
    }

    #[test]
    fn creates_parent_dir() {
        let t = TempDb::new("parent");
        let nested = t.dir.join("a").join("b").join("x.db");
        open(&nested, DbSync::Normal).unwrap();
        assert!(nested.exists());
    }
}

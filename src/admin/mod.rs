//! The admin CLI (architecture.md section 5): `ttserver admin -c FILE <command>` works directly
//! on the database under the conf file's DataDir. Use it while no server runs on that DataDir;
//! otherwise use the HTTP admin API so that pushes reach online clients (B-ADM).
//!
//! Commands (the words after `admin -c FILE`):
//! ```text
//! user add NAME --password P [--nick N] [--depart ID]
//! user import FILE.csv            lines: name,password[,nick[,depart]]
//! depart add TITLE [--parent ID] [--description TEXT] [--leader ID]
//! group add NAME --members ID,ID,... [--avatar URL]   a normal group
//! group members ID --set ID,ID,...                     the complete new member list
//! ```
//! Each prints the created id (or the imported count, or the new member count) as the only line
//! on `out`. Group members must be active users (new ones, for `group members`), at most
//! `MaxNormalGroupMembers` at its default (5000): the CLI reads no conf key for it.

use std::fmt;
use std::io::Write;
use std::path::Path;

use crate::auth::password::PasswordError;
use crate::auth::HashCost;
use crate::store::{self, DbSync, StoreError};

mod args;
mod check;
mod departs;
mod groups;
pub mod http;
pub mod token;
mod users;

/// Why an admin command failed; the message is meant for the operator's terminal.
#[derive(Debug)]
pub enum AdminError {
    /// Bad command line (unknown command, missing or unknown option, bad number).
    Usage(String),
    /// A bad line of an import file (1-based line number); nothing was imported.
    Line { line: usize, message: String },
    /// The store refused (name taken, unknown department, database error, ...).
    Store(StoreError),
    /// Hashing a password failed.
    Password(PasswordError),
    /// Reading an input file or writing the output failed.
    Io(std::io::Error),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Usage(m) => write!(f, "{m}\n\n{USAGE}"),
            AdminError::Line { line, message } => {
                write!(f, "line {line}: {message} (nothing imported)")
            }
            AdminError::Store(e) => write!(f, "{e}"),
            AdminError::Password(e) => write!(f, "{e}"),
            AdminError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AdminError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AdminError::Store(e) => Some(e),
            AdminError::Password(e) => Some(e),
            AdminError::Io(e) => Some(e),
            AdminError::Usage(_) | AdminError::Line { .. } => None,
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Store(e)
    }
}

impl From<rusqlite::Error> for AdminError {
    fn from(e: rusqlite::Error) -> Self {
        AdminError::Store(StoreError::Sqlite(e))
    }
}

impl From<PasswordError> for AdminError {
    fn from(e: PasswordError) -> Self {
        AdminError::Password(e)
    }
}

impl From<std::io::Error> for AdminError {
    fn from(e: std::io::Error) -> Self {
        AdminError::Io(e)
    }
}

/// The usage text shown with every usage error.
pub const USAGE: &str = "usage: ttserver admin -c FILE <command>
  user add NAME --password P [--nick N] [--depart ID]
  user import FILE.csv          (lines: name,password[,nick[,depart]]; prints the count)
  depart add TITLE [--parent ID] [--description TEXT] [--leader ID]
  group add NAME --members ID,ID,... [--avatar URL]   (a normal group; prints its id)
  group members ID --set ID,ID,...   (complete new member list; prints the member count)";

/// Runs one admin command on the database of `data_dir`. `args` = the words after
/// `admin -c FILE`, e.g. `["user","add","alice","--password","p","--nick","Alice"]`.
/// Writes the created id (or the imported count, or the member count) as the only line on `out`.
pub fn run(
    data_dir: &Path,
    sync: DbSync,
    cost: HashCost,
    args: &[String],
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let (area, verb, rest) = match words.as_slice() {
        [area, verb, rest @ ..] => (*area, *verb, rest),
        [] => return Err(AdminError::Usage("missing command".into())),
        [area] => return Err(AdminError::Usage(format!("missing a verb after {area:?}"))),
    };
    // Parse before opening the database: a usage error creates nothing.
    let cmd = match (area, verb) {
        ("user", "add") => Command::UserAdd(users::AddArgs::parse(rest)?),
        ("user", "import") => Command::UserImport(args::one_positional(rest, "user import FILE")?),
        ("depart", "add") => Command::DepartAdd(departs::AddArgs::parse(rest)?),
        ("group", "add") => Command::GroupAdd(groups::AddArgs::parse(rest)?),
        ("group", "members") => Command::GroupMembers(groups::MembersArgs::parse(rest)?),
        _ => {
            return Err(AdminError::Usage(format!(
                "unknown command {area:?} {verb:?}"
            )))
        }
    };
    let mut conn = store::open(&store::db_path(data_dir), sync)?;
    let printed = match cmd {
        Command::UserAdd(a) => u64::from(users::add(&conn, cost, &a)?),
        Command::UserImport(file) => {
            u64::try_from(users::import(&mut conn, cost, Path::new(file))?).unwrap_or(u64::MAX)
        }
        Command::DepartAdd(a) => u64::from(departs::add(&conn, &a)?),
        Command::GroupAdd(a) => u64::from(groups::add(&mut conn, &a)?),
        Command::GroupMembers(a) => {
            u64::try_from(groups::set_members(&mut conn, &a)?).unwrap_or(u64::MAX)
        }
    };
    writeln!(out, "{printed}")?;
    Ok(())
}

enum Command<'a> {
    UserAdd(users::AddArgs<'a>),
    UserImport(&'a str),
    DepartAdd(departs::AddArgs<'a>),
    GroupAdd(groups::AddArgs<'a>),
    GroupMembers(groups::MembersArgs),
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::store::testutil::TempDb;

    pub fn admin(t: &TempDb, args: &[&str]) -> Result<String, AdminError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        run(&t.dir, DbSync::Normal, HashCost::Low, &args, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::admin;
    use crate::store::testutil::TempDb;

    #[test]
    fn usage_errors_create_nothing() {
        let t = TempDb::new("admin-usage");
        for args in [
            &[][..],
            &["user"],
            &["user", "frobnicate"],
            &["user", "add"],
            &["user", "add", "bob"],
            &["user", "add", "bob", "--password"],
            &["user", "add", "bob", "--password", "p", "--colour", "red"],
            &["user", "add", "bob", "--password", "p", "--depart", "x"],
            &["user", "add", "bob", "extra", "--password", "p"],
            &["user", "import"],
            &["depart", "add"],
            &["group", "add", "g"],
            &["group", "add", "", "--members", "1"],
            &["group", "add", "g", "--members", "1,x"],
            &["group", "add", "g", "--members", "1,,2"],
            &["group", "add", "g", "h", "--members", "1"],
            &["group", "add", "g", "--members", "1", "--set", "2"],
            &["group", "members", "1"],
            &["group", "members", "x", "--set", "1"],
            &["group", "members", "1", "--set", "-1"],
            &["group", "frobnicate"],
            // Control characters in names and titles (the HTTP API refuses them too).
            &["user", "add", "b\0b", "--password", "p"],
            &["user", "add", "b\nb", "--password", "p"],
            &["user", "add", "bob", "--password", "p", "--nick", "B\tb"],
            &["depart", "add", "R\0D"],
            &["depart", "add", ""],
            &["group", "add", "g\r", "--members", "1"],
        ] {
            let err = admin(&t, args).unwrap_err();
            assert!(
                matches!(err, super::AdminError::Usage(_)),
                "{args:?}: {err}"
            );
            assert!(err.to_string().contains("usage:"));
        }
        assert!(!t.dir.exists());
    }
}

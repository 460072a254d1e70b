//! `user add` and `user import`.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::args::{parse_u32, Parsed};
use super::check::{self, LABEL_MAX, LOGIN_NAME_MAX};
use super::AdminError;
use crate::auth::password::{hash, md5_hex, PasswordError};
use crate::auth::HashCost;
use crate::store::{departs, users, StoreError};

pub(super) struct AddArgs<'a> {
    name: &'a str,
    password: &'a str,
    nick: Option<&'a str>,
    depart: u32,
}

impl<'a> AddArgs<'a> {
    pub fn parse(words: &[&'a str]) -> Result<AddArgs<'a>, AdminError> {
        let p = Parsed::new(words, &["password", "nick", "depart"])?;
        let name = p.single("user add NAME")?;
        check_name(name).map_err(AdminError::Usage)?;
        let nick = p.flag("nick");
        check_nick(nick).map_err(AdminError::Usage)?;
        let Some(password) = p.flag("password") else {
            return Err(AdminError::Usage("user add: --password is required".into()));
        };
        if password.is_empty() {
            return Err(AdminError::Usage("user add: empty password".into()));
        }
        Ok(AddArgs {
            name,
            password,
            nick,
            depart: p.flag_u32("depart", 0)?,
        })
    }
}

fn check_name(name: &str) -> Result<(), String> {
    check::label(&format!("login name {name:?}"), name, 1, LOGIN_NAME_MAX)
}

fn check_nick(nick: Option<&str>) -> Result<(), String> {
    nick.map_or(Ok(()), |n| {
        check::label(&format!("nick {n:?}"), n, 0, LABEL_MAX)
    })
}

fn check_depart(conn: &Connection, depart: u32) -> Result<(), StoreError> {
    if depart != 0 && !departs::exists(conn, depart)? {
        return Err(StoreError::Invalid(format!(
            "department {depart} does not exist"
        )));
    }
    Ok(())
}

fn new_user(name: &str, nick: Option<&str>, depart: u32, password_hash: String) -> users::NewUser {
    users::NewUser {
        name: name.to_owned(),
        password_hash,
        // Clients show the nick; default to the login name rather than nothing.
        nick: nick.unwrap_or(name).to_owned(),
        depart_id: depart,
        ..Default::default()
    }
}

/// Creates one user; returns its id.
pub(super) fn add(conn: &Connection, cost: HashCost, a: &AddArgs<'_>) -> Result<u32, AdminError> {
    check_depart(conn, a.depart)?;
    if users::by_name(conn, a.name.as_bytes())?.is_some() {
        // checked before the (slow) hash; the insert re-checks under the write lock
        return Err(StoreError::Conflict(format!("login name {:?} is taken", a.name)).into());
    }
    let phc = hash(md5_hex(a.password).as_bytes(), cost)?;
    Ok(users::insert(
        conn,
        &new_user(a.name, a.nick, a.depart, phc),
    )?)
}

/// One parsed import line.
struct Entry<'a> {
    line: usize,
    name: &'a str,
    password: &'a str,
    nick: Option<&'a str>,
    depart: u32,
}

fn parse_line(line: usize, text: &str) -> Result<Entry<'_>, AdminError> {
    let bad = |message: String| AdminError::Line { line, message };
    let fields: Vec<&str> = text.split(',').collect();
    let (name, password, nick, depart) = match fields.as_slice() {
        [n, p] => (*n, *p, None, None),
        [n, p, k] => (*n, *p, Some(*k), None),
        [n, p, k, d] => (*n, *p, Some(*k), Some(*d)),
        _ => {
            return Err(bad(format!(
                "expected name,password[,nick[,depart]], found {} fields",
                fields.len()
            )))
        }
    };
    check_name(name).map_err(bad)?;
    if password.is_empty() {
        return Err(bad("empty password".into()));
    }
    let depart = match depart {
        None | Some("") => 0,
        Some(d) => parse_u32(d).ok_or_else(|| bad(format!("department {d:?} is not a number")))?,
    };
    let nick = nick.filter(|k| !k.is_empty());
    check_nick(nick).map_err(bad)?;
    Ok(Entry {
        line,
        name,
        password,
        nick,
        depart,
    })
}

/// Hashes every password, on up to `available_parallelism` threads (argon2 at the default
/// cost takes tens of milliseconds each).
fn hash_all(entries: &[Entry<'_>], cost: HashCost) -> Result<Vec<String>, PasswordError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    let chunk = entries.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|e| hash(md5_hex(e.password).as_bytes(), cost))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(entries.len());
        for h in handles {
            let part = h.join().map_err(|_| PasswordError::from_panic())??;
            out.extend(part);
        }
        Ok(out)
    })
}

/// Imports `file` (lines `name,password[,nick[,depart]]`, empty lines skipped) in one
/// transaction: all or nothing. Returns the number of users created.
pub(super) fn import(
    conn: &mut Connection,
    cost: HashCost,
    file: &Path,
) -> Result<usize, AdminError> {
    let bytes = std::fs::read(file).map_err(|e| {
        AdminError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", file.display()),
        ))
    })?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes
                .get(..e.valid_up_to())
                .map_or(0, |ok| ok.iter().filter(|b| **b == b'\n').count())
                + 1;
            return Err(AdminError::Line {
                line,
                message: "not valid UTF-8".into(),
            });
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut entries = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let e = parse_line(i + 1, l)?;
        if let Some(first) = entries.iter().find(|p: &&Entry<'_>| p.name == e.name) {
            return Err(AdminError::Line {
                line: e.line,
                message: format!(
                    "login name {:?} already appears on line {}",
                    e.name, first.line
                ),
            });
        }
        entries.push(e);
    }

    // Check what can be checked before the slow hashing.
    for e in &entries {
        let at_line = |err: StoreError| AdminError::Line {
            line: e.line,
            message: err.to_string(),
        };
        check_depart(conn, e.depart).map_err(at_line)?;
        if users::by_name(conn, e.name.as_bytes())
            .map_err(at_line)?
            .is_some()
        {
            return Err(at_line(StoreError::Conflict(format!(
                "login name {:?} is taken",
                e.name
            ))));
        }
    }
    let hashes = hash_all(&entries, cost)?;

    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (e, phc) in entries.iter().zip(hashes) {
        let at_line = |err: StoreError| AdminError::Line {
            line: e.line,
            message: err.to_string(),
        };
        check_depart(&tx, e.depart).map_err(at_line)?;
        users::insert(&tx, &new_user(e.name, e.nick, e.depart, phc)).map_err(at_line)?;
    }
    tx.commit()?;
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use crate::admin::testutil::admin;
    use crate::admin::AdminError;
    use crate::auth::password::{md5_hex, verify};
    use crate::store::testutil::TempDb;
    use crate::store::{db_path, open, users, DbSync};

    fn all(t: &TempDb) -> Vec<users::User> {
        users::all(&open(&db_path(&t.dir), DbSync::Normal).unwrap()).unwrap()
    }

    fn write_csv(t: &TempDb, text: &str) -> String {
        std::fs::create_dir_all(&t.dir).unwrap();
        let p = t.dir.join("users.csv");
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    }

    #[test]
    fn user_add_prints_id_and_duplicate_fails() {
        let t = TempDb::new("admin-user");
        let out = admin(
            &t,
            &[
                "user",
                "add",
                "alice",
                "--password",
                "pw",
                "--nick",
                "Alice",
            ],
        )
        .unwrap();
        assert_eq!(out, "1\n");
        assert_eq!(
            admin(&t, &["user", "add", "bob", "--password", "x"]).unwrap(),
            "2\n"
        );
        let err = admin(&t, &["user", "add", "alice", "--password", "other"]).unwrap_err();
        assert!(matches!(err, AdminError::Store(_)), "{err}");
        assert!(err.to_string().contains("taken"), "{err}");
        let err = admin(
            &t,
            &["user", "add", "carol", "--password", "x", "--depart", "5"],
        )
        .unwrap_err();
        assert!(err.to_string().contains("department 5"), "{err}");

        let users = all(&t);
        assert_eq!(users.len(), 2);
        let a = users.first().unwrap();
        assert_eq!((a.name.as_str(), a.nick.as_str()), ("alice", "Alice"));
        assert!(verify(md5_hex("pw").as_bytes(), &a.password_hash));
        assert!(!verify(md5_hex("other").as_bytes(), &a.password_hash));
        assert_eq!(users.get(1).unwrap().nick, "bob");
    }

    #[test]
    fn import_three_lines() {
        let t = TempDb::new("admin-import");
        admin(&t, &["depart", "add", "HQ"]).unwrap();
        let csv = write_csv(&t, "\u{feff}u1,p1\r\n\nu2,p2,Nick Two\nu3,p3,,1\n\n");
        assert_eq!(admin(&t, &["user", "import", &csv]).unwrap(), "3\n");
        let users = all(&t);
        let names: Vec<_> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["u1", "u2", "u3"]);
        let u2 = users.get(1).unwrap();
        assert_eq!(u2.nick, "Nick Two");
        assert!(verify(md5_hex("p2").as_bytes(), &u2.password_hash));
        let u3 = users.get(2).unwrap();
        assert_eq!((u3.nick.as_str(), u3.depart_id), ("u3", 1));
    }

    #[test]
    fn bad_import_lines_import_nothing() {
        let t = TempDb::new("admin-import-bad");
        admin(&t, &["user", "add", "taken", "--password", "x"]).unwrap();
        for (text, line, what) in [
            ("a,p\nb\nc,p\n", 2, "fields"),
            ("a,p\nb,p,n,1,extra\n", 2, "fields"),
            ("a,p\n\nb,p,n,x\n", 3, "not a number"),
            ("a,p\nb,\n", 2, "empty password"),
            ("a,p\n,p\n", 2, "login name"),
            ("a,p\nb,p,n,7\n", 2, "department 7"),
            ("a,p\nb,p\ntaken,p\n", 3, "taken"),
            ("a,p\nb,p\na,q\n", 3, "line 1"),
            ("a,p\nb\u{0},p\n", 2, "control characters"),
            ("a,p\nb\tc,p\n", 2, "control characters"),
            ("a,p\nb,p,Bee\u{7f}\n", 2, "nick"),
        ] {
            let csv = write_csv(&t, text);
            let err = admin(&t, &["user", "import", &csv]).unwrap_err();
            match &err {
                AdminError::Line { line: l, message } => {
                    assert_eq!(*l, line, "{text:?}: {err}");
                    assert!(message.contains(what), "{text:?}: {err}");
                }
                other => panic!("{text:?}: {other}"),
            }
            assert!(err.to_string().contains(&format!("line {line}")));
            assert_eq!(all(&t).len(), 1, "{text:?}");
        }
        let csv = write_csv(&t, "");
        assert_eq!(admin(&t, &["user", "import", &csv]).unwrap(), "0\n");
        let missing = t.dir.join("nope.csv");
        let err = admin(&t, &["user", "import", missing.to_str().unwrap()]).unwrap_err();
        assert!(matches!(err, AdminError::Io(_)), "{err}");
        std::fs::write(t.dir.join("bin.csv"), b"a,p\nb\xff,p\n").unwrap();
        let err = admin(
            &t,
            &["user", "import", t.dir.join("bin.csv").to_str().unwrap()],
        )
        .unwrap_err();
        assert!(matches!(err, AdminError::Line { line: 2, .. }), "{err}");
    }
}

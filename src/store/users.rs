//! The `users` table (B-USER, B-LOGIN-3).

use rusqlite::{named_params, Connection, ErrorCode, OptionalExtension, Row};

use super::{id_u32, next_id, StoreError};

/// A stored user. `password_hash` is an argon2id PHC string; never send it anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: u32,
    pub name: String,
    pub password_hash: String,
    pub nick: String,
    pub avatar: String,
    pub title: String,
    pub position: String,
    pub sex: u32,
    pub role_status: u32,
    pub depart_id: u32,
    pub job_num: u32,
    pub telephone: String,
    pub email: String,
    pub disabled: bool,
}

/// A user to create (not disabled).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewUser {
    pub name: String,
    pub password_hash: String,
    pub nick: String,
    pub avatar: String,
    pub title: String,
    pub position: String,
    pub sex: u32,
    pub role_status: u32,
    pub depart_id: u32,
    pub job_num: u32,
    pub telephone: String,
    pub email: String,
}

const COLUMNS: &str = "id, name, password_hash, nick, avatar, title, position, sex, role_status, \
                       depart_id, job_num, telephone, email, disabled";

fn from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let name: Vec<u8> = r.get("name")?;
    let name = String::from_utf8(name).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    Ok(User {
        id: r.get("id")?,
        name,
        password_hash: r.get("password_hash")?,
        nick: r.get("nick")?,
        avatar: r.get("avatar")?,
        title: r.get("title")?,
        position: r.get("position")?,
        sex: r.get("sex")?,
        role_status: r.get("role_status")?,
        depart_id: r.get("depart_id")?,
        job_num: r.get("job_num")?,
        telephone: r.get("telephone")?,
        email: r.get("email")?,
        disabled: r.get("disabled")?,
    })
}

/// Creates a user and returns its id, the next of the id sequence shared with groups
/// (B-GRP-20, [`next_id`]). `Conflict` if the login name exists, byte for byte, disabled users
/// included (B-USER-4); `Invalid` for an empty name. A refused name uses up no id; inside a
/// transaction nothing does that is rolled back (outside one, a failed insert leaves a gap in
/// the sequence, never a repeat).
pub fn insert(conn: &Connection, u: &NewUser) -> Result<u32, StoreError> {
    if u.name.is_empty() {
        return Err(StoreError::Invalid("empty login name".into()));
    }
    let exists = conn
        .prepare_cached("SELECT 1 FROM users WHERE name = :name")?
        .exists(named_params! { ":name": u.name.as_bytes() })?;
    if exists {
        return Err(taken(&u.name));
    }
    let id = next_id(conn)?;
    let mut st = conn.prepare_cached(
        "INSERT INTO users (id, name, password_hash, nick, avatar, title, position, sex,
                            role_status, depart_id, job_num, telephone, email)
         VALUES (:id, :name, :password_hash, :nick, :avatar, :title, :position, :sex,
                 :role_status, :depart_id, :job_num, :telephone, :email)",
    )?;
    let res = st.execute(named_params! {
        ":id": id,
        ":name": u.name.as_bytes(),
        ":password_hash": u.password_hash,
        ":nick": u.nick,
        ":avatar": u.avatar,
        ":title": u.title,
        ":position": u.position,
        ":sex": u.sex,
        ":role_status": u.role_status,
        ":depart_id": u.depart_id,
        ":job_num": u.job_num,
        ":telephone": u.telephone,
        ":email": u.email,
    });
    match res {
        Ok(_) => Ok(id),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == ErrorCode::ConstraintViolation
                && e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Err(taken(&u.name))
        }
        Err(e) => Err(e.into()),
    }
}

fn taken(name: &str) -> StoreError {
    StoreError::Conflict(format!("login name {name:?} is taken"))
}

/// Replaces every stored field of user `u.id` (the admin API's PATCH, B-ADM). `NotFound` for
/// an unknown id, `Conflict` if the new login name is taken by another user (B-USER-4),
/// `Invalid` for an empty name.
pub fn update(conn: &Connection, u: &User) -> Result<(), StoreError> {
    if u.name.is_empty() {
        return Err(StoreError::Invalid("empty login name".into()));
    }
    let mut st = conn.prepare_cached(
        "UPDATE users SET name = :name, password_hash = :password_hash, nick = :nick,
                avatar = :avatar, title = :title, position = :position, sex = :sex,
                role_status = :role_status, depart_id = :depart_id, job_num = :job_num,
                telephone = :telephone, email = :email, disabled = :disabled
         WHERE id = :id",
    )?;
    let res = st.execute(named_params! {
        ":id": u.id,
        ":name": u.name.as_bytes(),
        ":password_hash": u.password_hash,
        ":nick": u.nick,
        ":avatar": u.avatar,
        ":title": u.title,
        ":position": u.position,
        ":sex": u.sex,
        ":role_status": u.role_status,
        ":depart_id": u.depart_id,
        ":job_num": u.job_num,
        ":telephone": u.telephone,
        ":email": u.email,
        ":disabled": u.disabled,
    });
    match res {
        Ok(0) => Err(StoreError::NotFound(format!("no user {}", u.id))),
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == ErrorCode::ConstraintViolation
                && e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Err(StoreError::Conflict(format!(
                "login name {:?} is taken",
                u.name
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// The user whose login name is exactly `name` (bytes), disabled or not.
pub fn by_name(conn: &Connection, name: &[u8]) -> Result<Option<User>, StoreError> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE name = :name"))?;
    Ok(st
        .query_row(named_params! { ":name": name }, from_row)
        .optional()?)
}

/// The user with this id, disabled or not.
pub fn by_id(conn: &Connection, id: u32) -> Result<Option<User>, StoreError> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = :id"))?;
    Ok(st
        .query_row(named_params! { ":id": id }, from_row)
        .optional()?)
}

/// Every user, disabled included, id ascending.
pub fn all(conn: &Connection) -> Result<Vec<User>, StoreError> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM users ORDER BY id"))?;
    let rows = st.query_map([], from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Whether a user with this id exists (disabled or not).
pub fn exists(conn: &Connection, id: u32) -> Result<bool, StoreError> {
    let mut st = conn.prepare_cached("SELECT 1 FROM users WHERE id = :id")?;
    Ok(st.exists(named_params! { ":id": id })?)
}

/// Replaces the password hash (admin `PATCH password`). `NotFound` for an unknown id.
pub fn set_password_hash(conn: &Connection, id: u32, hash: &str) -> Result<(), StoreError> {
    let mut st = conn.prepare_cached("UPDATE users SET password_hash = :hash WHERE id = :id")?;
    match st.execute(named_params! { ":hash": hash, ":id": id })? {
        0 => Err(StoreError::NotFound(format!("user {id}"))),
        _ => Ok(()),
    }
}

/// Enables or disables a user (B-ADM-6). `NotFound` for an unknown id.
pub fn set_disabled(conn: &Connection, id: u32, disabled: bool) -> Result<(), StoreError> {
    let mut st = conn.prepare_cached("UPDATE users SET disabled = :disabled WHERE id = :id")?;
    match st.execute(named_params! { ":disabled": disabled, ":id": id })? {
        0 => Err(StoreError::NotFound(format!("user {id}"))),
        _ => Ok(()),
    }
}

/// Number of users (disabled included).
pub fn count(conn: &Connection) -> Result<u32, StoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM users")?
        .query_row([], |r| r.get(0))?;
    id_u32(n, "user count")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::mem;

    fn alice() -> NewUser {
        NewUser {
            name: "alice".into(),
            password_hash: "$argon2id$x".into(),
            nick: "Alice".into(),
            avatar: "a.png".into(),
            title: "t".into(),
            position: "p".into(),
            sex: 1,
            role_status: 2,
            depart_id: 3,
            job_num: 4,
            telephone: "555".into(),
            email: "a@x".into(),
        }
    }

    #[test]
    fn insert_and_lookups() {
        let c = mem();
        let id = insert(&c, &alice()).unwrap();
        assert_eq!(id, 1);
        let bob = NewUser {
            name: "bob".into(),
            ..Default::default()
        };
        assert_eq!(insert(&c, &bob).unwrap(), 2);

        let a = by_name(&c, b"alice").unwrap().unwrap();
        assert_eq!(a.id, 1);
        assert_eq!(a.nick, "Alice");
        assert_eq!(a.email, "a@x");
        assert_eq!((a.sex, a.role_status, a.depart_id, a.job_num), (1, 2, 3, 4));
        assert!(!a.disabled);
        assert_eq!(by_id(&c, 1).unwrap().unwrap(), a);
        assert!(by_id(&c, 3).unwrap().is_none());
        assert!(by_name(&c, b"Alice").unwrap().is_none());
        assert!(by_name(&c, b"alice ").unwrap().is_none());

        let all = all(&c).unwrap();
        assert_eq!(
            all.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        assert_eq!(count(&c).unwrap(), 2);
        assert!(exists(&c, 2).unwrap());
        assert!(!exists(&c, 9).unwrap());
    }

    #[test]
    fn name_conflict_includes_disabled() {
        let c = mem();
        let id = insert(&c, &alice()).unwrap();
        set_disabled(&c, id, true).unwrap();
        assert!(by_id(&c, id).unwrap().unwrap().disabled);
        match insert(&c, &alice()) {
            Err(StoreError::Conflict(m)) => assert!(m.contains("alice")),
            other => panic!("{other:?}"),
        }
        // a different case is a different name
        let mut a2 = alice();
        a2.name = "ALICE".into();
        assert_eq!(insert(&c, &a2).unwrap(), 2);
        assert_eq!(all(&c).unwrap().len(), 2);
    }

    #[test]
    fn non_utf8_and_empty_names() {
        let c = mem();
        insert(&c, &alice()).unwrap();
        assert!(by_name(&c, b"ali\xffce").unwrap().is_none());
        assert!(by_name(&c, b"\xff").unwrap().is_none());
        assert!(by_name(&c, b"").unwrap().is_none());
        assert!(matches!(
            insert(&c, &NewUser::default()),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn password_and_disable_updates() {
        let c = mem();
        let id = insert(&c, &alice()).unwrap();
        set_password_hash(&c, id, "new").unwrap();
        assert_eq!(by_id(&c, id).unwrap().unwrap().password_hash, "new");
        assert!(matches!(
            set_password_hash(&c, 99, "x"),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            set_disabled(&c, 99, true),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn update_replaces_fields_and_checks_name() {
        let c = mem();
        let a = insert(&c, &alice()).unwrap();
        let b = insert(
            &c,
            &NewUser {
                name: "bob".into(),
                password_hash: "h".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let mut u = by_id(&c, a).unwrap().unwrap();
        u.nick = "Al".into();
        u.disabled = true;
        u.depart_id = 3;
        update(&c, &u).unwrap();
        assert_eq!(by_id(&c, a).unwrap().unwrap(), u);
        u.name = "bob".into();
        assert!(matches!(update(&c, &u), Err(StoreError::Conflict(_))));
        u.name = String::new();
        assert!(matches!(update(&c, &u), Err(StoreError::Invalid(_))));
        let mut ghost = by_id(&c, b).unwrap().unwrap();
        ghost.id = 99;
        ghost.name = "ghost".into();
        assert!(matches!(update(&c, &ghost), Err(StoreError::NotFound(_))));
    }
}

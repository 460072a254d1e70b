//! The `departs` table (departments, B-USER-3).

use rusqlite::{named_params, Connection, Row};

use super::StoreError;

/// A stored department. `parent_id` 0 = top level, `leader_id` 0 = none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Depart {
    pub id: u32,
    pub title: String,
    pub description: String,
    pub parent_id: u32,
    pub leader_id: u32,
    pub disabled: bool,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Depart> {
    Ok(Depart {
        id: r.get("id")?,
        title: r.get("title")?,
        description: r.get("description")?,
        parent_id: r.get("parent_id")?,
        leader_id: r.get("leader_id")?,
        disabled: r.get("disabled")?,
    })
}

/// Creates a department and returns its id. `parent_id` 0 = top level, otherwise it must
/// exist (`Invalid`). `leader_id` is not checked (0 = none).
pub fn insert(
    conn: &Connection,
    title: &str,
    description: &str,
    parent_id: u32,
    leader_id: u32,
) -> Result<u32, StoreError> {
    if parent_id != 0 && !exists(conn, parent_id)? {
        return Err(StoreError::Invalid(format!(
            "parent department {parent_id} does not exist"
        )));
    }
    let mut st = conn.prepare_cached(
        "INSERT INTO departs (title, description, parent_id, leader_id)
         VALUES (:title, :description, :parent_id, :leader_id)",
    )?;
    st.execute(named_params! {
        ":title": title,
        ":description": description,
        ":parent_id": parent_id,
        ":leader_id": leader_id,
    })?;
    let rowid = conn.last_insert_rowid();
    match u32::try_from(rowid) {
        Ok(id) => Ok(id),
        Err(_) => {
            conn.execute("DELETE FROM departs WHERE id = ?1", [rowid])?;
            Err(StoreError::Invalid(format!(
                "department id {rowid} does not fit 32 bits"
            )))
        }
    }
}

/// Replaces every stored field of department `d.id` (the admin API's PATCH, B-ADM).
/// `NotFound` for an unknown id; `Invalid` if `parent_id` is neither 0 nor an existing other
/// department.
pub fn update(conn: &Connection, d: &Depart) -> Result<(), StoreError> {
    if d.parent_id == d.id || (d.parent_id != 0 && !exists(conn, d.parent_id)?) {
        return Err(StoreError::Invalid(format!(
            "parent department {} is not valid for {}",
            d.parent_id, d.id
        )));
    }
    let mut st = conn.prepare_cached(
        "UPDATE departs SET title = :title, description = :description, parent_id = :parent_id,
                leader_id = :leader_id, disabled = :disabled
         WHERE id = :id",
    )?;
    let n = st.execute(named_params! {
        ":id": d.id,
        ":title": d.title,
        ":description": d.description,
        ":parent_id": d.parent_id,
        ":leader_id": d.leader_id,
        ":disabled": d.disabled,
    })?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("no department {}", d.id)));
    }
    Ok(())
}

/// One department, disabled or not.
pub fn by_id(conn: &Connection, id: u32) -> Result<Option<Depart>, StoreError> {
    use rusqlite::OptionalExtension;
    let mut st = conn.prepare_cached(
        "SELECT id, title, description, parent_id, leader_id, disabled FROM departs WHERE id = :id",
    )?;
    Ok(st
        .query_row(named_params! { ":id": id }, from_row)
        .optional()?)
}

/// Whether a department with this id exists (disabled or not).
pub fn exists(conn: &Connection, id: u32) -> Result<bool, StoreError> {
    let mut st = conn.prepare_cached("SELECT 1 FROM departs WHERE id = :id")?;
    Ok(st.exists(named_params! { ":id": id })?)
}

/// Every department, disabled included, id ascending.
pub fn all(conn: &Connection) -> Result<Vec<Depart>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT id, title, description, parent_id, leader_id, disabled FROM departs ORDER BY id",
    )?;
    let rows = st.query_map([], from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::mem;

    #[test]
    fn insert_all_and_parent_check() {
        let c = mem();
        assert_eq!(insert(&c, "HQ", "head office", 0, 0).unwrap(), 1);
        assert_eq!(insert(&c, "R&D", "", 1, 7).unwrap(), 2);
        assert!(matches!(
            insert(&c, "x", "", 9, 0),
            Err(StoreError::Invalid(_))
        ));
        let all = all(&c).unwrap();
        assert_eq!(
            all,
            vec![
                Depart {
                    id: 1,
                    title: "HQ".into(),
                    description: "head office".into(),
                    parent_id: 0,
                    leader_id: 0,
                    disabled: false
                },
                Depart {
                    id: 2,
                    title: "R&D".into(),
                    description: String::new(),
                    parent_id: 1,
                    leader_id: 7,
                    disabled: false
                },
            ]
        );
        assert!(exists(&c, 2).unwrap());
        assert!(!exists(&c, 3).unwrap());
    }

    #[test]
    fn update_and_by_id() {
        let c = mem();
        insert(&c, "HQ", "", 0, 0).unwrap();
        insert(&c, "R&D", "", 1, 0).unwrap();
        let mut d = by_id(&c, 2).unwrap().unwrap();
        d.title = "Research".into();
        d.disabled = true;
        d.leader_id = 4;
        update(&c, &d).unwrap();
        assert_eq!(by_id(&c, 2).unwrap().unwrap(), d);
        d.parent_id = 2;
        assert!(matches!(update(&c, &d), Err(StoreError::Invalid(_))));
        d.parent_id = 9;
        assert!(matches!(update(&c, &d), Err(StoreError::Invalid(_))));
        d.parent_id = 0;
        d.id = 7;
        assert!(matches!(update(&c, &d), Err(StoreError::NotFound(_))));
        assert!(by_id(&c, 7).unwrap().is_none());
    }
}

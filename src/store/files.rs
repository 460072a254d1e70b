//! The `offline_files` table (B-FILE-9, -12, -14, -15): one row per complete offline upload.

use rusqlite::{named_params, Connection, OptionalExtension};

use super::{id_u32, StoreError};

/// One complete offline file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineFile {
    /// Server-generated (B-TOK-1 layout); with `to_id` it names the file on disk.
    pub task_id: String,
    pub from_id: u32,
    pub to_id: u32,
    pub file_name: Vec<u8>,
    pub file_size: u32,
    /// Unix seconds of the commit.
    pub created: u32,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, i64, i64, Vec<u8>, i64, i64)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn typed(raw: (String, i64, i64, Vec<u8>, i64, i64)) -> Result<OfflineFile, StoreError> {
    let (task_id, from, to, file_name, size, created) = raw;
    Ok(OfflineFile {
        task_id,
        from_id: id_u32(from, "from_id")?,
        to_id: id_u32(to, "to_id")?,
        file_name,
        file_size: id_u32(size, "file_size")?,
        created: id_u32(created, "created")?,
    })
}

/// Records a complete file (the upload's last step, after fsync and rename).
pub fn insert(conn: &Connection, f: &OfflineFile) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO offline_files (task_id, from_id, to_id, file_name, file_size, created)
         VALUES (:task, :from, :to, :name, :size, :created)",
    )?
    .execute(named_params! {
        ":task": f.task_id, ":from": f.from_id, ":to": f.to_id,
        ":name": f.file_name, ":size": f.file_size, ":created": f.created,
    })?;
    Ok(())
}

/// The record of `task_id` if it was created at or after `not_before` (unexpired).
pub fn get(
    conn: &Connection,
    task_id: &str,
    not_before: u32,
) -> Result<Option<OfflineFile>, StoreError> {
    let raw = conn
        .prepare_cached(
            "SELECT task_id, from_id, to_id, file_name, file_size, created FROM offline_files
             WHERE task_id = :task AND created >= :nb",
        )?
        .query_row(named_params! { ":task": task_id, ":nb": not_before }, row)
        .optional()?;
    raw.map(typed).transpose()
}

/// B-FILE-12: `to_id`'s unexpired files, newest first, at most `limit`.
pub fn list_for(
    conn: &Connection,
    to_id: u32,
    not_before: u32,
    limit: u32,
) -> Result<Vec<OfflineFile>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT task_id, from_id, to_id, file_name, file_size, created FROM offline_files
         WHERE to_id = :to AND created >= :nb
         ORDER BY created DESC, rowid DESC LIMIT :limit",
    )?;
    let rows = st.query_map(
        named_params! { ":to": to_id, ":nb": not_before, ":limit": limit },
        row,
    )?;
    rows.map(|r| typed(r?)).collect()
}

/// B-FILE-14: deletes the record of `task_id` if it is a file from `from_id` to `to_id`.
/// Returns whether a row went.
pub fn delete(
    conn: &Connection,
    task_id: &str,
    from_id: u32,
    to_id: u32,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "DELETE FROM offline_files WHERE task_id = :task AND from_id = :from AND to_id = :to",
        )?
        .execute(named_params! { ":task": task_id, ":from": from_id, ":to": to_id })?;
    Ok(n > 0)
}

/// B-FILE-15: deletes every record created before `before`; returns (task_id, to_id) of each,
/// so the caller can delete the files.
pub fn delete_older(conn: &Connection, before: u32) -> Result<Vec<(String, u32)>, StoreError> {
    let mut st = conn.prepare_cached(
        "DELETE FROM offline_files WHERE created < :before RETURNING task_id, to_id",
    )?;
    let rows = st.query_map(named_params! { ":before": before }, |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (task, to) = r?;
        out.push((task, id_u32(to, "to_id")?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil;

    fn file(task: &str, to: u32, created: u32) -> OfflineFile {
        OfflineFile {
            task_id: task.into(),
            from_id: 1,
            to_id: to,
            file_name: b"a.txt".to_vec(),
            file_size: 10,
            created,
        }
    }

    #[test]
    fn insert_list_delete_and_expire() {
        let conn = testutil::mem();
        insert(&conn, &file("t1", 2, 100)).unwrap();
        insert(&conn, &file("t2", 2, 200)).unwrap();
        insert(&conn, &file("t3", 3, 300)).unwrap();
        let l = list_for(&conn, 2, 0, 50).unwrap();
        assert_eq!(
            l.iter().map(|f| f.task_id.as_str()).collect::<Vec<_>>(),
            ["t2", "t1"]
        );
        assert_eq!(
            list_for(&conn, 2, 150, 50).unwrap().len(),
            1,
            "expired left out"
        );
        assert_eq!(list_for(&conn, 2, 0, 1).unwrap().len(), 1, "limit");
        assert_eq!(get(&conn, "t1", 0).unwrap(), Some(file("t1", 2, 100)));
        assert_eq!(get(&conn, "t1", 101).unwrap(), None);
        assert!(!delete(&conn, "t1", 9, 2).unwrap(), "only from its sender");
        assert!(!delete(&conn, "t1", 1, 3).unwrap(), "only to its receiver");
        assert!(delete(&conn, "t1", 1, 2).unwrap());
        assert_eq!(get(&conn, "t1", 0).unwrap(), None);
        let gone = delete_older(&conn, 250).unwrap();
        assert_eq!(gone, vec![("t2".to_string(), 2)]);
        assert_eq!(list_for(&conn, 3, 0, 50).unwrap().len(), 1);
    }
}

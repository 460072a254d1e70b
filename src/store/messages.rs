//! The `messages` table (p2p messages, B-MSG-2 step 2).

use rusqlite::{named_params, Connection, Row};

use super::{recent, unread, StoreError};

/// A stored p2p message. `data` is byte-identical to what was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMsg {
    pub id: u64,
    pub from_id: u32,
    pub to_id: u32,
    pub create_time: u32,
    pub msg_type: u8,
    pub data: Vec<u8>,
}

/// Columns for [`from_row`], in a SELECT on `messages`.
pub(crate) const COLUMNS: &str = "id, from_id, to_id, create_time, msg_type, data";

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<StoredMsg> {
    Ok(StoredMsg {
        id: r.get("id")?,
        from_id: r.get("from_id")?,
        to_id: r.get("to_id")?,
        create_time: r.get("create_time")?,
        msg_type: r.get("msg_type")?,
        data: r.get("data")?,
    })
}

/// B-MSG-2 step 2, inside the caller's transaction: inserts the message; if `from != to`,
/// marks it unread for `to` from `from` in all three families (B-UNR-1); upserts the
/// recent-contact rows (from -> to) and (to -> from) with `updated = create_time`,
/// hidden = false (B-RC-1; one row when from == to). Returns the message id.
///
/// Both users must exist (foreign keys); `data` must be non-empty (`CHECK`).
pub fn store_p2p(
    conn: &Connection,
    from: u32,
    to: u32,
    msg_type: u8,
    data: &[u8],
    create_time: u32,
) -> Result<u64, StoreError> {
    let id = insert(conn, from, to, msg_type, data, create_time)?;
    if from != to {
        unread::add(conn, to, from, 1, id)?;
    }
    recent::touch(conn, from, to, create_time)?;
    if from != to {
        recent::touch(conn, to, from, create_time)?;
    }
    Ok(id)
}

/// Inserts the message row only; the caller updates unread and recent-contact state (the
/// writer does that once per batch and pair, see `writer.rs`). Returns the message id.
pub(crate) fn insert(
    conn: &Connection,
    from: u32,
    to: u32,
    msg_type: u8,
    data: &[u8],
    create_time: u32,
) -> Result<u64, StoreError> {
    let mut st = conn.prepare_cached(
        "INSERT INTO messages (from_id, to_id, create_time, msg_type, data)
         VALUES (:from, :to, :time, :msg_type, :data)",
    )?;
    st.execute(named_params! {
        ":from": from,
        ":to": to,
        ":time": create_time,
        ":msg_type": msg_type,
        ":data": data,
    })?;
    let rowid = conn.last_insert_rowid();
    u64::try_from(rowid).map_err(|_| StoreError::Invalid(format!("negative message id {rowid}")))
}

/// The greatest stored `create_time` (p2p and group messages), 0 for an empty store:
/// where the writer's clock starts (B-GEN-3).
pub fn max_create_time(conn: &Connection) -> Result<u32, StoreError> {
    let t: i64 = conn.query_row(
        "SELECT max(IFNULL((SELECT max(create_time) FROM messages), 0),
                    IFNULL((SELECT max(create_time) FROM group_messages), 0))",
        [],
        |r| r.get(0),
    )?;
    Ok(u32::try_from(t).unwrap_or(u32::MAX))
}

/// One message by id.
pub fn by_id(conn: &Connection, id: u64) -> Result<Option<StoredMsg>, StoreError> {
    use rusqlite::OptionalExtension;
    let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM messages WHERE id = :id"))?;
    Ok(st
        .query_row(named_params! { ":id": id }, from_row)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{mem, users};
    use crate::store::{recent, unread, Family};

    #[test]
    fn store_sets_unread_and_recent() {
        let c = mem();
        users(&c, 3);
        let id1 = store_p2p(&c, 1, 2, 1, b"hello", 100).unwrap();
        let id2 = store_p2p(&c, 1, 2, 2, b"\x00\xffaudio", 101).unwrap();
        assert!(id2 > id1);
        let m = by_id(&c, id2).unwrap().unwrap();
        assert_eq!(
            m,
            StoredMsg {
                id: id2,
                from_id: 1,
                to_id: 2,
                create_time: 101,
                msg_type: 2,
                data: b"\x00\xffaudio".to_vec()
            }
        );
        for f in [Family::Pc, Family::Ios, Family::Android] {
            assert_eq!(unread::counts(&c, 2, f, 10).unwrap(), vec![(1, 2)]);
            assert!(unread::counts(&c, 1, f, 10).unwrap().is_empty());
        }
        assert_eq!(recent::list(&c, 1, 10).unwrap(), vec![(2, 101)]);
        assert_eq!(recent::list(&c, 2, 10).unwrap(), vec![(1, 101)]);
        assert_eq!(max_create_time(&c).unwrap(), 101);
    }

    #[test]
    fn message_to_self_is_never_unread_and_makes_one_row() {
        let c = mem();
        users(&c, 1);
        store_p2p(&c, 1, 1, 1, b"note", 50).unwrap();
        for f in [Family::Pc, Family::Ios, Family::Android] {
            assert!(unread::counts(&c, 1, f, 10).unwrap().is_empty());
        }
        assert_eq!(recent::list(&c, 1, 10).unwrap(), vec![(1, 50)]);
        let rows: i64 = c
            .query_row("SELECT count(*) FROM recent_contacts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        assert!(recent::watchers(&c, 1, 10).unwrap().is_empty());
    }

    #[test]
    fn constraints_reject_bad_messages() {
        let c = mem();
        users(&c, 1);
        assert!(store_p2p(&c, 1, 9, 1, b"x", 1).is_err()); // unknown recipient
        assert!(store_p2p(&c, 1, 1, 1, b"", 1).is_err()); // empty payload
        assert_eq!(max_create_time(&c).unwrap(), 0);
    }
}

//! The `recent_contacts` table (B-RC) and the watchers derived from it (B-PRES-2).

use rusqlite::{named_params, Connection};

use super::StoreError;

/// B-RC-1: upserts (owner -> peer) with `updated`, not hidden. Used in the message's transaction.
pub(crate) fn touch(
    conn: &Connection,
    owner: u32,
    peer: u32,
    updated: u32,
) -> Result<(), StoreError> {
    let mut st = conn.prepare_cached(
        "INSERT INTO recent_contacts (owner, peer, updated, hidden)
         VALUES (:owner, :peer, :updated, 0)
         ON CONFLICT (owner, peer) DO UPDATE SET updated = excluded.updated, hidden = 0",
    )?;
    st.execute(named_params! { ":owner": owner, ":peer": peer, ":updated": updated })?;
    Ok(())
}

/// B-RC-2: (peer, updated) of `owner`'s rows that are not hidden, `updated` descending,
/// ties by peer ascending, at most `limit`.
pub fn list(conn: &Connection, owner: u32, limit: u32) -> Result<Vec<(u32, u32)>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT peer, updated FROM recent_contacts
         WHERE owner = :owner AND hidden = 0
         ORDER BY updated DESC, peer ASC LIMIT :limit",
    )?;
    let rows = st.query_map(named_params! { ":owner": owner, ":limit": limit }, |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// B-RC-3: hides `owner`'s row for `peer` (the peer's row is untouched). No row = no-op.
pub fn hide(conn: &Connection, owner: u32, peer: u32) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE recent_contacts SET hidden = 1 WHERE owner = :owner AND peer = :peer",
    )?
    .execute(named_params! { ":owner": owner, ":peer": peer })?;
    Ok(())
}

/// B-PRES-2: distinct users V != `user` with a row with `user` in either direction (hidden rows
/// count), most recently updated first (ties: id ascending), at most `limit`.
pub fn watchers(conn: &Connection, user: u32, limit: u32) -> Result<Vec<u32>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT v FROM (
             SELECT peer AS v, updated FROM recent_contacts WHERE owner = :user
             UNION ALL
             SELECT owner AS v, updated FROM recent_contacts WHERE peer = :user
         )
         WHERE v <> :user
         GROUP BY v
         ORDER BY max(updated) DESC, v ASC
         LIMIT :limit",
    )?;
    let rows = st.query_map(named_params! { ":user": user, ":limit": limit }, |r| {
        r.get(0)
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::messages::store_p2p;
    use crate::store::testutil::{mem, users};

    #[test]
    fn list_order_hide_and_unhide() {
        let c = mem();
        users(&c, 5);
        store_p2p(&c, 1, 2, 1, b"a", 10).unwrap();
        store_p2p(&c, 3, 1, 1, b"b", 20).unwrap();
        store_p2p(&c, 1, 5, 1, b"c", 20).unwrap();
        store_p2p(&c, 4, 1, 1, b"d", 15).unwrap();
        assert_eq!(
            list(&c, 1, 100).unwrap(),
            vec![(3, 20), (5, 20), (4, 15), (2, 10)]
        );
        assert_eq!(list(&c, 1, 2).unwrap(), vec![(3, 20), (5, 20)]);

        hide(&c, 1, 3).unwrap();
        hide(&c, 1, 99).unwrap(); // no row: no-op
        assert_eq!(list(&c, 1, 100).unwrap(), vec![(5, 20), (4, 15), (2, 10)]);
        assert_eq!(list(&c, 3, 100).unwrap(), vec![(1, 20)]); // other side untouched

        // the next message un-hides it
        store_p2p(&c, 3, 1, 1, b"e", 30).unwrap();
        assert_eq!(list(&c, 1, 100).unwrap().first(), Some(&(3, 30)));
    }

    #[test]
    fn watchers_both_directions_hidden_included() {
        let c = mem();
        users(&c, 5);
        store_p2p(&c, 1, 2, 1, b"a", 10).unwrap();
        store_p2p(&c, 3, 1, 1, b"b", 30).unwrap();
        store_p2p(&c, 1, 4, 1, b"c", 20).unwrap();
        store_p2p(&c, 1, 1, 1, b"self", 40).unwrap();
        hide(&c, 1, 3).unwrap();
        hide(&c, 4, 1).unwrap();
        assert_eq!(watchers(&c, 1, 100).unwrap(), vec![3, 4, 2]);
        assert_eq!(watchers(&c, 1, 2).unwrap(), vec![3, 4]);
        assert_eq!(watchers(&c, 2, 100).unwrap(), vec![1]);
        assert!(watchers(&c, 5, 100).unwrap().is_empty());
        // a row in one direction only still counts
        c.execute(
            "DELETE FROM recent_contacts WHERE owner = 1 AND peer = 2",
            [],
        )
        .unwrap();
        assert_eq!(watchers(&c, 1, 100).unwrap(), vec![3, 4, 2]);
    }
}

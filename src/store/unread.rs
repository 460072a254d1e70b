//! The `unread` table: p2p unread state per (reader, peer, family) (B-UNR).
//!
//! One row per (reader, peer) holds three counters (pc, ios, android) and the id of the newest
//! message from peer to reader. Storing a message is one upsert; reading is one update. Because
//! everything after the last read is unread, the unread messages of a family are exactly the
//! newest `counter` messages from peer to reader.

use rusqlite::{named_params, Connection};

use super::messages::{self, StoredMsg};
use super::{Family, StoreError};

/// Counts `n` more unread messages from `peer` for `reader` in every family, the newest being
/// `last_msg_id` (B-UNR-1).
pub(crate) fn add(
    conn: &Connection,
    reader: u32,
    peer: u32,
    n: u32,
    last_msg_id: u64,
) -> Result<(), StoreError> {
    let mut st = conn.prepare_cached(
        "INSERT INTO unread (reader, peer, pc, ios, android, last_msg_id)
         VALUES (:reader, :peer, :n, :n, :n, :msg_id)
         ON CONFLICT (reader, peer) DO UPDATE SET
             pc = pc + :n, ios = ios + :n, android = android + :n,
             last_msg_id = excluded.last_msg_id",
    )?;
    st.execute(
        named_params! { ":reader": reader, ":peer": peer, ":n": n, ":msg_id": last_msg_id },
    )?;
    Ok(())
}

/// B-UNR-2: (peer, count) for every peer with count > 0 in `family`, the peer with the newest
/// unread message first (ties: peer ascending), at most `limit`.
pub fn counts(
    conn: &Connection,
    reader: u32,
    family: Family,
    limit: u32,
) -> Result<Vec<(u32, u32)>, StoreError> {
    let sql = match family {
        Family::Pc => {
            "SELECT peer, pc FROM unread WHERE reader = :reader AND pc > 0
             ORDER BY last_msg_id DESC, peer LIMIT :limit"
        }
        Family::Ios => {
            "SELECT peer, ios FROM unread WHERE reader = :reader AND ios > 0
             ORDER BY last_msg_id DESC, peer LIMIT :limit"
        }
        Family::Android => {
            "SELECT peer, android FROM unread WHERE reader = :reader AND android > 0
             ORDER BY last_msg_id DESC, peer LIMIT :limit"
        }
    };
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map(named_params! { ":reader": reader, ":limit": limit }, |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// B-UNR-3: the unread messages from `peer` to `reader` in `family`, newest first, at most
/// `limit`. One statement, so the count and the messages come from the same snapshot.
pub fn messages(
    conn: &Connection,
    reader: u32,
    peer: u32,
    family: Family,
    limit: u32,
) -> Result<Vec<StoredMsg>, StoreError> {
    let counter = match family {
        Family::Pc => "pc",
        Family::Ios => "ios",
        Family::Android => "android",
    };
    let sql = format!(
        "SELECT {cols} FROM messages
         WHERE to_id = :reader AND from_id = :peer
         ORDER BY id DESC
         LIMIT IFNULL((SELECT min({counter}, :limit) FROM unread
                       WHERE reader = :reader AND peer = :peer), 0)",
        cols = messages::COLUMNS
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(
        named_params! { ":reader": reader, ":peer": peer, ":limit": limit },
        messages::from_row,
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// B-UNR-4, B-UNR-6: everything from `peer` to `reader` becomes read in `family` only.
/// No row (nothing ever sent, unknown peer) = no-op.
pub fn mark_read(
    conn: &Connection,
    reader: u32,
    peer: u32,
    family: Family,
) -> Result<(), StoreError> {
    let sql = match family {
        Family::Pc => "UPDATE unread SET pc = 0 WHERE reader = :reader AND peer = :peer",
        Family::Ios => "UPDATE unread SET ios = 0 WHERE reader = :reader AND peer = :peer",
        Family::Android => "UPDATE unread SET android = 0 WHERE reader = :reader AND peer = :peer",
    };
    conn.prepare_cached(sql)?
        .execute(named_params! { ":reader": reader, ":peer": peer })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::messages::store_p2p;
    use crate::store::testutil::{mem, users};

    const ALL: [Family; 3] = [Family::Pc, Family::Ios, Family::Android];

    #[test]
    fn counts_order_and_limit() {
        let c = mem();
        users(&c, 4);
        // reader 1 gets: 2 from user 2, then 3 from user 3, then 1 from user 4, then 1 more from 2
        store_p2p(&c, 2, 1, 1, b"a", 10).unwrap();
        store_p2p(&c, 2, 1, 1, b"b", 10).unwrap();
        for _ in 0..3 {
            store_p2p(&c, 3, 1, 1, b"c", 11).unwrap();
        }
        store_p2p(&c, 4, 1, 1, b"d", 12).unwrap();
        store_p2p(&c, 2, 1, 1, b"e", 13).unwrap();
        for f in ALL {
            assert_eq!(counts(&c, 1, f, 300).unwrap(), vec![(2, 3), (4, 1), (3, 3)]);
            assert_eq!(counts(&c, 1, f, 2).unwrap(), vec![(2, 3), (4, 1)]);
        }
        assert!(counts(&c, 2, Family::Pc, 300).unwrap().is_empty());
    }

    #[test]
    fn mark_read_per_family() {
        let c = mem();
        users(&c, 3);
        store_p2p(&c, 2, 1, 1, b"a", 10).unwrap();
        store_p2p(&c, 3, 1, 1, b"b", 11).unwrap();
        mark_read(&c, 1, 2, Family::Pc).unwrap();
        assert_eq!(counts(&c, 1, Family::Pc, 10).unwrap(), vec![(3, 1)]);
        assert_eq!(
            counts(&c, 1, Family::Ios, 10).unwrap(),
            vec![(3, 1), (2, 1)]
        );
        assert_eq!(
            counts(&c, 1, Family::Android, 10).unwrap(),
            vec![(3, 1), (2, 1)]
        );
        assert!(messages(&c, 1, 2, Family::Pc, 10).unwrap().is_empty());
        assert_eq!(messages(&c, 1, 2, Family::Ios, 10).unwrap().len(), 1);
        // repeating is harmless; unknown peer ignored
        mark_read(&c, 1, 2, Family::Pc).unwrap();
        mark_read(&c, 1, 99, Family::Pc).unwrap();
        // a new message after the read is the only unread one in pc
        store_p2p(&c, 2, 1, 1, b"new", 12).unwrap();
        let pc = messages(&c, 1, 2, Family::Pc, 10).unwrap();
        assert_eq!(pc.len(), 1);
        assert_eq!(pc.first().unwrap().data, b"new");
        assert_eq!(counts(&c, 1, Family::Pc, 10).unwrap(), vec![(2, 1), (3, 1)]);
        assert_eq!(messages(&c, 1, 2, Family::Android, 10).unwrap().len(), 2);
    }

    #[test]
    fn messages_newest_first_with_limit() {
        let c = mem();
        users(&c, 3);
        for i in 0..5u8 {
            store_p2p(&c, 2, 1, 1, &[b'0' + i], 10 + u32::from(i)).unwrap();
            // traffic in the other direction and from others does not count
            store_p2p(&c, 1, 2, 1, b"reply", 10 + u32::from(i)).unwrap();
            store_p2p(&c, 3, 1, 1, b"other", 10 + u32::from(i)).unwrap();
        }
        let all = messages(&c, 1, 2, Family::Ios, 100).unwrap();
        let data: Vec<&[u8]> = all.iter().map(|m| m.data.as_slice()).collect();
        assert_eq!(data, [b"4", b"3", b"2", b"1", b"0"]);
        assert!(all.iter().all(|m| m.from_id == 2 && m.to_id == 1));
        let two = messages(&c, 1, 2, Family::Ios, 2).unwrap();
        assert_eq!(two, all.get(..2).unwrap());
        assert!(messages(&c, 1, 42, Family::Ios, 10).unwrap().is_empty());
        assert!(messages(&c, 1, 2, Family::Ios, 0).unwrap().is_empty());
    }
}

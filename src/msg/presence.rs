//! The presence directory: user id -> that user's sessions (B-KICK, B-PRES).
//!
//! Sharded so that workers on different cores rarely meet on a lock; every operation holds one
//! shard's lock for a short in-memory update and returns what changed, so callers act on it
//! (kick, notify watchers) after the lock is released.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::net::ConnId;

const SHARDS: usize = 64;

/// Online status values (protocol.md section 8.3).
pub const ONLINE: u32 = 1;
pub const OFFLINE: u32 = 2;
pub const LEAVE: u32 = 3;

/// Device class (protocol.md section 8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Pc,
    Mobile,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionRef {
    pub conn: ConnId,
    pub class: Class,
    /// ONLINE or LEAVE.
    pub status: u32,
}

/// A status transition of one user (old, new); only produced when they differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub user: u32,
    pub old: u32,
    pub new: u32,
}

pub struct Presence {
    shards: Vec<RwLock<HashMap<u32, Vec<SessionRef>>>>,
}

impl Default for Presence {
    fn default() -> Self {
        Presence {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }
}

/// B-PRES-1: online if any session is online, else leave if any session, else offline.
pub fn aggregate(sessions: &[SessionRef]) -> u32 {
    if sessions.iter().any(|s| s.status == ONLINE) {
        ONLINE
    } else if sessions.is_empty() {
        OFFLINE
    } else {
        LEAVE
    }
}

fn change(user: u32, old: u32, new: u32) -> Option<Change> {
    (old != new).then_some(Change { user, old, new })
}

impl Presence {
    #[allow(clippy::indexing_slicing)] // the index is taken modulo the shard count
    fn shard(&self, user: u32) -> &RwLock<HashMap<u32, Vec<SessionRef>>> {
        &self.shards[(user as usize) % self.shards.len()]
    }

    /// Registers a new session. A session of the same class is replaced and returned (to be
    /// kicked, B-KICK-2); the status change is judged over both at once (B-KICK-3).
    pub fn login(&self, user: u32, s: SessionRef) -> (Option<SessionRef>, Option<Change>) {
        let mut map = self.shard(user).write();
        let list = map.entry(user).or_default();
        let old = aggregate(list);
        let replaced = list
            .iter()
            .position(|x| x.class == s.class)
            .map(|i| list.swap_remove(i));
        list.push(s);
        let new = aggregate(list);
        (replaced, change(user, old, new))
    }

    /// Removes the session if it is still registered (a kicked one is not any more).
    pub fn logout(&self, user: u32, conn: ConnId) -> Option<Change> {
        let mut map = self.shard(user).write();
        let list = map.get_mut(&user)?;
        let old = aggregate(list);
        let i = list.iter().position(|x| x.conn == conn)?;
        list.swap_remove(i);
        let new = aggregate(list);
        if list.is_empty() {
            map.remove(&user);
        }
        change(user, old, new)
    }

    /// B-PRES-4: sets one session's status. None if the session is not registered.
    pub fn set_status(&self, user: u32, conn: ConnId, status: u32) -> Option<Option<Change>> {
        let mut map = self.shard(user).write();
        let list = map.get_mut(&user)?;
        let old = aggregate(list);
        let s = list.iter_mut().find(|x| x.conn == conn)?;
        s.status = status;
        let new = aggregate(list);
        Some(change(user, old, new))
    }

    pub fn status(&self, user: u32) -> u32 {
        self.shard(user)
            .read()
            .get(&user)
            .map_or(OFFLINE, |l| aggregate(l))
    }

    /// A copy of the user's sessions (at most one per class, so tiny).
    pub fn sessions(&self, user: u32) -> Vec<SessionRef> {
        self.shard(user)
            .read()
            .get(&user)
            .cloned()
            .unwrap_or_default()
    }

    /// Number of users with at least one session.
    pub fn online_users(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(slot: u32) -> ConnId {
        ConnId {
            worker: 0,
            slot,
            generation: 1,
        }
    }

    fn s(slot: u32, class: Class, status: u32) -> SessionRef {
        SessionRef {
            conn: conn(slot),
            class,
            status,
        }
    }

    #[test]
    fn same_class_login_replaces_and_status_judged_together() {
        // B-KICK-1..3
        let p = Presence::default();
        let (r, c) = p.login(7, s(1, Class::Pc, ONLINE));
        assert_eq!(r, None);
        assert_eq!(
            c,
            Some(Change {
                user: 7,
                old: OFFLINE,
                new: ONLINE
            })
        );
        let (r, c) = p.login(7, s(2, Class::Pc, ONLINE));
        assert_eq!(r, Some(s(1, Class::Pc, ONLINE)));
        assert_eq!(c, None, "kick + relogin with the same status is no change");
        let (r, c) = p.login(7, s(3, Class::Mobile, LEAVE));
        assert_eq!(r, None, "a mobile login does not replace the PC session");
        assert_eq!(c, None);
        // The kicked connection's close changes nothing.
        assert_eq!(p.logout(7, conn(1)), None);
        assert_eq!(p.sessions(7).len(), 2);
    }

    #[test]
    fn aggregate_status_follows_b_pres_1() {
        let p = Presence::default();
        p.login(5, s(1, Class::Pc, LEAVE));
        assert_eq!(p.status(5), LEAVE);
        let (_, c) = p.login(5, s(2, Class::Mobile, ONLINE));
        assert_eq!(
            c,
            Some(Change {
                user: 5,
                old: LEAVE,
                new: ONLINE
            })
        );
        assert_eq!(
            p.set_status(5, conn(2), LEAVE),
            Some(Some(Change {
                user: 5,
                old: ONLINE,
                new: LEAVE
            }))
        );
        assert_eq!(p.logout(5, conn(2)), None);
        assert_eq!(
            p.logout(5, conn(1)),
            Some(Change {
                user: 5,
                old: LEAVE,
                new: OFFLINE
            })
        );
        assert_eq!(p.status(5), OFFLINE);
        assert_eq!(p.online_users(), 0);
    }
}

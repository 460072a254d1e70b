//! In-memory group membership cache (B-GRP-7, B-GRP-19).
//!
//! Every group 3/1 checks its group and sender and fans out to the members: that is served from
//! here without a database round trip. Loaded at start from the live groups; the storage outlet
//! replaces an entry after each committed membership change, before the change's effects are
//! sent, so any later 3/1 (from any worker) sees the new membership.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::store::groups::Group;

/// One group's type and current members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// 1 normal, 2 temporary.
    pub group_type: u32,
    /// Current members in join order.
    pub members: Arc<[u32]>,
    /// Deleted by an admin: no members, accepts no messages.
    pub deleted: bool,
}

impl GroupEntry {
    pub fn is_member(&self, user: u32) -> bool {
        !self.deleted && self.members.contains(&user)
    }
}

#[derive(Default)]
pub struct GroupCache {
    map: RwLock<HashMap<u32, Arc<GroupEntry>>>,
}

impl GroupCache {
    /// The cache of these groups (deleted ones are kept as deleted).
    pub fn new(groups: Vec<Group>) -> Self {
        let map = groups
            .into_iter()
            .map(|g| {
                (
                    g.id,
                    Arc::new(GroupEntry {
                        group_type: g.group_type,
                        members: g.members.into(),
                        deleted: g.deleted,
                    }),
                )
            })
            .collect();
        GroupCache {
            map: RwLock::new(map),
        }
    }

    /// A group that exists and is not deleted.
    pub fn live(&self, id: u32) -> Option<Arc<GroupEntry>> {
        self.map.read().get(&id).filter(|g| !g.deleted).cloned()
    }

    /// Inserts or replaces a group.
    pub fn put(&self, id: u32, group_type: u32, members: &[u32]) {
        let e = Arc::new(GroupEntry {
            group_type,
            members: members.into(),
            deleted: false,
        });
        self.map.write().insert(id, e);
    }

    /// Replaces the members of a known group (its type is kept); unknown ids are ignored.
    pub fn set_members(&self, id: u32, members: &[u32]) {
        let mut map = self.map.write();
        if let Some(old) = map.get(&id) {
            let e = Arc::new(GroupEntry {
                group_type: old.group_type,
                members: members.into(),
                deleted: old.deleted,
            });
            map.insert(id, e);
        }
    }

    /// Marks a group deleted (no members).
    pub fn delete(&self, id: u32) {
        let mut map = self.map.write();
        if let Some(old) = map.get(&id) {
            let e = Arc::new(GroupEntry {
                group_type: old.group_type,
                members: Arc::from(Vec::new()),
                deleted: true,
            });
            map.insert(id, e);
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(id: u32, group_type: u32, members: Vec<u32>, deleted: bool) -> Group {
        Group {
            id,
            group_type,
            name: b"n".to_vec(),
            avatar: Vec::new(),
            creator: 0,
            created: 0,
            updated: 0,
            last_msg_id: 0,
            deleted,
            members,
        }
    }

    #[test]
    fn membership_is_replaced_and_deleted_groups_are_not_live() {
        let c = GroupCache::new(vec![g(1, 1, vec![3, 2], false), g(2, 1, vec![], true)]);
        assert_eq!(&*c.live(1).unwrap().members, &[3, 2]);
        assert!(c.live(2).is_none());
        assert!(c.live(3).is_none());
        c.set_members(1, &[2]);
        assert!(!c.live(1).unwrap().is_member(3));
        c.put(3, 2, &[5]);
        assert_eq!(c.live(3).unwrap().group_type, 2);
        c.delete(3);
        assert!(c.live(3).is_none());
        assert_eq!(c.len(), 3);
    }
}

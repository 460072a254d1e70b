//! In-memory copy of the users and departments tables.
//!
//! Every 3/1 checks its recipient, every login looks up a name, 2/10, 2/15 and 3/14 show user
//! records: all of that is served from this cache without a database round trip. It is loaded at
//! start; changes made through the admin API replace entries after their commit.

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::departs::Depart;
use crate::store::users::User;

#[derive(Default)]
pub struct Directory {
    users: HashMap<u32, Arc<User>>,
    by_name: HashMap<Vec<u8>, u32>,
    /// Ids of active users, ascending (2/15).
    active_ids: Vec<u32>,
    departs: Vec<Depart>,
}

impl Directory {
    pub fn new(users: Vec<User>, mut departs: Vec<Depart>) -> Self {
        let mut d = Directory::default();
        for u in users {
            d.put_user(u);
        }
        departs.sort_by_key(|x| x.id);
        d.departs = departs;
        d
    }

    /// Inserts or replaces a user.
    pub fn put_user(&mut self, u: User) {
        let id = u.id;
        if let Some(old) = self.users.get(&id) {
            self.by_name.remove(old.name.as_bytes());
        }
        self.by_name.insert(u.name.as_bytes().to_vec(), id);
        let active = !u.disabled;
        self.users.insert(id, Arc::new(u));
        match (self.active_ids.binary_search(&id), active) {
            (Ok(_), true) | (Err(_), false) => {}
            (Err(pos), true) => self.active_ids.insert(pos, id),
            (Ok(pos), false) => {
                self.active_ids.remove(pos);
            }
        }
    }

    /// Any user, disabled included.
    pub fn user(&self, id: u32) -> Option<&Arc<User>> {
        self.users.get(&id)
    }

    /// An active (not disabled) user.
    pub fn active(&self, id: u32) -> Option<&Arc<User>> {
        self.users.get(&id).filter(|u| !u.disabled)
    }

    pub fn by_name(&self, name: &[u8]) -> Option<&Arc<User>> {
        self.by_name.get(name).and_then(|id| self.users.get(id))
    }

    /// Active users by id ascending.
    pub fn active_users(&self) -> impl Iterator<Item = &Arc<User>> {
        self.active_ids.iter().filter_map(|id| self.users.get(id))
    }

    /// Active departments by id ascending.
    pub fn active_departs(&self) -> impl Iterator<Item = &Depart> {
        self.departs.iter().filter(|d| !d.disabled)
    }
}

//! Whom instances act for: a server user (all of that user's instances
//! together), or a single instance under `crust run`. An owner is the unit
//! of fair share — the scheduler gives owners turns — and of exports: each
//! export is charged to its owner and released when the owner's last
//! instance ends, unless the owner kept it for a time (`Resources::keep`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::scheduler::next_owner;
use super::service::ModelService;

pub struct Owner {
    /// A server user's name, or an instance's id.
    pub name: String,
    /// Unique per process: the scheduler's turns and the exports' owner tag.
    pub id: u64,
    /// The models this owner exported on, to release its exports there when it ends.
    exported_on: Mutex<Vec<Weak<ModelService>>>,
}

impl Owner {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self { name: name.to_string(), id: next_owner(), exported_on: Mutex::default() })
    }

    pub(crate) fn exports_on(&self, service: &Arc<ModelService>) {
        let mut services = self.exported_on.lock().unwrap();
        if !services.iter().any(|s| std::ptr::eq(s.as_ptr(), Arc::as_ptr(service))) {
            services.push(Arc::downgrade(service));
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        for service in self.exported_on.get_mut().unwrap().drain(..).filter_map(|s| s.upgrade()) {
            service.resources.lock().unwrap().release_owned(self.id);
        }
    }
}

/// The owners with an instance alive, by name, so that a user's instances
/// share one.
#[derive(Default)]
pub struct Owners {
    live: Mutex<HashMap<String, Weak<Owner>>>,
}

impl Owners {
    /// The live owner called `name`, or a new one; it ends when its last
    /// holder (an instance) drops it.
    pub fn join(&self, name: &str) -> Arc<Owner> {
        let mut live = self.live.lock().unwrap();
        if let Some(owner) = live.get(name).and_then(Weak::upgrade) {
            return owner;
        }
        live.retain(|_, owner| owner.strong_count() > 0);
        let owner = Owner::new(name);
        live.insert(name.to_string(), Arc::downgrade(&owner));
        owner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_instances_share_an_owner_until_the_last_one_ends() {
        let owners = Owners::default();
        let (a, b) = (owners.join("alice"), owners.join("alice"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_ne!(owners.join("bob").id, a.id);
        let id = a.id;
        drop((a, b));
        assert_ne!(owners.join("alice").id, id, "a new owner once the last instance ended");
    }
}

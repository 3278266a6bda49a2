//! Whom instances act for: a server user (all of that user's instances
//! together), or a single instance under `crust run`. An owner is the unit
//! of fair share — the scheduler gives owners turns — and of exports: each
//! export is charged to its owner and released when the owner's last
//! instance ends, unless the owner kept it for a time (`Resources::keep`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Topic subscriptions its instances hold.
    subscriptions: AtomicUsize,
}

impl Owner {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self { name: name.to_string(), id: next_owner(), exported_on: Mutex::default(), subscriptions: AtomicUsize::new(0) })
    }

    /// One more subscription for this owner, held until the seat drops; `Err(held)` at `cap`.
    pub fn subscribe(self: &Arc<Self>, cap: usize) -> Result<SubscriptionSeat, usize> {
        let held = self.subscriptions.fetch_add(1, Ordering::AcqRel);
        let seat = SubscriptionSeat(self.clone());
        if held >= cap {
            return Err(held);
        }
        Ok(seat)
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

/// One of an owner's subscriptions.
pub struct SubscriptionSeat(Arc<Owner>);

impl Drop for SubscriptionSeat {
    fn drop(&mut self) {
        self.0.subscriptions.fetch_sub(1, Ordering::AcqRel);
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

    #[test]
    fn a_users_instances_share_one_subscription_cap() {
        let owners = Owners::default();
        let (a, b) = (owners.join("alice"), owners.join("alice"));
        let first = a.subscribe(2).unwrap();
        let _second = b.subscribe(2).unwrap();
        assert_eq!(a.subscribe(2).err(), Some(2), "the cap counts both instances' subscriptions");
        assert!(owners.join("bob").subscribe(2).is_ok(), "another user has their own");
        drop(first);
        assert!(b.subscribe(2).is_ok(), "a dropped subscription frees its seat");
    }
}

//! A model's shared pools and the names their resources are exported under.
//!
//! Each export name holds one reference to every id it names and belongs to
//! the owner whose instance made it: it counts against that owner's budget
//! and is released when the owner's last instance ends — unless the owner
//! kept it ([`Resources::keep`]), then it lasts until its time runs out, or
//! until an allocation finds the pool short (a kept export is a cache).

use std::collections::BTreeMap;
use std::time::Instant;

use super::owner::Owner;
use super::pool::{PoolExhausted, ResourceKind, SharedPool};

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ExportError {
    #[error("the export name `{0}` is already in use")]
    NameInUse(String),
    #[error(
        "exporting {asked} {}s as `{name}` would make its owner's exports hold {}; an owner's exports may hold {budget} (limits.{})",
        kind.noun(),
        held + asked,
        kind.quota_setting()
    )]
    OverBudget { kind: ResourceKind, name: String, asked: usize, held: usize, budget: usize },
    #[error("an export name is at most {MAX_NAME} bytes; this one has {0}")]
    NameTooLong(usize),
    #[error("nothing is exported under `{0}`")]
    NotExported(String),
    #[error("`{0}` was exported by another owner: only its owner may keep it")]
    NotOwner(String),
}

/// The longest export name: names live in shared state.
pub const MAX_NAME: usize = 1024;

struct Export {
    ids: Vec<u32>,
    owner_name: String,
    owner_id: u64,
    /// Kept: lasts until then, whoever ends.
    kept_until: Option<Instant>,
}

/// A model's pools and the names its shared resources are exported under.
/// Names live in scopes: an instance sees only its own scope's (`""`, the
/// one every instance shares, unless its launcher gave it another).
pub struct Resources {
    pools: [SharedPool; 2],
    exports: [BTreeMap<(String, String), Export>; 2],
}

impl Resources {
    pub fn new(kv_pages: u32, embedding_slots: u32) -> Self {
        Self { pools: [SharedPool::new("KV pages", kv_pages), SharedPool::new("embedding slots", embedding_slots)], exports: Default::default() }
    }

    pub fn pool(&mut self, kind: ResourceKind) -> &mut SharedPool {
        &mut self.pools[kind as usize]
    }

    /// `n` fresh ids. When the pool is short, kept exports are released,
    /// the soonest to expire first, until it is not (or none is left).
    pub fn allocate(&mut self, kind: ResourceKind, n: usize) -> Result<Vec<u32>, PoolExhausted> {
        self.expire(Instant::now());
        loop {
            match self.pools[kind as usize].allocate(n) {
                Ok(ids) => return Ok(ids),
                Err(short) => {
                    let soonest = self.exports[kind as usize].iter().filter_map(|(key, e)| e.kept_until.map(|t| (t, key.clone()))).min();
                    let Some((_, key)) = soonest else { return Err(short) };
                    self.remove(kind, &key);
                }
            }
        }
    }

    /// Exports `ids` under `name` for `owner`, whose exports together may
    /// hold at most `budget` ids of this kind.
    pub fn export(&mut self, kind: ResourceKind, scope: &str, name: &str, ids: &[u32], owner: &Owner, budget: usize) -> Result<(), ExportError> {
        // Checked before the name is copied anywhere.
        if name.len() > MAX_NAME {
            return Err(ExportError::NameTooLong(name.len()));
        }
        self.expire(Instant::now());
        let (k, key) = (kind as usize, (scope.to_string(), name.to_string()));
        if self.exports[k].contains_key(&key) {
            return Err(ExportError::NameInUse(name.into()));
        }
        // An empty export still costs one, or names alone could grow without bound.
        let cost = |ids: usize| ids.max(1);
        let held: usize = self.exports[k].values().filter(|e| e.owner_name == owner.name).map(|e| cost(e.ids.len())).sum();
        if held + cost(ids.len()) > budget {
            return Err(ExportError::OverBudget { kind, name: name.into(), asked: cost(ids.len()), held, budget });
        }
        ids.iter().for_each(|&id| self.pools[k].retain(id));
        self.exports[k].insert(key, Export { ids: ids.to_vec(), owner_name: owner.name.clone(), owner_id: owner.id, kept_until: None });
        Ok(())
    }

    /// Keeps `owner`'s export `name` until `until`, whether or not the
    /// owner's instances have ended by then; called again, it renews.
    pub fn keep(&mut self, kind: ResourceKind, scope: &str, name: &str, owner: &Owner, until: Instant) -> Result<(), ExportError> {
        self.expire(Instant::now());
        let export =
            self.exports[kind as usize].get_mut(&(scope.to_string(), name.to_string())).ok_or_else(|| ExportError::NotExported(name.into()))?;
        if export.owner_name != owner.name {
            return Err(ExportError::NotOwner(name.into()));
        }
        export.kept_until = Some(until);
        Ok(())
    }

    /// The exported ids, each now with one more holder (the importer); none
    /// if nothing is exported under `name`. Another instance may release a
    /// name at any moment, so its absence is an answer, not a fault: a cache
    /// shared by instances could not otherwise import without a race.
    pub fn import(&mut self, kind: ResourceKind, scope: &str, name: &str) -> Vec<u32> {
        self.expire(Instant::now());
        let k = kind as usize;
        let ids = self.exports[k].get(&(scope.to_string(), name.to_string())).map(|e| e.ids.clone()).unwrap_or_default();
        ids.iter().for_each(|&id| self.pools[k].retain(id));
        ids
    }

    /// Drops the name's references; releasing a name that is not exported
    /// (another instance released it first) does nothing, for the same
    /// reason, and so does a release by anyone but `only_by`, when given.
    pub fn release_export(&mut self, kind: ResourceKind, scope: &str, name: &str, only_by: Option<&Owner>) {
        let key = (scope.to_string(), name.to_string());
        let allowed = match (only_by, self.exports[kind as usize].get(&key)) {
            (Some(owner), Some(export)) => export.owner_name == owner.name,
            _ => true,
        };
        if allowed {
            self.remove(kind, &key);
        }
    }

    /// A scope's export names with how many ids each holds.
    pub fn exports(&mut self, kind: ResourceKind, scope: &str) -> Vec<(String, u32)> {
        self.expire(Instant::now());
        self.exports[kind as usize].iter().filter(|((s, _), _)| s == scope).map(|((_, name), e)| (name.clone(), e.ids.len() as u32)).collect()
    }

    /// An owner ended: its exports go, except the kept ones.
    pub(crate) fn release_owned(&mut self, owner_id: u64) {
        self.remove_where(|e| e.owner_id == owner_id && e.kept_until.is_none());
    }

    fn expire(&mut self, now: Instant) {
        self.remove_where(|e| e.kept_until.is_some_and(|t| t <= now));
    }

    fn remove_where(&mut self, gone: impl Fn(&Export) -> bool) {
        for kind in ResourceKind::ALL {
            let keys: Vec<_> = self.exports[kind as usize].iter().filter(|(_, e)| gone(e)).map(|(key, _)| key.clone()).collect();
            keys.iter().for_each(|key| self.remove(kind, key));
        }
    }

    fn remove(&mut self, kind: ResourceKind, key: &(String, String)) {
        let k = kind as usize;
        if let Some(export) = self.exports[k].remove(key) {
            export.ids.iter().for_each(|&id| self.pools[k].release(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const KV: ResourceKind = ResourceKind::KvPage;

    #[test]
    fn exports_hold_pages_until_released() {
        let (mut r, owner) = (Resources::new(4, 1), Owner::new("a"));
        let ids = r.allocate(KV, 2).unwrap();
        r.export(KV, "", "p", &ids, &owner, 8).unwrap();
        assert_eq!(r.export(KV, "", "p", &ids, &owner, 8), Err(ExportError::NameInUse("p".into())));
        ids.iter().for_each(|&id| r.pool(KV).release(id));
        assert_eq!(r.pool(KV).free_count(), 2, "the export still holds both");
        let imported = r.import(KV, "", "p");
        assert!(r.pool(KV).is_shared(imported[0]));
        r.release_export(KV, "", "p", None);
        assert_eq!(r.exports(KV, ""), vec![]);
        assert_eq!(r.import(KV, "", "p"), Vec::<u32>::new(), "a released name imports nothing");
        r.release_export(KV, "", "p", None);
        imported.iter().for_each(|&id| r.pool(KV).release(id));
        assert_eq!(r.pool(KV).free_count(), 4);
    }

    #[test]
    fn a_scope_sees_only_its_own_exports() {
        let (mut r, owner) = (Resources::new(4, 1), Owner::new("a"));
        let ids = r.allocate(KV, 1).unwrap();
        r.export(KV, "openai/alice", "p", &ids, &owner, 8).unwrap();
        assert_eq!(r.exports(KV, ""), vec![]);
        assert_eq!(r.import(KV, "", "p"), Vec::<u32>::new());
        r.release_export(KV, "", "p", None);
        r.export(KV, "", "p", &ids, &owner, 8).unwrap();
        assert_eq!(r.exports(KV, "openai/alice"), vec![("p".to_string(), 1)]);
        assert_eq!(r.import(KV, "openai/alice", "p"), ids);
    }

    #[test]
    fn an_owners_exports_count_against_its_budget_and_end_with_it() {
        let (mut r, alice, bob) = (Resources::new(8, 1), Owner::new("alice"), Owner::new("bob"));
        let ids = r.allocate(KV, 3).unwrap();
        r.export(KV, "", "one", &ids[..2], &alice, 3).unwrap();
        let over = r.export(KV, "", "two", &ids[..2], &alice, 3).unwrap_err();
        assert_eq!(
            over.to_string(),
            "exporting 2 KV pages as `two` would make its owner's exports hold 4; an owner's exports may hold 3 (limits.kv_pages_per_instance)"
        );
        r.export(KV, "", "two", &ids[..2], &bob, 3).unwrap();
        ids.iter().for_each(|&id| r.pool(KV).release(id));
        r.release_owned(alice.id);
        assert_eq!(r.exports(KV, ""), vec![("two".to_string(), 2)], "alice's export went with her");
        r.release_owned(bob.id);
        assert_eq!(r.pool(KV).free_count(), 8, "nothing leaked");
    }

    #[test]
    fn empty_exports_and_long_names_cannot_grow_without_bound() {
        let (mut r, mallory) = (Resources::new(4, 1), Owner::new("mallory"));
        (0..3).for_each(|i| r.export(KV, "", &format!("empty-{i}"), &[], &mallory, 3).unwrap());
        assert!(matches!(r.export(KV, "", "one-more", &[], &mallory, 3), Err(ExportError::OverBudget { .. })), "each empty export costs one");
        assert_eq!(r.export(KV, "", &"x".repeat(MAX_NAME + 1), &[], &Owner::new("a"), 3), Err(ExportError::NameTooLong(MAX_NAME + 1)));
    }

    #[test]
    fn a_kept_export_outlives_its_owner_until_its_time_or_until_the_pool_is_short() {
        let (mut r, alice) = (Resources::new(4, 1), Owner::new("alice"));
        let ids = r.allocate(KV, 2).unwrap();
        r.export(KV, "", "cache", &ids, &alice, 4).unwrap();
        assert_eq!(r.keep(KV, "", "cache", &Owner::new("mallory"), Instant::now()), Err(ExportError::NotOwner("cache".into())));
        assert_eq!(r.keep(KV, "", "nothing", &alice, Instant::now()), Err(ExportError::NotExported("nothing".into())));
        r.keep(KV, "", "cache", &alice, Instant::now() + Duration::from_secs(3600)).unwrap();
        ids.iter().for_each(|&id| r.pool(KV).release(id));
        r.release_owned(alice.id);
        assert_eq!(r.exports(KV, ""), vec![("cache".to_string(), 2)], "kept past its owner's end");
        assert_eq!(r.allocate(KV, 4).unwrap().len(), 4, "a short pool releases the kept export");
        assert_eq!(r.exports(KV, ""), vec![]);

        let mut r = Resources::new(4, 1);
        let ids = r.allocate(KV, 1).unwrap();
        r.export(KV, "", "brief", &ids, &alice, 4).unwrap();
        r.keep(KV, "", "brief", &alice, Instant::now()).unwrap();
        r.pool(KV).release(ids[0]);
        assert_eq!(r.exports(KV, ""), vec![], "gone once its time ran out");
        assert_eq!(r.pool(KV).free_count(), 4);
    }
}

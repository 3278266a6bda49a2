//! A model's shared pools and the names their resources are exported under.

use std::collections::BTreeMap;

use super::pool::{ResourceKind, SharedPool};

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ExportError {
    #[error("the export name `{0}` is already in use")]
    NameInUse(String),
}

/// A model's pools and the names its shared resources are exported under.
/// Each export name holds one reference to every id it names. Names live in
/// scopes: an instance sees only its own scope's (`""`, the one every
/// instance shares, unless its launcher gave it another).
pub struct Resources {
    pools: [SharedPool; 2],
    exports: [BTreeMap<(String, String), Vec<u32>>; 2],
}

impl Resources {
    pub fn new(kv_pages: u32, embedding_slots: u32) -> Self {
        Self { pools: [SharedPool::new("KV pages", kv_pages), SharedPool::new("embedding slots", embedding_slots)], exports: Default::default() }
    }

    pub fn pool(&mut self, kind: ResourceKind) -> &mut SharedPool {
        &mut self.pools[kind as usize]
    }

    pub fn export(&mut self, kind: ResourceKind, scope: &str, name: &str, ids: &[u32]) -> Result<(), ExportError> {
        let (k, key) = (kind as usize, (scope.to_string(), name.to_string()));
        if self.exports[k].contains_key(&key) {
            return Err(ExportError::NameInUse(name.into()));
        }
        ids.iter().for_each(|&id| self.pools[k].retain(id));
        self.exports[k].insert(key, ids.to_vec());
        Ok(())
    }

    /// The exported ids, each now with one more holder (the importer); none
    /// if nothing is exported under `name`. Another instance may release a
    /// name at any moment, so its absence is an answer, not a fault: a cache
    /// shared by instances could not otherwise import without a race.
    pub fn import(&mut self, kind: ResourceKind, scope: &str, name: &str) -> Vec<u32> {
        let k = kind as usize;
        let ids = self.exports[k].get(&(scope.to_string(), name.to_string())).cloned().unwrap_or_default();
        ids.iter().for_each(|&id| self.pools[k].retain(id));
        ids
    }

    /// Drops the name's references; releasing a name that is not exported
    /// (another instance released it first) does nothing, for the same reason.
    pub fn release_export(&mut self, kind: ResourceKind, scope: &str, name: &str) {
        let k = kind as usize;
        let ids = self.exports[k].remove(&(scope.to_string(), name.to_string())).unwrap_or_default();
        ids.iter().for_each(|&id| self.pools[k].release(id));
    }

    /// A scope's export names with how many ids each holds.
    pub fn exports(&self, kind: ResourceKind, scope: &str) -> Vec<(String, u32)> {
        self.exports[kind as usize].iter().filter(|((s, _), _)| s == scope).map(|((_, name), ids)| (name.clone(), ids.len() as u32)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_hold_pages_until_released() {
        let mut r = Resources::new(4, 1);
        let ids = r.pool(ResourceKind::KvPage).allocate(2).unwrap();
        r.export(ResourceKind::KvPage, "", "p", &ids).unwrap();
        assert_eq!(r.export(ResourceKind::KvPage, "", "p", &ids), Err(ExportError::NameInUse("p".into())));
        ids.iter().for_each(|&id| r.pool(ResourceKind::KvPage).release(id));
        assert_eq!(r.pool(ResourceKind::KvPage).free_count(), 2, "the export still holds both");
        let imported = r.import(ResourceKind::KvPage, "", "p");
        assert!(r.pool(ResourceKind::KvPage).is_shared(imported[0]));
        r.release_export(ResourceKind::KvPage, "", "p");
        assert_eq!(r.exports(ResourceKind::KvPage, ""), vec![]);
        assert_eq!(r.import(ResourceKind::KvPage, "", "p"), Vec::<u32>::new(), "a released name imports nothing");
        r.release_export(ResourceKind::KvPage, "", "p");
        imported.iter().for_each(|&id| r.pool(ResourceKind::KvPage).release(id));
        assert_eq!(r.pool(ResourceKind::KvPage).free_count(), 4);
    }

    #[test]
    fn a_scope_sees_only_its_own_exports() {
        let mut r = Resources::new(4, 1);
        let ids = r.pool(ResourceKind::KvPage).allocate(1).unwrap();
        r.export(ResourceKind::KvPage, "openai/alice", "p", &ids).unwrap();
        assert_eq!(r.exports(ResourceKind::KvPage, ""), vec![]);
        assert_eq!(r.import(ResourceKind::KvPage, "", "p"), Vec::<u32>::new());
        r.release_export(ResourceKind::KvPage, "", "p");
        r.export(ResourceKind::KvPage, "", "p", &ids).unwrap();
        assert_eq!(r.exports(ResourceKind::KvPage, "openai/alice"), vec![("p".to_string(), 1)]);
        assert_eq!(r.import(ResourceKind::KvPage, "openai/alice", "p"), ids);
    }
}

//! Fixed pools of ids: KV pages and embedding slots. The GPU memory behind
//! them is allocated once; these only say which ids are free, and how many
//! holders each taken id has.

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("out of {what}: asked for {asked}, {free} of {capacity} free")]
pub struct PoolExhausted {
    pub what: &'static str,
    pub asked: usize,
    pub free: usize,
    pub capacity: u32,
}

#[derive(Debug)]
pub struct IdPool {
    what: &'static str,
    capacity: u32,
    free: Vec<u32>,
}

impl IdPool {
    pub fn new(what: &'static str, capacity: u32) -> Self {
        // Handing out low ids first keeps runs predictable in tests and logs.
        Self { what, capacity, free: (0..capacity).rev().collect() }
    }

    pub fn allocate(&mut self, n: usize) -> Result<Vec<u32>, PoolExhausted> {
        if n > self.free.len() {
            return Err(PoolExhausted { what: self.what, asked: n, free: self.free.len(), capacity: self.capacity });
        }
        Ok(self.free.split_off(self.free.len() - n).into_iter().rev().collect())
    }

    pub fn release(&mut self, ids: &[u32]) {
        debug_assert!(ids.iter().all(|&id| id < self.capacity && !self.free.contains(&id)), "double free in {}", self.what);
        self.free.extend(ids.iter().rev());
    }

    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }
}

/// Ids (KV pages or embedding slots) held by reference count: an id goes back
/// to the pool when its last holder lets go.
pub struct SharedPool {
    pool: IdPool,
    /// Holders: instances and export names.
    refs: Vec<u32>,
    /// Queued passes that use the id; they keep it from the pool, but do not share it.
    pass_refs: Vec<u32>,
}

impl SharedPool {
    pub fn new(what: &'static str, capacity: u32) -> Self {
        let refs = vec![0; capacity as usize];
        Self { pool: IdPool::new(what, capacity), pass_refs: refs.clone(), refs }
    }

    pub fn allocate(&mut self, n: usize) -> Result<Vec<u32>, PoolExhausted> {
        let ids = self.pool.allocate(n)?;
        ids.iter().for_each(|&id| self.refs[id as usize] = 1);
        Ok(ids)
    }

    pub fn retain(&mut self, id: u32) {
        self.refs[id as usize] += 1;
    }

    pub fn release(&mut self, id: u32) {
        self.refs[id as usize] -= 1;
        self.free_if_unused(id);
    }

    /// A queued pass uses `id` until [`Self::release_from_pass`].
    pub fn retain_for_pass(&mut self, id: u32) {
        self.pass_refs[id as usize] += 1;
    }

    pub fn release_from_pass(&mut self, id: u32) {
        self.pass_refs[id as usize] -= 1;
        self.free_if_unused(id);
    }

    fn free_if_unused(&mut self, id: u32) {
        if self.refs[id as usize] == 0 && self.pass_refs[id as usize] == 0 {
            self.pool.release(&[id]);
        }
    }

    /// Held by more than one holder: a writer must copy it first.
    pub fn is_shared(&self, id: u32) -> bool {
        self.refs[id as usize] > 1
    }

    pub fn free_count(&self) -> usize {
        self.pool.free_count()
    }

    /// Ids no instance or export holds: free, or only used by passes still
    /// queued (they come back when those have run).
    pub fn unheld_count(&self) -> usize {
        self.free_count() + self.refs.iter().zip(&self.pass_refs).filter(|&(&r, &p)| r == 0 && p > 0).count()
    }

    pub fn capacity(&self) -> u32 {
        self.pool.capacity()
    }
}

/// The two kinds of resources an inferlet allocates (`resource-type` 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    KvPage = 0,
    EmbeddingSlot = 1,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 2] = [ResourceKind::KvPage, ResourceKind::EmbeddingSlot];

    pub fn noun(self) -> &'static str {
        match self {
            ResourceKind::KvPage => "KV page",
            ResourceKind::EmbeddingSlot => "embedding slot",
        }
    }

    /// The `[limits]` key that bounds how many of these an instance holds (and an owner exports).
    pub fn quota_setting(self) -> &'static str {
        match self {
            ResourceKind::KvPage => "kv_pages_per_instance",
            ResourceKind::EmbeddingSlot => "embedding_slots_per_instance",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_until_exhausted_and_reuses_released_ids() {
        let mut pool = IdPool::new("KV pages", 4);
        assert_eq!(pool.allocate(3).unwrap(), vec![0, 1, 2]);
        let err = pool.allocate(2).unwrap_err();
        assert_eq!(err.to_string(), "out of KV pages: asked for 2, 1 of 4 free");
        pool.release(&[1]);
        assert_eq!(pool.allocate(2).unwrap().len(), 2);
        assert_eq!(pool.free_count(), 0);
    }
}

//! Fixed pools of ids: KV pages and embedding slots. The GPU memory behind
//! them is allocated once; these only say which ids are free.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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

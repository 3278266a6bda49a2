//! What one instance holds on one model: its own pointer names for the
//! shared KV pages and embedding slots, one reference to each, and its
//! quotas. Everything held goes back when the instance ends, however it ends.

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::service::{ModelService, ResourceKind};

pub struct Holdings {
    pub service: Arc<ModelService>,
    /// Per kind: pointer → pool id.
    pointers: [HashMap<u32, u32>; 2],
    next_pointer: u32,
    quotas: [usize; 2],
    /// The export names this instance sees (`Resources`' scopes).
    export_scope: String,
}

/// Resource type 0 and 1; anything else is named in the error.
pub fn kind(resource_type: u32, call: &str) -> Result<ResourceKind, String> {
    match resource_type {
        0 => Ok(ResourceKind::KvPage),
        1 => Ok(ResourceKind::EmbeddingSlot),
        2 => Err(format!("not supported: {call} of resource type 2 (adapters)")),
        other => Err(format!("{call}: unknown resource type {other} (0 = KV page, 1 = embedding slot)")),
    }
}

fn what(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::KvPage => "KV page",
        ResourceKind::EmbeddingSlot => "embedding slot",
    }
}

impl Holdings {
    pub fn new(service: Arc<ModelService>, quotas: [usize; 2], export_scope: String) -> Self {
        Self { service, pointers: Default::default(), next_pointer: 0, quotas, export_scope }
    }

    pub fn held(&self, kind: ResourceKind) -> usize {
        self.pointers[kind as usize].len()
    }

    fn check_quota(&self, kind: ResourceKind, more: usize, call: &str) -> Result<(), String> {
        let (held, quota) = (self.held(kind), self.quotas[kind as usize]);
        if held + more > quota {
            return Err(format!(
                "{call}: asked for {more} more {}s while holding {held}; the per-instance quota is {quota} (limits.{})",
                what(kind),
                match kind {
                    ResourceKind::KvPage => "kv_pages_per_instance",
                    ResourceKind::EmbeddingSlot => "embedding_slots_per_instance",
                }
            ));
        }
        Ok(())
    }

    /// New pointers for `ids`, which this instance now holds one reference to.
    fn adopt(&mut self, kind: ResourceKind, ids: Vec<u32>) -> Vec<u32> {
        ids.into_iter()
            .map(|id| {
                let pointer = self.next_pointer;
                self.next_pointer = self.next_pointer.wrapping_add(1);
                self.pointers[kind as usize].insert(pointer, id);
                pointer
            })
            .collect()
    }

    pub fn allocate(&mut self, kind: ResourceKind, count: u32) -> Result<Vec<u32>, String> {
        const CALL: &str = "common.allocate-resources";
        self.check_quota(kind, count as usize, CALL)?;
        let ids = self.service.resources.lock().unwrap().pool(kind).allocate(count as usize).map_err(|e| format!("{CALL}: {e}"))?;
        Ok(self.adopt(kind, ids))
    }

    pub fn deallocate(&mut self, kind: ResourceKind, pointers: &[u32]) -> Result<(), String> {
        let ids = self.resolve_all(kind, pointers, "common.deallocate-resources")?;
        let mut resources = self.service.resources.lock().unwrap();
        for (pointer, id) in pointers.iter().zip(ids) {
            // A pointer listed twice is released once.
            if self.pointers[kind as usize].remove(pointer).is_some() {
                resources.pool(kind).release(id);
            }
        }
        Ok(())
    }

    pub fn resolve(&self, kind: ResourceKind, pointer: u32, call: &str) -> Result<u32, String> {
        self.pointers[kind as usize]
            .get(&pointer)
            .copied()
            .ok_or_else(|| format!("{call}: {} pointer {pointer} was not allocated or imported by this instance", what(kind)))
    }

    pub fn resolve_all(&self, kind: ResourceKind, pointers: &[u32], call: &str) -> Result<Vec<u32>, String> {
        pointers.iter().map(|&p| self.resolve(kind, p, call)).collect()
    }

    pub fn export(&mut self, kind: ResourceKind, pointers: &[u32], name: &str) -> Result<(), String> {
        const CALL: &str = "common.export-resources";
        let ids = self.resolve_all(kind, pointers, CALL)?;
        self.service.resources.lock().unwrap().export(kind, &self.export_scope, name, &ids).map_err(|e| format!("{CALL}: {e}"))
    }

    pub fn import(&mut self, kind: ResourceKind, name: &str) -> Result<Vec<u32>, String> {
        const CALL: &str = "common.import-resources";
        let mut resources = self.service.resources.lock().unwrap();
        let count = resources.exports(kind, &self.export_scope).into_iter().find(|(n, _)| n == name).map_or(0, |(_, c)| c as usize);
        self.check_quota(kind, count, CALL)?;
        let ids = resources.import(kind, &self.export_scope, name);
        drop(resources);
        Ok(self.adopt(kind, ids))
    }

    pub fn release_export(&mut self, kind: ResourceKind, name: &str) {
        self.service.resources.lock().unwrap().release_export(kind, &self.export_scope, name);
    }

    pub fn exports(&self, kind: ResourceKind) -> Vec<(String, u32)> {
        self.service.resources.lock().unwrap().exports(kind, &self.export_scope)
    }

    /// Copy-on-write before a pass writes into `pointers` (KV pages): each
    /// page someone else also holds is replaced, under the same pointer, by a
    /// private copy, so sharers never see this instance's tokens.
    pub fn make_private(&mut self, pointers: &[u32], call: &str) -> Result<(), String> {
        let kind = ResourceKind::KvPage;
        let mut resources = self.service.resources.lock().unwrap();
        for &pointer in pointers {
            let id = self.resolve(kind, pointer, call)?;
            if !resources.pool(kind).is_shared(id) {
                continue;
            }
            let copy = resources.pool(kind).allocate(1).map_err(|e| format!("{call}: copy-on-write of a shared page: {e}"))?[0];
            self.service.copy_page(id, copy);
            resources.pool(kind).release(id);
            self.pointers[kind as usize].insert(pointer, copy);
        }
        Ok(())
    }
}

impl Drop for Holdings {
    fn drop(&mut self) {
        let mut resources = self.service.resources.lock().unwrap();
        for kind in ResourceKind::ALL {
            for (_, id) in self.pointers[kind as usize].drain() {
                resources.pool(kind).release(id);
            }
        }
    }
}

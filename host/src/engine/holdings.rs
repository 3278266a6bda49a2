//! What one instance holds on one model: its own pointer names for the
//! shared KV pages and embedding slots, one reference to each, its quotas,
//! and the one way its passes reach the scheduler ([`Holdings::submit`]).
//! Everything held goes back when the holdings are dropped (the instance
//! ended, however it ended).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::batch::{Input, Output, Pass, context_length};
use super::check::{Invalid, check_arguments};
use super::chunks::{Ticket, split};
use super::exports::ExportError;
use super::namespace::Namespace;
use super::owner::Owner;
use super::pool::{PoolExhausted, ResourceKind};
use super::scheduler::{Held, Priority, QueuedPass, Submitter, next_owner};
use super::service::ModelService;

/// Why a resource call or a pass was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HoldingsError {
    #[error("{} pointer {pointer} was not allocated or imported by this instance", kind.noun())]
    UnknownPointer { kind: ResourceKind, pointer: u32 },
    #[error(
        "asked for {asked} more {}s while holding {held}; the per-instance quota is {quota} (limits.{})",
        kind.noun(),
        kind.quota_setting()
    )]
    Quota { kind: ResourceKind, asked: usize, held: usize, quota: usize },
    #[error("{0}")]
    Exhausted(#[from] PoolExhausted),
    #[error("copy-on-write of a shared page: {0}")]
    CopyOnWrite(PoolExhausted),
    #[error("{0}")]
    Export(#[from] ExportError),
    #[error("pointer {0} is listed twice: an export names each page once")]
    ExportedTwice(u32),
    #[error("{queued} passes of this instance are waiting, the most it may queue (limits.queued_passes_per_instance)")]
    TooManyQueued { queued: usize },
}

/// What one instance may hold and queue on one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub kv_pages: usize,
    pub embedding_slots: usize,
    /// Passes submitted and not yet run.
    pub queued_passes: usize,
}

impl Quotas {
    fn of(&self, kind: ResourceKind) -> usize {
        match kind {
            ResourceKind::KvPage => self.kv_pages,
            ResourceKind::EmbeddingSlot => self.embedding_slots,
        }
    }
}

/// Why a pass was refused before it reached the scheduler.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PassError {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    Holdings(#[from] HoldingsError),
}

pub struct Holdings {
    pub service: Arc<ModelService>,
    /// Whom the instance acts for: it takes turns with other owners, and its exports are charged to it.
    owner: Arc<Owner>,
    /// This instance's passes run in the order it submitted them.
    instance: u64,
    /// Per kind: pointer → pool id.
    pointers: [HashMap<u32, u32>; 2],
    next_pointer: u32,
    quotas: Quotas,
    /// This instance's passes submitted and not yet run (each one's guard counts itself).
    queued: Arc<AtomicUsize>,
    /// Where the names it exports and imports live.
    namespace: Namespace,
}

impl Holdings {
    pub fn new(service: Arc<ModelService>, owner: Arc<Owner>, quotas: Quotas, namespace: Namespace) -> Self {
        Self { service, owner, instance: next_owner(), pointers: Default::default(), next_pointer: 0, quotas, queued: Arc::default(), namespace }
    }

    pub fn held(&self, kind: ResourceKind) -> usize {
        self.pointers[kind as usize].len()
    }

    fn check_quota(&self, kind: ResourceKind, asked: usize) -> Result<(), HoldingsError> {
        let (held, quota) = (self.held(kind), self.quotas.of(kind));
        if held + asked > quota {
            return Err(HoldingsError::Quota { kind, asked, held, quota });
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

    pub fn allocate(&mut self, kind: ResourceKind, count: u32) -> Result<Vec<u32>, HoldingsError> {
        self.check_quota(kind, count as usize)?;
        let ids = self.service.resources.lock().unwrap().allocate(kind, count as usize)?;
        // A freed page still holds its last holder's keys and values.
        self.service.clear(kind, ids.clone());
        Ok(self.adopt(kind, ids))
    }

    pub fn deallocate(&mut self, kind: ResourceKind, pointers: &[u32]) -> Result<(), HoldingsError> {
        let ids = self.resolve_all(kind, pointers)?;
        let mut resources = self.service.resources.lock().unwrap();
        for (pointer, id) in pointers.iter().zip(ids) {
            // A pointer listed twice is released once.
            if self.pointers[kind as usize].remove(pointer).is_some() {
                resources.pool(kind).release(id);
            }
        }
        Ok(())
    }

    fn resolve(&self, kind: ResourceKind, pointer: u32) -> Result<u32, HoldingsError> {
        self.pointers[kind as usize].get(&pointer).copied().ok_or(HoldingsError::UnknownPointer { kind, pointer })
    }

    fn resolve_all(&self, kind: ResourceKind, pointers: &[u32]) -> Result<Vec<u32>, HoldingsError> {
        pointers.iter().map(|&p| self.resolve(kind, p)).collect()
    }

    pub fn export(&mut self, kind: ResourceKind, pointers: &[u32], name: &str) -> Result<(), HoldingsError> {
        let ids = self.resolve_all(kind, pointers)?;
        let mut sorted = pointers.to_vec();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(HoldingsError::ExportedTwice(pair[0]));
        }
        // An owner's exports together may hold what one instance may.
        let budget = self.quotas.of(kind);
        self.service.resources.lock().unwrap().export(kind, self.namespace.scope_of(name), name, &ids, &self.owner, budget)?;
        self.owner.exports_on(&self.service);
        Ok(())
    }

    /// Keeps this owner's export `name` for `ttl` from now, past the owner's end.
    pub fn keep(&mut self, kind: ResourceKind, name: &str, ttl: Duration) -> Result<(), HoldingsError> {
        Ok(self.service.resources.lock().unwrap().keep(kind, self.namespace.scope_of(name), name, &self.owner, Instant::now() + ttl)?)
    }

    pub fn import(&mut self, kind: ResourceKind, name: &str) -> Result<Vec<u32>, HoldingsError> {
        let mut resources = self.service.resources.lock().unwrap();
        let scope = self.namespace.scope_of(name);
        let count = resources.exports(kind, scope).into_iter().find(|(n, _)| n == name).map_or(0, |(_, c)| c as usize);
        self.check_quota(kind, count)?;
        let ids = resources.import(kind, scope, name);
        drop(resources);
        Ok(self.adopt(kind, ids))
    }

    /// A shared name is released only by its owner: the others may read it, not take it away.
    pub fn release_export(&mut self, kind: ResourceKind, name: &str) {
        let only_by = self.namespace.is_shared(name).then_some(&*self.owner);
        self.service.resources.lock().unwrap().release_export(kind, self.namespace.scope_of(name), name, only_by);
    }

    /// The names it sees: its own namespace's, then the shared ones.
    pub fn exports(&self, kind: ResourceKind) -> Vec<(String, u32)> {
        let mut resources = self.service.resources.lock().unwrap();
        self.namespace.visible().flat_map(|scope| resources.exports(kind, scope)).collect()
    }

    /// The one way a pass reaches the scheduler. `pass` names this
    /// instance's pointers (KV pages, embedding slots); they are resolved,
    /// the pass is checked, each page it writes that someone else also holds
    /// is replaced by a private copy (copy-on-write, so sharers never see
    /// this instance's tokens), and it is queued — in chunks when it has
    /// more rows than a batch holds — holding a reference to each page and
    /// slot it uses until it has run (so deallocating them, or the
    /// instance's end, frees nothing under it).
    pub fn submit(&mut self, mut pass: Pass, priority: Priority, mut bytes: Option<Held>) -> Result<Ticket, PassError> {
        let page_pointers = std::mem::take(&mut pass.kv_pages);
        pass.kv_pages = self.resolve_all(ResourceKind::KvPage, &page_pointers)?;
        for input in &mut pass.inputs {
            if let Input::Embedding(pointer) = input {
                *pointer = self.resolve(ResourceKind::EmbeddingSlot, *pointer)?;
            }
        }
        for output in &mut pass.outputs {
            if let Output::Embedding { slot, .. } = output {
                *slot = self.resolve(ResourceKind::EmbeddingSlot, *slot)?;
            }
        }
        let limits = self.service.limits;
        let cost = check_arguments(&pass, &limits)?;
        let page_size = limits.page_size as u64;
        let first_written = ((context_length(&pass, limits.page_size) - pass.inputs.len() as u64) / page_size) as usize;
        let (chunks, assembly) = split(pass, cost, &limits)?;
        let queued = self.queued.load(Ordering::Relaxed);
        if queued + chunks.len() > self.quotas.queued_passes {
            return Err(HoldingsError::TooManyQueued { queued }.into());
        }
        // Copy-on-write once for the whole pass; its chunks share its pages.
        let mut copies = self.make_written_pages_private(&page_pointers, first_written)?;
        let by = Submitter { owner: self.owner.id, instance: self.instance, priority };
        let last = chunks.len().saturating_sub(1);
        let replies = chunks
            .into_iter()
            .enumerate()
            .map(|(i, (mut chunk, chunk_cost))| {
                for page in &mut chunk.kv_pages {
                    if let Some(&(_, copy)) = copies.iter().find(|(from, _)| from == page) {
                        *page = copy;
                    }
                }
                let holds = self.hold_for(&chunk);
                // The pass's bytes stay charged until its last chunk has run.
                let queued = QueuedPass { count: Some(Held::add(&self.queued, 1)), bytes: if i == last { bytes.take() } else { None } };
                self.service.submit_checked(chunk, chunk_cost, std::mem::take(&mut copies), holds, queued, by)
            })
            .collect();
        Ok(Ticket::new(replies, assembly))
    }

    /// One more reference to every page and slot `pass` uses, for the pass itself.
    fn hold_for(&self, pass: &Pass) -> Vec<(ResourceKind, u32)> {
        let mut holds: Vec<(ResourceKind, u32)> = pass.kv_pages.iter().map(|&id| (ResourceKind::KvPage, id)).collect();
        holds.extend(pass.inputs.iter().filter_map(|i| match *i {
            Input::Embedding(slot) => Some((ResourceKind::EmbeddingSlot, slot)),
            Input::Token(_) => None,
        }));
        holds.extend(pass.outputs.iter().filter_map(|o| match *o {
            Output::Embedding { slot, .. } => Some((ResourceKind::EmbeddingSlot, slot)),
            _ => None,
        }));
        holds.sort_by_key(|&(kind, id)| (kind as usize, id));
        holds.dedup();
        let mut resources = self.service.resources.lock().unwrap();
        for &(kind, id) in &holds {
            resources.pool(kind).retain_for_pass(id);
        }
        holds
    }

    /// Copy-on-write of the pages from `first_written` on (those the pass's
    /// inputs go into): each one someone else also holds is replaced, under
    /// the same pointer, by a fresh page. Returns the copies (from, to) to
    /// run before the pass.
    fn make_written_pages_private(&mut self, pointers: &[u32], first_written: usize) -> Result<Vec<(u32, u32)>, HoldingsError> {
        let mut copies: Vec<(u32, u32)> = Vec::new();
        let mut resources = self.service.resources.lock().unwrap();
        for &pointer in pointers.iter().skip(first_written) {
            let id = self.pointers[ResourceKind::KvPage as usize][&pointer];
            // A pointer listed twice was made private the first time.
            if !resources.pool(ResourceKind::KvPage).is_shared(id) {
                continue;
            }
            let copy = resources.allocate(ResourceKind::KvPage, 1).map_err(HoldingsError::CopyOnWrite)?[0];
            resources.pool(ResourceKind::KvPage).release(id);
            copies.push((id, copy));
            self.pointers[ResourceKind::KvPage as usize].insert(pointer, copy);
        }
        Ok(copies)
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

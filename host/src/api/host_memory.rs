//! What the host keeps for one instance outside its linear memory — blobs,
//! passes being built or waiting to run, topic subscriptions — counted
//! against a budget (`limits.host_memory_mib`). Going over ends the
//! instance, naming the call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::InferletView;
use crate::engine::scheduler::Held;

/// What a topic subscription costs the budget: what it may buffer.
pub(crate) const SUBSCRIPTION_COST: usize = crate::messaging::SUBSCRIPTION_BYTES;

pub struct HostMemory {
    limit: usize,
    /// Shared with the queued passes that still hold bytes of it.
    used: Arc<AtomicUsize>,
}

impl HostMemory {
    pub fn new(limit: usize) -> Self {
        Self { limit, used: Arc::default() }
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Bytes already charged, handed to a queued pass: refunded when it has run.
    pub(crate) fn held(&self, bytes: usize) -> Held {
        Held::counted(&self.used, bytes)
    }
}

impl InferletView<'_> {
    /// Charges `bytes` to the instance's host memory, or ends it.
    pub(crate) fn charge(&mut self, call: &str, bytes: usize) -> wasmtime::Result<()> {
        let budget = &self.ctx.host_memory;
        // Only this instance charges; refunds (passes that ran) only lower it meanwhile.
        let total = budget.used().saturating_add(bytes);
        if total > budget.limit {
            return super::misuse(format!(
                "{call}: the host memory kept for this instance would reach {} KiB, over its budget of {} KiB (limits.host_memory_mib)",
                total.div_ceil(1024),
                budget.limit / 1024
            ));
        }
        budget.used.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn refund(&mut self, bytes: usize) {
        self.ctx.host_memory.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

//! What the host keeps for one instance outside its linear memory — blobs,
//! passes being built, topic subscriptions — counted against a budget
//! (`limits.host_memory_mib`). Going over ends the instance, naming the call.

use super::InferletView;

/// What a topic subscription costs the budget: it may buffer many messages.
pub(crate) const SUBSCRIPTION_COST: usize = 64 << 10;

pub struct HostMemory {
    limit: usize,
    used: usize,
}

impl HostMemory {
    pub fn new(limit: usize) -> Self {
        Self { limit, used: 0 }
    }

    pub fn used(&self) -> usize {
        self.used
    }
}

impl InferletView<'_> {
    /// Charges `bytes` to the instance's host memory, or ends it.
    pub(crate) fn charge(&mut self, call: &str, bytes: usize) -> wasmtime::Result<()> {
        let budget = &mut self.ctx.host_memory;
        let total = budget.used.saturating_add(bytes);
        if total > budget.limit {
            return super::misuse(format!(
                "{call}: the host memory kept for this instance would reach {} KiB, over its budget of {} KiB (limits.host_memory_mib)",
                total.div_ceil(1024),
                budget.limit / 1024
            ));
        }
        budget.used = total;
        Ok(())
    }

    pub(crate) fn refund(&mut self, bytes: usize) {
        let budget = &mut self.ctx.host_memory;
        budget.used = budget.used.saturating_sub(bytes);
    }
}

//! Steps recorded ahead. A step's command stream depends only on its shape —
//! how many rows, outputs, samplers and distributions, which embeddings it
//! keeps, and the kernel choice — never on its tokens, positions, pages or
//! sampler values, which live in buffers written just before submission. So
//! while the GPU runs one step, the host records the next as if it had the
//! same shape (consecutive decode steps do), and when it does, the step is
//! submitted as soon as its inputs are written: the GPU no longer waits for
//! a dispatch's recording per kernel.

use std::time::Duration;

use crate::engine::kernels::Choice;
use crate::engine::plan::BatchPlan;

/// What recording a step reads of its plan, and the kernel choice: two steps
/// of one shape record the same commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepShape {
    rows: usize,
    outputs: usize,
    samplers: usize,
    distributions: usize,
    embedding_copies: Vec<(u32, u32)>,
    choice: Choice,
}

impl StepShape {
    pub fn of(plan: &BatchPlan, choice: Choice) -> Self {
        Self {
            rows: plan.ids.len(),
            outputs: plan.logit_rows.len(),
            samplers: plan.samplers.len(),
            distributions: plan.distributions.len(),
            embedding_copies: plan.embedding_copies.clone(),
            choice,
        }
    }
}

/// A step's commands, recorded and not yet submitted.
pub struct Recorded {
    pub shape: StepShape,
    pub commands: wgpu::CommandBuffer,
    /// The dispatches in `commands`.
    pub dispatches: u64,
    /// The CPU time recording them took.
    pub took: Duration,
}

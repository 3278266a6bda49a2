//! What one forward pass asks of the engine, and what it gets back. A batch
//! is a list of passes from any number of inferlets, run as one submission.

/// An input row: a token, or an embedding slot's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Token(u32),
    Embedding(u32),
}

/// How to pick a token from a row's logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// 0 is greedy (argmax).
    pub temperature: f32,
    pub top_k: Option<u32>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    /// Seeds this draw; the same seed on the same logits gives the same token.
    pub seed: u64,
}

impl Sampler {
    pub fn greedy() -> Self {
        Self { temperature: 0.0, top_k: None, top_p: None, min_p: None, seed: 0 }
    }
}

/// What a pass wants from one of its input rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Sample a next token.
    Token { index: u32, sampler: Sampler },
    /// The top-k next-token probabilities: softmax(logits / T) over the whole
    /// vocabulary, sorted, highest first.
    Distribution { index: u32, temperature: f32, top_k: u32 },
    /// Copy the row's final hidden state (before the output norm) into an embedding slot.
    Embedding { index: u32, slot: u32 },
}

/// One forward pass: input rows with positions, the pages that hold its
/// context (this pass's rows included), an optional mask, and outputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pass {
    pub inputs: Vec<Input>,
    pub positions: Vec<u32>,
    pub kv_pages: Vec<u32>,
    /// Valid slots in the last page after this pass, 1..=page size.
    pub last_page_len: u32,
    /// Per input row, alternating attend/mask run lengths (starting with attend)
    /// over the slots up to and including the row's own; empty means causal.
    pub mask: Vec<Vec<u32>>,
    pub outputs: Vec<Output>,
}

/// What a pass produced, its outputs in the order they were asked for, by kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PassResult {
    pub tokens: Vec<u32>,
    pub distributions: Vec<(Vec<u32>, Vec<f32>)>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum BatchError {
    #[error("pass {pass}: {problem}")]
    Invalid { pass: usize, problem: super::check::Invalid },
    #[error("the batch is too large: {0}")]
    TooLarge(String),
    #[error("GPU error: {0}")]
    Gpu(String),
}

/// The context length a pass's pages hold after it: `(pages - 1) * page_size + last`.
pub fn context_length(pass: &Pass, page_size: u32) -> u64 {
    match pass.kv_pages.len() {
        0 => 0,
        n => (n as u64 - 1) * page_size as u64 + pass.last_page_len as u64,
    }
}

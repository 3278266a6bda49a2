//! What makes a pass valid, written once: every argument a pass carries and
//! every limit a batch applies (rows, logit rows, samplers, distributions,
//! page-table entries, mask words). A pass that passes [`check_pass`] can
//! never make its batch fail for size, and its [`PassCost`] is what the
//! scheduler counts when it fills a batch.

use super::batch::{Input, Output, Pass, Sampler, context_length};

/// What one pass may use and address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassLimits {
    pub page_size: u32,
    pub kv_pages: u32,
    pub embedding_slots: u32,
    pub vocab: u32,
    pub max_top_k: u32,
    /// Per batch, so also per pass.
    pub batch_tokens: u32,
    pub batch_outputs: u32,
    pub page_table_entries: u32,
    pub mask_words: u32,
}

/// Which part of a pass an argument belongs to (the api names the call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    InputTokens,
    InputEmbeddings,
    KvCache,
    AttentionMask,
    OutputTokens,
    OutputDistributions,
    OutputEmbeddings,
    /// The pass as a whole (its size).
    Whole,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::InputTokens => "input tokens",
            Part::InputEmbeddings => "input embeddings",
            Part::KvCache => "KV cache",
            Part::AttentionMask => "attention mask",
            Part::OutputTokens => "output tokens",
            Part::OutputDistributions => "output distributions",
            Part::OutputEmbeddings => "output embeddings",
            Part::Whole => "pass",
        })
    }
}

/// What is wrong with an argument.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("the pass has no input tokens or embeddings")]
    NoInputs,
    #[error("{inputs} inputs but {positions} positions")]
    Positions { inputs: usize, positions: usize },
    #[error("token id {id} is not below the vocabulary size {vocab}")]
    TokenId { id: u32, vocab: u32 },
    #[error("embedding slot {0} does not exist")]
    NoSuchSlot(u32),
    #[error("the pass has no KV pages")]
    NoKvPages,
    #[error("last-kv-page-len is {len}, must be 1..={page_size}")]
    LastPageLen { len: u32, page_size: u32 },
    #[error("page {page} does not exist (the pool has {pages} pages)")]
    NoSuchPage { page: u32, pages: u32 },
    #[error("the pages hold {slots} slots, fewer than the pass's {inputs} inputs")]
    TooFewSlots { slots: u64, inputs: usize },
    #[error("{masks} masks for {inputs} inputs")]
    MaskRows { masks: usize, inputs: usize },
    #[error("row {row}: the runs cover {covered} slots, expected {expected} (the row's context, its own slot included)")]
    MaskCover { row: usize, covered: u64, expected: u32 },
    #[error("row {row}: {runs} runs for a context of {expected}; a row has at most one run more than its context")]
    MaskRuns { row: usize, runs: usize, expected: u32 },
    #[error("output index {index} is past the pass's {inputs} inputs")]
    OutputIndex { index: u32, inputs: usize },
    #[error("temperature {0} must be a finite number ≥ 0")]
    Temperature(f32),
    #[error("top-k must be at least 1")]
    SamplerTopK,
    #[error("top-p {0} must be in (0, 1]")]
    TopP(f32),
    #[error("min-p {0} must be in [0, 1]")]
    MinP(f32),
    #[error("top-k {k} must be 1..={max}")]
    DistributionTopK { k: u32, max: u32 },
    #[error("{count} {what}, more than the engine's {max} per pass{}", setting.map(|s| format!(" ({s})")).unwrap_or_default())]
    TooLarge { what: &'static str, count: usize, max: u32, setting: Option<&'static str> },
}

/// An invalid pass: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{part}: {problem}")]
pub struct Invalid {
    pub part: Part,
    pub problem: Problem,
}

impl Problem {
    pub fn at(self, part: Part) -> Invalid {
        Invalid { part, problem: self }
    }
}

/// How much of a batch's room a pass takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassCost {
    pub tokens: usize,
    /// Distinct rows whose logits are computed.
    pub logit_rows: usize,
    pub samplers: usize,
    pub distributions: usize,
    pub page_table: usize,
    pub mask_words: usize,
}

impl PassCost {
    pub fn plus(self, other: PassCost) -> PassCost {
        PassCost {
            tokens: self.tokens + other.tokens,
            logit_rows: self.logit_rows + other.logit_rows,
            samplers: self.samplers + other.samplers,
            distributions: self.distributions + other.distributions,
            page_table: self.page_table + other.page_table,
            mask_words: self.mask_words + other.mask_words,
        }
    }

    /// The first of the batch's limits this cost goes over, if any.
    pub fn over(&self, limits: &PassLimits) -> Option<Problem> {
        let bounds: [(&'static str, usize, u32, Option<&'static str>); 6] = [
            ("inputs", self.tokens, limits.batch_tokens, Some("engine.batch_tokens")),
            ("output rows", self.logit_rows, limits.batch_outputs, None),
            ("sampled outputs", self.samplers, limits.batch_outputs, None),
            ("distributions", self.distributions, limits.batch_outputs, None),
            ("KV page references", self.page_table, limits.page_table_entries, None),
            ("attention-mask words", self.mask_words, limits.mask_words, None),
        ];
        bounds.into_iter().find(|&(_, count, max, _)| count > max as usize).map(|(what, count, max, setting)| Problem::TooLarge {
            what,
            count,
            max,
            setting,
        })
    }

    pub fn fits(&self, limits: &PassLimits) -> bool {
        self.over(limits).is_none()
    }
}

/// Token ids a pass may read.
pub fn token_ids(ids: &[u32], vocab: u32) -> Result<(), Problem> {
    match ids.iter().find(|&&id| id >= vocab) {
        Some(&id) => Err(Problem::TokenId { id, vocab }),
        None => Ok(()),
    }
}

/// The page list's shape: non-empty, and a last-page length within a page.
pub fn kv_cache(pages: usize, last_page_len: u32, page_size: u32) -> Result<(), Problem> {
    if pages == 0 {
        return Err(Problem::NoKvPages);
    }
    if !(1..=page_size).contains(&last_page_len) {
        return Err(Problem::LastPageLen { len: last_page_len, page_size });
    }
    Ok(())
}

fn temperature(t: f32) -> Result<(), Problem> {
    if t.is_finite() && t >= 0.0 { Ok(()) } else { Err(Problem::Temperature(t)) }
}

pub fn sampler(s: &Sampler) -> Result<(), Problem> {
    temperature(s.temperature)?;
    if s.top_k == Some(0) {
        return Err(Problem::SamplerTopK);
    }
    if let Some(p) = s.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
        return Err(Problem::TopP(p));
    }
    if let Some(p) = s.min_p.filter(|p| !(0.0..=1.0).contains(p)) {
        return Err(Problem::MinP(p));
    }
    Ok(())
}

pub fn distribution(t: f32, top_k: u32, max_top_k: u32) -> Result<(), Problem> {
    temperature(t)?;
    if top_k == 0 || top_k > max_top_k {
        return Err(Problem::DistributionTopK { k: top_k, max: max_top_k });
    }
    Ok(())
}

/// Whether a row's runs (attend, mask, attend, …) mask any slot at all.
pub fn masks_anything(runs: &[u32]) -> bool {
    runs.iter().skip(1).step_by(2).any(|&r| r > 0)
}

/// Checks every argument of `pass` and that it fits in one batch; returns
/// what it costs a batch.
pub fn check_pass(pass: &Pass, limits: &PassLimits) -> Result<PassCost, Invalid> {
    let cost = check_arguments(pass, limits)?;
    match cost.over(limits) {
        Some(problem) => Err(problem.at(Part::Whole)),
        None => Ok(cost),
    }
}

/// Checks every argument of `pass`, whatever its size; returns what it
/// would cost a batch.
pub fn check_arguments(pass: &Pass, limits: &PassLimits) -> Result<PassCost, Invalid> {
    let n = pass.inputs.len();
    if n == 0 {
        return Err(Problem::NoInputs.at(Part::InputTokens));
    }
    if pass.positions.len() != n {
        return Err(Problem::Positions { inputs: n, positions: pass.positions.len() }.at(Part::InputTokens));
    }
    for input in &pass.inputs {
        match *input {
            Input::Token(id) => token_ids(&[id], limits.vocab).map_err(|p| p.at(Part::InputTokens))?,
            Input::Embedding(slot) if slot >= limits.embedding_slots => return Err(Problem::NoSuchSlot(slot).at(Part::InputEmbeddings)),
            Input::Embedding(_) => {}
        }
    }
    kv_cache(pass.kv_pages.len(), pass.last_page_len, limits.page_size).map_err(|p| p.at(Part::KvCache))?;
    if let Some(&page) = pass.kv_pages.iter().find(|&&page| page >= limits.kv_pages) {
        return Err(Problem::NoSuchPage { page, pages: limits.kv_pages }.at(Part::KvCache));
    }
    let slots = context_length(pass, limits.page_size);
    if slots < n as u64 {
        return Err(Problem::TooFewSlots { slots, inputs: n }.at(Part::KvCache));
    }

    let mut mask_words = 0;
    if !pass.mask.is_empty() {
        if pass.mask.len() != n {
            return Err(Problem::MaskRows { masks: pass.mask.len(), inputs: n }.at(Part::AttentionMask));
        }
        let first_slot = slots - n as u64;
        for (row, runs) in pass.mask.iter().enumerate() {
            let expected = (first_slot + row as u64 + 1) as u32;
            // Empty runs beyond a leading one only cost the engine time.
            if runs.len() > expected as usize + 1 {
                return Err(Problem::MaskRuns { row, runs: runs.len(), expected }.at(Part::AttentionMask));
            }
            let covered: u64 = runs.iter().map(|&r| r as u64).sum();
            if covered != expected as u64 {
                return Err(Problem::MaskCover { row, covered, expected }.at(Part::AttentionMask));
            }
            if masks_anything(runs) {
                mask_words += expected.div_ceil(32) as usize;
            }
        }
    }

    let mut logit_rows: Vec<u32> = Vec::new();
    let (mut samplers, mut distributions) = (0, 0);
    for output in &pass.outputs {
        let (index, part) = match output {
            Output::Token { index, .. } => (*index, Part::OutputTokens),
            Output::Distribution { index, .. } => (*index, Part::OutputDistributions),
            Output::Embedding { index, .. } => (*index, Part::OutputEmbeddings),
        };
        if index as usize >= n {
            return Err(Problem::OutputIndex { index, inputs: n }.at(part));
        }
        match output {
            Output::Token { sampler: s, .. } => {
                sampler(s).map_err(|p| p.at(part))?;
                samplers += 1;
            }
            Output::Distribution { temperature, top_k, .. } => {
                distribution(*temperature, *top_k, limits.max_top_k).map_err(|p| p.at(part))?;
                distributions += 1;
            }
            Output::Embedding { slot, .. } => {
                if *slot >= limits.embedding_slots {
                    return Err(Problem::NoSuchSlot(*slot).at(part));
                }
                continue;
            }
        }
        logit_rows.push(index);
    }
    // Rows asked for more than once are computed once (sorting keeps a huge list cheap).
    logit_rows.sort_unstable();
    logit_rows.dedup();
    Ok(PassCost { tokens: n, logit_rows: logit_rows.len(), samplers, distributions, page_table: pass.kv_pages.len(), mask_words })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PassLimits {
        PassLimits {
            page_size: 4,
            kv_pages: 8,
            embedding_slots: 2,
            vocab: 10,
            max_top_k: 5,
            batch_tokens: 8,
            batch_outputs: 3,
            page_table_entries: 6,
            mask_words: 2,
        }
    }

    fn pass(tokens: usize) -> Pass {
        Pass {
            inputs: vec![Input::Token(1); tokens],
            positions: (0..tokens as u32).collect(),
            kv_pages: vec![0; (tokens as u32).div_ceil(4) as usize],
            last_page_len: (tokens as u32 - 1) % 4 + 1,
            ..Pass::default()
        }
    }

    fn greedy(index: u32) -> Output {
        Output::Token { index, sampler: Sampler::greedy() }
    }

    #[test]
    fn a_valid_pass_costs_what_it_uses() {
        let mut p = pass(3);
        p.outputs = vec![greedy(2), greedy(2), Output::Distribution { index: 1, temperature: 1.0, top_k: 5 }];
        let cost = check_pass(&p, &limits()).unwrap();
        assert_eq!(cost, PassCost { tokens: 3, logit_rows: 2, samplers: 2, distributions: 1, page_table: 1, mask_words: 0 });
    }

    #[test]
    fn a_repeated_output_index_counts_against_the_samplers() {
        let mut p = pass(1);
        p.outputs = vec![greedy(0); 4];
        let error = check_pass(&p, &limits()).unwrap_err();
        assert_eq!(error.part, Part::Whole);
        assert_eq!(error.problem.to_string(), "4 sampled outputs, more than the engine's 3 per pass");
    }

    #[test]
    fn a_repeated_page_counts_against_the_page_table() {
        let mut p = pass(1);
        p.kv_pages = vec![0; 7];
        let error = check_pass(&p, &limits()).unwrap_err();
        assert_eq!(error.problem.to_string(), "7 KV page references, more than the engine's 6 per pass");
    }

    #[test]
    fn mask_words_are_counted_only_for_rows_that_mask() {
        let mut p = pass(2);
        (p.kv_pages, p.last_page_len) = (vec![0; 6], 4); // rows of 23 and 24 slots
        p.positions = vec![22, 23];
        p.mask = vec![vec![23], vec![1, 1, 22]];
        assert_eq!(check_pass(&p, &limits()).unwrap().mask_words, 1);
        p.mask = vec![vec![1, 1, 21], vec![1, 1, 22]];
        assert_eq!(check_pass(&p, &limits()).unwrap().mask_words, 2);
    }

    #[test]
    fn each_argument_is_named_with_its_part() {
        let l = limits();
        let cases: Vec<(Pass, Part, &str)> = vec![
            (Pass { inputs: vec![Input::Token(10)], ..pass(1) }, Part::InputTokens, "token id 10 is not below the vocabulary size 10"),
            (Pass { inputs: vec![Input::Embedding(2)], ..pass(1) }, Part::InputEmbeddings, "embedding slot 2 does not exist"),
            (Pass { last_page_len: 5, ..pass(1) }, Part::KvCache, "last-kv-page-len is 5, must be 1..=4"),
            (Pass { kv_pages: vec![8], ..pass(1) }, Part::KvCache, "page 8 does not exist"),
            (Pass { mask: vec![vec![2]], ..pass(1) }, Part::AttentionMask, "row 0: the runs cover 2 slots, expected 1"),
            (
                Pass { mask: vec![vec![0, 0, 1]], ..pass(1) },
                Part::AttentionMask,
                "row 0: 3 runs for a context of 1; a row has at most one run more than its context",
            ),
            (Pass { outputs: vec![greedy(1)], ..pass(1) }, Part::OutputTokens, "output index 1 is past the pass's 1 inputs"),
            (
                Pass { outputs: vec![Output::Distribution { index: 0, temperature: 1.0, top_k: 6 }], ..pass(1) },
                Part::OutputDistributions,
                "top-k 6 must be 1..=5",
            ),
            (pass(9), Part::Whole, "9 inputs, more than the engine's 8 per pass (engine.batch_tokens)"),
        ];
        for (p, part, text) in cases {
            let error = check_pass(&p, &l).unwrap_err();
            assert_eq!(error.part, part, "{error}");
            assert!(error.problem.to_string().starts_with(text), "{error}");
        }
    }
}

//! A generation context: the tokens so far, their KV pages, and what is
//! filled but not yet run. Forks share full pages; dropping the last holder
//! of a page gives it back to the host.

use std::rc::Rc;

use crate::detokenize::IncrementalText;
use crate::executor::wait_for;
use crate::model::{Model, Queue};
use crate::{common, forward, sampling};

/// Most tokens one forward pass carries (the engine's batch holds 512 by default).
const MAX_PASS_TOKENS: usize = 256;
/// Candidates a seeded draw picks among: the engine's largest distribution.
const SEEDED_TOP_K: u32 = 256;
/// Candidates fetched for log-probabilities. A drawn token outside them
/// reports `UNLIKELY_LOGPROB`, as OpenAI's API does past its top 20.
const LOGPROB_TOP_K: u32 = 20;
pub const UNLIKELY_LOGPROB: f32 = -9999.0;
/// Resource type of KV pages in `common`'s resource calls.
const KV_PAGE: u32 = 0;

/// How to pick each next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    Greedy,
    /// Sample from softmax(logits / temperature), optionally cut to the top k,
    /// to the top p of probability mass, or to tokens above min p × the top one.
    Sample {
        temperature: f32,
        top_k: Option<u32>,
        top_p: Option<f32>,
        min_p: Option<f32>,
    },
}

/// When generation ends.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    pub max_tokens: usize,
    /// Token ids that end generation (e.g. the model's end-of-turn).
    pub tokens: Vec<u32>,
    /// Texts that end generation; the text is cut before them.
    pub strings: Vec<String>,
}

/// What a generation asks of each draw beyond its sampler.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Draw {
    /// Draw reproducibly: sample in the inferlet, with this seed, among the
    /// distribution's 256 most likely tokens (the host's samplers are seeded
    /// afresh for every draw). Greedy needs no seed.
    pub seed: Option<u64>,
    /// Report each token's log-probability under the model (temperature 1)
    /// and its `n` most likely alternatives (at most 20).
    pub logprobs: Option<u32>,
}

/// A generated token's log-probability and its most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    /// `(token, logprob)`, most likely first.
    pub top: Vec<(u32, f32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// A stop token or string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: Finish,
}

struct Page {
    queue: Queue,
    pointer: u32,
}

impl Drop for Page {
    fn drop(&mut self) {
        self.queue.free_pages(&[self.pointer]);
    }
}

pub struct Context {
    pub model: Model,
    queue: Queue,
    pages: Vec<Rc<Page>>,
    /// Tokens whose KV is in `pages`.
    tokens: Vec<u32>,
    /// Tokens filled but not yet run through the model.
    pending: Vec<u32>,
}

impl Context {
    pub fn new(model: &Model) -> Self {
        Self { model: model.clone(), queue: model.queue(), pages: vec![], tokens: vec![], pending: vec![] }
    }

    /// A context on the KV pages exported under `name`, which hold `tokens`
    /// (whole pages of them; the pages cannot say which tokens they hold, so
    /// the name must). `None` if nothing, or not that much, is exported there.
    pub fn import(model: &Model, name: &str, tokens: &[u32]) -> Option<Context> {
        let mut context = Context::new(model);
        let pointers = common::import_resources(&context.queue.inner, KV_PAGE, name);
        let queue = context.queue.clone();
        context.pages = pointers.into_iter().map(|pointer| Rc::new(Page { queue: queue.clone(), pointer })).collect();
        if context.pages.is_empty() || context.pages.len() * model.page_size as usize != tokens.len() {
            return None;
        }
        context.tokens = tokens.to_vec();
        Some(context)
    }

    /// Exports the pages holding whole pages of run tokens under `name`, for
    /// any instance to [`import`](Self::import). The export outlives this
    /// instance until someone releases the name.
    pub fn export_full_pages(&self, name: &str) {
        let full = self.tokens.len() / self.model.page_size as usize;
        let pointers: Vec<u32> = self.pages[..full].iter().map(|p| p.pointer).collect();
        common::export_resources(&self.queue.inner, KV_PAGE, &pointers, name);
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Every token: run and pending.
    pub fn all_tokens(&self) -> Vec<u32> {
        [self.tokens.as_slice(), &self.pending].concat()
    }

    /// Tokens in the context: those run and those waiting for the next pass.
    pub fn len(&self) -> usize {
        self.tokens.len() + self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn fill(&mut self, text: &str) {
        let ids = self.model.tokenizer.tokenize(text);
        self.pending.extend(ids);
    }

    pub fn fill_tokens(&mut self, ids: &[u32]) {
        self.pending.extend_from_slice(ids);
    }

    /// One chat message through the model's template; `add_generation_prompt`
    /// opens the assistant's turn after it.
    pub fn fill_message(&mut self, role: &str, content: &str, add_generation_prompt: bool) -> Result<(), String> {
        let text = self.model.render_chat(&[(role, content)], add_generation_prompt, self.tokens.is_empty() && self.pending.is_empty())?;
        self.fill(&text);
        Ok(())
    }

    /// Builds a pass that appends `new` after the run tokens, growing the pages.
    fn pass(&mut self, new: &[u32]) -> forward::ForwardPass {
        let page_size = self.model.page_size as usize;
        let start = self.tokens.len();
        let total = start + new.len();
        let needed = total.div_ceil(page_size);
        if needed > self.pages.len() {
            let more = self.queue.allocate_pages((needed - self.pages.len()) as u32);
            self.pages.extend(more.into_iter().map(|pointer| Rc::new(Page { queue: self.queue.clone(), pointer })));
        }
        let pass = forward::create_forward_pass(&self.queue.inner);
        let positions: Vec<u32> = (start as u32..total as u32).collect();
        forward::input_tokens(&pass, new, &positions);
        let pointers: Vec<u32> = self.pages.iter().map(|p| p.pointer).collect();
        forward::kv_cache(&pass, &pointers, ((total - 1) % page_size + 1) as u32);
        self.tokens.extend_from_slice(new);
        pass
    }

    /// Runs every pending token but the last `keep` through the model.
    async fn run_pending(&mut self, keep: usize) {
        let n = self.pending.len().saturating_sub(keep);
        let run: Vec<u32> = self.pending.drain(..n).collect();
        for chunk in run.chunks(MAX_PASS_TOKENS) {
            let pass = self.pass(chunk);
            // Nothing to read back; later passes see this one's KV regardless.
            let _ = pass.execute();
        }
    }

    /// Runs every pending token through the model (their KV is then shared by forks).
    pub async fn flush(&mut self) {
        self.run_pending(0).await;
    }

    /// Runs the pending tokens and returns the next token; it is not filled.
    pub async fn decode_step(&mut self, sampler: Sampler) -> Result<u32, String> {
        self.draw_step(sampler, Draw::default(), 0).await.map(|(token, _)| token)
    }

    /// One draw as `draw` asks: the next token (not filled) and, if asked
    /// for, its log-probabilities. `step` numbers the draws of a seeded stream.
    async fn draw_step(&mut self, sampler: Sampler, draw: Draw, step: u64) -> Result<(u32, Option<TokenLogprob>), String> {
        let last = self.pending_tail(MAX_PASS_TOKENS).await?;
        let pass = self.pass(&last);
        let index = last.len() as u32 - 1;
        let seeded = match sampler {
            Sampler::Sample { temperature, top_k, top_p, min_p } => draw.seed.map(|seed| (temperature, top_k, top_p, min_p, seed)),
            Sampler::Greedy => None,
        };
        match seeded {
            Some((temperature, ..)) => forward::output_distributions(&pass, &[index], temperature, Some(SEEDED_TOP_K)),
            None => want_token(&pass, index, sampler),
        }
        if draw.logprobs.is_some() {
            forward::output_distributions(&pass, &[index], 1.0, Some(LOGPROB_TOP_K));
        }
        let result = pass.execute().ok_or("the pass asked for a token but returned no result")?;
        wait_for(result.pollable()).await;
        let mut distributions = result.get_distributions().unwrap_or_default().into_iter();
        let token = match seeded {
            Some((_, top_k, top_p, min_p, seed)) => {
                let (ids, probs) = distributions.next().ok_or("the pass returned no distribution")?;
                sampling::pick(&ids, &probs, top_k, top_p, min_p, sampling::uniform(seed, step)).ok_or("the distribution was empty")?
            }
            None => result.get_tokens().and_then(|t| t.first().copied()).ok_or("the pass returned no token")?,
        };
        let logprobs = match draw.logprobs {
            Some(n) => {
                let (ids, probs) = distributions.next().ok_or("the pass returned no distribution")?;
                // A probability that underflowed to 0 is as unlikely as one outside the top.
                let ln = |p: f32| p.ln().max(UNLIKELY_LOGPROB);
                let logprob = ids.iter().position(|&id| id == token).map_or(UNLIKELY_LOGPROB, |i| ln(probs[i]));
                let top = ids.iter().zip(&probs).take(n as usize).map(|(&id, &p)| (id, ln(p))).collect();
                Some(TokenLogprob { token, logprob, top })
            }
            None => None,
        };
        Ok((token, logprobs))
    }

    /// Runs the pending tokens and returns the next token's distribution:
    /// the `top_k` most likely ids and their probabilities, highest first.
    pub async fn next_distribution(&mut self, top_k: u32) -> Result<(Vec<u32>, Vec<f32>), String> {
        let last = self.pending_tail(MAX_PASS_TOKENS).await?;
        let pass = self.pass(&last);
        forward::output_distributions(&pass, &[last.len() as u32 - 1], 1.0, Some(top_k));
        let result = pass.execute().ok_or("the pass asked for a distribution but returned no result")?;
        wait_for(result.pollable()).await;
        result.get_distributions().and_then(|mut d| d.pop()).ok_or_else(|| "the pass returned no distribution".into())
    }

    /// Runs all but the last `most` pending tokens, and takes the rest.
    async fn pending_tail(&mut self, most: usize) -> Result<Vec<u32>, String> {
        if self.pending.is_empty() {
            // Everything is run: run the last token again for its logits (same KV).
            let last = self.tokens.pop().ok_or("nothing to decode from: fill the context first")?;
            self.pending.push(last);
        }
        self.run_pending(most).await;
        Ok(std::mem::take(&mut self.pending))
    }

    /// Generates until `stop`; `on_text` gets the text as it grows (whole
    /// characters only). The last token is left filled, so the context can go on.
    pub async fn generate(&mut self, sampler: Sampler, stop: &Stop, mut on_text: impl FnMut(&str)) -> Result<Generation, String> {
        self.generate_with(sampler, Draw::default(), stop, |text, _| on_text(text)).await
    }

    /// [`generate`](Self::generate) with seeded draws or log-probabilities:
    /// `on_piece` gets each piece of text with the log-probabilities of the
    /// tokens drawn since the last piece (a stop token's are not reported).
    pub async fn generate_with(
        &mut self,
        sampler: Sampler,
        draw: Draw,
        stop: &Stop,
        mut on_piece: impl FnMut(&str, Vec<TokenLogprob>),
    ) -> Result<Generation, String> {
        let mut generated = Vec::new();
        let mut unreported = Vec::new();
        let mut shown = 0;
        let mut decoded = IncrementalText::default();
        let tokenizer = self.model.tokenizer.clone();
        let detokenize = |tokens: &[u32]| tokenizer.detokenize(tokens);
        // A stop string found in new text may begin this far back in the old.
        let longest_stop = stop.strings.iter().map(String::len).max().unwrap_or(0);
        let finish = loop {
            if generated.len() >= stop.max_tokens {
                break Finish::Length;
            }
            let (token, logprob) = self.draw_step(sampler, draw, generated.len() as u64).await?;
            self.pending.push(token);
            if stop.tokens.contains(&token) {
                break Finish::Stop;
            }
            generated.push(token);
            unreported.extend(logprob);
            let searched = decoded.text().len().saturating_sub(longest_stop);
            let text = decoded.update(&generated, detokenize);
            let from = (0..=searched).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            if let Some(cut) = stop.strings.iter().filter_map(|s| text[from..].find(s.as_str()).map(|at| from + at)).min() {
                let mut text = text.to_string();
                text.truncate(cut);
                // The stop string's tokens are not reported: only those that end before it.
                let first = generated.len() - unreported.len();
                let before_stop = (first..generated.len()).take_while(|&i| detokenize(&generated[..=i]).len() <= cut).count();
                unreported.truncate(before_stop);
                if cut > shown || !unreported.is_empty() {
                    on_piece(&text[shown.min(cut)..], std::mem::take(&mut unreported));
                }
                return Ok(Generation { tokens: generated, text, finish: Finish::Stop });
            }
            // Hold back a partial character, and any text a stop string may still start with.
            let held = held_back(text, &stop.strings);
            if held > shown {
                on_piece(&text[shown..held], std::mem::take(&mut unreported));
                shown = held;
            }
        };
        let text = decoded.finish(&generated, detokenize);
        if text.len() > shown || !unreported.is_empty() {
            on_piece(text.get(shown..).unwrap_or_default(), unreported);
        }
        Ok(Generation { tokens: generated, text, finish })
    }

    /// A context with the same tokens that shares this one's full pages; the
    /// partial page's tokens are run again on the fork's own page.
    pub fn fork(&self) -> Context {
        let page_size = self.model.page_size as usize;
        let mut full = self.tokens.len() / page_size;
        // The fork needs a token to decode from; it must not rewrite a shared page.
        if self.pending.is_empty() && full > 0 && full * page_size == self.tokens.len() {
            full -= 1;
        }
        let shared = full * page_size;
        Context {
            model: self.model.clone(),
            queue: self.queue.clone(),
            pages: self.pages[..full].to_vec(),
            tokens: self.tokens[..shared].to_vec(),
            pending: [&self.tokens[shared..], self.pending.as_slice()].concat(),
        }
    }
}

/// Asks `pass` for a token at `index`, drawn by `sampler` on the GPU.
fn want_token(pass: &forward::ForwardPass, index: u32, sampler: Sampler) {
    let index = [index];
    match sampler {
        Sampler::Greedy => forward::output_tokens(pass, &index, 0.0),
        Sampler::Sample { temperature: t, top_k, top_p, min_p } => match (top_k, top_p, min_p) {
            (_, _, Some(min_p)) => forward::output_tokens_min_p(pass, &index, t, min_p),
            (Some(k), Some(p), None) => forward::output_tokens_top_k_top_p(pass, &index, t, k, p),
            (Some(k), None, None) => forward::output_tokens_top_k(pass, &index, t, k),
            (None, Some(p), None) => forward::output_tokens_top_p(pass, &index, t, p),
            (None, None, None) => forward::output_tokens(pass, &index, t),
        },
    }
}

/// How much of `text` is safe to show: up to the last whole character, and
/// before any suffix that could be the start of a stop string.
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut end = text.trim_end_matches('\u{fffd}').len();
    for stop in stops {
        for (i, _) in stop.char_indices().skip(1) {
            if text[..end].ends_with(&stop[..i]) {
                end = end.min(text.len() - i);
            }
        }
    }
    end
}

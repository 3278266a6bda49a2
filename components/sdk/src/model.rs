//! Models, their queues and tokenizers.

use std::rc::Rc;

use crate::{common, runtime, tokenize};

/// A model the host serves, with what a program needs to talk to it.
#[derive(Clone)]
pub struct Model {
    pub(crate) inner: Rc<common::Model>,
    pub name: String,
    pub page_size: u32,
    /// The model's chat template (Jinja), rendered one message at a time.
    pub prompt_template: String,
    /// Token ids that end a turn.
    pub stop_tokens: Vec<u32>,
    pub tokenizer: Tokenizer,
}

impl Model {
    /// The host's first model (the default one).
    pub fn first() -> Result<Model, String> {
        let name = runtime::get_all_models().into_iter().next().ok_or("the host serves no models")?;
        Self::by_name(&name)
    }

    pub fn by_name(name: &str) -> Result<Model, String> {
        let inner = runtime::get_model(name).ok_or_else(|| format!("no model named `{name}`"))?;
        let tokenizer = Tokenizer { inner: Rc::new(tokenize::get_tokenizer(&inner)) };
        let stop_tokens = inner.get_stop_tokens().iter().flat_map(|t| tokenizer.tokenize(t)).collect();
        Ok(Model {
            name: inner.get_name(),
            page_size: inner.get_kv_page_size(),
            prompt_template: inner.get_prompt_template(),
            stop_tokens,
            tokenizer,
            inner: Rc::new(inner),
        })
    }

    /// A new command queue: its passes run in order, batched with everyone else's.
    pub fn queue(&self) -> Queue {
        Queue { inner: Rc::new(self.inner.create_queue()) }
    }

    /// Renders chat messages with the model's template; `begin_of_sequence`:
    /// they open the sequence (a template that wants a BOS then writes it).
    pub fn render_chat(&self, messages: &[(&str, &str)], add_generation_prompt: bool, begin_of_sequence: bool) -> Result<String, String> {
        let messages: Vec<_> = messages.iter().map(|(role, content)| minijinja::context! { role, content }).collect();
        let env = minijinja::Environment::new();
        env.render_str(&self.prompt_template, minijinja::context! { messages, add_generation_prompt, begin_of_sequence })
            .map_err(|e| format!("rendering the chat template: {e}"))
    }
}

/// A command queue on a model.
#[derive(Clone)]
pub struct Queue {
    pub(crate) inner: Rc<common::Queue>,
}

impl Queue {
    pub fn set_priority(&self, priority: common::Priority) {
        self.inner.set_priority(priority);
    }

    /// Resolves once every pass submitted to this queue before it has run.
    pub async fn synchronize(&self) {
        let result = self.inner.synchronize();
        crate::executor::wait_for(result.pollable()).await;
    }

    pub fn allocate_pages(&self, n: u32) -> Vec<u32> {
        common::allocate_resources(&self.inner, 0, n)
    }

    pub fn free_pages(&self, pages: &[u32]) {
        common::deallocate_resources(&self.inner, 0, pages);
    }

    /// Every name KV pages are exported under on this model, with its page count.
    pub fn exported_pages(&self) -> Vec<(String, u32)> {
        common::get_all_exported_resources(&self.inner, 0)
    }

    /// Keeps the export `name` (this owner's) for `ttl_secs` past the owner's
    /// last instance, or renews it; the host caps the time and returns the
    /// seconds granted. Without it an export goes with its owner's last instance.
    pub fn keep_exported_pages(&self, name: &str, ttl_secs: u32) -> Result<u32, String> {
        crate::crust::host::exports::keep_export(&self.inner, 0, name, ttl_secs)
    }

    /// Drops the export `name` (its pages go back once no instance holds them);
    /// nothing happens if it is not exported.
    pub fn release_exported_pages(&self, name: &str) {
        common::release_exported_resources(&self.inner, 0, name);
    }
}

/// Text ↔ token ids for one model.
#[derive(Clone)]
pub struct Tokenizer {
    inner: Rc<tokenize::Tokenizer>,
}

impl Tokenizer {
    /// Special tokens written in the text become their ids; no BOS is added.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.inner.tokenize(text)
    }

    pub fn detokenize(&self, tokens: &[u32]) -> String {
        self.inner.detokenize(tokens)
    }

    /// Each token's bytes, by id: what `detokenize` joins (one token may hold
    /// part of a character).
    pub fn vocabulary(&self) -> Vec<Vec<u8>> {
        let (ids, bytes) = self.inner.get_vocabs();
        let mut vocabulary = vec![Vec::new(); ids.iter().max().map_or(0, |&id| id as usize + 1)];
        for (id, bytes) in ids.into_iter().zip(bytes) {
            vocabulary[id as usize] = bytes;
        }
        vocabulary
    }
}

//! Shared system prompts. The KV pages of a request's leading system
//! messages are exported under a name derived from their tokens, so the next
//! request with the same prompt imports them instead of running them again.
//!
//! The cache is bounded by a page budget: past it, the entries least
//! recently used (timestamps in kvs) are released. Any instance may release
//! any entry at any moment; importing a released name is just a miss. Two
//! requests that miss at once each export their own copy (names end in a
//! nonce, so they never clash); the spare one ages out.

use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

use crust_sdk::{Context, Model, io};
use sha2::{Digest, Sha256};

const EXPORTS: &str = "openai-chat/prefix/";
const LAST_USED: &str = "openai-chat/prefix-used/";

/// A context holding `prefix` (run or pending) and how many of its tokens
/// came from the cache. Only whole pages are cached.
pub async fn start(model: &Model, prefix: &[u32], budget_pages: usize) -> (Context, usize) {
    let page = model.page_size as usize;
    let whole = prefix.len() / page * page;
    if whole == 0 || whole / page > budget_pages {
        let mut context = Context::new(model);
        context.fill_tokens(prefix);
        return (context, 0);
    }
    let (cached, rest) = prefix.split_at(whole);
    let key = format!("{EXPORTS}{}/", digest(&model.name, cached));
    let queue = model.queue();
    for (name, _) in queue.exported_pages().into_iter().filter(|(name, _)| name.starts_with(&key)) {
        if let Some(mut context) = Context::import(model, &name, cached) {
            touch(&name);
            context.fill_tokens(rest);
            return (context, whole);
        }
    }
    let mut context = Context::new(model);
    context.fill_tokens(cached);
    context.flush().await;
    // Importers' passes must find the KV written, not merely submitted.
    context.queue().synchronize().await;
    let name = format!("{key}{:016x}", std::collections::hash_map::RandomState::new().hash_one(whole));
    context.export_full_pages(&name);
    touch(&name);
    evict(model, budget_pages);
    context.fill_tokens(rest);
    (context, 0)
}

/// Names the tokens (and the model they were run on): SHA-256, so nobody can
/// craft a prompt whose name another prompt's pages answer to.
fn digest(model: &str, tokens: &[u32]) -> String {
    let mut hash = Sha256::new();
    hash.update(model.as_bytes());
    hash.update([0]);
    tokens.iter().for_each(|t| hash.update(t.to_le_bytes()));
    hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

fn touch(name: &str) {
    io::set(&format!("{LAST_USED}{name}"), &now_ms().to_string());
}

/// Releases the least recently used entries until the cache fits `budget_pages`.
fn evict(model: &Model, budget_pages: usize) {
    let queue = model.queue();
    let mut entries: Vec<(String, u32)> = queue.exported_pages().into_iter().filter(|(name, _)| name.starts_with(EXPORTS)).collect();
    let mut total: usize = entries.iter().map(|(_, pages)| *pages as usize).sum();
    if total <= budget_pages {
        return;
    }
    let last_used = |name: &str| io::get(&format!("{LAST_USED}{name}")).and_then(|t| t.parse::<u128>().ok()).unwrap_or(0);
    entries.sort_by_cached_key(|(name, _)| last_used(name));
    for (name, pages) in entries {
        if total <= budget_pages {
            break;
        }
        queue.release_exported_pages(&name);
        io::delete(&format!("{LAST_USED}{name}"));
        total -= pages as usize;
    }
}

//! Shared system prompts. The KV pages of a request's leading system
//! messages are exported under a name derived from their tokens, so the next
//! request with the same prompt imports them instead of running them again.
//!
//! The host scopes export names by API user, so a user's requests share
//! prompts with each other and with no other program. An export would go
//! with the request that made it (its owner's last instance, when no other
//! request of the user runs), so each entry is kept for [`KEEP_SECS`] from
//! its last use; the host may release it sooner when its pool runs short.
//! Each user's cache is
//! bounded by a page budget: past it, the entries least recently used
//! (timestamps in kvs, under the user's name) are released. Any instance may release
//! any entry at any moment; importing a released name is just a miss. Two
//! requests that miss at once each export their own copy (names end in a
//! nonce, so they never clash); the spare one ages out.

use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

use crust_sdk::{Context, Model, io};
use sha2::{Digest, Sha256};

const EXPORTS: &str = "openai-chat/prefix/";
/// How long an entry outlives its last use (the host caps it: `limits.export_ttl_secs`).
const KEEP_SECS: u32 = 3600;

/// Where the user's entries' last-use timestamps live in kvs: this program's
/// own space, which the host keeps apart for each API user.
struct Timestamps(String);

impl Timestamps {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.0)
    }

    fn touch(&self, name: &str) {
        io::set(&self.key(name), &now_ms().to_string());
    }

    fn last_used(&self, name: &str) -> u128 {
        io::get(&self.key(name)).and_then(|t| t.parse().ok()).unwrap_or(0)
    }
}

/// A context holding `prefix` (run or pending) and how many of its tokens
/// came from the cache. Only whole pages are cached.
pub async fn start(model: &Model, prefix: &[u32], budget_pages: usize, user: &str) -> (Context, usize) {
    let timestamps = Timestamps(format!("openai-chat/prefix-used/{user}/"));
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
            // Released meanwhile, the entry is simply not renewed.
            let _ = queue.keep_exported_pages(&name, KEEP_SECS);
            timestamps.touch(&name);
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
    // Room first: the host charges every export to this user's export budget.
    evict(model, budget_pages - whole / page, &timestamps);
    context.export_full_pages(&name);
    // Released meanwhile (another request evicted it), there is nothing to keep.
    let _ = context.queue().keep_exported_pages(&name, KEEP_SECS);
    timestamps.touch(&name);
    context.fill_tokens(rest);
    (context, 0)
}

/// Names the tokens (and the model they were run on): SHA-256, so no prompt
/// can be crafted whose name another prompt's pages answer to. (Only this
/// user's endpoint instances see these names: the host scopes them.)
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

/// Releases the least recently used entries until the cache fits
/// `budget_pages`, and forgets the timestamps of entries that are gone
/// (exports do not outlive the server; kvs does).
fn evict(model: &Model, budget_pages: usize, timestamps: &Timestamps) {
    let queue = model.queue();
    // Keys first: an entry exported after this listing keeps its fresh timestamp.
    let keys = io::keys();
    let mut entries: Vec<(String, u32)> = queue.exported_pages().into_iter().filter(|(name, _)| name.starts_with(EXPORTS)).collect();
    for key in keys.into_iter().filter(|key| key.starts_with(&timestamps.0)) {
        if !entries.iter().any(|(name, _)| key[timestamps.0.len()..] == *name) {
            io::delete(&key);
        }
    }
    let mut total: usize = entries.iter().map(|(_, pages)| *pages as usize).sum();
    if total <= budget_pages {
        return;
    }
    entries.sort_by_cached_key(|(name, _)| timestamps.last_used(name));
    for (name, pages) in entries {
        if total <= budget_pages {
            break;
        }
        queue.release_exported_pages(&name);
        io::delete(&timestamps.key(&name));
        total -= pages as usize;
    }
}

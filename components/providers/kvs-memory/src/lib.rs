//! An in-memory kvs provider: the host runs one instance for all inferlets,
//! so they share its map; nothing survives the host. Swapped in for the
//! default one by one config line (`[providers] kvs = ".../kvs_memory_provider.wasm"`).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "crust:inferlet/kvs-provider",
    generate_all,
});

use exports::crust::host::kvs_store::{Guest, Quota, Space};

/// Entries by (user, space name, key); what each user holds: (bytes, keys).
#[derive(Default)]
struct Store {
    entries: BTreeMap<(String, String, String), String>,
    usage: HashMap<String, (u64, u64)>,
}

thread_local! {
    static STORE: RefCell<Store> = RefCell::default();
}

fn id(space: &Space, key: &str) -> (String, String, String) {
    (space.user.clone(), space.name.clone(), key.to_string())
}

fn size(key: &str, value: &str) -> u64 {
    (key.len() + value.len()) as u64
}

struct Provider;

impl Guest for Provider {
    fn get(space: Space, key: String) -> Option<String> {
        STORE.with(|s| s.borrow().entries.get(&id(&space, &key)).cloned())
    }

    fn set(space: Space, key: String, value: String, quota: Quota) -> Result<(), String> {
        STORE.with(|s| {
            let mut s = s.borrow_mut();
            let old = s.entries.get(&id(&space, &key)).map(|v| size(&key, v));
            let (bytes, keys) = s.usage.get(&space.user).copied().unwrap_or_default();
            let new_bytes = bytes - old.unwrap_or(0) + size(&key, &value);
            let new_keys = keys + u64::from(old.is_none());
            if new_bytes > quota.max_bytes && new_bytes > bytes {
                return Err(format!("the store would hold {new_bytes} bytes for this user, over its quota of {} bytes", quota.max_bytes));
            }
            if new_keys > quota.max_keys && new_keys > keys {
                return Err(format!("the store would hold {new_keys} keys for this user, over its quota of {} keys", quota.max_keys));
            }
            s.usage.insert(space.user.clone(), (new_bytes, new_keys));
            s.entries.insert(id(&space, &key), value);
            Ok(())
        })
    }

    fn delete(space: Space, key: String) {
        STORE.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(value) = s.entries.remove(&id(&space, &key)) {
                let usage = s.usage.entry(space.user).or_default();
                *usage = (usage.0.saturating_sub(size(&key, &value)), usage.1.saturating_sub(1));
            }
        })
    }

    fn exists(space: Space, key: String) -> bool {
        STORE.with(|s| s.borrow().entries.contains_key(&id(&space, &key)))
    }

    fn list_keys(space: Space) -> Vec<String> {
        STORE.with(|s| {
            s.borrow()
                .entries
                .range(id(&space, "")..)
                .take_while(|((u, n, _), _)| *u == space.user && *n == space.name)
                .map(|((_, _, k), _)| k.clone())
                .collect()
        })
    }
}

export!(Provider);

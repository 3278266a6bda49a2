//! An in-memory kvs provider: the host runs one instance for all inferlets,
//! so they share its map; nothing survives the host. Swapped in for the
//! default one by one config line (`[providers] kvs = ".../kvs_memory_provider.wasm"`).

use std::cell::RefCell;
use std::collections::BTreeMap;

wit_bindgen::generate!({
    path: "../../../wit",
    world: "crust:inferlet/kvs-provider",
    generate_all,
});

use exports::inferlet::core::kvs::Guest;

thread_local! {
    static MAP: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
}

struct Provider;

impl Guest for Provider {
    fn store_get(key: String) -> Option<String> {
        MAP.with(|m| m.borrow().get(&key).cloned())
    }

    fn store_set(key: String, value: String) {
        MAP.with(|m| m.borrow_mut().insert(key, value));
    }

    fn store_delete(key: String) {
        MAP.with(|m| m.borrow_mut().remove(&key));
    }

    fn store_exists(key: String) -> bool {
        MAP.with(|m| m.borrow().contains_key(&key))
    }

    fn store_list_keys() -> Vec<String> {
        MAP.with(|m| m.borrow().keys().cloned().collect())
    }
}

export!(Provider);

//! A kvs provider that traps on every call, for tests: the calling instance
//! must end with a clear error and every other instance go on.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "crust:inferlet/kvs-provider",
    generate_all,
});

use exports::crust::host::kvs_store::{Guest, Quota, Space};

struct Provider;

fn fail() -> ! {
    panic!("kvs-faulty: this provider always fails")
}

impl Guest for Provider {
    fn get(_: Space, _: String) -> Option<String> {
        fail()
    }

    fn set(_: Space, _: String, _: String, _: Quota) -> Result<(), String> {
        fail()
    }

    fn delete(_: Space, _: String) {
        fail()
    }

    fn exists(_: Space, _: String) -> bool {
        fail()
    }

    fn list_keys(_: Space) -> Vec<String> {
        fail()
    }
}

export!(Provider);

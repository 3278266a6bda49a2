//! A kvs provider that traps on every call, for tests: the calling instance
//! must end with a clear error and every other instance go on.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "crust:inferlet/kvs-provider",
    generate_all,
});

use exports::inferlet::core::kvs::Guest;

struct Provider;

fn fail() -> ! {
    panic!("kvs-faulty: this provider always fails")
}

impl Guest for Provider {
    fn store_get(_: String) -> Option<String> {
        fail()
    }

    fn store_set(_: String, _: String) {
        fail()
    }

    fn store_delete(_: String) {
        fail()
    }

    fn store_exists(_: String) -> bool {
        fail()
    }

    fn store_list_keys() -> Vec<String> {
        fail()
    }
}

export!(Provider);

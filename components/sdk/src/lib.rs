//! Crust's SDK for inferlets written in Rust.
//!
//! The raw `inferlet:core` bindings, generated from the repository's `wit/`,
//! plus [`entry!`], which exports `inferlet:core/run` from a plain function:
//!
//! ```ignore
//! fn run() -> Result<(), String> {
//!     println!("instance {}", crust_sdk::runtime::get_instance_id());
//!     Ok(())
//! }
//! crust_sdk::entry!(run);
//! ```
//!
//! A WASI command (`fn main`) needs no macro; it may still call the bindings.

wit_bindgen::generate!({
    path: "../../wit",
    world: "crust:inferlet/inferlet",
    pub_export_macro: true,
    default_bindings_module: "crust_sdk",
    generate_all,
});

pub use inferlet::core::{common, forward, kvs, message, runtime, tokenize};

/// Exports `inferlet:core/run` from `fn() -> Result<(), String>`.
#[macro_export]
macro_rules! entry {
    ($run:path) => {
        struct __CrustInferlet;
        impl $crate::exports::inferlet::core::run::Guest for __CrustInferlet {
            fn run() -> ::core::result::Result<(), ::std::string::String> {
                $run()
            }
        }
        $crate::export!(__CrustInferlet with_types_in $crate);
    };
}

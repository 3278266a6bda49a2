//! Crust's SDK for inferlets written in Rust.
//!
//! The raw `inferlet:core` bindings, generated from the repository's `wit/`,
//! an entry macro with an async executor, and what short programs need:
//! [`Model`], [`Queue`], [`Tokenizer`] and a [`Context`] that keeps tokens
//! and KV pages, generates and forks.
//!
//! ```ignore
//! use crust_sdk::{Context, Model, Sampler, Stop};
//!
//! async fn run() -> Result<(), String> {
//!     let model = Model::first()?;
//!     let mut ctx = Context::new(&model);
//!     ctx.fill_message("user", "What is the capital of France?", true)?;
//!     let stop = Stop { max_tokens: 32, tokens: model.stop_tokens.clone(), ..Stop::default() };
//!     let answer = ctx.generate(Sampler::Greedy, &stop, |text| print!("{text}")).await?;
//!     crust_sdk::runtime::set_return(&answer.text);
//!     Ok(())
//! }
//! crust_sdk::entry!(async run);
//! ```
//!
//! A WASI command (`fn main`) needs no macro; it may call
//! [`block_on`] itself.

wit_bindgen::generate!({
    path: "../../wit",
    world: "crust:inferlet/inferlet",
    pub_export_macro: true,
    default_bindings_module: "crust_sdk",
    generate_all,
});

mod context;
mod detokenize;
mod executor;
pub mod flags;
pub mod io;
mod model;
pub mod sampling;

pub use context::{Context, Draw, Finish, Generation, Sampler, Stop, TokenLogprob, UNLIKELY_LOGPROB};
pub use executor::{block_on, join_all, wait_for};
pub use flags::Flags;
/// Crust's additions to `inferlet:core` (`wit/deps/host`).
pub mod host {
    pub use crate::crust::host::exports;
}
pub use inferlet::core::{common, forward, kvs, message, runtime, tokenize};
pub use model::{Model, Queue, Tokenizer};

/// Exports `inferlet:core/run` from `fn() -> Result<(), String>`, or with
/// `async`, from `async fn() -> Result<(), String>` run on [`block_on`].
#[macro_export]
macro_rules! entry {
    (async $run:path) => {
        fn __crust_run_sync() -> ::core::result::Result<(), ::std::string::String> {
            $crate::block_on($run())
        }
        $crate::entry!(__crust_run_sync);
    };
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

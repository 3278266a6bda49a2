//! The progress bar every command that loads a model shows on stderr (when
//! stderr is a terminal) while the weights reach the GPU.

use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::models::LoadObserver;

pub(crate) fn model_loading_bar() -> LoadObserver {
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    Arc::new(move |model: &str, done: u64, total: u64| {
        let mut bar = bar.lock().unwrap();
        let shown = bar.get_or_insert_with(|| {
            let new = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            new.set_style(
                ProgressStyle::with_template("loading {msg} {bar:30} {bytes}/{total_bytes}").unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            new.set_message(model.to_string());
            new
        });
        shown.set_position(done);
        if done >= total {
            shown.finish_and_clear();
            *bar = None;
        }
    })
}

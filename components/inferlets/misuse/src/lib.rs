//! One misuse of `common`/`forward` per run, named by the first argument.
//! `hold N` instead allocates N pages and spins until the host kills it.

use crust_sdk::{common, forward, runtime};

fn run() -> Result<(), String> {
    let args = runtime::get_arguments();
    let model = runtime::get_model(&runtime::get_all_models()[0]).ok_or("no model")?;
    let queue = model.create_queue();
    let pass = forward::create_forward_pass(&queue);
    let pages = common::allocate_resources(&queue, 0, 2);
    match args.first().map(String::as_str).unwrap_or_default() {
        "unknown-pointer" => {
            forward::input_tokens(&pass, &[1], &[0]);
            forward::kv_cache(&pass, &[pages[0], 4242], 1);
            pass.execute();
        }
        "token-id" => forward::input_tokens(&pass, &[1, 999_999], &[0, 1]),
        "lengths" => forward::input_tokens(&pass, &[1, 2], &[0]),
        "mask" => {
            forward::input_tokens(&pass, &[1, 2], &[0, 1]);
            forward::kv_cache(&pass, &pages[..1], 2);
            forward::attention_mask(&pass, &[vec![1], vec![5]]);
            pass.execute();
        }
        "quota" => drop(common::allocate_resources(&queue, 0, 100_000)),
        "resource-type" => drop(common::allocate_resources(&queue, 7, 1)),
        "export-twice" => {
            common::export_resources(&queue, 0, &pages, "misuse-twice");
            common::export_resources(&queue, 0, &pages, "misuse-twice");
        }
        "hold" => {
            let n: u32 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(8);
            common::allocate_resources(&queue, 0, n);
            println!("holding");
            loop {
                std::hint::spin_loop();
            }
        }
        other => return Err(format!("unknown misuse `{other}`")),
    }
    Ok(())
}

crust_sdk::entry!(run);

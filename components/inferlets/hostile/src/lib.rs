//! One attack on the engine per run, named by the first argument; the
//! isolation tests run each next to a well-behaved neighbour.
//!
//! - `repeated-outputs N`: one output index asked for N times.
//! - `repeated-pages N`: one page pointer listed N times in `kv-cache`.
//! - `fill N`: fills N tokens into fresh pages, then ends (leaving them to the pool).
//! - `stale-probe`: one token into the last slot of a fresh page, attending to its
//!   15 never-written slots; prints the next-token distribution.
//! - `freed-under-pass`: queues a long pass, frees its pages at once, then ends.
//! - `long-prefill N`: N tokens in one pass (more than a batch holds); prints the
//!   distribution after them.
//! - `split-prefill N`: the same N tokens in passes of 50; prints the same distribution.
//! - `flood N`: queues N passes without waiting for any, at high priority.
//! - `export-duplicates`: exports one page under a name twice in the same list.
//! - `export-all N`: allocates N pages, exports them, and ends without releasing them.
//! - `export-twice N`: exports N pages, frees them, allocates and exports N more.
//! - `keep NAME`: exports 2 pages as NAME and keeps the export (for an hour, asked).
//! - `keep-only NAME`: keeps an existing export it did not make; prints the answer.
//! - `release NAME`: releases the export NAME.
//! - `blob-hog`: keeps making 1 MiB blobs.
//! - `builder-hog`: keeps adding tokens to a pass it never executes.
//! - `output-flood`: writes to stdout without end, for a client that never reads.
//! - `subscribe-hog N`: subscribes to N topics and keeps every subscription.

use crust_sdk::{common, forward, runtime, wait_for};

const KV_PAGE: u32 = 0;

fn tokens(n: u32) -> Vec<u32> {
    (0..n).map(|i| 100 + (i * 37) % 5000).collect()
}

fn print_distribution(result: &forward::ForwardPassResult) {
    crust_sdk::block_on(wait_for(result.pollable()));
    let (ids, probs) = result.get_distributions().and_then(|mut d| d.pop()).expect("a distribution");
    let shown: Vec<String> = ids.iter().zip(&probs).map(|(id, p)| format!("{id}:{p:.6}")).collect();
    println!("distribution {}", shown.join(" "));
}

/// A pass over `input` at positions `start..` into `pages`, whose context then ends with it.
fn pass_over(queue: &common::Queue, pages: &[u32], input: &[u32], start: u32, page_size: u32) -> forward::ForwardPass {
    let pass = forward::create_forward_pass(queue);
    let end = start + input.len() as u32;
    forward::input_tokens(&pass, input, &(start..end).collect::<Vec<_>>());
    let used = end.div_ceil(page_size) as usize;
    forward::kv_cache(&pass, &pages[..used], (end - 1) % page_size + 1);
    pass
}

fn run() -> Result<(), String> {
    let args = runtime::get_arguments();
    let model = runtime::get_model(&runtime::get_all_models()[0]).ok_or("no model")?;
    let queue = model.create_queue();
    let page_size = model.get_kv_page_size();
    let n: u32 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(200);
    match args.first().map(String::as_str).unwrap_or_default() {
        "repeated-outputs" => {
            let pages = common::allocate_resources(&queue, KV_PAGE, 1);
            let pass = pass_over(&queue, &pages, &[1], 0, page_size);
            forward::output_tokens(&pass, &vec![0; n as usize], 0.0);
            let result = pass.execute().ok_or("no result")?;
            crust_sdk::block_on(wait_for(result.pollable()));
            println!("tokens {:?}", result.get_tokens().map(|t| t.len()));
        }
        "repeated-pages" => {
            let pages = common::allocate_resources(&queue, KV_PAGE, 1);
            let pass = forward::create_forward_pass(&queue);
            forward::input_tokens(&pass, &[1], &[0]);
            forward::kv_cache(&pass, &vec![pages[0]; n as usize], 1);
            forward::output_tokens(&pass, &[0], 0.0);
            pass.execute();
        }
        "fill" => {
            let pages = common::allocate_resources(&queue, KV_PAGE, n.div_ceil(page_size));
            let pass = pass_over(&queue, &pages, &tokens(n), 0, page_size);
            forward::output_tokens(&pass, &[n - 1], 0.0);
            let result = pass.execute().ok_or("no result")?;
            crust_sdk::block_on(wait_for(result.pollable()));
            println!("filled {n}");
        }
        "stale-probe" => {
            let pages = common::allocate_resources(&queue, KV_PAGE, 1);
            let pass = forward::create_forward_pass(&queue);
            forward::input_tokens(&pass, &[42], &[page_size - 1]);
            forward::kv_cache(&pass, &pages, page_size);
            forward::output_distributions(&pass, &[0], 1.0, Some(8));
            print_distribution(&pass.execute().ok_or("no result")?);
        }
        "freed-under-pass" => {
            let pages = common::allocate_resources(&queue, KV_PAGE, n.div_ceil(page_size));
            let pass = pass_over(&queue, &pages, &tokens(n), 0, page_size);
            pass.execute();
            common::deallocate_resources(&queue, KV_PAGE, &pages);
            println!("freed");
        }
        "long-prefill" => {
            let pages = common::allocate_resources(&queue, KV_PAGE, n.div_ceil(page_size));
            let pass = pass_over(&queue, &pages, &tokens(n), 0, page_size);
            forward::output_distributions(&pass, &[n - 1], 1.0, Some(8));
            print_distribution(&pass.execute().ok_or("no result")?);
        }
        "split-prefill" => {
            let pages = common::allocate_resources(&queue, KV_PAGE, n.div_ceil(page_size));
            let all = tokens(n);
            let pieces: Vec<&[u32]> = all.chunks(50).collect();
            let mut start = 0;
            for (i, piece) in pieces.iter().enumerate() {
                let pass = pass_over(&queue, &pages, piece, start, page_size);
                start += piece.len() as u32;
                if i + 1 == pieces.len() {
                    forward::output_distributions(&pass, &[piece.len() as u32 - 1], 1.0, Some(8));
                    print_distribution(&pass.execute().ok_or("no result")?);
                } else {
                    pass.execute();
                }
            }
        }
        "flood" => {
            queue.set_priority(common::Priority::High);
            let pages = common::allocate_resources(&queue, KV_PAGE, 1);
            for _ in 0..n {
                pass_over(&queue, &pages, &[1], 0, page_size).execute();
            }
            println!("flooded {n}");
        }
        "export-duplicates" => {
            let pages = common::allocate_resources(&queue, KV_PAGE, 1);
            common::export_resources(&queue, KV_PAGE, &[pages[0], pages[0]], "hostile-duplicates");
        }
        "export-all" => {
            let pages = common::allocate_resources(&queue, KV_PAGE, n);
            common::export_resources(&queue, KV_PAGE, &pages, "hostile-all");
            println!("exported {n}");
        }
        "export-twice" => {
            let pages = common::allocate_resources(&queue, KV_PAGE, n);
            common::export_resources(&queue, KV_PAGE, &pages, "hostile-first");
            common::deallocate_resources(&queue, KV_PAGE, &pages);
            let more = common::allocate_resources(&queue, KV_PAGE, n);
            common::export_resources(&queue, KV_PAGE, &more, "hostile-second");
        }
        "keep" => {
            let name = args.get(1).ok_or("keep NAME")?;
            let pages = common::allocate_resources(&queue, KV_PAGE, 2);
            common::export_resources(&queue, KV_PAGE, &pages, name);
            println!("kept {:?}", crust_sdk::host::exports::keep_export(&queue, KV_PAGE, name, 3600));
        }
        "keep-only" => {
            let name = args.get(1).ok_or("keep-only NAME")?;
            println!("kept {:?}", crust_sdk::host::exports::keep_export(&queue, KV_PAGE, name, 3600));
        }
        "release" => {
            common::release_exported_resources(&queue, KV_PAGE, args.get(1).ok_or("release NAME")?);
        }
        "blob-hog" => {
            let mut kept = Vec::new();
            loop {
                kept.push(common::Blob::new(&vec![7; 1 << 20]));
            }
        }
        "builder-hog" => {
            let pass = forward::create_forward_pass(&queue);
            let tokens = vec![1; 1 << 16];
            let positions: Vec<u32> = (0..1 << 16).collect();
            loop {
                forward::input_tokens(&pass, &tokens, &positions);
            }
        }
        "subscribe-hog" => {
            let kept: Vec<_> = (0..n).map(|i| crust_sdk::io::subscribe(&format!("hog-{i}"))).collect();
            println!("subscribed {}", kept.len());
        }
        "output-flood" => {
            let line = "x".repeat(1 << 16);
            loop {
                println!("{line}");
            }
        }
        other => return Err(format!("unknown attack `{other}`")),
    }
    Ok(())
}

crust_sdk::entry!(run);

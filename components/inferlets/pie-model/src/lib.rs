//! Written against Pie's published SDK (`inferlet` 0.2.0), unmodified: what
//! Pie's inferlets do with a model, one mode per run (first argument).
//!
//! - `chat PROMPT N`: system + user messages, greedy `generate` of N tokens.
//! - `fork PREFIX N`: flush PREFIX, fork three times, add a different suffix
//!   to each, generate on all at once; then the same three without forking.
//! - `export NAME PREFIX`: fill PREFIX, flush, export its pages as NAME.
//! - `import NAME PREFIX SUFFIX N`: import NAME (PREFIX's pages), append
//!   SUFFIX and decode N greedy tokens with raw passes; then the same from scratch.
//! - `release NAME`: release the export NAME.
//! - `beam PROMPT N`: width-3 beam search and greedy, N tokens each, printing ids.

use futures::future::join_all;
use inferlet::stop_condition::{StopCondition, ends_with_any, max_len};
use inferlet::{Context, Model, Resource, Sampler};

const SUFFIXES: [&str; 3] = [" one", " two", " three"];

struct PieModel;

fn number(s: &str) -> Result<usize, String> {
    s.parse().map_err(|_| format!("`{s}` is not a number"))
}

fn ids(tokens: &[u32]) -> String {
    tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

async fn greedy(ctx: &mut Context, n: usize) -> String {
    ctx.generate(Sampler::greedy(), max_len(n)).await
}

async fn run(args: Vec<String>) -> Result<(), String> {
    let model: Model = inferlet::get_auto_model();
    let arg = |i: usize| args.get(i).cloned().ok_or_else(|| format!("missing argument {i}; see the module docs"));
    match arg(0)?.as_str() {
        "chat" => {
            let mut ctx = model.create_context();
            ctx.fill_system("You are a helpful assistant.");
            ctx.fill_user(&arg(1)?);
            let stop = max_len(number(&arg(2)?)?).or(ends_with_any(model.eos_tokens()));
            println!("{}", ctx.generate(Sampler::greedy(), stop).await);
        }
        "fork" => {
            let n = number(&arg(2)?)?;
            let mut prefix = model.create_context();
            prefix.fill(&arg(1)?);
            prefix.flush().await;
            let mut forks: Vec<Context> = SUFFIXES
                .iter()
                .map(|s| {
                    let mut fork = prefix.fork();
                    fork.fill(s);
                    fork
                })
                .collect();
            let texts = join_all(forks.iter_mut().map(|f| greedy(f, n))).await;
            for (i, text) in texts.iter().enumerate() {
                println!("fork {i}: {text:?}");
            }
            for (i, suffix) in SUFFIXES.iter().enumerate() {
                let mut alone = model.create_context();
                alone.fill(&arg(1)?);
                alone.fill(suffix);
                println!("alone {i}: {:?}", greedy(&mut alone, n).await);
            }
        }
        "export" => {
            let mut ctx = model.create_context();
            ctx.fill(&arg(2)?);
            ctx.flush().await;
            ctx.queue().synchronize().await;
            ctx.queue().export_resource(Resource::KvPage, &ctx.get_kv_page_ptrs(), &arg(1)?);
            println!(
                "exported {} tokens, {} pages, last page {}",
                ctx.get_token_ids().len(),
                ctx.get_kv_page_ptrs().len(),
                ctx.get_kv_page_last_len()
            );
        }
        "import" => {
            let (name, prefix, suffix, n) = (arg(1)?, arg(2)?, arg(3)?, number(&arg(4)?)?);
            let imported = decode_after_import(&model, &name, &prefix, &suffix, n).await?;
            println!("imported: {}", ids(&imported));
            let mut scratch = model.create_context();
            scratch.fill(&prefix);
            scratch.fill(&suffix);
            let text = greedy(&mut scratch, n).await;
            println!("scratch: {}", ids(&model.get_tokenizer().tokenize(&text)));
            println!("imported text: {:?}", model.get_tokenizer().detokenize(&imported));
            println!("scratch text: {text:?}");
        }
        "release" => {
            model.create_queue().release_exported_resources(Resource::KvPage, &arg(1)?);
            println!("released");
        }
        "beam" => {
            let n = number(&arg(2)?)?;
            let mut ctx = model.create_context();
            ctx.fill_user(&arg(1)?);
            let mut greedy_ctx = ctx.fork();
            let beam_text = ctx.generate_with_beam(&mut max_len(n), 3).await;
            let greedy_text = greedy(&mut greedy_ctx, n).await;
            let tokenizer = model.get_tokenizer();
            let mut formatter = inferlet::ChatFormatter::new();
            formatter.user(arg(1)?);
            let prompt = tokenizer.tokenize(&formatter.render(&model.get_prompt_template(), true));
            let beam = generated(&tokenizer, &ctx.get_token_ids()[prompt.len()..], n, &beam_text)?;
            let greedy = generated(&tokenizer, &greedy_ctx.get_token_ids()[prompt.len()..], n, &greedy_text)?;
            println!("prompt: {}", ids(&prompt));
            println!("beam: {}", ids(&beam));
            println!("greedy: {}", ids(&greedy));
        }
        other => return Err(format!("unknown mode `{other}`")),
    }
    Ok(())
}

/// The N generated ids: the context shows the first ones (the rest are
/// pending, which the SDK does not show); the rest are what the text adds.
fn generated(tokenizer: &inferlet::Tokenizer, shown: &[u32], n: usize, text: &str) -> Result<Vec<u32>, String> {
    let mut ids = shown.to_vec();
    let head = tokenizer.detokenize(&ids);
    let tail = text.strip_prefix(&head).ok_or_else(|| format!("the generated text {text:?} does not extend {head:?}"))?;
    ids.extend(tokenizer.tokenize(tail));
    if ids.len() != n || tokenizer.detokenize(&ids) != text {
        return Err(format!("cannot recover the {n} generated ids of {text:?}: got {ids:?}"));
    }
    Ok(ids)
}

/// Imported pages hold PREFIX; SUFFIX goes after it (into the shared partial
/// page: copy-on-write), then N greedy tokens, with raw `inferlet:core` calls.
async fn decode_after_import(model: &Model, name: &str, prefix: &str, suffix: &str, n: usize) -> Result<Vec<u32>, String> {
    use inferlet::api::{self, forward};
    let raw = api::runtime::get_model(&model.get_name()).ok_or("the model went away")?;
    let queue = raw.create_queue();
    let page_size = model.get_kv_page_size() as usize;
    let tokenizer = model.get_tokenizer();
    let mut pages = api::import_resources(&queue, Resource::KvPage as u32, name);
    let mut len = tokenizer.tokenize(prefix).len();
    if pages.len() != len.div_ceil(page_size) {
        return Err(format!("{name} has {} pages for a {len}-token prefix", pages.len()));
    }
    let mut input = tokenizer.tokenize(suffix);
    let mut out = Vec::new();
    for _ in 0..n {
        let total = len + input.len();
        while pages.len() < total.div_ceil(page_size) {
            pages.extend(api::allocate_resources(&queue, Resource::KvPage as u32, 1));
        }
        let pass = forward::create_forward_pass(&queue);
        let positions: Vec<u32> = (len as u32..total as u32).collect();
        forward::input_tokens(&pass, &input, &positions);
        forward::kv_cache(&pass, &pages, ((total - 1) % page_size + 1) as u32);
        forward::output_tokens(&pass, &[input.len() as u32 - 1], 0.0);
        let result = pass.execute().ok_or("no result")?;
        inferlet::wstd::io::AsyncPollable::new(result.pollable()).wait_for().await;
        let token = result.get_tokens().and_then(|t| t.first().copied()).ok_or("no token")?;
        out.push(token);
        len = total;
        input = vec![token];
    }
    api::deallocate_resources(&queue, Resource::KvPage as u32, &pages);
    Ok(out)
}

impl inferlet::api::Guest for PieModel {
    fn run() -> Result<(), String> {
        let args = inferlet::get_arguments();
        inferlet::wstd::runtime::block_on(run(args))
    }
}

inferlet::api::export!(PieModel with_types_in inferlet::api);

//! Measures the cost of inferlet→host calls from inside the guest.
//! Arguments: the number of calls (default 0, which makes a bare launch),
//! then which call (default `instance-id`): `instance-id`, `kvs-get`,
//! `kvs-set`, `tokenize` (a 1 KB text) or `detokenize` (its ids).
//! Returns the nanoseconds the calls took.

use std::time::Instant;

use crust_sdk::{kvs, runtime, tokenize};

/// About 1 KB of English, code and digits.
const TEXT: &str = "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. \
It is named after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889. \
fn main() { let answer = 6 * 7; println!(\"{answer}\"); } \
Locally nicknamed \"La dame de fer\", it was constructed as the centerpiece of the 1889 World's Fair, and to crown \
the centennial anniversary of the French Revolution. Although initially criticised by some of France's leading artists \
and intellectuals for its design, it has since become a global cultural icon of France and one of the most recognisable \
structures in the world. The tower received 5,889,000 visitors in 2022. The Eiffel Tower is the most visited monument \
with an entrance fee in the world: 6.91 million people ascended it in 2015. It was designated a monument historique in 1964. The tower is 330 metres (1,083 ft) tall, about the same height as an 81-storey building, and the tallest structure in Paris. Its base is square, measuring 125 metres (410 ft) on each side. 日本語のテキストも少し。 Ça va? ✓";

fn run() -> Result<(), String> {
    let args = runtime::get_arguments();
    let calls: u64 = match args.first() {
        Some(n) => n.parse().map_err(|_| format!("call-loop: `{n}` is not a number of calls"))?,
        None => 0,
    };
    let which = args.get(1).map(String::as_str).unwrap_or("instance-id");
    let tokenizer = matches!(which, "tokenize" | "detokenize").then(|| {
        let model = runtime::get_model(&runtime::get_all_models()[0]).expect("a model");
        tokenize::get_tokenizer(&model)
    });
    let ids = tokenizer.as_ref().map(|t| t.tokenize(TEXT)).unwrap_or_default();
    let start = Instant::now();
    for i in 0..calls {
        match which {
            "instance-id" => drop(std::hint::black_box(runtime::get_instance_id())),
            "kvs-get" => drop(std::hint::black_box(kvs::store_get("call-loop"))),
            "kvs-set" => kvs::store_set("call-loop", &i.to_string()),
            "tokenize" => drop(std::hint::black_box(tokenizer.as_ref().unwrap().tokenize(TEXT))),
            "detokenize" => drop(std::hint::black_box(tokenizer.as_ref().unwrap().detokenize(&ids))),
            other => return Err(format!("call-loop: unknown call `{other}`")),
        }
    }
    runtime::set_return(&start.elapsed().as_nanos().to_string());
    Ok(())
}

crust_sdk::entry!(run);

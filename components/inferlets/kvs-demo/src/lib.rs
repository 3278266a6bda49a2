//! `kvs-demo`: the key-value store from an inferlet. One command per run:
//!
//! - `count`: increments `kvs-demo/counter` and prints `count N`;
//! - `set KEY VALUE`, `get KEY`, `delete KEY`, `exists KEY`, `list`;
//! - `fill PREFIX N`: writes `PREFIX<i>` = `value-<i>` for i in 0..N,
//!   printing `ack <i>` after each write is acknowledged;
//! - `check PREFIX N`: prints how many of `PREFIX<i>` hold `value-<i>`.

use std::io::Write;

use crust_sdk::kvs;

const COUNTER: &str = "kvs-demo/counter";

const HELP: &str = "kvs-demo: the key-value store from an inferlet, one command per run

Commands:
  count              add one to a counter kept across runs and print it
  set KEY VALUE      store VALUE under KEY
  get KEY            print KEY's value
  delete KEY         remove KEY
  exists KEY         print whether KEY is stored
  list               print every key
  fill PREFIX N      store PREFIX<i> = value-<i> for i below N, printing each acknowledgement
  check PREFIX N     print how many of PREFIX<i> hold value-<i>
";

fn run() -> Result<(), String> {
    let args = crust_sdk::runtime::get_arguments();
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or_else(|| format!("missing argument {i} (--help lists the commands)"));
    let number = |i: usize| arg(i)?.parse::<usize>().map_err(|_| format!("argument {i} must be a number"));
    match arg(0)? {
        "count" => {
            let n = kvs::store_get(COUNTER).map_or(Ok(0), |v| v.parse::<u64>().map_err(|_| format!("{COUNTER} holds `{v}`, not a number")))? + 1;
            kvs::store_set(COUNTER, &n.to_string());
            println!("count {n}");
        }
        "set" => kvs::store_set(arg(1)?, arg(2)?),
        "get" => match kvs::store_get(arg(1)?) {
            Some(value) => println!("{value}"),
            None => return Err(format!("no key `{}`", arg(1)?)),
        },
        "delete" => kvs::store_delete(arg(1)?),
        "exists" => println!("{}", kvs::store_exists(arg(1)?)),
        "list" => kvs::store_list_keys().iter().for_each(|k| println!("{k}")),
        "fill" => {
            let mut out = std::io::stdout();
            for i in 0..number(2)? {
                kvs::store_set(&format!("{}{i}", arg(1)?), &format!("value-{i}"));
                let _ = writeln!(out, "ack {i}").and_then(|()| out.flush());
            }
        }
        "check" => {
            let good = (0..number(2)?).filter(|i| kvs::store_get(&format!("{}{i}", arg(1).unwrap())) == Some(format!("value-{i}"))).count();
            println!("{good}");
        }
        "--help" | "-h" | "help" => print!("{HELP}"),
        other => return Err(format!("unknown command `{other}` (--help lists them)")),
    }
    Ok(())
}

crust_sdk::entry!(run);

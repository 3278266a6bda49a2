//! Panics, which in wasm ends in an `unreachable` trap.
fn main() {
    println!("about to trap");
    let words: Vec<String> = std::env::args().skip(1).collect();
    panic!("deliberate trap after {} argument(s)", words.len());
}

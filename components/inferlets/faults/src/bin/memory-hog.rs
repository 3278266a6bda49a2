//! Allocates (and touches) 1 MiB at a time until something stops it.
fn main() {
    println!("hogging memory");
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

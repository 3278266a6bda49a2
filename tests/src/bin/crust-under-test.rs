//! The `crust` CLI, built as part of this package so that the end-to-end
//! tests always run the current code (`CARGO_BIN_EXE_crust-under-test`).
fn main() -> std::process::ExitCode {
    crust::cli::main()
}

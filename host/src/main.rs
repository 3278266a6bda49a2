fn main() -> std::process::ExitCode {
    crust::cli::main()
}

//! Pie's SDK entry point returning `Err`: the host must report the text.

struct PieFail;

impl inferlet::api::Guest for PieFail {
    fn run() -> Result<(), String> {
        eprintln!("pie-fail is about to fail");
        Err(format!("pie-fail refused with {} argument(s)", inferlet::get_arguments().len()))
    }
}

inferlet::api::export!(PieFail with_types_in inferlet::api);

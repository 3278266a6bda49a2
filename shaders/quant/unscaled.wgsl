// The block constants of weight types that have none (F32, F16): what the
// blocked kernels' `block_scale` asks for, a constant 1. It still names
// `ws`, so every matrix kernel's bindings stay the same.
alias BlockScale = f32;

fn block_scale(b: u32) -> BlockScale {
    _ = ws[0];
    return 1.0;
}

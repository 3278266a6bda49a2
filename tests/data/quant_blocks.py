"""Writes quant-blocks.json: random blocks of every quantized type Crust loads,
with the values the reference dequantizer of GGML's Python package (PyPI
`gguf`) gives for them. Run once by hand (`pip install gguf numpy`); the tests
check Crust's plain-Rust dequantizer, which the GPU kernels are checked
against, on the same bytes.

    python3 tests/data/quant_blocks.py
"""
import json

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

# Where each type keeps its f16 constants: random bytes there could be NaN or
# huge, so they get sane random values; every other byte is random.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
BLOCKS = 4

rng = np.random.default_rng(20261207)
cases = []
for ty, fields in F16_FIELDS.items():
    _, block_bytes = GGML_QUANT_SIZES[ty]
    raw = rng.integers(0, 256, size=(BLOCKS, block_bytes), dtype=np.uint8)
    for at in fields:
        raw[:, at:at + 2] = rng.uniform(-0.1, 0.1, size=BLOCKS).astype(np.float16).view(np.uint8).reshape(BLOCKS, 2)
    values = dequantize(raw.reshape(-1), ty)
    cases.append({"type": ty.name, "bytes": raw.tobytes().hex(), "values": [float(v) for v in values.astype(np.float32)]})

with open(__file__.replace("quant_blocks.py", "quant-blocks.json"), "w", encoding="utf-8") as f:
    f.write("[\n" + ",\n".join(json.dumps(c) for c in cases) + "\n]\n")
print(f"wrote {len(cases)} types, {BLOCKS} blocks each")

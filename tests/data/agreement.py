"""Writes NAME-agreement.json: for a corpus of varied texts, the token ids
llama.cpp gives on a model's GGUF and, teacher-forced, its top-10 next tokens
with their probabilities after every token. Run once per model by hand with
the venv `just llama-cpp-env` makes; the tests hold Crust's tokenizer and
forward pass to it.

    target/llama-cpp-env/bin/python tests/data/agreement.py ~/.cache/crust/models/SmolLM2-135M-Instruct.Q4_1.gguf smollm2
    target/llama-cpp-env/bin/python tests/data/agreement.py ~/.cache/crust/models/gemma-3-270m-q4_k_m.gguf gemma3
"""
import json
import math
import sys

import numpy as np

from llama_cpp import Llama, __version__

TOP_K = 10
CORPUS = {
    "prose": "The old lighthouse keeper climbed the spiral stairs every evening, counting each step as his father had "
    "taught him. Ships no longer needed the light, but he kept it burning anyway.",
    "code-rust": "fn fibonacci(n: u64) -> u64 {\n    match n {\n        0 => 0,\n        1 => 1,\n        _ => fibonacci(n - 1) + fibonacci(n - 2),\n    }\n}\n",
    "code-python": "import json\n\ndef load(path):\n    with open(path) as f:\n        return json.load(f)\n\nfor key, value in load('config.json').items():\n    print(key, value)\n",
    "chat": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHow many legs does a spider have?<|im_end|>\n<|im_start|>assistant\nA spider has eight legs.<|im_end|>\n",
    "numbers": "In 2023 the population was 8,045,311 and it grew by 0.88% to 8,116,108 in 2024; 17 × 23 = 391 and 2^10 = 1024.",
    "french": "Le petit prince s'assit sur une pierre et leva les yeux vers le ciel. « Les étoiles sont belles à cause d'une fleur que l'on ne voit pas. »",
    "german": "Die Wissenschaftler untersuchten die Auswirkungen des Klimawandels auf die Gletscher der Alpen über einen Zeitraum von fünfzig Jahren.",
    "chinese": "春天来了，公园里的花都开了。孩子们在草地上奔跑，老人们坐在长椅上聊天。",
    "json": '{"name": "Ada Lovelace", "born": 1815, "fields": ["mathematics", "computing"], "notes": null, "active": false}',
    "markdown": "## Installation\n\n1. Clone the repository.\n2. Run `cargo build --release`.\n3. Copy the binary to `/usr/local/bin`.\n\n> Note: a GPU is optional.\n",
}

# One token per eval, its logits read straight from the context (`logits_all`
# crashes this build's eval, and without it `scores` keeps none).
model = Llama(model_path=sys.argv[1], n_ctx=512, n_batch=1, verbose=False, seed=0)
# A model that wants a BOS first (Gemma: without it the first position's
# activations run far out of range) gets one before every text.
bos = model.token_bos() if model.metadata.get("tokenizer.ggml.add_bos_token") == "true" else None
cases = []
for name, text in CORPUS.items():
    ids = ([bos] if bos is not None else []) + model.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    model.reset()
    positions = []
    for token in ids:
        model.eval([token])
        logits = [float(x) for x in np.ctypeslib.as_array(model._ctx.get_logits(), shape=(model.n_vocab(),))]
        top = max(logits)
        z = sum(math.exp(l - top) for l in logits)
        best = sorted(range(len(logits)), key=lambda i: -logits[i])[:TOP_K]
        positions.append({"ids": best, "probs": [float(f"{math.exp(logits[i] - top) / z:.6g}") for i in best]})
    cases.append({"name": name, "text": text, "ids": ids, "positions": positions})

out = __file__.replace("agreement.py", f"{sys.argv[2]}-agreement.json")
with open(out, "w", encoding="utf-8") as f:
    f.write(json.dumps({"llama_cpp": __version__, "top_k": TOP_K, "bos": bos, "cases": cases}, ensure_ascii=False) + "\n")
print(f"wrote {len(cases)} texts, {sum(len(c['ids']) for c in cases)} positions (llama-cpp-python {__version__})")

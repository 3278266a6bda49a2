"""Writes smollm2-tokens.json: the token ids llama.cpp gives for a corpus on the
default model's GGUF. Run once by hand (it needs `pip install llama-cpp-python`,
which compiles llama.cpp); the tests compare Crust's tokenizer against its output.

    python3 tests/data/smollm2_tokens.py ~/.cache/crust/models/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import json
import sys

from llama_cpp import Llama

CORPUS = [
    "What is the capital of France?",
    "In 1889, 12345 people paid $3.50 each; 007 agents: 2.",
    "Tabs\tand  double  spaces   and\n\nnewlines\n",
    "  leading spaces and trailing   ",
    "Ünïcödé: naïve café, 日本語のテキスト, Ελληνικά, русский текст",
    "Emoji: 😀🚀👍🏽 family 👨‍👩‍👧 done",
    "fn main() {\n    let x = vec![1, 2, 3];\n    println!(\"{x:?}\");\n}\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "don't won't it's I'm we'll they've you'd",
    "3.14159 + 2.71828 = 5.85987 and 1,000,000",
    "<|endoftext|>plain text after a special token",
    "def f(x):\n\treturn x ** 2  # square\n",
]

model = Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
cases = [{"text": t, "ids": model.tokenize(t.encode("utf-8"), add_bos=False, special=True)} for t in CORPUS]
with open(__file__.replace("smollm2_tokens.py", "smollm2-tokens.json"), "w", encoding="utf-8") as f:
    f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")
print(f"wrote {len(cases)} cases")

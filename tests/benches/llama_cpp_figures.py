"""llama.cpp's figures for `just bench-engine`: the same GGUF, the same CPU,
the same prompt tokens, prefill, batch-1 decode and 8 sequences decoding
together, measured just before Crust's in the same run. Prints one JSON object; `crust bench-engine
--llama-cpp FILE` reads it and prints Crust's speed as a ratio of it.

Takes `crust bench-engine`'s own arguments and ignores the ones it has no
use for, so the justfile can hand both the same list."""

import argparse
import json
import os
import subprocess
import sys
import time

from llama_cpp import Llama, __version__

DECODE_PROMPT = 8
DECODE_STEPS = 32
DECODE_BATCH = 8


def main():
    parser = argparse.ArgumentParser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    models = os.environ.get("CRUST_MODELS_DIR") or os.path.join(cache, "crust", "models")
    parser.add_argument("--model", default=os.path.join(models, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--config")
    parser.add_argument("--prompt", type=int, default=512)
    args, _ = parser.parse_known_args()
    if not os.path.isfile(args.model):
        # A model's name: its file, as Crust resolves it (the justfile built the binary).
        config = ["--config", args.config] if args.config else []
        found = subprocess.run(["target/release/crust", "models", *config, "path", args.model], capture_output=True, text=True)
        if found.returncode != 0:
            sys.exit(f"llama.cpp: {found.stderr.strip()}")
        args.model = found.stdout.strip()

    threads = os.cpu_count() or 1
    llm = Llama(model_path=args.model, n_ctx=max(1024, args.prompt + 64), n_batch=max(512, args.prompt),
                n_ubatch=max(512, args.prompt), n_threads=threads, n_threads_batch=threads, verbose=False)
    vocab = llm.n_vocab()
    # The token ids `crust bench-engine` uses.
    prompt = [(i * 7919 + 13) % vocab for i in range(args.prompt)]

    llm.reset()
    llm.eval(prompt[:16])  # warm-up

    llm.reset()
    started = time.perf_counter()
    llm.eval(prompt)
    prefill = args.prompt / (time.perf_counter() - started)

    llm.reset()
    llm.eval(prompt[:DECODE_PROMPT])
    started = time.perf_counter()
    for step in range(DECODE_STEPS):
        llm.eval([prompt[(DECODE_PROMPT + step) % len(prompt)]])
    decode = DECODE_STEPS / (time.perf_counter() - started)

    decode_8 = batched_decode(args.model, threads, vocab, DECODE_BATCH)

    json.dump({"version": __version__, "threads": threads, "prompt": args.prompt,
               "prefill_tok_s": prefill, "decode_tok_s": decode, "decode_8_tok_s": decode_8}, sys.stdout)
    print()


def batched_decode(model_path, threads, vocab, sequences):
    """Aggregate tokens/s of `sequences` sequences decoding together, one
    batch of one token each per step (llama.cpp's own batched decode), after
    an 8-token prompt each, as `crust bench-engine` measures it."""
    import llama_cpp as lib

    model = lib.llama_model_load_from_file(model_path.encode(), lib.llama_model_default_params())
    params = lib.llama_context_default_params()
    params.n_ctx = sequences * 256  # a multiple of the sequences: each gets 256 positions
    params.n_batch = params.n_ubatch = sequences * DECODE_PROMPT
    params.n_seq_max = sequences
    params.n_threads = params.n_threads_batch = threads
    ctx = lib.llama_init_from_model(model, params)
    batch = lib.llama_batch_init(sequences * DECODE_PROMPT, 0, 1)

    def decode(rows):
        for i, (token, pos, seq, logits) in enumerate(rows):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
            batch.seq_id[i][0] = seq
        batch.n_tokens = len(rows)
        if lib.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    token = lambda i: (i * 7919 + 13) % vocab
    decode([(token(s * DECODE_PROMPT + p), p, s, p == DECODE_PROMPT - 1) for s in range(sequences) for p in range(DECODE_PROMPT)])
    started = time.perf_counter()
    for step in range(DECODE_STEPS):
        decode([(token(s + step), DECODE_PROMPT + step, s, True) for s in range(sequences)])
    tok_s = sequences * DECODE_STEPS / (time.perf_counter() - started)
    lib.llama_batch_free(batch)
    lib.llama_free(ctx)
    lib.llama_model_free(model)
    return tok_s


if __name__ == "__main__":
    main()

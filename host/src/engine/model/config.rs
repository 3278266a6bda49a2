//! A Llama-family model's shape, read from GGUF metadata: Llama itself; the
//! Qwen2/Qwen3 shape (RoPE on halves of a head, q/k/v biases, a RMSNorm on
//! each query and key head); and Gemma 3's (GeGLU, norms after attention and
//! the FFN, scaled embeddings, sliding-window layers with their own RoPE base).

use crate::engine::gguf::{GgufFile, Value};

/// The GGUF architectures Crust runs.
pub const ARCHITECTURES: [&str; 4] = ["llama", "qwen2", "qwen3", "gemma3"];

/// The FFN gate's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SwiGLU: silu(gate) · up.
    Silu,
    /// GeGLU with GELU's tanh form: gelu(gate) · up (Gemma).
    GeluTanh,
}

/// Layers that attend to a window of recent positions only (Gemma 3: five
/// of every six).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlidingWindow {
    /// Slots a query sees, its own included.
    pub span: u32,
    /// Every this-many-th layer (counting from 1) sees the whole context.
    pub global_every: usize,
    /// The windowed layers' RoPE base.
    pub rope_base: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub architecture: String,
    pub n_layer: usize,
    pub d_model: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub d_ff: usize,
    pub vocab: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// Leading dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    /// Rotate halves (NeoX, Qwen2) rather than adjacent pairs (GGUF llama).
    pub rope_neox: bool,
    /// q, k and v have biases (`attn_{q,k,v}.bias`, Qwen2).
    pub qkv_bias: bool,
    /// Each query and key head is RMS-normalized before RoPE (`attn_{q,k}_norm`, Qwen3, Gemma 3).
    pub qk_norm: bool,
    pub activation: Activation,
    /// Token embeddings are multiplied by it (Gemma: √d_model; else 1).
    pub embed_scale: f32,
    /// RMSNorms on the attention's and the FFN's outputs before the residual
    /// adds (`post_attention_norm`, `post_ffw_norm`: Gemma 3).
    pub post_norms: bool,
    pub sliding_window: Option<SlidingWindow>,
    pub context_length: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "unsupported architecture `{0}`: Crust runs `llama` (SmolLM2, Llama 2/3 and their GGUF conversions), `qwen2`, `qwen3` and `gemma3` models"
    )]
    Architecture(String),
    #[error("the GGUF metadata lacks `{0}`")]
    Missing(String),
    #[error("GGUF metadata `{key}` is {value}, {problem}")]
    Invalid { key: String, value: String, problem: &'static str },
}

impl LlamaConfig {
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ConfigError> {
        let arch =
            file.get("general.architecture").and_then(Value::as_str).ok_or_else(|| ConfigError::Missing("general.architecture".into()))?.to_string();
        if !ARCHITECTURES.contains(&arch.as_str()) {
            return Err(ConfigError::Architecture(arch));
        }
        let uint = |key: &str| -> Result<usize, ConfigError> {
            let key = format!("{arch}.{key}");
            let value = file.get(&key).ok_or_else(|| ConfigError::Missing(key.clone()))?;
            match value.as_u64() {
                Some(v) if v > 0 => Ok(v as usize),
                _ => Err(ConfigError::Invalid { key, value: value.summary(), problem: "not a positive integer" }),
            }
        };
        let float = |key: &str, default: f64| -> f32 { file.get(&format!("{arch}.{key}")).and_then(Value::as_f64).unwrap_or(default) as f32 };
        let n_layer = uint("block_count")?;
        let d_model = uint("embedding_length")?;
        let n_head = uint("attention.head_count")?;
        let n_kv_head = file.get(&format!("{arch}.attention.head_count_kv")).map_or(Ok(n_head), |_| uint("attention.head_count_kv"))?;
        let d_ff = uint("feed_forward_length")?;
        let head_dim = match file.get(&format!("{arch}.attention.key_length")) {
            Some(_) => uint("attention.key_length")?,
            None if d_model.is_multiple_of(n_head) => d_model / n_head,
            None => {
                let key = format!("{arch}.embedding_length");
                return Err(ConfigError::Invalid { key, value: d_model.to_string(), problem: "not a multiple of the head count" });
            }
        };
        if let Some(value) = file.get(&format!("{arch}.attention.value_length"))
            && value.as_u64() != Some(head_dim as u64)
        {
            let key = format!("{arch}.attention.value_length");
            return Err(ConfigError::Invalid { key, value: value.summary(), problem: "not the key length, which Crust needs it to be" });
        }
        let vocab = match file.get("tokenizer.ggml.tokens").and_then(Value::as_array) {
            Some(tokens) => tokens.len(),
            None => {
                file.tensor("token_embd.weight").map(|t| t.dims[1] as usize).ok_or_else(|| ConfigError::Missing("tokenizer.ggml.tokens".into()))?
            }
        };
        let rope_dim = file.get(&format!("{arch}.rope.dimension_count")).map_or(Ok(head_dim), |_| uint("rope.dimension_count"))?;
        let config = Self {
            n_layer,
            d_model,
            n_head,
            n_kv_head,
            head_dim,
            d_ff,
            vocab,
            rms_eps: float("attention.layer_norm_rms_epsilon", 1e-5),
            rope_base: float("rope.freq_base", 10000.0),
            rope_dim,
            rope_neox: arch != "llama",
            qkv_bias: file.tensor("blk.0.attn_q.bias").is_some(),
            qk_norm: file.tensor("blk.0.attn_q_norm.weight").is_some(),
            activation: if arch == "gemma3" { Activation::GeluTanh } else { Activation::Silu },
            embed_scale: if arch == "gemma3" { (d_model as f32).sqrt() } else { 1.0 },
            post_norms: file.tensor("blk.0.post_attention_norm.weight").is_some(),
            // llama.cpp's Gemma 3: five windowed layers to one global, the windowed at RoPE base 10000.
            sliding_window: match (arch.as_str(), file.get(&format!("{arch}.attention.sliding_window")).and_then(Value::as_u64)) {
                ("gemma3", Some(span)) if span > 0 => Some(SlidingWindow { span: span as u32, global_every: 6, rope_base: 10000.0 }),
                _ => None,
            },
            context_length: file.get(&format!("{arch}.context_length")).and_then(Value::as_u64).unwrap_or(2048) as usize,
            architecture: arch,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: usize, problem| {
            Err(ConfigError::Invalid { key: format!("{}.{key}", self.architecture), value: value.to_string(), problem })
        };
        if !self.n_head.is_multiple_of(self.n_kv_head) {
            return invalid("attention.head_count_kv", self.n_kv_head, "not a divisor of the head count");
        }
        if self.head_dim > 256 || !self.head_dim.is_multiple_of(4) {
            return invalid(
                "embedding_length",
                self.d_model,
                "giving heads wider than 256 or not a multiple of 4, which the attention kernels do not support",
            );
        }
        if self.rope_dim > self.head_dim || !self.rope_dim.is_multiple_of(2) {
            return invalid("rope.dimension_count", self.rope_dim, "not an even number up to the head size");
        }
        if !self.d_model.is_multiple_of(32) || !self.d_ff.is_multiple_of(32) {
            return invalid("embedding_length", self.d_model, "with feed_forward_length, not a multiple of 32");
        }
        Ok(())
    }

    /// Whether RoPE and the KV write can be folded into the q|k|v matrix
    /// kernel: its epilogue rotates adjacent rows and sees no whole head.
    pub fn rope_folds(&self) -> bool {
        !self.rope_neox && !self.qkv_bias && !self.qk_norm
    }

    /// The window layer `layer` attends through, or `None` for the whole context.
    pub fn window_of(&self, layer: usize) -> Option<SlidingWindow> {
        self.sliding_window.filter(|w| !(layer + 1).is_multiple_of(w.global_every))
    }

    /// Width of a q|k|v row.
    pub fn qkv_width(&self) -> usize {
        (self.n_head + 2 * self.n_kv_head) * self.head_dim
    }

    pub fn kv_width(&self) -> usize {
        self.n_kv_head * self.head_dim
    }
}

//! Host configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! cache_dir = "/var/cache/crust"   # compiled programs; default: $CRUST_CACHE_DIR or the user cache dir
//!
//! [engine]
//! page_size = 16                  # tokens per KV page
//! kv_pages = 512                  # KV pages per model (GPU memory: pages * page_size * 2 * layers * kv width * 4 bytes)
//! batch_tokens = 512              # input rows per batch
//!
//! [[models]]                      # default: SmolLM2-135M-Instruct Q4_1 in the models dir
//! name = "SmolLM2-135M-Instruct"
//! path = "/path/to/SmolLM2-135M-Instruct.Q4_1.gguf"
//! source = "hf:ORG/REPO:FILE"    # optional: where `crust models pull` gets it (said when it is missing)
//!
//! [registry]
//! insecure = ["127.0.0.1:5000"]   # hosts reached over plain http
//! max_component_mib = 128.0       # the largest component pulled
//! connect_timeout_secs = 10.0
//! read_timeout_secs = 30.0        # one read from a registry
//! timeout_secs = 300.0            # one push or pull in all
//! [registry.login."127.0.0.1:5000"] # sent to this registry only
//! username = "me"                 # basic auth, or token = "…"
//! password = "secret"
//!
//! data_dir = "/var/lib/crust"     # provider data (the kvs store); default: $CRUST_DATA_DIR or the user data dir
//!
//! [providers]                     # the components that serve tokenize and kvs (default: the built ones)
//! tokenize = "/path/to/tokenize_provider.wasm"
//! kvs = "/path/to/kvs_provider.wasm"
//!
//! [limits]
//! wall_time_secs = 300.0          # an instance running longer is stopped
//! cpu_time_secs = 10.0            # an instance computing longer is stopped (waits on the GPU, messages, I/O not counted)
//! memory_mib = 1024               # linear memory per instance
//! max_instances = 1024            # instances alive at once
//! kv_pages_per_instance = 256     # KV pages one instance may hold, per model
//! embedding_slots_per_instance = 64
//! queued_passes_per_instance = 256 # passes one instance may have waiting, per model
//! host_memory_mib = 64            # blobs, passes being built and subscriptions the host keeps for an instance
//! max_priority = "normal"          # the highest `set-priority` an instance gets (low, normal, high)
//! export_ttl_secs = 3600.0        # the longest an export is kept past its owner's last instance
//! subscriptions_per_user = 1024   # topic subscriptions one user's instances hold together
//!
//! [server]                        # `crust serve` (docs/server.md)
//! listen = "127.0.0.1:8080"       # WebSocket endpoint, OpenAI API and `GET /metrics`
//! tls_cert = "/etc/crust/cert.pem" # with tls_key: wss:// and https:// (or --tls-cert/--tls-key)
//! tls_key = "/etc/crust/key.pem"
//! authorized_keys = "/etc/crust/authorized_keys"  # `ed25519 <hex> <user>` lines (`crust keygen`)
//! max_instances_per_user = 64     # instances one user may have running at once
//! max_upload_mib = 64             # the largest program or blob a client may upload
//! output_buffer_kib = 1024        # what a detached instance may buffer before it is ended
//! outbox_kib = 16384              # what may wait for a slow client before its connection is closed
//! max_connections = 4096          # WebSocket connections open at once, and from one address:
//! max_connections_per_address = 256
//! login_timeout_secs = 30.0       # a connection must log in within this, in at most 32 frames
//! inferlet_ports = [1024, 65535]  # ports server inferlets may listen on
//! metrics_token = "a-long-random-token" # GET /metrics needs it as a bearer token (or metrics_public = true)
//! inferlet_connections = 64       # connections one server inferlet serves at once
//! inferlet_header_timeout_secs = 10.0 # for a server inferlet's client to send a request's head
//! openai_prefix_cache_pages = 128 # KV pages the OpenAI endpoint keeps for shared system prompts
//! registries = ["ghcr.io"]        # registries clients may launch inferlets from (default: none)
//! shared_prefix = "public/"       # export names and topics shared by all users; "" shares nothing
//! [server.users.alice]            # one user's instances, in place of [limits]
//! cpu_time_secs = 60.0
//! max_priority = "high"
//! [server.tokens]                 # Pie's `authenticate`: user = "token"
//! alice = "a-long-random-token"
//!
//! [client]                        # `crust submit|list|attach|kill`
//! server = "ws://127.0.0.1:8080"
//! user = "alice"                  # with `key`: Crust's key login
//! key = "/home/alice/.config/crust/key"
//! token = "a-long-random-token"   # or Pie's token login
//! ca_cert = "/etc/crust/ca.pem"    # trusted for a wss:// server besides the system's roots
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where compiled programs are kept between runs.
    pub cache_dir: Option<PathBuf>,
    /// Where providers keep data (the kvs store).
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub outbound: OutboundConfig,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    #[serde(default)]
    pub registry: crate::oci::RegistryConfig,
    #[serde(default)]
    pub providers: ProvidersConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub client: ClientConfig,
}

/// Where `crust submit|list|attach|kill` connect and how they log in;
/// flags and `CRUST_SERVER`/`CRUST_TOKEN`/`CRUST_USER`/`CRUST_KEY` override it.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub server: Option<String>,
    pub token: Option<String>,
    pub user: Option<String>,
    pub key: Option<PathBuf>,
    /// PEM certificates to trust for a `wss://` server besides the system's.
    pub ca_cert: Option<PathBuf>,
}

/// `crust serve`: where it listens, who may log in, what a client may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// Tokens for Pie's `authenticate`, by the user each logs in as.
    pub tokens: std::collections::BTreeMap<String, String>,
    /// Keys for Crust's challenge–response login.
    pub authorized_keys: Option<PathBuf>,
    pub max_instances_per_user: usize,
    pub max_upload_mib: u64,
    pub output_buffer_kib: usize,
    /// What may wait in one connection's outbox for its client to read; past it the connection is closed.
    pub outbox_kib: usize,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// How long a connection may stay open without logging in.
    pub login_timeout_secs: f64,
    /// Who may read `GET /metrics` (it names users): a bearer of this token,
    /// or anyone when `metrics_public` (or authentication is off).
    pub metrics_token: Option<String>,
    pub metrics_public: bool,
    /// The ports server inferlets may listen on: `[first, last]`.
    pub inferlet_ports: [u16; 2],
    /// Connections one server inferlet serves at once; more wait to be accepted.
    pub inferlet_connections: usize,
    /// How long a server inferlet's client may take to send a request's head.
    pub inferlet_header_timeout_secs: f64,
    /// The inferlet behind the OpenAI API; default: the `openai-chat` built with Crust.
    pub openai_inferlet: Option<PathBuf>,
    /// KV pages the endpoint inferlet may keep for shared system prompts, per model (0: none).
    pub openai_prefix_cache_pages: usize,
    /// Request fields the OpenAI API does not have are ignored, with a warning in the log,
    /// instead of refused (`unknown_parameter`).
    pub openai_lenient: bool,
    /// Web origins (`https://app.example`, or `*`) whose pages may call the HTTP API from a
    /// browser (CORS); none: no cross-origin access.
    pub cors_allowed_origins: Vec<String>,
    /// Limits of some users' instances in place of `[limits]`, by user.
    pub users: std::collections::BTreeMap<String, UserLimits>,
    /// Registries (`host[:port]`) clients may launch inferlets from by reference; none: upload only.
    pub registries: Vec<String>,
    /// Export names and topics starting with this are shared by all users (the others are each
    /// user's own); `""`: nothing is shared.
    pub shared_prefix: String,
    /// A PEM certificate chain and its key: the server speaks `wss://` and `https://`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// `[server.users.<name>]`: what one user's instances get instead of `[limits]`.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserLimits {
    pub cpu_time_secs: Option<f64>,
    pub max_priority: Option<PriorityCap>,
    pub kvs_mib: Option<u64>,
    pub kvs_keys: Option<u64>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            tokens: Default::default(),
            authorized_keys: None,
            max_instances_per_user: 64,
            max_upload_mib: 64,
            output_buffer_kib: 1024,
            outbox_kib: 16 << 10,
            max_connections: 4096,
            max_connections_per_address: 256,
            login_timeout_secs: 30.0,
            metrics_token: None,
            metrics_public: false,
            inferlet_ports: [1024, 65535],
            inferlet_connections: 64,
            inferlet_header_timeout_secs: 10.0,
            openai_inferlet: None,
            openai_prefix_cache_pages: 128,
            openai_lenient: false,
            cors_allowed_origins: Vec::new(),
            users: Default::default(),
            registries: Vec::new(),
            shared_prefix: "public/".into(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl ServerConfig {
    pub fn max_upload_bytes(&self) -> usize {
        (self.max_upload_mib as usize).saturating_mul(1 << 20)
    }

    pub fn output_buffer_bytes(&self) -> usize {
        self.output_buffer_kib.saturating_mul(1 << 10)
    }

    pub fn outbox_bytes(&self) -> usize {
        self.outbox_kib.saturating_mul(1 << 10)
    }
}

/// Which component serves each provider interface; unset means the one
/// built with Crust (`just build-components`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProvidersConfig {
    pub tokenize: Option<PathBuf>,
    pub kvs: Option<PathBuf>,
    pub message: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub page_size: u32,
    pub kv_pages: u32,
    pub batch_tokens: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { page_size: 16, kv_pages: 512, batch_tokens: 512 }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    pub path: PathBuf,
    /// Where to get the file (`hf:ORG/REPO:FILE` or a URL), for the error that says it is missing.
    #[serde(default)]
    pub source: Option<String>,
    /// `[models.sampling]`: what the OpenAI API samples with when a request leaves it out.
    #[serde(default)]
    pub sampling: SamplingDefaults,
}

/// Sampling for requests that do not choose their own: OpenAI's own defaults
/// (temperature 1, no truncation) let a small model wander off into unlikely
/// tokens; a cooler temperature and a floor relative to the likeliest token
/// (min-p) keep answers on topic without making them greedy.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingDefaults {
    pub temperature: f64,
    pub top_p: f64,
    /// 0: no min-p floor.
    pub min_p: f64,
    /// 0: no top-k cut.
    pub top_k: u32,
}

impl Default for SamplingDefaults {
    fn default() -> Self {
        Self { temperature: 0.7, top_p: 0.9, min_p: 0.05, top_k: 0 }
    }
}

impl SamplingDefaults {
    fn check(&self, model: &str) -> Result<(), ConfigError> {
        let within = |x: f64, high: f64| x.is_finite() && (0.0..=high).contains(&x);
        if !(within(self.temperature, 2.0) && within(self.top_p, 1.0) && within(self.min_p, 1.0)) {
            return Err(ConfigError::Invalid(format!(
                "models `{model}`: sampling.temperature must be from 0 to 2, sampling.top_p and sampling.min_p from 0 to 1"
            )));
        }
        Ok(())
    }
}

impl ModelEntry {
    /// How to get this model's file when it is missing.
    pub fn fetch_hint(&self) -> String {
        match &self.source {
            Some(source) => format!("run `crust models pull {source}`"),
            None if self.path.file_name().is_some_and(|f| f == DEFAULT_MODEL_FILE) => "run `just fetch-model` to download the default model".into(),
            None => "set its path in the config, or get a model with `crust models pull hf:ORG/REPO[:FILE]`".into(),
        }
    }
}

/// The default model: what `just fetch-model` downloads.
pub const DEFAULT_MODEL_NAME: &str = "SmolLM2-135M-Instruct";
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where downloaded models live: `$CRUST_MODELS_DIR`, else `<user cache>/crust/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("CRUST_MODELS_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("crust").join("models")))
        .unwrap_or_else(|| PathBuf::from(".cache/crust/models"))
}

/// `spec` as a file: a path, or `NAME.gguf` in the models dir.
fn gguf_file_named(spec: &str) -> Option<PathBuf> {
    if Path::new(spec).is_file() {
        return Some(PathBuf::from(spec));
    }
    let in_models_dir = models_dir().join(format!("{spec}.gguf"));
    (crate::model_store::valid_name(spec) && in_models_dir.is_file()).then_some(in_models_dir)
}

/// `[outbound]`: what inferlets' outgoing HTTP may reach (`runtime/outbound.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// `[scheme://]host[:port]` rules; none: every request is denied.
    pub allowed_hosts: Vec<String>,
    /// More rules for one server user's instances: `[outbound.users.alice] allowed_hosts = [...]`.
    pub users: std::collections::BTreeMap<String, AllowedHosts>,
    /// More rules for one program's instances, by its BLAKE3 digest (as `crust list` shows it).
    pub programs: std::collections::BTreeMap<String, AllowedHosts>,
    pub max_requests_in_flight: usize,
    pub max_response_mib: u64,
    pub connect_timeout_secs: f64,
    pub timeout_secs: f64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        let policy = crate::runtime::OutboundPolicy::default();
        Self {
            allowed_hosts: Vec::new(),
            users: Default::default(),
            programs: Default::default(),
            max_requests_in_flight: policy.max_in_flight,
            max_response_mib: policy.max_response_bytes >> 20,
            connect_timeout_secs: policy.connect_timeout.as_secs_f64(),
            timeout_secs: policy.timeout.as_secs_f64(),
        }
    }
}

impl OutboundConfig {
    pub fn policy(&self) -> Result<crate::runtime::OutboundPolicy, ConfigError> {
        let seconds = |key: &str, secs: f64| {
            Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| ConfigError::Invalid(format!("outbound.{key} must be a positive number of seconds, got {secs}")))
        };
        let rules = |key: &str, hosts: &[String]| -> Result<Vec<crate::runtime::HostRule>, ConfigError> {
            hosts.iter().map(|rule| rule.parse().map_err(|e: crate::runtime::BadRule| ConfigError::Invalid(format!("{key}: {e}")))).collect()
        };
        let by_user = self.users.iter().map(|(user, hosts)| Ok((user.clone(), rules(&format!("outbound.users.{user}"), &hosts.allowed_hosts)?)));
        let by_program = self.programs.iter().map(|(digest, hosts)| {
            if !(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))) {
                return Err(ConfigError::Invalid(format!(
                    "outbound.programs.{digest}: a program is named by its BLAKE3 digest, 64 lowercase hex digits"
                )));
            }
            Ok((digest.clone(), rules(&format!("outbound.programs.{digest}"), &hosts.allowed_hosts)?))
        });
        Ok(crate::runtime::OutboundPolicy {
            allowed: rules("outbound", &self.allowed_hosts)?,
            by_user: by_user.collect::<Result<_, _>>()?,
            by_program: by_program.collect::<Result<_, _>>()?,
            max_in_flight: self.max_requests_in_flight,
            max_response_bytes: self.max_response_mib.saturating_mul(1 << 20),
            connect_timeout: seconds("connect_timeout_secs", self.connect_timeout_secs)?,
            timeout: seconds("timeout_secs", self.timeout_secs)?,
        })
    }
}

/// `[outbound.users.<name>]` and `[outbound.programs.<digest>]`: hosts allowed to some instances only.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AllowedHosts {
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub wall_time_secs: f64,
    /// CPU time an instance may compute (waiting on the GPU, messages or I/O is not counted).
    pub cpu_time_secs: f64,
    pub memory_mib: u64,
    pub max_instances: usize,
    /// KV pages one instance may hold at once, on each model.
    pub kv_pages_per_instance: usize,
    /// Embedding slots one instance may hold at once, on each model.
    pub embedding_slots_per_instance: usize,
    /// Passes one instance may have waiting at once, on each model.
    pub queued_passes_per_instance: usize,
    /// What the host may keep for one instance outside its linear memory (blobs, passes being built, subscriptions).
    pub host_memory_mib: u64,
    /// The highest priority an instance's queues may take: `set-priority` is capped to it.
    pub max_priority: PriorityCap,
    /// The longest an owner may keep an export past its last instance (`crust:host/exports.keep-export`).
    pub export_ttl_secs: f64,
    /// What one user may keep in kvs, over all of its programs: MiB of keys and values, and keys.
    pub kvs_mib_per_user: u64,
    pub kvs_keys_per_user: u64,
    /// Topic subscriptions one user's instances may hold together (one instance's, under `crust run`).
    pub subscriptions_per_user: usize,
}

/// `limits.max_priority`: `low`, `normal` or `high`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PriorityCap {
    Low,
    #[default]
    Normal,
    High,
}

impl From<PriorityCap> for crate::engine::service::Priority {
    fn from(cap: PriorityCap) -> Self {
        match cap {
            PriorityCap::Low => Self::Low,
            PriorityCap::Normal => Self::Normal,
            PriorityCap::High => Self::High,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            wall_time_secs: 300.0,
            cpu_time_secs: 10.0,
            memory_mib: 1024,
            max_instances: 1024,
            kv_pages_per_instance: 256,
            embedding_slots_per_instance: 64,
            queued_passes_per_instance: 256,
            host_memory_mib: 64,
            max_priority: PriorityCap::Normal,
            export_ttl_secs: 3600.0,
            kvs_mib_per_user: 64,
            kvs_keys_per_user: 1_000_000,
            subscriptions_per_user: 1024,
        }
    }
}

impl LimitsConfig {
    pub fn wall_time(&self) -> Duration {
        Duration::from_secs_f64(self.wall_time_secs)
    }

    pub fn cpu_time(&self) -> Duration {
        Duration::from_secs_f64(self.cpu_time_secs)
    }

    pub fn export_ttl(&self) -> Duration {
        Duration::try_from_secs_f64(self.export_ttl_secs).unwrap_or(Duration::ZERO)
    }

    pub fn memory_bytes(&self) -> usize {
        (self.memory_mib as usize).saturating_mul(1 << 20)
    }

    pub fn host_memory_bytes(&self) -> usize {
        (self.host_memory_mib as usize).saturating_mul(1 << 20)
    }

    /// What a user may keep in kvs: `user`'s own settings where it has them.
    pub fn kvs_quota(&self, user: UserLimits) -> crate::providers::kvs::Quota {
        crate::providers::kvs::Quota {
            max_bytes: user.kvs_mib.unwrap_or(self.kvs_mib_per_user).saturating_mul(1 << 20),
            max_keys: user.kvs_keys.unwrap_or(self.kvs_keys_per_user),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("no model named `{name}` (known: {known}) and no GGUF file at that path; `crust models pull hf:ORG/REPO[:FILE]` gets one")]
    UnknownModel { name: String, known: String },
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if !(l.wall_time_secs.is_finite() && l.wall_time_secs > 0.0) {
            return Err(ConfigError::Invalid(format!("limits.wall_time_secs must be a positive number of seconds, got {}", l.wall_time_secs)));
        }
        for (user, limits) in &self.server.users {
            if limits.cpu_time_secs.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
                return Err(ConfigError::Invalid(format!("server.users.{user}.cpu_time_secs must be a positive number of seconds")));
            }
        }
        self.registry.validate().map_err(ConfigError::Invalid)?;
        let server = &self.server;
        if !(server.login_timeout_secs.is_finite() && server.login_timeout_secs > 0.0) {
            return Err(ConfigError::Invalid(format!(
                "server.login_timeout_secs must be a positive number of seconds, got {}",
                server.login_timeout_secs
            )));
        }
        if !(server.inferlet_header_timeout_secs.is_finite() && server.inferlet_header_timeout_secs > 0.0) {
            return Err(ConfigError::Invalid(format!(
                "server.inferlet_header_timeout_secs must be a positive number of seconds, got {}",
                server.inferlet_header_timeout_secs
            )));
        }
        if server.metrics_token.as_ref().is_some_and(|t| t.len() < 8) {
            return Err(ConfigError::Invalid("server.metrics_token must have 8 characters or more".into()));
        }
        if server.inferlet_ports[0] == 0 || server.inferlet_ports[0] > server.inferlet_ports[1] {
            return Err(ConfigError::Invalid(format!(
                "server.inferlet_ports must be [first, last] with 1 ≤ first ≤ last, got {:?}",
                server.inferlet_ports
            )));
        }
        if server.max_connections == 0 || server.max_connections_per_address == 0 || server.outbox_kib == 0 {
            return Err(ConfigError::Invalid(
                "server.max_connections, server.max_connections_per_address and server.outbox_kib must be at least 1".into(),
            ));
        }
        if l.queued_passes_per_instance == 0 {
            return Err(ConfigError::Invalid("limits.queued_passes_per_instance must be at least 1".into()));
        }
        self.outbound.policy()?;
        if !(l.export_ttl_secs.is_finite() && l.export_ttl_secs >= 0.0) {
            return Err(ConfigError::Invalid(format!("limits.export_ttl_secs must be a number of seconds ≥ 0, got {}", l.export_ttl_secs)));
        }
        if !(l.cpu_time_secs.is_finite() && l.cpu_time_secs > 0.0) {
            return Err(ConfigError::Invalid(format!("limits.cpu_time_secs must be a positive number of seconds, got {}", l.cpu_time_secs)));
        }
        if l.memory_mib == 0 {
            return Err(ConfigError::Invalid("limits.memory_mib must be at least 1".into()));
        }
        let e = &self.engine;
        if e.page_size == 0 || e.kv_pages == 0 || e.batch_tokens == 0 {
            return Err(ConfigError::Invalid("engine.page_size, engine.kv_pages and engine.batch_tokens must be at least 1".into()));
        }
        if let Some(m) = self.models.iter().find(|m| m.name.is_empty() || m.name.contains(['/', '\\', '\0']) || m.name.starts_with('.')) {
            return Err(ConfigError::Invalid(format!("model name `{}` must be non-empty, not start with `.`, and have no `/`, `\\` or NUL", m.name)));
        }
        for model in &self.models {
            model.sampling.check(&model.name)?;
        }
        if let Some((user, _)) = self.server.tokens.iter().find(|(_, token)| token.len() < 8) {
            return Err(ConfigError::Invalid(format!("server.tokens.{user} is shorter than 8 characters: use a long random token")));
        }
        if l.max_instances == 0 {
            return Err(ConfigError::Invalid("limits.max_instances must be at least 1".into()));
        }
        Ok(())
    }

    /// The configured models, in order (the default model when none are),
    /// then those `crust models pull` fetched, under names not taken.
    pub fn models(&self) -> Vec<ModelEntry> {
        let mut models = if self.models.is_empty() {
            vec![ModelEntry {
                name: DEFAULT_MODEL_NAME.into(),
                path: models_dir().join(DEFAULT_MODEL_FILE),
                source: None,
                sampling: Default::default(),
            }]
        } else {
            self.models.clone()
        };
        let store = crate::model_store::ModelStore::new(models_dir());
        match store.models() {
            Ok(pulled) => {
                for model in pulled {
                    if !models.iter().any(|m| m.name == model.name) {
                        models.push(ModelEntry {
                            path: store.path_of(&model),
                            name: model.name,
                            source: Some(model.source),
                            sampling: Default::default(),
                        });
                    }
                }
            }
            Err(e) => tracing::warn!("pulled models left out: {e}"),
        }
        models
    }

    /// Puts the model `--model` names first, where commands and inferlets
    /// look for theirs: a configured or pulled model's name, the path of a
    /// GGUF file, or the name of one in the models dir without its `.gguf`
    /// (a file no index lists, such as `just fetch-gemma`'s). Returns its name.
    pub fn select_model(&mut self, spec: &str) -> Result<String, ConfigError> {
        let mut models = self.models();
        let at = match models.iter().position(|m| m.name == spec) {
            Some(at) => at,
            None => {
                let Some(path) = gguf_file_named(spec) else {
                    let known: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
                    return Err(ConfigError::UnknownModel { name: spec.into(), known: known.join(", ") });
                };
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let name = if models.iter().any(|m| m.name == stem) || stem.is_empty() { spec.replace(['/', '\\'], "_") } else { stem };
                models.push(ModelEntry { name, path, source: None, sampling: Default::default() });
                models.len() - 1
            }
        };
        let chosen = models.remove(at);
        let name = chosen.name.clone();
        models.insert(0, chosen);
        self.models = models;
        Ok(name)
    }

    /// The model `spec` names, as `--model` takes it, without selecting it.
    pub fn find_model(&self, spec: &str) -> Result<ModelEntry, ConfigError> {
        let mut config = self.clone();
        config.select_model(spec)?;
        Ok(config.models.swap_remove(0))
    }

    /// Provider data (the kvs store): the config's, else `$CRUST_DATA_DIR`, else the user's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| std::env::var_os("CRUST_DATA_DIR").map(PathBuf::from))
            .or_else(|| dirs::data_dir().map(|d| d.join("crust")))
            .unwrap_or_else(|| PathBuf::from(".crust-data"))
    }

    /// The compiled-program cache: the config's, else `$CRUST_CACHE_DIR`, else the user's cache dir.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .or_else(|| std::env::var_os("CRUST_CACHE_DIR").map(PathBuf::from))
            .or_else(|| dirs::cache_dir().map(|d| d.join("crust")))
            .unwrap_or_else(|| std::env::temp_dir().join("crust-cache"))
    }
}

//! The wasmtime side of the host: one engine, one linker, the program cache,
//! and launching instances under their limits.

mod http;
mod instance;
mod limits;
mod outbound;
mod program;
mod state;

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime::{Config as EngineConfig, Engine};

pub use crate::messaging::{OutputChunk, OutputReceiver, OutputSink, Stream};
pub use http::{ConnectionLimits, HttpLaunch, UserSeats};
pub use instance::{InstanceError, Launch};
pub use limits::{EPOCH_TICK, LimitExceeded};
pub use outbound::{BadRule, HostRule, OutboundPolicy};
pub use program::{EntryPoint, Program, ProgramError, ProgramOrigin};
pub use state::InstanceState;

use crate::api::InferletHost;
use crate::compiled::ComponentCache;
use crate::config::{Config, LimitsConfig};
use crate::models::ModelRegistry;
use limits::{EpochTicker, InstanceSeats};
pub(crate) use program::ProgramCache;

/// Runs inferlets. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Runtime {
    engine: Engine,
    linker: Linker<InstanceState>,
    programs: Arc<ProgramCache>,
    limits: LimitsConfig,
    /// What every instance's outgoing HTTP may reach.
    outbound: Arc<OutboundPolicy>,
    /// Export names and topics under it are shared across namespaces (`server.shared_prefix`).
    shared_prefix: String,
    seats: Arc<InstanceSeats>,
    host: Arc<InferletHost>,
    _epoch: EpochTicker,
}

impl Runtime {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        config.validate()?;
        let models = ModelRegistry::from_config(config);
        let mut engine_config = EngineConfig::new();
        engine_config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Inferlets use no component-model async; without it host calls are cheaper.
            .concurrency_support(false);
        let engine = Engine::new(&engine_config).map_err(|e| anyhow::anyhow!("creating the wasmtime engine: {e:#}"))?;
        let mut linker = Linker::new(&engine);
        crate::api::add_to_linker(&mut linker, InstanceState::inferlet_view).map_err(|e| anyhow::anyhow!("linking the host interfaces: {e:#}"))?;
        let components = Arc::new(ComponentCache::new(&engine, config.cache_dir()));
        let programs = Arc::new(ProgramCache::new(&engine, components.clone()));
        let providers = crate::providers::Providers::new(&engine, components, config);
        Ok(Self {
            programs,
            _epoch: EpochTicker::start(&engine),
            engine,
            linker,
            limits: config.limits.clone(),
            outbound: Arc::new(config.outbound.policy()?),
            shared_prefix: config.server.shared_prefix.clone(),
            seats: InstanceSeats::new(config.limits.max_instances),
            host: Arc::new(InferletHost {
                version: crate::VERSION.to_string(),
                models,
                providers,
                bus: Default::default(),
                owners: Default::default(),
            }),
        })
    }

    /// Compiles (or takes from the cache) and links a component.
    pub fn load_program(&self, bytes: &[u8]) -> Result<Arc<Program>, ProgramError> {
        self.programs.load(bytes, &self.linker, &|b| self.host.providers.compose(b))
    }

    pub fn load_program_file(&self, path: &Path) -> Result<Arc<Program>, ProgramError> {
        let bytes = std::fs::read(path).map_err(|source| ProgramError::Read { path: path.into(), source })?;
        self.load_program(&bytes)
    }

    /// The models inferlets can use, in order.
    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    pub fn models(&self) -> &ModelRegistry {
        &self.host.models
    }

    /// The tokenize provider (started on first use), for the host's own commands.
    pub async fn tokenize_provider(&self) -> Result<Arc<crate::providers::tokenize::TokenizeProvider>, crate::providers::ProviderError> {
        self.host.tokenize_provider().await
    }

    /// Joins the owner `name`, as a server user's instances do
    /// (`Launch::owner`): while the handle is held, the owner's exports stay
    /// as if one of its instances ran.
    pub fn owner(&self, name: &str) -> Arc<crate::engine::owner::Owner> {
        self.host.owners.join(name)
    }

    /// Instances alive right now.
    pub fn live_instances(&self) -> usize {
        self.seats.live()
    }
}

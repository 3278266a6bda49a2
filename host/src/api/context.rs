//! What the `inferlet:core` interfaces work on, in the shape of wasmtime's
//! `crates/wasi`: a context per instance and a view (`{ctx, table}`) the
//! runtime hands out from the instance's store. The api never sees the store.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{HasData, ResourceTable};

use crate::engine::holdings::{Holdings, Quotas};
use crate::engine::owner::{Owner, Owners};
use crate::engine::service::ModelService;
use crate::engine::service::Priority;
use crate::messaging::{Bus, ClientLink};
use crate::models::ModelRegistry;
use crate::providers::ProviderError;
use crate::providers::Providers;
use crate::providers::kvs::KvsProvider;
use crate::providers::tokenize::TokenizeProvider;

/// Host-wide state every instance can read.
pub struct InferletHost {
    pub version: String,
    pub models: ModelRegistry,
    pub providers: Providers,
    /// Topics and subscribers of `message.broadcast`/`subscribe`.
    pub bus: Bus,
    /// Whom the running instances act for.
    pub owners: Owners,
}

impl InferletHost {
    pub async fn tokenize_provider(&self) -> Result<Arc<TokenizeProvider>, ProviderError> {
        self.providers.tokenize().await
    }

    pub async fn kvs_provider(&self) -> Result<Arc<KvsProvider>, ProviderError> {
        self.providers.kvs().await
    }
}

/// Per-instance state behind the `inferlet:core` interfaces.
pub struct InferletCtx {
    pub id: String,
    pub arguments: Vec<String>,
    pub return_value: Option<String>,
    pub host: Arc<InferletHost>,
    /// Whom the instance acts for (a server user, or itself): owners take
    /// turns on the GPU, and an instance's exports are charged to its owner.
    pub owner: Arc<Owner>,
    /// What the instance holds on each model it opened a queue on, by service id.
    pub holdings: HashMap<u32, Holdings>,
    /// KV pages and embedding slots one instance may hold, and passes it may queue, per model.
    pub quotas: Quotas,
    /// The longest `crust:host/exports.keep-export` keeps an export.
    pub export_ttl_cap: std::time::Duration,
    /// The highest priority its queues may take (`queue.set-priority` is capped to it).
    pub max_priority: Priority,
    /// Topic subscriptions its owner's instances may hold together.
    pub subscriptions_per_owner: usize,
    /// Where its export names and topics live (see `Launch::namespace`).
    pub namespace: crate::engine::namespace::Namespace,
    /// Where its kvs keys live, and what its user may keep there.
    pub kvs: super::KvsScope,
    pub client: ClientLink,
    /// What the host keeps for the instance outside its linear memory.
    pub host_memory: super::HostMemory,
}

impl InferletCtx {
    /// The instance's holdings on the model behind `service`, made on first use.
    pub(crate) fn holdings_on(&mut self, service_id: u32, service: &Arc<ModelService>) -> &mut Holdings {
        let (owner, quotas, scope) = (&self.owner, self.quotas, &self.namespace);
        self.holdings.entry(service_id).or_insert_with(|| Holdings::new(service.clone(), owner.clone(), quotas, scope.clone()))
    }
}

/// What every host function of the api borrows: the instance's context and
/// its resource table.
pub struct InferletView<'a> {
    pub ctx: &'a mut InferletCtx,
    pub table: &'a mut ResourceTable,
}

/// Marks [`InferletView`] as the data the generated `add_to_linker`s hand out.
pub struct HasInferlet;

impl HasData for HasInferlet {
    type Data<'a> = InferletView<'a>;
}

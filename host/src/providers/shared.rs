//! Long-lived provider instances that the host forwards calls to, each in its
//! own store: a pool of one for a provider whose state must be single (kvs),
//! of several where calls are independent (tokenize), so that callers on
//! different members do not wait for each other. Calls to one member are
//! serialized; a call that traps fails only its caller, and that member's
//! next call gets a fresh instance (the old one may be poisoned).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtx;

use super::{ProviderError, ProviderState};

/// A provider's WASI context: stderr to the host's, and `dir` preopened as `guest`.
pub fn wasi_with_dir(dir: &std::path::Path, guest: &str, perms: wasmtime_wasi::FsPerms) -> Result<WasiCtx, ProviderError> {
    let mut wasi = WasiCtx::builder();
    wasi.inherit_stderr().preopened_dir(dir, guest, perms).map_err(|e| ProviderError::Unavailable(format!("preopening {}: {e}", dir.display())))?;
    Ok(wasi.build())
}

/// Typed exports of a provider world, as `bindgen!` generates them.
pub trait ProviderBindings: Sized + Send + 'static {
    fn instantiate(
        store: &mut Store<ProviderState>,
        component: &Component,
        linker: &Linker<ProviderState>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + Send;
}

/// A live instance; `generation` tells instances apart across replacements
/// and across the pool's members.
pub struct Live<B> {
    pub store: Store<ProviderState>,
    pub bindings: B,
    pub generation: u64,
}

pub struct SharedInstance<B> {
    name: &'static str,
    engine: Engine,
    component: Component,
    linker: Linker<ProviderState>,
    wasi: Box<dyn Fn() -> Result<WasiCtx, ProviderError> + Send + Sync>,
    /// The pool's members, each started on its first call.
    members: Vec<tokio::sync::Mutex<Option<Live<B>>>>,
    generations: AtomicU64,
    /// Where [`Self::pick`] starts looking.
    next: AtomicUsize,
}

impl<B: ProviderBindings> SharedInstance<B> {
    /// A pool of `size` members (at least one); `wasi` builds each
    /// instance's WASI context (its preopens, its stderr).
    pub fn new(
        name: &'static str,
        engine: &Engine,
        component: Component,
        linker: Linker<ProviderState>,
        size: usize,
        wasi: impl Fn() -> Result<WasiCtx, ProviderError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            engine: engine.clone(),
            component,
            linker,
            wasi: Box::new(wasi),
            members: (0..size.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect(),
            generations: AtomicU64::new(0),
            next: AtomicUsize::new(0),
        }
    }

    /// A member for a new caller: the first idle one from a rotating start,
    /// else the next in turn.
    pub fn pick(&self) -> usize {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.members.len();
        (0..n).map(|i| (start + i) % n).find(|&m| self.members[m].try_lock().is_ok()).unwrap_or(start % n)
    }

    /// How many members the pool has.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// How many members hold a live instance.
    pub async fn live_members(&self) -> usize {
        let mut live = 0;
        for member in &self.members {
            live += usize::from(member.lock().await.is_some());
        }
        live
    }

    async fn instantiate(&self) -> Result<Live<B>, ProviderError> {
        let wasi = (self.wasi)()?;
        let mut store = Store::new(&self.engine, ProviderState { wasi, table: Default::default() });
        store.epoch_deadline_async_yield_and_update(1);
        let bindings = B::instantiate(&mut store, &self.component, &self.linker)
            .await
            .map_err(|e| ProviderError::Start { provider: self.name, detail: format!("{e:#}") })?;
        Ok(Live { store, bindings, generation: self.generations.fetch_add(1, Ordering::Relaxed) })
    }

    /// Runs `call` on `member`'s instance, starting one if it has none.
    pub async fn call<T>(&self, member: usize, what: &str, call: impl AsyncFnOnce(&mut Live<B>) -> wasmtime::Result<T>) -> Result<T, ProviderError> {
        let mut live = self.members[member % self.members.len()].lock().await;
        if live.is_none() {
            *live = Some(self.instantiate().await?);
        }
        call(live.as_mut().unwrap()).await.map_err(|e| {
            *live = None;
            ProviderError::Call { provider: self.name, call: what.to_string(), detail: format!("{e:#}") }
        })
    }

    /// Runs `call` only on `member`'s instance of `generation`, if it still lives.
    pub async fn call_if_live(&self, member: usize, generation: u64, call: impl AsyncFnOnce(&mut Live<B>) -> wasmtime::Result<()>) {
        let mut live = self.members[member % self.members.len()].lock().await;
        if let Some(l) = live.as_mut().filter(|l| l.generation == generation)
            && call(l).await.is_err()
        {
            *live = None;
        }
    }
}

//! One run of a program: a fresh store, the instance, its entry point, and
//! how it ended.

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

use super::Runtime;
use std::sync::Arc;

use super::limits::{CpuMeter, LimitExceeded, MemoryLimiter};
use super::program::{EntryPoint, Program};
use super::state::InstanceState;
use crate::api::InferletCtx;
use crate::messaging::{ClientLink, OutputSink, Stream};

/// What a launch is given.
#[derive(Default)]
pub struct Launch {
    /// Exactly the arguments after `--`; no program name.
    pub arguments: Vec<String>,
    /// Where stdout and stderr go; dropped when `None`.
    pub output: Option<OutputSink>,
    /// Reported back through `runtime.get-instance-id`; a fresh UUID when `None`.
    pub instance_id: Option<String>,
    /// Messages from the client (`message.receive`); `None`: no client, `receive` gets nothing.
    pub inbox: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
    /// Blobs from the client (`message.receive-blob`); `None`: no client, `receive-blob` gets nothing.
    pub blobs: Option<tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>>,
    /// The namespace of the instance's export names and topics. `None`: the
    /// one every instance shares. `Some(name)`: one that only instances
    /// launched with the same name see — so that what a server user's
    /// instances export or publish no other user can read, replace or release.
    pub namespace: Option<String>,
    /// Whom the instance acts for: a server user's name, so that the user's
    /// instances share one owner (turns on the GPU, an export budget).
    /// `None`: the instance is its own owner.
    pub owner: Option<String>,
    /// In place of the runtime's `[limits]`: a server user's own settings.
    pub limits: Option<crate::config::UserLimits>,
}

/// How an instance failed. Every variant says what happened in words a user
/// can act on.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("{0}")]
    Limit(#[from] LimitExceeded),
    #[error("the inferlet failed: {0}")]
    Failed(String),
    #[error("the inferlet exited with status {0}")]
    Exit(i32),
    #[error("the inferlet trapped: {0}")]
    Trap(String),
    #[error("the inferlet could not be instantiated: {0}")]
    Instantiate(String),
}

impl Runtime {
    /// Runs `program` to completion. `Ok` carries the value given to
    /// `runtime.set-return`, if any.
    pub async fn run(&self, program: &Program, launch: Launch) -> Result<Option<String>, InstanceError> {
        let _seat = self.seats.take()?;
        let user_limits = launch.limits.unwrap_or_default();
        let mut store = self.new_store(program.hash, launch);
        let (wall_time, cpu) = self.limit_time(&mut store, user_limits);
        let ran = tokio::time::timeout(wall_time, cpu.meter(call_entry(&mut store, program))).await;
        let state = store.data_mut();
        match ran {
            // Blocked in the host past the deadline: the epoch callback never got to run.
            Err(_elapsed) => Err(LimitExceeded::WallTime(wall_time).into()),
            Ok(Ok(())) => Ok(state.inferlet.return_value.take()),
            Ok(Err(EntryError::Failed(text))) => Err(InstanceError::Failed(text)),
            Ok(Err(EntryError::Instantiate(e))) => Err(state.limiter.exceeded.take().map(Into::into).unwrap_or(InstanceError::Instantiate(e))),
            Ok(Err(EntryError::Trap(error))) => match classify_trap(state, error) {
                InstanceError::Exit(0) => Ok(state.inferlet.return_value.take()),
                error => Err(error),
            },
        }
    }

    /// Stops the instance once it has run for `limits.wall_time_secs`, or
    /// computed for `limits.cpu_time_secs` (checked at every epoch tick while
    /// it runs); returns the wall time and the meter its task must run under.
    pub(super) fn limit_time(&self, store: &mut Store<InstanceState>, user: crate::config::UserLimits) -> (std::time::Duration, Arc<CpuMeter>) {
        let wall_time = self.limits.wall_time();
        let cpu_time = user.cpu_time_secs.map_or(self.limits.cpu_time(), std::time::Duration::from_secs_f64);
        let deadline = Instant::now() + wall_time;
        let meter = CpuMeter::new();
        let cpu = meter.clone();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut store| {
            let limit = if Instant::now() >= deadline {
                LimitExceeded::WallTime(wall_time)
            } else if cpu.spent() > cpu_time {
                LimitExceeded::CpuTime(cpu_time)
            } else {
                // Yield so other instances and timers run while this one computes.
                return Ok(UpdateDeadline::Yield(1));
            };
            store.data_mut().time_exceeded = Some(limit.clone());
            Err(wasmtime::Error::new(limit))
        });
        (wall_time, meter)
    }

    pub(super) fn new_store(&self, program: blake3::Hash, launch: Launch) -> Store<InstanceState> {
        let mut wasi = WasiCtx::builder();
        // A WASI command sees the usual argv: a program name, then the arguments.
        wasi.arg("inferlet").args(&launch.arguments);
        if let Some(output) = &launch.output {
            wasi.stdout(output.pipe(Stream::Stdout)).stderr(output.pipe(Stream::Stderr));
        }
        let id = launch.instance_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let state = InstanceState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound: super::outbound::OutboundHooks::new(self.outbound.for_instance(launch.owner.as_deref(), &program.to_hex()), id.clone()),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(self.limits.memory_bytes()),
            time_exceeded: None,
            inferlet: InferletCtx {
                id: id.clone(),
                arguments: launch.arguments,
                return_value: None,
                host: self.host.clone(),
                owner: match &launch.owner {
                    Some(user) => self.host.owners.join(user),
                    None => crate::engine::owner::Owner::new(&id),
                },
                holdings: Default::default(),
                quotas: crate::engine::holdings::Quotas {
                    kv_pages: self.limits.kv_pages_per_instance,
                    embedding_slots: self.limits.embedding_slots_per_instance,
                    queued_passes: self.limits.queued_passes_per_instance,
                },
                max_priority: launch.limits.and_then(|l| l.max_priority).unwrap_or(self.limits.max_priority).into(),
                host_memory: crate::api::HostMemory::new(self.limits.host_memory_bytes()),
                export_ttl_cap: self.limits.export_ttl(),
                subscriptions_per_owner: self.limits.subscriptions_per_user,
                kvs: crate::api::KvsScope::new(
                    launch.namespace.as_deref().unwrap_or_default(),
                    &program,
                    self.limits.kvs_quota(launch.limits.unwrap_or_default()),
                ),
                namespace: crate::engine::namespace::Namespace::new(launch.namespace.unwrap_or_default(), &self.shared_prefix),
                client: ClientLink {
                    output: launch.output.clone(),
                    inbox: std::sync::Arc::new(tokio::sync::Mutex::new(launch.inbox.unwrap_or_else(no_client))),
                    blobs: std::sync::Arc::new(tokio::sync::Mutex::new(launch.blobs.unwrap_or_else(no_client))),
                },
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store
    }
}

/// No client: a closed channel, so receiving gets nothing at once.
fn no_client<T>() -> tokio::sync::mpsc::UnboundedReceiver<T> {
    tokio::sync::mpsc::unbounded_channel().1
}

enum EntryError {
    Instantiate(String),
    Failed(String),
    Trap(wasmtime::Error),
}

async fn call_entry(store: &mut Store<InstanceState>, program: &Program) -> Result<(), EntryError> {
    let instance = program.pre.instantiate_async(&mut *store).await.map_err(|e| EntryError::Instantiate(format!("{e:#}")))?;
    match program.entry {
        EntryPoint::InferletRun => {
            let run = instance
                .get_typed_func::<(), (Result<(), String>,)>(&mut *store, program.entry_func)
                .map_err(|e| EntryError::Instantiate(format!("`inferlet:core/run.run` has the wrong type: {e:#}")))?;
            let (result,) = run.call_async(&mut *store, ()).await.map_err(EntryError::Trap)?;
            result.map_err(EntryError::Failed)
        }
        EntryPoint::WasiCliRun => {
            let run = instance
                .get_typed_func::<(), (Result<(), ()>,)>(&mut *store, program.entry_func)
                .map_err(|e| EntryError::Instantiate(format!("`wasi:cli/run.run` has the wrong type: {e:#}")))?;
            let (result,) = run.call_async(&mut *store, ()).await.map_err(EntryError::Trap)?;
            result.map_err(|()| EntryError::Failed("`main` returned an error".into()))
        }
        EntryPoint::HttpHandler => {
            Err(EntryError::Failed("this inferlet serves HTTP (`wasi:http/incoming-handler`): launch it as a server instance".into()))
        }
    }
}

/// Names the limit behind a trap when one caused it; a plain `exit(0)` is success.
fn classify_trap(state: &mut InstanceState, error: wasmtime::Error) -> InstanceError {
    if let Some(limit) = state.time_exceeded.take().or_else(|| state.limiter.exceeded.take()) {
        return limit.into();
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return InstanceError::Exit(exit.0);
    }
    InstanceError::Trap(trap_message(&error))
}

/// The trap's cause and where it happened, without wasmtime's long backtrace.
fn trap_message(error: &wasmtime::Error) -> String {
    let cause = error.root_cause().to_string();
    let context: Vec<String> = error.chain().map(|e| e.to_string()).filter(|e| *e != cause).collect();
    // The innermost frame, when the component kept its function names.
    let frame =
        context.iter().find_map(|c| c.lines().find(|l| l.trim_start().starts_with("0:")).map(str::trim)).filter(|frame| !frame.contains("<unknown>"));
    match frame {
        Some(frame) => format!("{cause} (at {frame})"),
        None => cause,
    }
}

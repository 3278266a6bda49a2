//! What one instance may use: wall time, linear memory, and a seat among the
//! live instances. Each violation ends only that instance, with a message
//! that names the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use wasmtime::{Engine, ResourceLimiter};

/// How often the epoch advances: the granularity of wall-time checks, and how
/// often a busy guest yields to the executor.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Table growth past this many elements fails like an out-of-memory would.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LimitExceeded {
    #[error("wall-time limit of {0:?} exceeded (limits.wall_time_secs)")]
    WallTime(Duration),
    #[error("memory limit of {} MiB exceeded: the instance asked for {} MiB (limits.memory_mib)", .limit >> 20, .requested.div_ceil(1 << 20))]
    Memory { limit: usize, requested: usize },
    #[error("instance limit reached: {0} instances are already running (limits.max_instances)")]
    Instances(usize),
}

/// Caps an instance's linear memory; remembers that it did, because the guest
/// may turn the refusal into its own trap (a Rust guest aborts on OOM).
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    pub(crate) exceeded: Option<LimitExceeded>,
}

impl MemoryLimiter {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self { max_bytes, exceeded: None }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired <= self.max_bytes {
            return Ok(true);
        }
        let limit = LimitExceeded::Memory { limit: self.max_bytes, requested: desired };
        self.exceeded = Some(limit.clone());
        Err(wasmtime::Error::new(limit))
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Counts live instances against a cap.
pub(crate) struct InstanceSeats {
    live: AtomicUsize,
    max: usize,
}

/// A seat among the live instances, given back on drop.
pub(crate) struct Seat(Arc<InstanceSeats>);

impl InstanceSeats {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { live: AtomicUsize::new(0), max })
    }

    pub(crate) fn take(self: &Arc<Self>) -> Result<Seat, LimitExceeded> {
        self.live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1)).map_err(LimitExceeded::Instances)?;
        Ok(Seat(self.clone()))
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let flag = stop.clone();
        thread::Builder::new()
            .name("crust-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawning the epoch thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

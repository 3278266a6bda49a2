//! What one instance may use: wall time, linear memory, and a seat among the
//! live instances. Each violation ends only that instance, with a message
//! that names the limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use wasmtime::{Engine, ResourceLimiter};

/// How often the epoch advances: the granularity of wall-time checks, and how
/// often a busy guest yields to the executor.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Table growth past this many elements (all tables together) fails like an out-of-memory would.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LimitExceeded {
    #[error("wall-time limit of {0:?} exceeded (limits.wall_time_secs)")]
    WallTime(Duration),
    #[error(
        "CPU-time limit of {0:?} exceeded: the inferlet computed that long (limits.cpu_time_secs; waiting on the GPU, messages or I/O is not counted)"
    )]
    CpuTime(Duration),
    #[error("memory limit of {} MiB exceeded: the instance asked for {} MiB (limits.memory_mib)", .limit >> 20, .requested.div_ceil(1 << 20))]
    Memory { limit: usize, requested: usize },
    #[error("instance limit reached: {0} instances are already running (limits.max_instances)")]
    Instances(usize),
}

/// The CPU time an instance's task spends being polled — running its wasm,
/// or host code on its behalf. Time it spends waiting (on the GPU, a
/// message, I/O) is not counted: the task is not polled then.
pub(crate) struct CpuMeter {
    base: Instant,
    spent_nanos: AtomicU64,
    /// When the poll in progress began (nanoseconds after `base`, plus one); 0: none.
    polling_since: AtomicU64,
}

impl CpuMeter {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self { base: Instant::now(), spent_nanos: AtomicU64::new(0), polling_since: AtomicU64::new(0) })
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// CPU time so far, the poll in progress included.
    pub(crate) fn spent(&self) -> Duration {
        let since = self.polling_since.load(Ordering::Relaxed);
        let current = if since == 0 { 0 } else { self.now().saturating_sub(since - 1) };
        Duration::from_nanos(self.spent_nanos.load(Ordering::Relaxed) + current)
    }

    /// `future`, with the time spent polling it counted here.
    pub(crate) fn meter<F: Future>(self: &Arc<Self>, future: F) -> Metered<F> {
        Metered { inner: Box::pin(future), meter: self.clone() }
    }
}

pub(crate) struct Metered<F> {
    inner: Pin<Box<F>>,
    meter: Arc<CpuMeter>,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = self.meter.now();
        self.meter.polling_since.store(start + 1, Ordering::Relaxed);
        let polled = self.inner.as_mut().poll(cx);
        let meter = &self.meter;
        meter.polling_since.store(0, Ordering::Relaxed);
        meter.spent_nanos.fetch_add(meter.now() - start, Ordering::Relaxed);
        polled
    }
}

/// Caps an instance's linear memories and tables, all of them together (a
/// component may have many); remembers that it did, because the guest may
/// turn the refusal into its own trap (a Rust guest aborts on OOM).
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    /// Bytes of every linear memory so far (each growth reports its memory's size before and after).
    bytes: usize,
    /// Elements of every table so far.
    table_elements: usize,
    pub(crate) exceeded: Option<LimitExceeded>,
}

impl MemoryLimiter {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self { max_bytes, bytes: 0, table_elements: 0, exceeded: None }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.bytes.saturating_sub(current).saturating_add(desired);
        if total <= self.max_bytes {
            self.bytes = total;
            return Ok(true);
        }
        let limit = LimitExceeded::Memory { limit: self.max_bytes, requested: total };
        self.exceeded = Some(limit.clone());
        Err(wasmtime::Error::new(limit))
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.table_elements.saturating_sub(current).saturating_add(desired);
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limit_counts_every_memory_together() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap(), "memory A");
        assert!(limiter.memory_growing(0, 30, None).unwrap(), "memory B");
        assert!(limiter.memory_growing(30, 50, None).is_err(), "B to 50 makes 110 in all");
        assert_eq!(limiter.exceeded, Some(LimitExceeded::Memory { limit: 100, requested: 110 }));
        assert!(limiter.memory_growing(60, 70, None).unwrap(), "A to 70 makes 100 in all");
    }
}

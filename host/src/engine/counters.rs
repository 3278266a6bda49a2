//! What the engine asks of the GPU, counted where it asks: dispatches,
//! compute passes, submissions, bytes written to and read back from the
//! device, the CPU time to encode a step, the GPU's wait between one step's
//! readback and the next step's submission, and how many steps were recorded
//! while the one before them ran. On a real GPU a small
//! model is bound by these, not by bandwidth, so they are the evidence of
//! speed a CPU-only machine can give.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct GpuCounters {
    steps: AtomicU64,
    dispatches: AtomicU64,
    compute_passes: AtomicU64,
    submissions: AtomicU64,
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
    encode_nanos: AtomicU64,
    idle_nanos: AtomicU64,
    recorded_ahead: AtomicU64,
}

/// The counters at one moment; the difference of two is what happened between them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// Forward steps (batches) run.
    pub steps: u64,
    pub dispatches: u64,
    pub compute_passes: u64,
    pub submissions: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
    /// CPU time spent recording steps' commands.
    pub encode: Duration,
    /// From a step's readback to the next step's submission: the GPU waits on the host.
    pub idle: Duration,
    /// Steps whose commands were recorded while the step before them ran.
    pub recorded_ahead: u64,
}

impl GpuCounters {
    pub fn counts(&self) -> Counts {
        Counts {
            steps: self.steps.load(Relaxed),
            dispatches: self.dispatches.load(Relaxed),
            compute_passes: self.compute_passes.load(Relaxed),
            submissions: self.submissions.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
            encode: Duration::from_nanos(self.encode_nanos.load(Relaxed)),
            idle: Duration::from_nanos(self.idle_nanos.load(Relaxed)),
            recorded_ahead: self.recorded_ahead.load(Relaxed),
        }
    }

    pub(crate) fn submitted(&self, n: u64) {
        self.submissions.fetch_add(n, Relaxed);
    }

    pub(crate) fn wrote(&self, bytes: usize) {
        self.bytes_written.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn read(&self, bytes: usize) {
        self.bytes_read.fetch_add(bytes as u64, Relaxed);
    }

    /// One forward step: what it recorded, how long writing its inputs and
    /// recording took, how long the GPU had waited for it since the last
    /// step's readback, and whether it was recorded during the last step.
    pub(crate) fn step(&self, dispatches: u64, compute_passes: u64, encode: Duration, idle: Option<Duration>, recorded_ahead: bool) {
        self.steps.fetch_add(1, Relaxed);
        self.recorded_ahead.fetch_add(recorded_ahead as u64, Relaxed);
        self.dispatches.fetch_add(dispatches, Relaxed);
        self.compute_passes.fetch_add(compute_passes, Relaxed);
        self.encode_nanos.fetch_add(encode.as_nanos() as u64, Relaxed);
        if let Some(idle) = idle {
            self.idle_nanos.fetch_add(idle.as_nanos() as u64, Relaxed);
        }
    }
}

impl Counts {
    /// What happened since `earlier`.
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            steps: self.steps - earlier.steps,
            dispatches: self.dispatches - earlier.dispatches,
            compute_passes: self.compute_passes - earlier.compute_passes,
            submissions: self.submissions - earlier.submissions,
            bytes_written: self.bytes_written - earlier.bytes_written,
            bytes_read: self.bytes_read - earlier.bytes_read,
            encode: self.encode.saturating_sub(earlier.encode),
            idle: self.idle.saturating_sub(earlier.idle),
            recorded_ahead: self.recorded_ahead - earlier.recorded_ahead,
        }
    }

    /// One line: each count per step.
    pub fn per_step(&self) -> String {
        let n = self.steps.max(1) as f64;
        let per = |v: u64| v as f64 / n;
        format!(
            "{:.0} dispatches, {:.1} compute passes, {:.1} submissions, {:.1} KiB written, {:.1} KiB read, {:.0} µs encoding, {:.0} µs GPU idle before it, {:.0}% recorded ahead",
            per(self.dispatches),
            per(self.compute_passes),
            per(self.submissions),
            per(self.bytes_written) / 1024.0,
            per(self.bytes_read) / 1024.0,
            self.encode.as_secs_f64() * 1e6 / n,
            self.idle.as_secs_f64() * 1e6 / n,
            100.0 * per(self.recorded_ahead),
        )
    }
}

/// When the last step's readback landed, to measure the wait before the next one.
#[derive(Default)]
pub(crate) struct IdleClock(Option<Instant>);

impl IdleClock {
    /// Time since the last readback, if there was one.
    pub(crate) fn waited(&self) -> Option<Duration> {
        self.0.map(|t| t.elapsed())
    }

    pub(crate) fn read_back(&mut self) {
        self.0 = Some(Instant::now());
    }
}

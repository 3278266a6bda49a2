//! One model, served: the handle every instance shares. It sends jobs to the
//! model's scheduler thread (`scheduler.rs`) and holds the model's pools and
//! export names (`exports.rs`) behind one lock.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

use super::batch::{BatchError, Pass};
use super::check::{PassCost, PassLimits, check_pass};
use super::model::{Capacity, Llama};
use super::scheduler::{Job, QueuedPass, Runner, Scheduler, Submission};

use super::counters::GpuCounters;
pub use super::exports::{ExportError, Resources};
pub use super::pool::{ResourceKind, SharedPool};
pub use super::scheduler::{PassReply, Priority, ServiceStats, Submitter};

/// A loaded model behind its scheduler thread. Cheap to share in an `Arc`.
pub struct ModelService {
    pub name: String,
    /// What every pass is checked against.
    pub limits: PassLimits,
    pub capacity: Capacity,
    pub resources: Arc<Mutex<Resources>>,
    jobs: Mutex<mpsc::Sender<Job>>,
    pub stats: Arc<ServiceStats>,
}

impl ModelService {
    /// Serves `llama` on a thread of its own.
    pub fn start(name: &str, llama: Llama) -> Arc<Self> {
        let (capacity, vocab, gpu) = (llama.capacity, llama.config.vocab as u32, llama.counters.clone());
        Self::start_runner_counted(name, capacity, vocab, llama, gpu)
    }

    /// Serves whatever runs the batches (a fake runner in tests).
    pub fn start_runner(name: &str, capacity: Capacity, vocab: u32, runner: impl Runner) -> Arc<Self> {
        Self::start_runner_counted(name, capacity, vocab, runner, Arc::default())
    }

    /// `gpu`: where the runner counts what it asks of the GPU (`ServiceStats::gpu`).
    fn start_runner_counted(name: &str, capacity: Capacity, vocab: u32, runner: impl Runner, gpu: Arc<GpuCounters>) -> Arc<Self> {
        let limits = capacity.plan_limits(vocab);
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(ServiceStats { gpu, ..ServiceStats::default() });
        let service = Arc::new(Self {
            name: name.to_string(),
            limits,
            capacity,
            resources: Arc::new(Mutex::new(Resources::new(capacity.kv_pages, capacity.embedding_slots))),
            jobs: Mutex::new(tx),
            stats: stats.clone(),
        });
        let scheduler = Scheduler::new(runner, limits, stats, service.resources.clone());
        std::thread::Builder::new().name(format!("crust-engine-{name}")).spawn(move || scheduler.run(rx)).expect("spawning the engine thread");
        service
    }

    pub fn page_size(&self) -> u32 {
        self.limits.page_size
    }

    pub fn vocab(&self) -> u32 {
        self.limits.vocab
    }

    /// Checks and queues a pass addressed by pool ids; the receiver resolves
    /// when its batch has run (or at once, with what is wrong with it).
    pub fn submit(&self, pass: Pass) -> PassReply {
        match check_pass(&pass, &self.limits) {
            Ok(cost) => self.submit_checked(pass, cost, vec![], vec![], QueuedPass::uncounted(), Submitter::default()),
            Err(problem) => {
                let (reply, rx) = oneshot::channel();
                let _ = reply.send(Err(BatchError::Invalid { pass: 0, problem }));
                rx
            }
        }
    }

    /// Queues a pass `check_pass` accepted, after the page copies it needs;
    /// `holds` are the references it keeps until it has run.
    pub(crate) fn submit_checked(
        &self,
        pass: Pass,
        cost: PassCost,
        copies: Vec<(u32, u32)>,
        holds: Vec<(ResourceKind, u32)>,
        queued: QueuedPass,
        by: Submitter,
    ) -> PassReply {
        let (reply, rx) = oneshot::channel();
        self.stats.submitted_passes.fetch_add(1, Ordering::Relaxed);
        self.send(Job::Forward(Box::new(Submission { pass, cost, copies, holds, queued, by, reply })));
        rx
    }

    /// Zeroes ids just allocated before any later pass can read them.
    pub(crate) fn clear(&self, kind: ResourceKind, ids: Vec<u32>) {
        if !ids.is_empty() {
            self.send(Job::Clear { kind, ids });
        }
    }

    /// Copies a KV page's contents, after every pass already submitted.
    pub fn copy_page(&self, from: u32, to: u32) {
        self.send(Job::CopyPage { from, to });
    }

    /// Resolves once every pass submitted before it has run.
    pub fn barrier(&self) -> oneshot::Receiver<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Barrier { reply });
        rx
    }

    /// KV pages no instance or export holds (some may still be in use by
    /// passes queued before their holder let go).
    pub fn free_pages(&self) -> usize {
        self.resources.lock().unwrap().pool(ResourceKind::KvPage).unheld_count()
    }

    fn send(&self, job: Job) {
        // The thread only ends when the service is dropped.
        let _ = self.jobs.lock().unwrap().send(job);
    }
}

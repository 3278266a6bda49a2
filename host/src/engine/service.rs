//! One model, served: a thread that owns the GPU model and runs a batching
//! scheduler over the passes every instance submits, plus the reference-
//! counted KV pages and embedding slots those passes use.
//!
//! Scheduling: everything waiting when the GPU frees up goes into the next
//! batch (work-conserving), up to its capacity. When more waits than fits,
//! high priority goes first, but never ahead of an earlier pass of the same
//! owner: a pass sees the KV of every pass its owner submitted before it.
//! A page copy (copy-on-write) runs after every pass submitted before it; a
//! barrier resolves once every pass submitted before it has run.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

use super::batch::{BatchError, Output, Pass, PassResult};
use super::model::{Capacity, Llama};
use super::plan::PlanLimits;
use super::pool::{IdPool, PoolExhausted};

/// Ids (KV pages or embedding slots) held by reference count: an id goes back
/// to the pool when its last holder lets go.
pub struct SharedPool {
    pool: IdPool,
    refs: Vec<u32>,
}

impl SharedPool {
    pub fn new(what: &'static str, capacity: u32) -> Self {
        Self { pool: IdPool::new(what, capacity), refs: vec![0; capacity as usize] }
    }

    pub fn allocate(&mut self, n: usize) -> Result<Vec<u32>, PoolExhausted> {
        let ids = self.pool.allocate(n)?;
        ids.iter().for_each(|&id| self.refs[id as usize] = 1);
        Ok(ids)
    }

    pub fn retain(&mut self, id: u32) {
        self.refs[id as usize] += 1;
    }

    pub fn release(&mut self, id: u32) {
        let refs = &mut self.refs[id as usize];
        *refs -= 1;
        if *refs == 0 {
            self.pool.release(&[id]);
        }
    }

    /// Held by more than one holder: a writer must copy it first.
    pub fn is_shared(&self, id: u32) -> bool {
        self.refs[id as usize] > 1
    }

    pub fn free_count(&self) -> usize {
        self.pool.free_count()
    }

    pub fn capacity(&self) -> u32 {
        self.pool.capacity()
    }
}

/// The two kinds of resources an inferlet allocates (`resource-type` 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    KvPage = 0,
    EmbeddingSlot = 1,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 2] = [ResourceKind::KvPage, ResourceKind::EmbeddingSlot];
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExportError {
    #[error("the export name `{0}` is already in use")]
    NameInUse(String),
}

/// A model's pools and the names its shared resources are exported under.
/// Each export name holds one reference to every id it names. Names live in
/// scopes: an instance sees only its own scope's (`""`, the one every
/// instance shares, unless its launcher gave it another).
pub struct Resources {
    pools: [SharedPool; 2],
    exports: [BTreeMap<(String, String), Vec<u32>>; 2],
}

impl Resources {
    pub fn new(kv_pages: u32, embedding_slots: u32) -> Self {
        Self {
            pools: [SharedPool::new("KV pages", kv_pages), SharedPool::new("embedding slots", embedding_slots)],
            exports: Default::default(),
        }
    }

    pub fn pool(&mut self, kind: ResourceKind) -> &mut SharedPool {
        &mut self.pools[kind as usize]
    }

    pub fn export(&mut self, kind: ResourceKind, scope: &str, name: &str, ids: &[u32]) -> Result<(), ExportError> {
        let (k, key) = (kind as usize, (scope.to_string(), name.to_string()));
        if self.exports[k].contains_key(&key) {
            return Err(ExportError::NameInUse(name.into()));
        }
        ids.iter().for_each(|&id| self.pools[k].retain(id));
        self.exports[k].insert(key, ids.to_vec());
        Ok(())
    }

    /// The exported ids, each now with one more holder (the importer); none
    /// if nothing is exported under `name`. Another instance may release a
    /// name at any moment, so its absence is an answer, not a fault: a cache
    /// shared by instances could not otherwise import without a race.
    pub fn import(&mut self, kind: ResourceKind, scope: &str, name: &str) -> Vec<u32> {
        let k = kind as usize;
        let ids = self.exports[k].get(&(scope.to_string(), name.to_string())).cloned().unwrap_or_default();
        ids.iter().for_each(|&id| self.pools[k].retain(id));
        ids
    }

    /// Drops the name's references; releasing a name that is not exported
    /// (another instance released it first) does nothing, for the same reason.
    pub fn release_export(&mut self, kind: ResourceKind, scope: &str, name: &str) {
        let k = kind as usize;
        let ids = self.exports[k].remove(&(scope.to_string(), name.to_string())).unwrap_or_default();
        ids.iter().for_each(|&id| self.pools[k].release(id));
    }

    /// A scope's export names with how many ids each holds.
    pub fn exports(&self, kind: ResourceKind, scope: &str) -> Vec<(String, u32)> {
        self.exports[kind as usize]
            .iter()
            .filter(|((s, _), _)| s == scope)
            .map(|((_, name), ids)| (name.clone(), ids.len() as u32))
            .collect()
    }
}

/// Who submitted a pass, and how urgent it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Submitter {
    /// Passes of one owner (an instance) keep their submission order.
    pub owner: u64,
    pub priority: Priority,
}

pub type PassReply = oneshot::Receiver<Result<PassResult, BatchError>>;

enum Job {
    Forward { pass: Pass, by: Submitter, reply: oneshot::Sender<Result<PassResult, BatchError>> },
    CopyPage { from: u32, to: u32 },
    Barrier { reply: oneshot::Sender<()> },
}

/// What the scheduler has done so far (how much batching happened).
#[derive(Default)]
pub struct ServiceStats {
    /// Passes submitted; those not yet in a batch are waiting.
    pub submitted_passes: AtomicU64,
    pub batches: AtomicU64,
    pub batched_passes: AtomicU64,
    pub batched_tokens: AtomicU64,
    /// Time spent running batches on the GPU (submission to results), in nanoseconds.
    pub busy_nanos: AtomicU64,
}

/// A loaded model behind its scheduler thread. Cheap to share in an `Arc`.
pub struct ModelService {
    pub name: String,
    pub page_size: u32,
    pub vocab: u32,
    pub limits: PlanLimits,
    pub capacity: Capacity,
    pub resources: Mutex<Resources>,
    jobs: Mutex<mpsc::Sender<Job>>,
    pub stats: Arc<ServiceStats>,
}

impl ModelService {
    pub fn start(name: &str, llama: Llama) -> Arc<Self> {
        let capacity = llama.capacity;
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(ServiceStats::default());
        let service = Arc::new(Self {
            name: name.to_string(),
            page_size: capacity.page_size,
            vocab: llama.config.vocab as u32,
            limits: llama.plan_limits(),
            capacity,
            resources: Mutex::new(Resources::new(capacity.kv_pages, capacity.embedding_slots)),
            jobs: Mutex::new(tx),
            stats: stats.clone(),
        });
        std::thread::Builder::new()
            .name(format!("crust-engine-{name}"))
            .spawn(move || Scheduler::new(llama, stats).run(rx))
            .expect("spawning the engine thread");
        service
    }

    /// Queues a pass; the receiver resolves when its batch has run.
    pub fn submit(&self, pass: Pass) -> PassReply {
        self.submit_by(pass, Submitter::default())
    }

    pub fn submit_by(&self, pass: Pass, by: Submitter) -> PassReply {
        let (reply, rx) = oneshot::channel();
        self.stats.submitted_passes.fetch_add(1, Ordering::Relaxed);
        self.send(Job::Forward { pass, by, reply });
        rx
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

    /// KV pages not held by anyone.
    pub fn free_pages(&self) -> usize {
        self.resources.lock().unwrap().pool(ResourceKind::KvPage).free_count()
    }

    fn send(&self, job: Job) {
        // The thread only ends when the service is dropped.
        let _ = self.jobs.lock().unwrap().send(job);
    }
}

struct Waiting {
    seq: u64,
    pass: Pass,
    by: Submitter,
    reply: oneshot::Sender<Result<PassResult, BatchError>>,
}

struct Scheduler {
    llama: Llama,
    stats: Arc<ServiceStats>,
    waiting: VecDeque<Waiting>,
    /// Barriers with the sequence number they wait behind.
    barriers: Vec<(u64, oneshot::Sender<()>)>,
    next_seq: u64,
}

impl Scheduler {
    fn new(llama: Llama, stats: Arc<ServiceStats>) -> Self {
        Self { llama, stats, waiting: VecDeque::new(), barriers: Vec::new(), next_seq: 0 }
    }

    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        loop {
            if self.waiting.is_empty() {
                // Idle: block for the next job.
                let Ok(job) = jobs.recv() else { return };
                self.accept(job);
            }
            while let Ok(job) = jobs.try_recv() {
                self.accept(job);
            }
            self.run_next_batch();
        }
    }

    fn accept(&mut self, job: Job) {
        let seq = self.next_seq;
        self.next_seq += 1;
        match job {
            Job::Forward { pass, by, reply } => self.waiting.push_back(Waiting { seq, pass, by, reply }),
            Job::CopyPage { from, to } => {
                // Everything before the copy runs first: it may write the source page.
                while !self.waiting.is_empty() {
                    self.run_next_batch();
                }
                self.llama.copy_kv_page(from, to);
            }
            Job::Barrier { reply } => {
                self.barriers.push((seq, reply));
                self.resolve_barriers();
            }
        }
    }

    /// Answers every barrier with nothing submitted before it still waiting.
    fn resolve_barriers(&mut self) {
        let oldest_waiting = self.waiting.iter().map(|w| w.seq).min().unwrap_or(u64::MAX);
        let (done, still): (Vec<_>, Vec<_>) = self.barriers.drain(..).partition(|(seq, _)| *seq < oldest_waiting);
        self.barriers = still;
        done.into_iter().for_each(|(_, reply)| { let _ = reply.send(()); });
    }

    fn run_next_batch(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let capacity = self.llama.capacity;
        let batch = take_batch(&mut self.waiting, capacity.batch_tokens as usize, capacity.batch_outputs as usize);
        let (passes, replies): (Vec<Pass>, Vec<_>) = batch.into_iter().map(|w| (w.pass, w.reply)).unzip();
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.batched_passes.fetch_add(passes.len() as u64, Ordering::Relaxed);
        self.stats.batched_tokens.fetch_add(passes.iter().map(|p| p.inputs.len() as u64).sum(), Ordering::Relaxed);
        tracing::debug!(passes = passes.len(), waiting = self.waiting.len(), "batch");
        let started = std::time::Instant::now();
        let ran = self.llama.forward(&passes);
        self.stats.busy_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match ran {
            Ok(results) => replies.into_iter().zip(results).for_each(|(reply, r)| drop(reply.send(Ok(r)))),
            // One bad pass must not fail its neighbours: run each alone to find it.
            Err(BatchError::Invalid { .. }) if passes.len() > 1 => {
                for (pass, reply) in passes.into_iter().zip(replies) {
                    let result = self.llama.forward(std::slice::from_ref(&pass)).map(|mut r| r.remove(0));
                    let _ = reply.send(result);
                }
            }
            Err(e) => replies.into_iter().for_each(|reply| drop(reply.send(Err(e.clone())))),
        }
        self.resolve_barriers();
    }
}

/// The next batch: high priority first, each owner's passes in order, up to
/// the batch's capacity (a pass too big for any batch goes alone, and the
/// engine names the problem). The rest stay waiting, in order.
fn take_batch(waiting: &mut VecDeque<Waiting>, batch_tokens: usize, batch_outputs: usize) -> Vec<Waiting> {
    let mut order: Vec<usize> = (0..waiting.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(waiting[i].by.priority)); // stable: FIFO within a priority
    let (mut tokens, mut outputs) = (0usize, 0usize);
    let mut chosen = vec![false; waiting.len()];
    let mut blocked: HashSet<u64> = HashSet::new();
    for i in order {
        let w = &waiting[i];
        if blocked.contains(&w.by.owner) {
            continue;
        }
        // An earlier pass of the same owner still waiting: this one waits too.
        if waiting.iter().take(i).enumerate().any(|(j, e)| !chosen[j] && e.by.owner == w.by.owner) {
            continue;
        }
        let (t, o) = tokens_and_outputs(&w.pass);
        if tokens > 0 && (tokens + t > batch_tokens || outputs + o > batch_outputs) {
            // Nothing later of this owner may overtake it.
            blocked.insert(w.by.owner);
            continue;
        }
        chosen[i] = true;
        tokens += t;
        outputs += o;
    }
    let mut batch = Vec::new();
    let mut rest = VecDeque::new();
    for (w, chosen) in waiting.drain(..).zip(chosen) {
        if chosen { batch.push(w) } else { rest.push_back(w) }
    }
    *waiting = rest;
    batch
}

fn tokens_and_outputs(pass: &Pass) -> (usize, usize) {
    let outputs = pass.outputs.iter().filter(|o| !matches!(o, Output::Embedding { .. })).count();
    (pass.inputs.len(), outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::batch::{Input, Sampler};

    fn waiting(seq: u64, owner: u64, priority: Priority, tokens: usize) -> Waiting {
        let pass = Pass {
            inputs: vec![Input::Token(1); tokens],
            outputs: vec![Output::Token { index: 0, sampler: Sampler::greedy() }],
            ..Pass::default()
        };
        Waiting { seq, pass, by: Submitter { owner, priority }, reply: oneshot::channel().0 }
    }

    fn seqs(batch: &[Waiting]) -> Vec<u64> {
        batch.iter().map(|w| w.seq).collect()
    }

    #[test]
    fn everything_that_fits_goes_in_submission_order() {
        let mut q: VecDeque<_> = (0..4).map(|i| waiting(i, i, Priority::Normal, 2)).collect();
        assert_eq!(seqs(&take_batch(&mut q, 100, 100)), [0, 1, 2, 3]);
        assert!(q.is_empty());
    }

    #[test]
    fn high_priority_goes_first_when_not_everything_fits() {
        let mut q: VecDeque<_> = [
            waiting(0, 1, Priority::Low, 4),
            waiting(1, 2, Priority::Normal, 4),
            waiting(2, 3, Priority::High, 4),
        ]
        .into();
        assert_eq!(seqs(&take_batch(&mut q, 8, 100)), [1, 2]);
        assert_eq!(seqs(&take_batch(&mut q, 8, 100)), [0]);
    }

    #[test]
    fn an_owners_passes_keep_their_order_whatever_their_priority() {
        // Owner 1's high-priority pass waits behind its own earlier low one.
        let mut q: VecDeque<_> = [
            waiting(0, 1, Priority::Low, 4),
            waiting(1, 2, Priority::Normal, 4),
            waiting(2, 1, Priority::High, 4),
        ]
        .into();
        assert_eq!(seqs(&take_batch(&mut q, 4, 100)), [1]);
        assert_eq!(seqs(&take_batch(&mut q, 4, 100)), [0]);
        assert_eq!(seqs(&take_batch(&mut q, 4, 100)), [2]);
    }

    #[test]
    fn a_pass_larger_than_a_batch_goes_alone() {
        let mut q: VecDeque<_> = [waiting(0, 1, Priority::Normal, 10), waiting(1, 2, Priority::Normal, 1)].into();
        assert_eq!(seqs(&take_batch(&mut q, 8, 100)), [0]);
        assert_eq!(seqs(&take_batch(&mut q, 8, 100)), [1]);
    }

    #[test]
    fn exports_hold_pages_until_released() {
        let mut r = Resources::new(4, 1);
        let ids = r.pool(ResourceKind::KvPage).allocate(2).unwrap();
        r.export(ResourceKind::KvPage, "", "p", &ids).unwrap();
        assert_eq!(r.export(ResourceKind::KvPage, "", "p", &ids), Err(ExportError::NameInUse("p".into())));
        ids.iter().for_each(|&id| r.pool(ResourceKind::KvPage).release(id));
        assert_eq!(r.pool(ResourceKind::KvPage).free_count(), 2, "the export still holds both");
        let imported = r.import(ResourceKind::KvPage, "", "p");
        assert!(r.pool(ResourceKind::KvPage).is_shared(imported[0]));
        r.release_export(ResourceKind::KvPage, "", "p");
        assert_eq!(r.exports(ResourceKind::KvPage, ""), vec![]);
        assert_eq!(r.import(ResourceKind::KvPage, "", "p"), Vec::<u32>::new(), "a released name imports nothing");
        r.release_export(ResourceKind::KvPage, "", "p");
        imported.iter().for_each(|&id| r.pool(ResourceKind::KvPage).release(id));
        assert_eq!(r.pool(ResourceKind::KvPage).free_count(), 4);
    }

    #[test]
    fn a_scope_sees_only_its_own_exports() {
        let mut r = Resources::new(4, 1);
        let ids = r.pool(ResourceKind::KvPage).allocate(1).unwrap();
        r.export(ResourceKind::KvPage, "openai/alice", "p", &ids).unwrap();
        assert_eq!(r.exports(ResourceKind::KvPage, ""), vec![]);
        assert_eq!(r.import(ResourceKind::KvPage, "", "p"), Vec::<u32>::new());
        r.release_export(ResourceKind::KvPage, "", "p");
        r.export(ResourceKind::KvPage, "", "p", &ids).unwrap();
        assert_eq!(r.exports(ResourceKind::KvPage, "openai/alice"), vec![("p".to_string(), 1)]);
        assert_eq!(r.import(ResourceKind::KvPage, "openai/alice", "p"), ids);
    }
}

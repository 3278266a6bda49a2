//! One model, served: a thread that owns the GPU model and runs a batching
//! scheduler over the passes every instance submits, plus the reference-
//! counted KV pages and embedding slots those passes use.
//!
//! Scheduling: passes run in submission order; everything waiting when the
//! GPU frees up goes into the next batch, up to its capacity (work-
//! conserving). A page copy (copy-on-write) is ordered with the passes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

use super::batch::{BatchError, Output, Pass, PassResult};
use super::model::Llama;
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

enum Job {
    Forward { pass: Pass, reply: oneshot::Sender<Result<PassResult, BatchError>> },
    CopyPage { from: u32, to: u32 },
}

/// A loaded model behind its scheduler thread. Cheap to share in an `Arc`.
pub struct ModelService {
    pub name: String,
    pub page_size: u32,
    pub vocab: u32,
    pub pages: Mutex<SharedPool>,
    pub slots: Mutex<SharedPool>,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Batches run so far, and the passes in them (how much batching happened).
    pub batches: Arc<AtomicU64>,
    pub batched_passes: Arc<AtomicU64>,
}

impl ModelService {
    pub fn start(name: &str, llama: Llama) -> Arc<Self> {
        let capacity = llama.capacity;
        let (tx, rx) = mpsc::channel();
        let batches = Arc::new(AtomicU64::new(0));
        let batched_passes = Arc::new(AtomicU64::new(0));
        let service = Arc::new(Self {
            name: name.to_string(),
            page_size: capacity.page_size,
            vocab: llama.config.vocab as u32,
            pages: Mutex::new(SharedPool::new("KV pages", capacity.kv_pages)),
            slots: Mutex::new(SharedPool::new("embedding slots", capacity.embedding_slots)),
            jobs: Mutex::new(tx),
            batches: batches.clone(),
            batched_passes: batched_passes.clone(),
        });
        std::thread::Builder::new()
            .name(format!("crust-engine-{name}"))
            .spawn(move || schedule(llama, rx, &batches, &batched_passes))
            .expect("spawning the engine thread");
        service
    }

    /// Queues a pass; the receiver resolves when its batch has run.
    pub fn submit(&self, pass: Pass) -> oneshot::Receiver<Result<PassResult, BatchError>> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Forward { pass, reply });
        rx
    }

    /// Copies a KV page's contents, after every pass already submitted.
    pub fn copy_page(&self, from: u32, to: u32) {
        self.send(Job::CopyPage { from, to });
    }

    fn send(&self, job: Job) {
        // The thread only ends when the service is dropped.
        let _ = self.jobs.lock().unwrap().send(job);
    }
}

fn tokens_and_outputs(pass: &Pass) -> (usize, usize) {
    let outputs = pass.outputs.iter().filter(|o| !matches!(o, Output::Embedding { .. })).count();
    (pass.inputs.len(), outputs)
}

type Waiting = Vec<(Pass, oneshot::Sender<Result<PassResult, BatchError>>)>;

fn schedule(mut llama: Llama, jobs: mpsc::Receiver<Job>, batches: &AtomicU64, batched_passes: &AtomicU64) {
    let capacity = llama.capacity;
    let mut pending: Waiting = Vec::new();
    // Block for the first job, then take everything else already waiting.
    while let Ok(first) = jobs.recv() {
        let (mut tokens, mut outputs) = (0usize, 0usize);
        for job in std::iter::once(first).chain(std::iter::from_fn(|| jobs.try_recv().ok())) {
            match job {
                Job::CopyPage { from, to } => {
                    run_batch(&mut llama, &mut pending, batches, batched_passes);
                    (tokens, outputs) = (0, 0);
                    llama.copy_kv_page(from, to);
                }
                Job::Forward { pass, reply } => {
                    let (t, o) = tokens_and_outputs(&pass);
                    if !pending.is_empty() && (tokens + t > capacity.batch_tokens as usize || outputs + o > capacity.batch_outputs as usize) {
                        run_batch(&mut llama, &mut pending, batches, batched_passes);
                        (tokens, outputs) = (0, 0);
                    }
                    tokens += t;
                    outputs += o;
                    pending.push((pass, reply));
                }
            }
        }
        run_batch(&mut llama, &mut pending, batches, batched_passes);
    }
}

fn run_batch(llama: &mut Llama, pending: &mut Waiting, batches: &AtomicU64, batched_passes: &AtomicU64) {
    if pending.is_empty() {
        return;
    }
    let (passes, replies): (Vec<Pass>, Vec<_>) = pending.drain(..).unzip();
    batches.fetch_add(1, Ordering::Relaxed);
    batched_passes.fetch_add(passes.len() as u64, Ordering::Relaxed);
    tracing::debug!(passes = passes.len(), "batch");
    match llama.forward(&passes) {
        Ok(results) => replies.into_iter().zip(results).for_each(|(reply, r)| drop(reply.send(Ok(r)))),
        // One bad pass must not fail its neighbours: run each alone to find it.
        Err(BatchError::Invalid { .. }) if passes.len() > 1 => {
            for (pass, reply) in passes.into_iter().zip(replies) {
                let result = llama.forward(std::slice::from_ref(&pass)).map(|mut r| r.remove(0));
                let _ = reply.send(result);
            }
        }
        Err(e) => replies.into_iter().for_each(|reply| drop(reply.send(Err(e.clone())))),
    }
}

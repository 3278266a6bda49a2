//! The batching scheduler of one model: it owns whatever runs batches (the
//! GPU model, or a fake in tests) and decides what runs next.
//!
//! Everything waiting when the runner frees up goes into the next batch
//! (work-conserving), up to the batch's room in every dimension a batch has
//! (`PassCost`). When more waits than fits, high priority goes first, but
//! never ahead of an earlier pass of the same instance: a pass sees the KV of
//! every pass its instance submitted before it. A page copy (copy-on-write) runs
//! after every pass submitted before it; a barrier resolves once every pass
//! submitted before it has run. A batch that fails (or panics the runner) is
//! retried pass by pass, so only the pass at fault fails, and the engine goes
//! on. KV pages and embedding slots reach a new holder cleared, and a pass
//! keeps a reference to every page and slot it uses until it has run, so
//! nothing is freed (or handed out again) under a queued pass.

use std::collections::{HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

use super::batch::{BatchError, Pass, PassResult};
use super::check::{PassCost, PassLimits};
use super::exports::Resources;
use super::pool::ResourceKind;

/// What runs batches: the GPU model, or a fake in the scheduler's tests.
pub trait Runner: Send + 'static {
    /// Runs the passes as one batch; a result per pass, in order.
    fn forward(&mut self, passes: &[Pass]) -> Result<Vec<PassResult>, BatchError>;
    /// Copies one KV page's contents onto another.
    fn copy_page(&mut self, from: u32, to: u32);
    /// Zeroes KV pages or embedding slots, so a new holder reads nothing of the last one's.
    fn clear(&mut self, kind: ResourceKind, ids: &[u32]);
}

impl Runner for super::model::Llama {
    fn forward(&mut self, passes: &[Pass]) -> Result<Vec<PassResult>, BatchError> {
        super::model::Llama::forward(self, passes)
    }

    fn copy_page(&mut self, from: u32, to: u32) {
        self.copy_kv_page(from, to);
    }

    fn clear(&mut self, kind: ResourceKind, ids: &[u32]) {
        match kind {
            ResourceKind::KvPage => self.clear_kv_pages(ids),
            ResourceKind::EmbeddingSlot => self.clear_embedding_slots(ids),
        }
    }
}

/// How urgent a queue's passes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

/// A fresh id for an owner or an instance, unique per process.
pub fn next_owner() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Who submitted a pass, and how urgent it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Submitter {
    /// Owners take turns (a server user's instances are one owner).
    pub owner: u64,
    /// Passes of one instance keep their submission order.
    pub instance: u64,
    pub priority: Priority,
}

pub type PassReply = oneshot::Receiver<Result<PassResult, BatchError>>;

/// An amount counted in a shared counter until this is dropped.
pub struct Held {
    counter: Arc<AtomicUsize>,
    amount: usize,
}

impl Held {
    pub fn add(counter: &Arc<AtomicUsize>, amount: usize) -> Self {
        counter.fetch_add(amount, Ordering::Relaxed);
        Self::counted(counter, amount)
    }

    /// For an amount the counter already holds.
    pub fn counted(counter: &Arc<AtomicUsize>, amount: usize) -> Self {
        Self { counter: counter.clone(), amount }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.amount, Ordering::Relaxed);
    }
}

/// What a pass counts against its instance until it has run (or is
/// dropped): one of its queued passes, and the host memory its inputs take.
#[derive(Default)]
pub struct QueuedPass {
    pub count: Option<Held>,
    pub bytes: Option<Held>,
}

impl QueuedPass {
    /// For passes no instance counts (the host's own, tests).
    pub fn uncounted() -> Self {
        Self::default()
    }
}

/// A checked pass on its way to a batch.
pub struct Submission {
    pub pass: Pass,
    pub cost: PassCost,
    /// Page copies (from, to) that must run before it: its copy-on-write.
    pub copies: Vec<(u32, u32)>,
    /// Pool ids the pass holds a reference to until it has run.
    pub holds: Vec<(ResourceKind, u32)>,
    pub queued: QueuedPass,
    pub by: Submitter,
    pub reply: oneshot::Sender<Result<PassResult, BatchError>>,
}

pub enum Job {
    Forward(Box<Submission>),
    CopyPage {
        from: u32,
        to: u32,
    },
    /// Ids just allocated: cleared before any later pass or copy runs.
    Clear {
        kind: ResourceKind,
        ids: Vec<u32>,
    },
    Barrier {
        reply: oneshot::Sender<()>,
    },
}

/// What the scheduler has done so far (how much batching happened).
#[derive(Default)]
pub struct ServiceStats {
    /// Passes submitted; those not yet in a batch are waiting.
    pub submitted_passes: AtomicU64,
    pub batches: AtomicU64,
    pub batched_passes: AtomicU64,
    pub batched_tokens: AtomicU64,
    /// Time spent running batches (submission to results), in nanoseconds.
    pub busy_nanos: AtomicU64,
    /// Times the runner panicked; each time the passes involved failed and the engine went on.
    pub engine_restarts: AtomicU64,
    /// What the runner asked of the GPU.
    pub gpu: Arc<super::counters::GpuCounters>,
}

struct Waiting {
    seq: u64,
    pass: Pass,
    cost: PassCost,
    holds: Vec<(ResourceKind, u32)>,
    _queued: QueuedPass,
    by: Submitter,
    reply: oneshot::Sender<Result<PassResult, BatchError>>,
}

pub struct Scheduler<R: Runner> {
    runner: R,
    limits: PassLimits,
    stats: Arc<ServiceStats>,
    /// Where the references a pass holds go back when it has run.
    resources: Arc<Mutex<Resources>>,
    /// Ids allocated since the last batch, per kind, still to be cleared.
    to_clear: [Vec<u32>; 2],
    waiting: VecDeque<Waiting>,
    /// Barriers with the sequence number they wait behind.
    barriers: Vec<(u64, oneshot::Sender<()>)>,
    next_seq: u64,
}

impl<R: Runner> Scheduler<R> {
    pub fn new(runner: R, limits: PassLimits, stats: Arc<ServiceStats>, resources: Arc<Mutex<Resources>>) -> Self {
        let to_clear = Default::default();
        Self { runner, limits, stats, resources, to_clear, waiting: VecDeque::new(), barriers: Vec::new(), next_seq: 0 }
    }

    /// Runs jobs until every sender is gone.
    pub fn run(mut self, jobs: mpsc::Receiver<Job>) {
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
            Job::Forward(submission) => {
                let Submission { pass, cost, copies, holds, queued, by, reply } = *submission;
                for (from, to) in copies {
                    self.copy_page(from, to);
                }
                self.waiting.push_back(Waiting { seq, pass, cost, holds, _queued: queued, by, reply });
            }
            Job::CopyPage { from, to } => self.copy_page(from, to),
            // No queued pass holds a freed id, so clearing can wait for the next batch.
            Job::Clear { kind, ids } => self.to_clear[kind as usize].extend(ids),
            Job::Barrier { reply } => {
                self.barriers.push((seq, reply));
                self.resolve_barriers();
            }
        }
    }

    /// Everything before the copy runs first: it may write the source page.
    fn copy_page(&mut self, from: u32, to: u32) {
        while !self.waiting.is_empty() {
            self.run_next_batch();
        }
        self.clear_allocated();
        // A failure is logged and counted there; the pass after it still runs.
        let _ = self.supervised(|runner| runner.copy_page(from, to));
    }

    fn clear_allocated(&mut self) {
        for kind in ResourceKind::ALL {
            let ids = std::mem::take(&mut self.to_clear[kind as usize]);
            if !ids.is_empty() {
                let _ = self.supervised(|runner| runner.clear(kind, &ids));
            }
        }
    }

    /// Runs `work` on the runner; a panic is logged and counted, not fatal.
    fn supervised<T>(&mut self, work: impl FnOnce(&mut R) -> T) -> Result<T, BatchError> {
        let runner = &mut self.runner;
        catch_unwind(AssertUnwindSafe(|| work(runner))).map_err(|panic| {
            let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            let what = what.unwrap_or_else(|| "a panic".into());
            tracing::error!("the engine panicked ({what}); the passes involved fail and the engine goes on");
            self.stats.engine_restarts.fetch_add(1, Ordering::Relaxed);
            BatchError::Gpu(format!("the engine failed on this pass ({what})"))
        })
    }

    /// Gives back the references a pass held.
    fn release(&self, holds: Vec<(ResourceKind, u32)>) {
        if holds.is_empty() {
            return;
        }
        let mut resources = self.resources.lock().unwrap();
        for (kind, id) in holds {
            resources.pool(kind).release_from_pass(id);
        }
    }

    /// Answers every barrier with nothing submitted before it still waiting.
    fn resolve_barriers(&mut self) {
        let oldest_waiting = self.waiting.iter().map(|w| w.seq).min().unwrap_or(u64::MAX);
        let (done, still): (Vec<_>, Vec<_>) = self.barriers.drain(..).partition(|(seq, _)| *seq < oldest_waiting);
        self.barriers = still;
        for (_, reply) in done {
            let _ = reply.send(());
        }
    }

    fn run_next_batch(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        self.clear_allocated();
        let batch = take_batch(&mut self.waiting, &self.limits);
        let mut passes = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut holds = Vec::new();
        for w in batch {
            passes.push(w.pass);
            replies.push(w.reply);
            holds.extend(w.holds);
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.batched_passes.fetch_add(passes.len() as u64, Ordering::Relaxed);
        self.stats.batched_tokens.fetch_add(passes.iter().map(|p| p.inputs.len() as u64).sum(), Ordering::Relaxed);
        tracing::debug!(passes = passes.len(), waiting = self.waiting.len(), "batch");
        let started = std::time::Instant::now();
        let ran = self.supervised(|runner| runner.forward(&passes)).and_then(|ran| ran);
        self.stats.busy_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match ran {
            Ok(results) => replies.into_iter().zip(results).for_each(|(reply, r)| drop(reply.send(Ok(r)))),
            // One bad pass must not fail its neighbours: run each alone to find it.
            Err(e) if passes.len() > 1 => {
                tracing::warn!("a batch of {} passes failed ({e}); running them one by one", passes.len());
                for (pass, reply) in passes.into_iter().zip(replies) {
                    let alone = self.supervised(|runner| runner.forward(std::slice::from_ref(&pass))).and_then(|ran| ran);
                    let _ = reply.send(alone.map(|mut r| r.remove(0)));
                }
            }
            Err(e) => replies.into_iter().for_each(|reply| drop(reply.send(Err(e.clone())))),
        }
        self.release(holds);
        self.resolve_barriers();
    }
}

/// The next batch: high priority first; within a priority, round-robin
/// across owners (every owner's first waiting pass, then every owner's
/// second, …, so one owner's flood — or its many instances — cannot crowd
/// out the rest); each instance's passes in order; as many as fit the batch's room in every dimension (the
/// first always goes: every pass was checked to fit a batch alone). The rest
/// stay waiting, in order.
fn take_batch(waiting: &mut VecDeque<Waiting>, limits: &PassLimits) -> Vec<Waiting> {
    let mut turns: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    let turn: Vec<usize> = waiting
        .iter()
        .map(|w| {
            let n = turns.entry(w.by.owner).or_default();
            *n += 1;
            *n - 1
        })
        .collect();
    let mut order: Vec<usize> = (0..waiting.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(waiting[i].by.priority), turn[i])); // stable: FIFO within a turn
    let mut used = PassCost::default();
    let mut chosen = vec![false; waiting.len()];
    let mut blocked: HashSet<u64> = HashSet::new();
    for i in order {
        let w = &waiting[i];
        if blocked.contains(&w.by.instance) {
            continue;
        }
        // An earlier pass of the same instance still waiting: this one waits too.
        if waiting.iter().take(i).enumerate().any(|(j, e)| !chosen[j] && e.by.instance == w.by.instance) {
            continue;
        }
        let with = used.plus(w.cost);
        if used.tokens > 0 && !with.fits(limits) {
            // Nothing later of this instance may overtake it.
            blocked.insert(w.by.instance);
            continue;
        }
        chosen[i] = true;
        used = with;
    }
    let mut batch = Vec::new();
    let mut rest = VecDeque::new();
    for (w, chosen) in waiting.drain(..).zip(chosen) {
        if chosen { batch.push(w) } else { rest.push_back(w) }
    }
    *waiting = rest;
    batch
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::engine::batch::{Input, Output, Sampler};

    fn limits(batch_tokens: u32, batch_outputs: u32) -> PassLimits {
        PassLimits {
            page_size: 16,
            kv_pages: 64,
            embedding_slots: 4,
            vocab: 100,
            max_top_k: 8,
            batch_tokens,
            batch_outputs,
            page_table_entries: 64,
            mask_words: 64,
        }
    }

    /// A pass tagged by its first position, so a test can tell passes apart.
    fn pass(tag: u32, tokens: usize) -> Pass {
        Pass {
            inputs: vec![Input::Token(1); tokens],
            positions: (tag..tag + tokens as u32).collect(),
            kv_pages: vec![0],
            last_page_len: tokens as u32,
            outputs: vec![Output::Token { index: 0, sampler: Sampler::greedy() }],
            ..Pass::default()
        }
    }

    fn cost(pass: &Pass) -> PassCost {
        crate::engine::check::check_pass(pass, &limits(512, 128)).unwrap()
    }

    fn waiting(seq: u64, owner: u64, priority: Priority, tokens: usize) -> Waiting {
        let pass = pass(seq as u32, tokens);
        let by = Submitter { owner, instance: owner, priority };
        Waiting { seq, cost: cost(&pass), pass, holds: vec![], _queued: QueuedPass::uncounted(), by, reply: oneshot::channel().0 }
    }

    fn seqs(batch: &[Waiting]) -> Vec<u64> {
        batch.iter().map(|w| w.seq).collect()
    }

    #[test]
    fn everything_that_fits_goes_in_submission_order() {
        let mut q: VecDeque<_> = (0..4).map(|i| waiting(i, i, Priority::Normal, 2)).collect();
        assert_eq!(seqs(&take_batch(&mut q, &limits(100, 100))), [0, 1, 2, 3]);
        assert!(q.is_empty());
    }

    #[test]
    fn high_priority_goes_first_when_not_everything_fits() {
        let mut q: VecDeque<_> = [waiting(0, 1, Priority::Low, 4), waiting(1, 2, Priority::Normal, 4), waiting(2, 3, Priority::High, 4)].into();
        assert_eq!(seqs(&take_batch(&mut q, &limits(8, 100))), [1, 2]);
        assert_eq!(seqs(&take_batch(&mut q, &limits(8, 100))), [0]);
    }

    #[test]
    fn an_owners_passes_keep_their_order_whatever_their_priority() {
        // Owner 1's high-priority pass waits behind its own earlier low one.
        let mut q: VecDeque<_> = [waiting(0, 1, Priority::Low, 4), waiting(1, 2, Priority::Normal, 4), waiting(2, 1, Priority::High, 4)].into();
        assert_eq!(seqs(&take_batch(&mut q, &limits(4, 100))), [1]);
        assert_eq!(seqs(&take_batch(&mut q, &limits(4, 100))), [0]);
        assert_eq!(seqs(&take_batch(&mut q, &limits(4, 100))), [2]);
    }

    #[test]
    fn owners_take_turns_so_a_flood_does_not_crowd_out_the_rest() {
        let mut q: VecDeque<_> = (0..6).map(|i| waiting(i, 1, Priority::Normal, 2)).collect();
        q.extend((6..8).map(|i| waiting(i, 2, Priority::Normal, 2)));
        assert_eq!(seqs(&take_batch(&mut q, &limits(8, 100))), [0, 1, 6, 7]);
        assert_eq!(seqs(&take_batch(&mut q, &limits(8, 100))), [2, 3, 4, 5]);
    }

    #[test]
    fn a_users_many_instances_share_one_owners_turns() {
        // Owner 1 runs six instances, owner 2 one: each owner gets half the batch.
        let mut q: VecDeque<_> = (0..6)
            .map(|i| {
                let mut w = waiting(i, 1, Priority::Normal, 2);
                w.by.instance = 10 + i;
                w
            })
            .collect();
        q.extend((6..8).map(|i| waiting(i, 2, Priority::Normal, 2)));
        assert_eq!(seqs(&take_batch(&mut q, &limits(8, 100))), [0, 1, 6, 7]);
    }

    #[test]
    fn every_dimension_of_a_batch_is_counted() {
        // Two passes of 3 samplers each do not share a batch of 4 output rows.
        let mut q: VecDeque<_> = (0..2).map(|i| waiting(i, i, Priority::Normal, 1)).collect();
        for w in &mut q {
            w.pass.outputs = vec![w.pass.outputs[0].clone(); 3];
            w.cost = cost(&w.pass);
        }
        assert_eq!(seqs(&take_batch(&mut q, &limits(100, 4))), [0]);
        assert_eq!(seqs(&take_batch(&mut q, &limits(100, 4))), [1]);
    }

    /// What the fake runner was asked to do.
    #[derive(Debug, Clone, PartialEq)]
    enum Event {
        /// A batch, by the tags of its passes.
        Batch(Vec<u32>),
        Copy(u32, u32),
        Clear(ResourceKind, Vec<u32>),
    }

    /// Records every call; fails any batch holding a pass tagged `poison`
    /// and panics on one holding a pass tagged `panic`.
    struct FakeRunner {
        events: Arc<Mutex<Vec<Event>>>,
        poison: Option<u32>,
        panic: Option<u32>,
    }

    impl Runner for FakeRunner {
        fn forward(&mut self, passes: &[Pass]) -> Result<Vec<PassResult>, BatchError> {
            let tags: Vec<u32> = passes.iter().map(|p| p.positions[0]).collect();
            self.events.lock().unwrap().push(Event::Batch(tags.clone()));
            if self.poison.is_some_and(|poison| tags.contains(&poison)) {
                return Err(BatchError::Gpu("poisoned".into()));
            }
            if self.panic.is_some_and(|panic| tags.contains(&panic)) {
                panic!("the fake GPU fell over");
            }
            Ok(tags.iter().map(|&t| PassResult { tokens: vec![t], distributions: vec![] }).collect())
        }

        fn copy_page(&mut self, from: u32, to: u32) {
            self.events.lock().unwrap().push(Event::Copy(from, to));
        }

        fn clear(&mut self, kind: ResourceKind, ids: &[u32]) {
            self.events.lock().unwrap().push(Event::Clear(kind, ids.to_vec()));
        }
    }

    struct Harness {
        scheduler: Scheduler<FakeRunner>,
        events: Arc<Mutex<Vec<Event>>>,
        resources: Arc<Mutex<Resources>>,
    }

    impl Harness {
        fn new(limits: PassLimits, poison: Option<u32>) -> Self {
            Self::with_runner(limits, poison, None)
        }

        fn with_runner(limits: PassLimits, poison: Option<u32>, panic: Option<u32>) -> Self {
            let events = Arc::new(Mutex::new(Vec::new()));
            let runner = FakeRunner { events: events.clone(), poison, panic };
            let resources = Arc::new(Mutex::new(Resources::new(4, 1)));
            Self { scheduler: Scheduler::new(runner, limits, Arc::default(), resources.clone()), events, resources }
        }

        fn submit(&mut self, tag: u32, owner: u64, priority: Priority, copies: Vec<(u32, u32)>) -> PassReply {
            self.submit_holding(tag, owner, priority, copies, vec![])
        }

        fn submit_holding(
            &mut self,
            tag: u32,
            owner: u64,
            priority: Priority,
            copies: Vec<(u32, u32)>,
            holds: Vec<(ResourceKind, u32)>,
        ) -> PassReply {
            let pass = pass(tag, 2);
            let (reply, rx) = oneshot::channel();
            let by = Submitter { owner, instance: owner, priority };
            let queued = QueuedPass::uncounted();
            self.scheduler.accept(Job::Forward(Box::new(Submission { cost: cost(&pass), pass, copies, holds, queued, by, reply })));
            rx
        }

        fn barrier(&mut self) -> oneshot::Receiver<()> {
            let (reply, rx) = oneshot::channel();
            self.scheduler.accept(Job::Barrier { reply });
            rx
        }

        fn run_all(&mut self) {
            while !self.scheduler.waiting.is_empty() {
                self.scheduler.run_next_batch();
            }
        }

        fn events(&self) -> Vec<Event> {
            self.events.lock().unwrap().clone()
        }
    }

    fn answer(mut rx: PassReply) -> Result<PassResult, BatchError> {
        rx.try_recv().expect("answered")
    }

    #[test]
    fn waiting_passes_share_one_batch_and_each_gets_its_own_result() {
        let mut h = Harness::new(limits(100, 100), None);
        let replies: Vec<_> = (0..3).map(|t| h.submit(t, t as u64, Priority::Normal, vec![])).collect();
        h.run_all();
        assert_eq!(h.events(), [Event::Batch(vec![0, 1, 2])]);
        for (t, rx) in replies.into_iter().enumerate() {
            assert_eq!(answer(rx).unwrap().tokens, [t as u32]);
        }
    }

    #[test]
    fn a_barrier_resolves_only_after_what_came_before_it() {
        let mut h = Harness::new(limits(2, 100), None);
        h.submit(0, 1, Priority::Normal, vec![]);
        h.submit(1, 2, Priority::Normal, vec![]);
        let mut barrier = h.barrier();
        let mut later = h.barrier();
        assert!(barrier.try_recv().is_err(), "nothing has run yet");
        h.scheduler.run_next_batch();
        assert!(barrier.try_recv().is_err(), "one of the two passes still waits");
        h.scheduler.run_next_batch();
        assert!(barrier.try_recv().is_ok());
        assert!(later.try_recv().is_ok());
        // With nothing waiting, a barrier resolves at once.
        assert!(h.barrier().try_recv().is_ok());
    }

    #[test]
    fn a_copy_runs_after_every_pass_before_it_and_before_its_own_pass() {
        let mut h = Harness::new(limits(100, 100), None);
        h.submit(0, 1, Priority::Normal, vec![]);
        h.submit(1, 2, Priority::Normal, vec![(3, 4)]);
        h.run_all();
        assert_eq!(h.events(), [Event::Batch(vec![0]), Event::Copy(3, 4), Event::Batch(vec![1])]);
    }

    #[test]
    fn high_priority_runs_first_but_an_owner_keeps_its_order() {
        let mut h = Harness::new(limits(2, 100), None);
        h.submit(0, 1, Priority::Low, vec![]);
        h.submit(1, 2, Priority::Normal, vec![]);
        h.submit(2, 3, Priority::High, vec![]);
        h.submit(3, 1, Priority::High, vec![]);
        h.run_all();
        let order: Vec<Event> = [2, 1, 0, 3].into_iter().map(|t| Event::Batch(vec![t])).collect();
        assert_eq!(h.events(), order);
    }

    #[test]
    fn a_failed_batch_is_retried_pass_by_pass_and_only_the_culprit_fails() {
        let mut h = Harness::new(limits(100, 100), Some(1));
        let replies: Vec<_> = (0..3).map(|t| h.submit(t, t as u64, Priority::Normal, vec![])).collect();
        h.run_all();
        let alone = (0..3).map(|t| Event::Batch(vec![t]));
        assert_eq!(h.events(), std::iter::once(Event::Batch(vec![0, 1, 2])).chain(alone).collect::<Vec<_>>());
        let results: Vec<_> = replies.into_iter().map(answer).collect();
        assert!(results[0].is_ok() && results[2].is_ok());
        assert_eq!(results[1], Err(BatchError::Gpu("poisoned".into())));
    }

    #[test]
    fn allocated_ids_are_cleared_before_the_next_pass_or_copy() {
        let mut h = Harness::new(limits(100, 100), None);
        h.scheduler.accept(Job::Clear { kind: ResourceKind::KvPage, ids: vec![3] });
        h.submit(0, 1, Priority::Normal, vec![]);
        h.scheduler.accept(Job::Clear { kind: ResourceKind::EmbeddingSlot, ids: vec![0] });
        h.submit(1, 2, Priority::Normal, vec![(2, 3)]);
        h.run_all();
        assert_eq!(
            h.events(),
            // Clearing early is safe: no queued pass holds an id that was free.
            [
                Event::Clear(ResourceKind::KvPage, vec![3]),
                Event::Clear(ResourceKind::EmbeddingSlot, vec![0]),
                Event::Batch(vec![0]),
                Event::Copy(2, 3),
                Event::Batch(vec![1]),
            ]
        );
    }

    #[test]
    fn a_queued_pass_keeps_its_pages_until_it_has_run() {
        let mut h = Harness::new(limits(100, 100), None);
        let page = h.resources.lock().unwrap().pool(ResourceKind::KvPage).allocate(1).unwrap()[0];
        // The pass takes its own reference; then its instance lets go.
        h.resources.lock().unwrap().pool(ResourceKind::KvPage).retain_for_pass(page);
        h.submit_holding(0, 1, Priority::Normal, vec![], vec![(ResourceKind::KvPage, page)]);
        h.resources.lock().unwrap().pool(ResourceKind::KvPage).release(page);
        assert_eq!(h.resources.lock().unwrap().pool(ResourceKind::KvPage).free_count(), 3, "still held by the queued pass");
        h.run_all();
        assert_eq!(h.resources.lock().unwrap().pool(ResourceKind::KvPage).free_count(), 4);
    }

    #[test]
    fn a_queued_pass_counts_against_its_instance_until_it_has_run() {
        let mut h = Harness::new(limits(100, 100), None);
        let (count, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let pass = pass(0, 2);
        let queued = QueuedPass { count: Some(Held::add(&count, 1)), bytes: Some(Held::add(&bytes, 4096)) };
        let (reply, rx) = oneshot::channel();
        let by = Submitter { owner: 1, instance: 1, priority: Priority::Normal };
        h.scheduler.accept(Job::Forward(Box::new(Submission { cost: cost(&pass), pass, copies: vec![], holds: vec![], queued, by, reply })));
        assert_eq!((count.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed)), (1, 4096), "waiting: still charged");
        h.run_all();
        assert!(answer(rx).is_ok());
        assert_eq!((count.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed)), (0, 0), "run: refunded");
    }

    #[test]
    fn a_panicking_runner_fails_only_the_pass_at_fault_and_the_engine_goes_on() {
        let mut h = Harness::with_runner(limits(100, 100), None, Some(1));
        let replies: Vec<_> = (0..3).map(|t| h.submit(t, t as u64, Priority::Normal, vec![])).collect();
        h.run_all();
        let results: Vec<_> = replies.into_iter().map(answer).collect();
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(matches!(&results[1], Err(BatchError::Gpu(e)) if e.contains("the fake GPU fell over")), "{:?}", results[1]);
        assert_eq!(h.scheduler.stats.engine_restarts.load(Ordering::Relaxed), 2, "the batch, then the pass alone");
        let later = h.submit(5, 5, Priority::Normal, vec![]);
        h.run_all();
        assert_eq!(answer(later).unwrap().tokens, [5]);
    }
}

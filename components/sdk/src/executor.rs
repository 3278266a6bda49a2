//! A single-threaded executor for inferlets: futures wait on WASI pollables,
//! and when every task is stuck the executor blocks in `wasi:io/poll.poll`
//! on all of them at once.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use crate::wasi::io::poll::{Pollable, poll};

thread_local! {
    /// Pollables some future waits on, with the waker to call when ready.
    static WAITING: RefCell<Vec<(Rc<Pollable>, Waker)>> = const { RefCell::new(Vec::new()) };
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `future` to completion.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let flag = Arc::new(Flag(AtomicBool::new(true)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if flag.0.swap(false, Ordering::Relaxed) {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            continue;
        }
        let waiting = WAITING.with(|w| std::mem::take(&mut *w.borrow_mut()));
        assert!(!waiting.is_empty(), "the inferlet's future is stuck: nothing to wait for");
        let handles: Vec<&Pollable> = waiting.iter().map(|(p, _)| p.as_ref()).collect();
        let ready = poll(&handles);
        let mut still = Vec::new();
        for (i, (pollable, waker)) in waiting.into_iter().enumerate() {
            if ready.contains(&(i as u32)) { waker.wake() } else { still.push((pollable, waker)) }
        }
        WAITING.with(|w| w.borrow_mut().extend(still));
    }
}

/// Resolves when `pollable` is ready.
pub fn wait_for(pollable: Pollable) -> WaitFor {
    WaitFor { pollable: Rc::new(pollable) }
}

pub struct WaitFor {
    pollable: Rc<Pollable>,
}

impl Future for WaitFor {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.pollable.ready() {
            self.forget();
            return Poll::Ready(());
        }
        WAITING.with(|w| {
            let mut w = w.borrow_mut();
            match w.iter_mut().find(|(p, _)| Rc::ptr_eq(p, &self.pollable)) {
                Some((_, waker)) => *waker = cx.waker().clone(),
                None => w.push((self.pollable.clone(), cx.waker().clone())),
            }
        });
        Poll::Pending
    }
}

impl WaitFor {
    /// Takes the pollable off the waiting list: its parent resource may go
    /// away once this future is done.
    fn forget(&self) {
        WAITING.with(|w| w.borrow_mut().retain(|(p, _)| !Rc::ptr_eq(p, &self.pollable)));
    }
}

impl Drop for WaitFor {
    fn drop(&mut self) {
        self.forget();
    }
}

/// Runs futures concurrently and returns their outputs in order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => done = false,
                }
            }
        }
        if done { Poll::Ready(outputs.iter_mut().map(|o| o.take().unwrap()).collect()) } else { Poll::Pending }
    })
    .await
}

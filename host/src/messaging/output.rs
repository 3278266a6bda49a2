//! An instance's stdout and stderr, delivered as chunks over a channel so a
//! caller can stream them (to a terminal, a client) or collect them.
//!
//! What is sent and not yet received is bounded ([`IN_FLIGHT`] bytes per
//! channel): past it, writers wait for the receiver, so an instance whose
//! client does not keep up waits (its wall time running) instead of growing
//! the host's memory.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

/// Bytes sent on a channel and not yet received, past which writers wait.
pub const IN_FLIGHT: usize = 1 << 20;

/// The bytes between a channel's senders and its receiver.
#[derive(Default)]
struct Flow {
    bytes: AtomicUsize,
    drained: Notify,
}

impl Flow {
    fn room(&self) -> usize {
        IN_FLIGHT.saturating_sub(self.bytes.load(Ordering::Acquire))
    }

    async fn wait_for_room(&self, tx: &mpsc::UnboundedSender<OutputChunk>) {
        loop {
            let drained = self.drained.notified();
            // Nobody receives any more: nothing will drain, and nothing needs to wait.
            if self.room() > 0 || tx.is_closed() {
                return;
            }
            drained.await;
        }
    }
}
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// A message the inferlet sent its client (`message.send`).
    Message,
    /// A blob the inferlet sent its client (`message.send-blob`).
    Blob,
}

#[derive(Debug, Clone)]
pub struct OutputChunk {
    pub stream: Stream,
    pub bytes: Bytes,
}

/// The sending side handed to an instance; clones write to the same channel.
#[derive(Clone)]
pub struct OutputSink {
    tx: mpsc::UnboundedSender<OutputChunk>,
    flow: Arc<Flow>,
}

/// The receiving side: what it takes no longer counts against the senders.
pub struct OutputReceiver {
    rx: mpsc::UnboundedReceiver<OutputChunk>,
    flow: Arc<Flow>,
}

impl OutputReceiver {
    pub async fn recv(&mut self) -> Option<OutputChunk> {
        let chunk = self.rx.recv().await?;
        Some(self.took(chunk))
    }

    pub fn try_recv(&mut self) -> Result<OutputChunk, mpsc::error::TryRecvError> {
        self.rx.try_recv().map(|chunk| self.took(chunk))
    }

    fn took(&self, chunk: OutputChunk) -> OutputChunk {
        self.flow.bytes.fetch_sub(chunk.bytes.len(), Ordering::AcqRel);
        self.flow.drained.notify_waiters();
        chunk
    }
}

impl OutputSink {
    pub fn channel() -> (Self, OutputReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let flow = Arc::new(Flow::default());
        (Self { tx, flow: flow.clone() }, OutputReceiver { rx, flow })
    }

    /// Sends once the channel has room; one chunk may take it past the bound.
    pub(crate) async fn send(&self, stream: Stream, bytes: impl Into<Bytes>) {
        self.flow.wait_for_room(&self.tx).await;
        send(&self.tx, &self.flow, OutputChunk { stream, bytes: bytes.into() });
    }

    pub(crate) fn pipe(&self, stream: Stream) -> OutputPipe {
        OutputPipe { stream, tx: self.tx.clone(), flow: self.flow.clone() }
    }
}

fn send(tx: &mpsc::UnboundedSender<OutputChunk>, flow: &Flow, chunk: OutputChunk) {
    let len = chunk.bytes.len();
    flow.bytes.fetch_add(len, Ordering::AcqRel);
    if tx.send(chunk).is_err() {
        // Nobody listens any more: it never arrives, so it never counts.
        flow.bytes.fetch_sub(len, Ordering::AcqRel);
    }
}

/// One of an instance's two output streams. A receiver that went away just
/// means nobody is listening any more.
#[derive(Clone)]
pub(crate) struct OutputPipe {
    stream: Stream,
    tx: mpsc::UnboundedSender<OutputChunk>,
    flow: Arc<Flow>,
}

impl OutputPipe {
    fn send(&self, bytes: Bytes) {
        if !bytes.is_empty() {
            send(&self.tx, &self.flow, OutputChunk { stream: self.stream, bytes });
        }
    }
}

impl IsTerminal for OutputPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for OutputPipe {
    async fn ready(&mut self) {
        self.flow.wait_for_room(&self.tx).await;
    }
}

impl OutputStream for OutputPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.send(bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    /// Full, 0: the writer waits on `ready` (WASI's blocking writes do).
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(if self.tx.is_closed() { 1 << 16 } else { self.flow.room().min(1 << 16) })
    }
}

impl tokio::io::AsyncWrite for OutputPipe {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.send(Bytes::copy_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn a_sender_waits_while_its_receiver_is_behind() {
        let (sink, mut rx) = OutputSink::channel();
        sink.send(Stream::Message, vec![0; IN_FLIGHT]).await;
        let mut waiting = Box::pin(sink.send(Stream::Message, vec![1; 10]));
        assert!((&mut waiting).now_or_never().is_none(), "full: the sender waits");
        assert_eq!(rx.recv().await.unwrap().bytes.len(), IN_FLIGHT);
        waiting.await;
        assert_eq!(rx.recv().await.unwrap().bytes.len(), 10);
        drop(rx);
        sink.send(Stream::Message, vec![0; 2 * IN_FLIGHT]).await;
        sink.send(Stream::Message, vec![0; 1]).now_or_never().expect("nobody listens: nothing waits");
    }
}

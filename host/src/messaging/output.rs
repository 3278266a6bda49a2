//! An instance's stdout and stderr, delivered as chunks over a channel so a
//! caller can stream them (to a terminal, a client) or collect them.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;
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
}

impl OutputSink {
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<OutputChunk>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    pub(crate) fn send(&self, stream: Stream, bytes: impl Into<Bytes>) {
        let _ = self.tx.send(OutputChunk { stream, bytes: bytes.into() });
    }

    pub(crate) fn pipe(&self, stream: Stream) -> OutputPipe {
        OutputPipe { stream, tx: self.tx.clone() }
    }
}

/// One of an instance's two output streams. Writes never block: a receiver
/// that went away just means nobody is listening any more.
#[derive(Clone)]
pub(crate) struct OutputPipe {
    stream: Stream,
    tx: mpsc::UnboundedSender<OutputChunk>,
}

impl OutputPipe {
    fn send(&self, bytes: Bytes) {
        if !bytes.is_empty() {
            let _ = self.tx.send(OutputChunk { stream: self.stream, bytes });
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
    async fn ready(&mut self) {}
}

impl OutputStream for OutputPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.send(bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 16)
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

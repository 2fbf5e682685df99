//! Captures a guest's stdout/stderr in memory up to a cap.
//!
//! Writing past the cap keeps what fits, flags the stream as truncated and
//! traps the guest: an output flood is a limit like any other, and stopping
//! it early spares the host from running a guest whose output nobody keeps.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use crate::CapturedOutput;

/// Largest single write the guest is told it may make; guests split bigger
/// writes themselves.
const WRITE_BUDGET: usize = 64 * 1024;

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    truncated: bool,
}

/// A shared, capped in-memory sink; clones write to the same buffer.
#[derive(Clone)]
pub(crate) struct CappedOutput {
    cap: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl CappedOutput {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            buffer: Arc::default(),
        }
    }

    /// Appends what fits; returns false when something had to be dropped.
    fn append(&self, data: &[u8]) -> bool {
        let mut buffer = self
            .buffer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let room = self.cap.saturating_sub(buffer.bytes.len());
        let take = room.min(data.len());
        buffer.bytes.extend_from_slice(&data[..take]);
        if take < data.len() {
            buffer.truncated = true;
        }
        !buffer.truncated
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.buffer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .truncated
    }

    pub(crate) fn snapshot(&self) -> CapturedOutput {
        let buffer = self
            .buffer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        CapturedOutput {
            bytes: buffer.bytes.clone(),
            truncated: buffer.truncated,
            cap: self.cap,
        }
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        if self.append(&bytes) {
            Ok(())
        } else {
            Err(StreamError::trap("output limit exceeded"))
        }
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_BUDGET)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

// Used by the wasip1 path, which writes through `AsyncWrite`.
impl AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.append(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(io::Error::other("output limit exceeded")))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

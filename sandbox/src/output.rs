//! Captures a guest's stdout/stderr in memory up to a cap.
//!
//! Writing past the cap keeps what fits, flags the stream as truncated and
//! traps the guest: an output flood is a limit like any other, and stopping
//! it early spares the host from running a guest whose output nobody keeps.
//! An [`OutputProbe`] lets the caller read the streams while the run goes on.

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

    /// How many bytes are kept so far.
    fn len(&self) -> usize {
        self.buffer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .bytes
            .len()
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

/// A window on a run's stdout and stderr while the guest is still running,
/// for a caller that shows output as it arrives. Give it to the run in
/// [`Invocation::output_probe`](crate::Invocation::output_probe); clones
/// look at the same run. It sees the most recent run it was given to.
#[derive(Clone, Default)]
pub struct OutputProbe {
    streams: Arc<Mutex<Option<(CappedOutput, CappedOutput)>>>,
}

impl OutputProbe {
    /// A probe not yet given to a run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copies of stdout and stderr as far as the guest wrote them; `None`
    /// until the run began.
    pub fn snapshot(&self) -> Option<(CapturedOutput, CapturedOutput)> {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let (stdout, stderr) = streams.as_ref()?;
        Some((stdout.snapshot(), stderr.snapshot()))
    }

    /// How many bytes stdout and stderr hold so far, without copying them:
    /// a cheap check for new output. `None` until the run began.
    pub fn written(&self) -> Option<(usize, usize)> {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let (stdout, stderr) = streams.as_ref()?;
        Some((stdout.len(), stderr.len()))
    }

    pub(crate) fn connect(&self, stdout: &CappedOutput, stderr: &CappedOutput) {
        *self.streams.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((stdout.clone(), stderr.clone()));
    }
}

impl std::fmt::Debug for OutputProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let connected = self
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        f.debug_struct("OutputProbe")
            .field("connected", &connected)
            .finish()
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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Hard limits for one run. Each one, when exceeded, ends the run with its
/// own [`crate::Limit`] so callers can tell them apart.
#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Wall-clock budget: enforced inside wasm by the epoch deadline and
    /// around host I/O by an outer timeout.
    pub timeout: Duration,
    /// Linear-memory cap in bytes (clamped to the engine's maximum).
    pub max_memory_bytes: u64,
    /// Cap on captured stdout and on captured stderr, each, in bytes.
    /// Writing past it stops the run.
    pub max_output_bytes: usize,
    /// Fuel budget; requires an engine built with `fuel_metering`.
    pub fuel: Option<u64>,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_memory_bytes: 128 * 1024 * 1024,
            max_output_bytes: 1024 * 1024,
            fuel: None,
        }
    }
}

/// Enforces the memory cap and remembers that it did, so a guest that dies
/// after a refused `memory.grow` is reported as a memory limit rather than a
/// generic trap.
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    max_tables_elements: usize,
    pub(crate) hit: Arc<AtomicBool>,
}

impl MemoryLimiter {
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            max_tables_elements: 1_000_000,
            hit: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit.store(true, Ordering::Relaxed);
            // Trapping here, instead of letting `memory.grow` return -1, stops
            // the guest at the cause rather than wherever its allocator gives up.
            wasmtime::bail!("linear memory limit of {} bytes exceeded", self.max_bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_tables_elements)
    }
}

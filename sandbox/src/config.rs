use std::path::PathBuf;
use std::time::Duration;

/// Whether to use wasmtime's pooling instance allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolingMode {
    /// Try pooling; if the address space cannot be reserved (small
    /// `ulimit -v`, 32-bit hosts), fall back to on-demand allocation and log it.
    #[default]
    Auto,
    /// Pooling or fail.
    Required,
    /// Always allocate on demand.
    Disabled,
}

/// Engine-wide settings, fixed for the life of a [`crate::Sandbox`].
///
/// Per-run limits live in [`crate::RunLimits`]; the values here are the
/// ceilings those limits are clamped to.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Directory of the compiled-artifact cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Pooling allocator policy.
    pub pooling: PoolingMode,
    /// How many guest instances may be alive at once (pool size).
    pub max_concurrent_instances: u32,
    /// Largest linear memory any run may ask for, in bytes.
    pub max_memory_bytes: u64,
    /// Largest WebAssembly call stack a guest may use, in bytes.
    pub max_wasm_stack_bytes: usize,
    /// Period of the epoch ticker; wall-clock limits are enforced with this
    /// granularity.
    pub epoch_tick: Duration,
    /// Compile guests with fuel metering so runs can be given a fuel budget.
    /// Costs some guest speed, so it is off unless asked for.
    pub fuel_metering: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            pooling: PoolingMode::Auto,
            max_concurrent_instances: 128,
            max_memory_bytes: 512 * 1024 * 1024,
            max_wasm_stack_bytes: 512 * 1024,
            epoch_tick: Duration::from_millis(5),
            fuel_metering: false,
        }
    }
}

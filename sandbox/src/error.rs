use std::path::PathBuf;

/// Everything that can go wrong in the sandbox before or around a run.
///
/// A guest that traps or exceeds a limit is *not* an error: that is a
/// [`crate::RunOutcome`]. These are failures of the host side: bytes that are
/// not a guest roost can run, engine set-up, or I/O around the cache.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The bytes are not WebAssembly at all.
    #[error(
        "not a WebAssembly binary: expected a wasm32-wasip2 component (or a wasm32-wasip1 \
         module), got {found}"
    )]
    NotWasm {
        /// What the first bytes looked like.
        found: String,
    },
    /// WebAssembly that roost cannot run (invalid, truncated, or importing
    /// things the sandbox does not provide).
    #[error("invalid guest: {reason}")]
    InvalidGuest {
        /// Why it was rejected, including what was expected.
        reason: String,
    },
    /// The engine could not be configured.
    #[error("sandbox engine configuration failed: {0}")]
    Engine(String),
    /// The compiled-artifact cache directory could not be prepared.
    #[error("cannot use compiled-artifact cache at {path}: {reason}")]
    Cache {
        /// The configured cache directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The guest could not be instantiated for a run (for example every
    /// slot of the instance pool is in use); the run never started.
    #[error("could not start the guest: {0}")]
    Instantiate(String),
    /// The metadata section embedded by the guest SDK is malformed.
    #[error("malformed roost metadata in guest: {0}")]
    Metadata(String),
}

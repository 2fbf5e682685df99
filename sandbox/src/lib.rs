//! roost's sandbox: compiles guest WebAssembly once and runs many short,
//! isolated invocations of it under hard limits.
//!
//! The crate knows wasmtime and nothing else of roost: no HTTP server, no
//! database. Its surface is deliberately narrow:
//!
//! 1. [`Sandbox::new`] builds an engine tuned for many short runs (pooling
//!    allocator with a clean fallback, epoch interruption driven by a ticker
//!    thread, an on-disk cache of compiled artifacts).
//! 2. [`Sandbox::load`] validates and compiles a guest (a `wasm32-wasip2`
//!    component, or a `wasm32-wasip1` core module) into a [`LoadedGuest`]
//!    whose instantiation work is done once.
//! 3. [`Sandbox::run`] executes one [`Invocation`] in a fresh store with the
//!    given [`RunLimits`] and [`EgressPolicy`] and reports a [`RunOutcome`].
//!
//! A guest never inherits anything from the host: its environment variables
//! are exactly the ones in the invocation, it has no preopened directories
//! and no sockets, and its only way out is `wasi:http` through the egress
//! policy.
#![deny(missing_docs)]

mod config;
mod egress;
mod engine;
mod error;
mod guest;
mod invocation;
mod limits;
pub mod metadata;
mod outcome;
mod output;
mod run;
mod store_data;

pub use config::{PoolingMode, SandboxConfig};
pub use egress::{
    DeniedRequest, EgressPolicy, EgressTimeouts, HostFuture, HostRequest, HostResponse,
    HostService, INTERNAL_HOST, MAX_INTERNAL_BODY, is_restricted,
};
pub use engine::{Sandbox, reset_in_place};
pub use error::SandboxError;
pub use guest::{GuestKind, LoadedGuest};
pub use invocation::{
    DESCRIBE_HANDLER, HttpAccess, HttpTrigger, Invocation, OnDeadline, ToolTrigger, Trigger,
};
pub use limits::RunLimits;
pub use outcome::{CapturedOutput, Limit, RunOutcome, Termination};
pub use output::OutputProbe;

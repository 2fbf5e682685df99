use std::sync::Arc;

use wasmtime::InstancePre;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::SandboxError;
use crate::store_data::{ComponentState, ModuleState};

/// The two shapes of guest the sandbox runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestKind {
    /// A WebAssembly component targeting WASI 0.2 (`wasm32-wasip2`); the
    /// shape the roost SDK produces. Gets outbound `wasi:http`.
    Component,
    /// A core module targeting WASI preview 1 (`wasm32-wasip1`); runs with
    /// stdio, env and clocks only.
    Module,
}

impl GuestKind {
    /// Tells a component from a core module by the header, and rejects
    /// anything that is neither with a message naming what was expected.
    pub fn detect(bytes: &[u8]) -> Result<Self, SandboxError> {
        if wasmparser::Parser::is_component(bytes) {
            Ok(Self::Component)
        } else if wasmparser::Parser::is_core_wasm(bytes) {
            Ok(Self::Module)
        } else if bytes.starts_with(b"\0asm") {
            Err(SandboxError::InvalidGuest {
                reason: "unknown WebAssembly version or layer in the header; expected a \
                         wasm32-wasip2 component or a wasm32-wasip1 module"
                    .into(),
            })
        } else {
            Err(SandboxError::NotWasm {
                found: describe_prefix(bytes),
            })
        }
    }
}

fn describe_prefix(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "an empty body".into();
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{} bytes starting with {}", bytes.len(), head.join(" "))
}

pub(crate) enum GuestPre {
    Component(CommandPre<ComponentState>),
    Module(InstancePre<ModuleState>),
}

/// A compiled guest with its imports resolved, ready to be instantiated for
/// any number of runs. Clones share the compiled code.
#[derive(Clone)]
pub struct LoadedGuest {
    pub(crate) hash: String,
    pub(crate) kind: GuestKind,
    pub(crate) pre: Arc<GuestPre>,
}

impl LoadedGuest {
    /// SHA-256 of the guest's bytes, hex encoded.
    pub fn content_hash(&self) -> &str {
        &self.hash
    }

    /// Component or core module.
    pub fn kind(&self) -> GuestKind {
        self.kind
    }
}

impl std::fmt::Debug for LoadedGuest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedGuest")
            .field("hash", &self.hash)
            .field("kind", &self.kind)
            .finish()
    }
}

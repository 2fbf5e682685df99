//! Shared helpers of roost's end-to-end tests: where the example guests are,
//! and a real browser for the dashboard ([`browser`]).

pub mod browser;

use std::path::PathBuf;

/// Directory holding the example guests built by this crate's build script.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("ROOST_EXAMPLES_WASM_DIR"))
}

/// Path of the built example `name` (for example `hello`).
pub fn example_path(name: &str) -> PathBuf {
    examples_dir().join(format!("{name}.wasm"))
}

/// Bytes of the built example `name`.
pub fn example(name: &str) -> Vec<u8> {
    let path = example_path(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("reading example {}: {err}", path.display()))
}

//! Where roost keeps its state on disk.

use std::path::{Path, PathBuf};

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "roost-data";

/// The layout of a roost data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Uses `root` as the data directory (created on demand).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Compiled-artifact cache of the sandbox.
    pub fn compile_cache(&self) -> PathBuf {
        self.root.join("cache").join("compiled")
    }
}

//! A run's output while it runs, for its worker to store as it goes (so
//! the run can be followed from any node). Only masked bytes leave here:
//! the worker never holds the raw output, and until the run's masker is
//! known there is nothing to read.

use std::sync::{Arc, OnceLock};

use roost_sandbox::OutputProbe;

use super::masking::Masker;
use crate::store::PartialOutput;

/// A handle on one run's output while it runs; give it to
/// [`super::Executor::execute`]. Clones look at the same run.
#[derive(Clone, Default)]
pub struct LiveOutput {
    probe: OutputProbe,
    masker: Arc<OnceLock<Masker>>,
}

impl LiveOutput {
    /// A handle for a run about to be executed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects the handle to the run's secrets; the probe to give the
    /// sandbox in return.
    pub(super) fn attach(&self, masker: &Masker) -> OutputProbe {
        // A handle is for one run: a second masker would not be the
        // output's, so the first stays.
        let _ = self.masker.set(masker.clone());
        self.probe.clone()
    }

    /// Bytes written so far to stdout and stderr together, unmasked and
    /// uncopied: a cheap check for new output. `None` before the run began.
    pub fn written(&self) -> Option<usize> {
        let (stdout, stderr) = self.probe.written()?;
        Some(stdout + stderr)
    }

    /// The output so far, masked; `None` before the run began. A secret's
    /// beginning at the very end is masked too: the rest of it may be on
    /// its way.
    pub fn masked(&self) -> Option<PartialOutput> {
        let masker = self.masker.get()?;
        let (stdout, stderr) = self.probe.snapshot()?;
        Some(PartialOutput {
            stdout: masker.mask(&stdout.bytes, true),
            stderr: masker.mask(&stderr.bytes, true),
            stdout_truncated: stdout.truncated,
            stderr_truncated: stderr.truncated,
            output_cap: i64::try_from(stdout.cap).unwrap_or(i64::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_read_before_the_masker_is_known() {
        let live = LiveOutput::new();
        assert!(live.masked().is_none());
        assert!(live.written().is_none());
        let probe = live.attach(&Masker::new(["SG.secret-value"]));
        assert!(live.masked().is_none(), "the run has not begun");
        assert!(probe.snapshot().is_none());
    }
}

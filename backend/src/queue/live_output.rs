//! A running run's output, written to its row about once a period while it
//! grows, so anyone can follow the run from any node (GET
//! /v1/runs/{id}/stream). A run shorter than the period writes nothing
//! extra: its finish writes its output, as it always did.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::execute::LiveOutput;
use crate::store::Store;

/// The most output a running run's flushes write per second, on average.
const MAX_BYTES_PER_SEC: f64 = 256.0 * 1024.0;

/// When, and what of, a run's output is written while it runs.
pub(super) struct OutputFlush {
    live: LiveOutput,
    /// Bytes written by the guest as of the last stored output.
    stored: usize,
    tick: Interval,
}

impl OutputFlush {
    /// Looks at `live` every `period`, the first time a period from now.
    pub(super) fn new(live: LiveOutput, period: Duration) -> Self {
        let period = period.max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        // A slow write delays the next one rather than bunching them.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            live,
            stored: 0,
            tick,
        }
    }

    /// Waits until it is time to look at the output.
    pub(super) async fn due(&mut self) {
        self.tick.tick().await;
    }

    /// Writes the output so far (masked) if it grew since the last write.
    /// False if the run is no longer the worker's (cancelled, or taken
    /// over): the caller stops it, as a heartbeat finding so would.
    pub(super) async fn write(
        &mut self,
        store: &dyn Store,
        run_id: &str,
        worker_id: &str,
        span: &tracing::Span,
    ) -> bool {
        let Some(written) = self.live.written().filter(|n| *n != self.stored) else {
            return true;
        };
        let Some(output) = self.live.masked() else {
            return true;
        };
        match store.write_partial_output(run_id, worker_id, &output).await {
            Ok(true) => {
                self.stored = written;
                // Each write stores the whole output so far: a large one
                // waits longer for the next, so a long run that keeps
                // printing writes at most about `MAX_BYTES_PER_SEC`.
                let size = output.stdout.len() + output.stderr.len();
                let pause = Duration::from_secs_f64(size as f64 / MAX_BYTES_PER_SEC);
                if pause > self.tick.period() {
                    self.tick.reset_after(pause);
                }
                true
            }
            Ok(false) => false,
            // The next period tries again; the finish writes it all anyway.
            Err(err) => {
                tracing::warn!(parent: span, error = %err, "writing the run's output so far failed");
                true
            }
        }
    }
}

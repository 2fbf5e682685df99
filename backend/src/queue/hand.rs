//! A worker's hand: the runs it was handed and has not begun, and the
//! outcomes it has not yet written. A worker on a busy queue takes several
//! runs per trip to the store and writes several outcomes per trip, where
//! the store can hold the runs' starts (see `RunQueue::report_and_claim`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::store::{NextClaim, RunReport, RunRow, RunStatus, Store};

/// Most runs a worker is handed at once while the queue is busy: it runs
/// them one after another and reports them in one trip to the store, where
/// the store can hold their starts (see `RunQueue::report_and_claim`).
pub(super) const RUNS_PER_TRIP: usize = 8;

/// How long a worker keeps outcomes unwritten, and how long a run may hold
/// up the runs handed to the worker after it: past this, the outcomes are
/// written and those runs go back to the queue for other workers. Short
/// next to a run's latency target (5 ms), long next to a short run.
pub(super) const REPORT_WITHIN: Duration = Duration::from_millis(2);

/// A worker's runs in hand: handed to it and not begun, in order, and
/// finished but not yet written.
pub(super) struct Hand {
    worker_id: String,
    store: Arc<dyn Store>,
    /// Where the ends of runs are announced (see `Runner::wait`).
    ended: broadcast::Sender<String>,
    /// Wakes this node's idle workers: runs that emitted events queued
    /// more work with their end.
    wake: Arc<tokio::sync::Notify>,
    /// Wakes the watch on due runs: runs that scheduled runs queued runs
    /// with a time.
    due_changed: Arc<tokio::sync::Notify>,
    unstarted: VecDeque<RunRow>,
    finished: Vec<RunReport>,
    logs: Vec<FinishLog>,
    /// When the oldest unwritten outcome came.
    oldest: Option<tokio::time::Instant>,
    /// Whether the last trip asked for runs and was handed none.
    came_back_empty: bool,
}

impl Hand {
    pub(super) fn new(
        worker_id: String,
        store: Arc<dyn Store>,
        ended: broadcast::Sender<String>,
        wake: Arc<tokio::sync::Notify>,
        due_changed: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            worker_id,
            store,
            ended,
            wake,
            due_changed,
            unstarted: VecDeque::new(),
            finished: Vec::new(),
            logs: Vec::new(),
            oldest: None,
            came_back_empty: false,
        }
    }

    /// The worker whose hand this is.
    pub(super) fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The next run handed to the worker and not begun.
    pub(super) fn next_unstarted(&mut self) -> Option<RunRow> {
        self.unstarted.pop_front()
    }

    /// Puts a run not begun back in front of the others.
    pub(super) fn put_back(&mut self, run: RunRow) {
        self.unstarted.push_front(run);
    }

    /// Takes a claimed run, to begin after those already in hand.
    pub(super) fn take(&mut self, run: RunRow) {
        self.unstarted.push_back(run);
    }

    /// Whether the last trip to the store asked for runs and came back
    /// with none (then there is no need to ask again until woken); reset
    /// by asking.
    pub(super) fn take_came_back_empty(&mut self) -> bool {
        std::mem::take(&mut self.came_back_empty)
    }

    /// Whether runs handed to the worker wait to be begun.
    fn has_unstarted(&self) -> bool {
        !self.unstarted.is_empty()
    }

    /// When a run begun at `began` must let the hand report, if it is still
    /// going: `REPORT_WITHIN` after the oldest unwritten outcome, or after
    /// its beginning.
    pub(super) fn report_by(&self, began: tokio::time::Instant) -> tokio::time::Instant {
        self.oldest.unwrap_or(began) + REPORT_WITHIN
    }

    /// Keeps a run's outcome to write with the next trip.
    pub(super) fn finished(&mut self, report: RunReport, span: tracing::Span) {
        self.oldest.get_or_insert_with(tokio::time::Instant::now);
        self.logs.push(FinishLog {
            run_id: report.run_id.clone(),
            status: report.finish.status,
            duration_ms: report.finish.duration_ms,
            has_error: report.finish.error.is_some(),
            span,
        });
        self.finished.push(report);
    }

    fn take_finished(&mut self) -> (Vec<RunReport>, Vec<FinishLog>) {
        self.oldest = None;
        (
            std::mem::take(&mut self.finished),
            std::mem::take(&mut self.logs),
        )
    }

    /// Writes the outcomes, and gives back the runs not begun (claimable
    /// again at once, by any worker).
    pub(super) async fn flush(&mut self) {
        self.report(true, None).await;
    }

    /// After a run: while runs wait in hand, their trip waits too, unless
    /// the outcomes have waited `REPORT_WITHIN`; once the hand is empty,
    /// writes the outcomes and takes the next runs (`next`, asked only
    /// then). A node `stopping` takes none and gives back the runs not begun.
    pub(super) async fn after_run(&mut self, stopping: bool, next: impl FnOnce() -> NextClaim) {
        if stopping {
            self.report(true, None).await;
        } else if !self.has_unstarted() {
            self.report(true, Some(next())).await;
        } else if self.overdue() {
            self.report(false, None).await;
        }
    }

    /// Writes the finished runs, gives back (with `give_back`) the runs not
    /// begun, and takes the next runs (given `next`): one trip to the store.
    async fn report(&mut self, give_back: bool, next: Option<NextClaim>) {
        let unstarted: Vec<String> = match give_back {
            true => self.unstarted.drain(..).map(|run| run.id).collect(),
            false => Vec::new(),
        };
        let (reports, logs) = self.take_finished();
        if reports.is_empty() && unstarted.is_empty() && next.is_none() {
            return;
        }
        let asked = next.is_some();
        let emitted = reports.iter().any(|r| !r.finish.effects.emitted.is_empty());
        let scheduled = reports
            .iter()
            .any(|r| !r.finish.effects.scheduled.is_empty());
        let (count, began) = (reports.len(), std::time::Instant::now());
        match self
            .store
            .report_and_claim(&self.worker_id, reports, unstarted, next)
            .await
        {
            Ok(reported) => {
                tracing::debug!(worker = %self.worker_id, reported = count, handed = reported.next.len(),
                    took_us = began.elapsed().as_micros() as u64, "trip to the store");
                for (log, recorded) in logs.into_iter().zip(reported.recorded) {
                    log.recorded(recorded, &self.ended);
                }
                self.came_back_empty = asked && reported.next.is_empty();
                self.unstarted.extend(reported.next);
                if emitted {
                    self.wake.notify_waiters();
                }
                if scheduled {
                    self.due_changed.notify_one();
                }
            }
            Err(err) => {
                for log in logs {
                    tracing::error!(parent: &log.span, error = %err, "recording the run's outcome failed");
                }
            }
        }
    }

    /// Whether anything waits on the run being run: outcomes to write, or
    /// runs to begin.
    pub(super) fn waiting(&self) -> bool {
        !self.finished.is_empty() || !self.unstarted.is_empty()
    }

    /// Whether the oldest unwritten outcome has waited too long.
    fn overdue(&self) -> bool {
        self.oldest.is_some_and(|at| at.elapsed() >= REPORT_WITHIN)
    }
}

/// What is logged of a run once its outcome is written.
struct FinishLog {
    run_id: String,
    status: RunStatus,
    duration_ms: i64,
    has_error: bool,
    span: tracing::Span,
}

impl FinishLog {
    fn recorded(self, recorded: bool, ended: &broadcast::Sender<String>) {
        if recorded {
            // The error stays on the run (GET /v1/runs/{id}): it can hold
            // what a script chose (a host it was denied, in any spelling)
            // and the setup link to reconnect with.
            tracing::info!(
                parent: &self.span,
                status = %self.status,
                duration_ms = self.duration_ms,
                has_error = self.has_error,
                "run finished"
            );
            let _ = ended.send(self.run_id);
        } else {
            tracing::info!(parent: &self.span, "run ended after it was cancelled; outcome dropped")
        }
    }
}

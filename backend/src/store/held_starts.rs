//! Runs the SQLite writer handed to a worker without writing their start
//! yet, so that a short run changes status once instead of twice.
//!
//! A status change is most of the writer's work for a run: it rewrites the
//! run's row, moves the run between the partial indexes of queued and
//! running runs (migration 0016) and updates the user's queue depth, and
//! each touched page goes to the WAL and back to the database file. A run
//! that ends within milliseconds of its claim paid that twice for one
//! outcome. So the run a worker claims together with a finish (the path of
//! a busy queue) is held here, and its start is written with its end: one
//! change from `queued` to its final status, with `started_at` and the
//! worker as they were at the claim.
//!
//! A held run is still `queued` in the database, for at most the window:
//! once the window has passed, the writer writes its start on its own (and
//! at once if the worker heartbeats first). The writer is the only claimer
//! on SQLite, so it never hands a held run out again, and it counts held
//! runs against their script's concurrency cap. If the process dies while a
//! run is held, the run is still queued and runs again after the restart:
//! what re-queuing an orphaned run does anyway. Starts are only held when
//! the server re-queues orphans (the default); under `orphan_runs = fail`
//! every start is written at its claim.

use std::time::Instant;

/// A claimed run whose start is not written yet.
#[derive(Clone, Debug)]
pub(super) struct Held {
    pub(super) run_id: String,
    pub(super) script_id: String,
    pub(super) worker_id: String,
    /// The claim's time (Unix ms), written as the run's `started_at`.
    pub(super) started_at: i64,
    /// When the writer writes the start if the run has not ended.
    pub(super) due: Instant,
}

/// The held runs: a few at most (one per worker), so a list.
#[derive(Clone, Debug, Default)]
pub(super) struct HeldStarts {
    runs: Vec<Held>,
}

impl HeldStarts {
    /// Whether `run_id` is held (handed to a worker, start unwritten).
    pub(super) fn holds(&self, run_id: &str) -> bool {
        self.runs.iter().any(|held| held.run_id == run_id)
    }

    /// How many of `script_id`'s runs are held: they run, so they count
    /// against the script's concurrency cap.
    pub(super) fn of_script(&self, script_id: &str) -> i64 {
        self.runs
            .iter()
            .filter(|held| held.script_id == script_id)
            .count() as i64
    }

    pub(super) fn hold(&mut self, held: Held) {
        self.runs.push(held);
    }

    /// Stops holding `run_id` if `worker_id` holds it, and returns it.
    pub(super) fn release(&mut self, run_id: &str, worker_id: &str) -> Option<Held> {
        let at = self
            .runs
            .iter()
            .position(|held| held.run_id == run_id && held.worker_id == worker_id)?;
        Some(self.runs.swap_remove(at))
    }

    /// When the earliest window ends.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.runs.iter().map(|held| held.due).min()
    }

    /// Stops holding the runs whose window has ended by `now`, and returns
    /// them.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<Held> {
        let (due, kept) = std::mem::take(&mut self.runs)
            .into_iter()
            .partition(|held| held.due <= now);
        self.runs = kept;
        due
    }

    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn held(run: &str, script: &str, worker: &str, due: Instant) -> Held {
        Held {
            run_id: run.into(),
            script_id: script.into(),
            worker_id: worker.into(),
            started_at: 0,
            due,
        }
    }

    #[test]
    fn a_held_run_is_released_only_by_its_worker_and_once_due() {
        let now = Instant::now();
        let mut starts = HeldStarts::default();
        starts.hold(held("r1", "s1", "w1", now + Duration::from_millis(20)));
        starts.hold(held("r2", "s1", "w2", now + Duration::from_millis(10)));
        starts.hold(held("r3", "s2", "w3", now + Duration::from_millis(30)));
        assert!(starts.holds("r1") && !starts.holds("r4"));
        assert_eq!((starts.of_script("s1"), starts.of_script("s2")), (2, 1));
        assert!(starts.release("r1", "w2").is_none(), "another worker's run");
        assert_eq!(starts.release("r1", "w1").unwrap().run_id, "r1");
        assert!(!starts.holds("r1"));
        assert_eq!(starts.next_due(), Some(now + Duration::from_millis(10)));
        assert!(starts.take_due(now).is_empty());
        let due = starts.take_due(now + Duration::from_millis(15));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].run_id, "r2");
        assert!(starts.holds("r3") && !starts.is_empty());
    }
}

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
//!
//! While the queue is busy a worker is handed several runs at once, held
//! together, to run one after another and report together (one writer
//! turn for several runs). It runs them in order, so the first of its held
//! runs is the one it is running (or has just run): when their windows
//! end, the writer writes that one's start, and the later ones wait, still
//! queued, a window more. A worker runs one run at a time, so it counts
//! once against the cap of each script it holds runs of. A run it gives
//! back unbegun is let go, with nothing to write.

use std::time::{Duration, Instant};

/// A claimed run whose start is not written yet.
#[derive(Clone, Debug)]
pub(super) struct Held {
    pub(super) run_id: String,
    pub(super) script_id: String,
    /// Its concurrency key, when its handler limits one.
    pub(super) concurrency_key: Option<String>,
    pub(super) worker_id: String,
    /// The claim's time (Unix ms), written as the run's `started_at` unless
    /// the worker reports when it began.
    pub(super) started_at: i64,
    /// How long the start may stay unwritten.
    pub(super) window: Duration,
    /// When the writer writes the start if the run has not ended.
    pub(super) due: Instant,
}

/// The held runs, in the order they were handed out: a few per worker, so
/// a list.
#[derive(Clone, Debug, Default)]
pub(super) struct HeldStarts {
    runs: Vec<Held>,
}

impl HeldStarts {
    /// Whether `run_id` is held (handed to a worker, start unwritten).
    pub(super) fn holds(&self, run_id: &str) -> bool {
        self.runs.iter().any(|held| held.run_id == run_id)
    }

    /// How many workers other than `except` hold runs of `script_id`: each
    /// runs its held runs one at a time, so each counts once against the
    /// script's concurrency cap.
    pub(super) fn workers_of_script(&self, script_id: &str, except: &str) -> i64 {
        self.workers_holding(except, |held| held.script_id == script_id)
    }

    /// How many workers other than `except` hold runs of concurrency key
    /// `key`, each counted once (as for a script's cap).
    pub(super) fn workers_of_key(&self, key: &str, except: &str) -> i64 {
        self.workers_holding(except, |held| held.concurrency_key.as_deref() == Some(key))
    }

    fn workers_holding(&self, except: &str, of: impl Fn(&Held) -> bool) -> i64 {
        let mut workers: Vec<&str> = Vec::new();
        for held in &self.runs {
            if of(held) && held.worker_id != except && !workers.contains(&held.worker_id.as_str()) {
                workers.push(&held.worker_id);
            }
        }
        workers.len() as i64
    }

    pub(super) fn hold(&mut self, held: Held) {
        self.runs.push(held);
    }

    /// Holds again runs taken by `take_due` whose start could not be
    /// written, ahead of the others, as they were.
    pub(super) fn put_back(&mut self, runs: impl IntoIterator<Item = Held>) {
        let later = std::mem::take(&mut self.runs);
        self.runs.extend(runs);
        self.runs.extend(later);
    }

    /// Stops holding `run_id` if `worker_id` holds it, and returns it.
    pub(super) fn release(&mut self, run_id: &str, worker_id: &str) -> Option<Held> {
        let at = self
            .runs
            .iter()
            .position(|held| held.run_id == run_id && held.worker_id == worker_id)?;
        Some(self.runs.remove(at))
    }

    /// When the earliest window ends.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.runs.iter().map(|held| held.due).min()
    }

    /// Stops holding the runs whose start is to be written by `now`, and
    /// returns them: of each worker's runs whose window has ended, the
    /// first handed out, which is the one it runs (or has just run: a
    /// worker runs its runs in order and reports them together). Its later
    /// ones wait, still queued, for a window of their own.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<Held> {
        let mut due = Vec::new();
        let mut workers_seen: Vec<String> = Vec::new();
        let mut at = 0;
        while at < self.runs.len() {
            let held = &mut self.runs[at];
            let first_of_worker = !workers_seen.contains(&held.worker_id);
            if first_of_worker {
                workers_seen.push(held.worker_id.clone());
            }
            if held.due <= now {
                if first_of_worker {
                    due.push(self.runs.remove(at));
                    continue;
                }
                held.due = now + held.window;
            }
            at += 1;
        }
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
            concurrency_key: Some(format!("{script}/key")),
            worker_id: worker.into(),
            started_at: 0,
            window: Duration::from_millis(20),
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
        assert_eq!(
            (
                starts.workers_of_script("s1", "w9"),
                starts.workers_of_script("s1", "w1"),
                starts.workers_of_script("s2", "w9")
            ),
            (2, 1, 1)
        );
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

    #[test]
    fn a_worker_holding_several_runs_counts_once_and_has_one_start_written_at_a_time() {
        let now = Instant::now();
        let window = Duration::from_millis(20);
        let mut starts = HeldStarts::default();
        for run in ["a1", "a2", "a3"] {
            starts.hold(held(run, "s1", "w1", now + window));
        }
        starts.hold(held("b1", "s1", "w2", now + window));
        assert_eq!(starts.workers_of_script("s1", "w9"), 2, "one per worker");
        assert_eq!(starts.workers_of_key("s1/key", "w9"), 2, "one per worker");
        assert_eq!(starts.workers_of_key("s1/key", "w1"), 1);
        assert_eq!(starts.workers_of_key("s2/key", "w9"), 0);
        assert_eq!(starts.workers_of_script("s1", "w2"), 1);

        // Both workers' windows end: each worker's first run is written,
        // its later runs wait a window more.
        let later = now + window;
        let due: Vec<String> = starts
            .take_due(later)
            .into_iter()
            .map(|h| h.run_id)
            .collect();
        assert_eq!(due, ["a1", "b1"]);
        assert_eq!(starts.next_due(), Some(later + window));
        assert!(starts.take_due(later + window / 2).is_empty());
        let due: Vec<String> = starts
            .take_due(later + window)
            .into_iter()
            .map(|h| h.run_id)
            .collect();
        assert_eq!(due, ["a2"]);

        // A given-back run leaves the order of the others as it was.
        starts.hold(held("a4", "s1", "w1", now));
        assert!(starts.release("a3", "w1").is_some());
        let due: Vec<String> = starts
            .take_due(later + window * 3)
            .into_iter()
            .map(|h| h.run_id)
            .collect();
        assert_eq!(due, ["a4"]);
        assert!(starts.is_empty());
    }
}

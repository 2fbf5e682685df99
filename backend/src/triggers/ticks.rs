//! One schedule's ticks on this node. tokio-cron-scheduler looks for due
//! jobs every 500 ms, so its job fires up to half a second after the tick.
//! Each firing (and the job's creation) therefore arms a timer for the
//! schedule's next tick, which queues that tick's run at its instant; the
//! job's own firing then finds its tick handled, and fills in any the timer
//! missed (a node too busy to run it, a clock step).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_cron_scheduler::{Job, JobSchedulerError};

use super::schedule::{Schedule, Scheduler};
use crate::store::{ScheduleRow, now_millis};

/// Most ticks a late job fills in at once.
const MAX_FILLED_TICKS: usize = 60;

/// A schedule's job and timer, and the last tick either handled here.
pub(super) struct Ticks {
    scheduler: Arc<Scheduler>,
    script_id: String,
    handler: String,
    schedule: Schedule,
    /// The last tick handled here: a job that fires late also records the
    /// ticks it slid past, so a schedule has no gap as long as one node is
    /// up. Other nodes' ticks are deduplicated by the store's (script,
    /// handler, tick) key.
    last: Mutex<Option<i64>>,
    /// The armed timer: the tick it waits for, and its task.
    timer: Mutex<Option<(i64, tokio::task::AbortHandle)>>,
}

impl Ticks {
    pub(super) fn new(
        scheduler: Arc<Scheduler>,
        row: &ScheduleRow,
        schedule: Schedule,
    ) -> Arc<Self> {
        Arc::new(Self {
            scheduler,
            script_id: row.script_id.clone(),
            handler: row.handler.clone(),
            schedule,
            last: Mutex::new(None),
            timer: Mutex::new(None),
        })
    }

    /// The scheduler's job: queues its tick (and any missed) and arms the
    /// timer for the next.
    pub(super) fn job(self: &Arc<Self>) -> Result<Job, JobSchedulerError> {
        let this = self.clone();
        Job::new_async_tz(
            self.schedule.six_field(),
            self.schedule.tz(),
            move |_, _| {
                let this = this.clone();
                Box::pin(async move {
                    this.arm();
                    // The tick's scheduled time, not the moment this code
                    // runs: nodes with slightly different clocks agree on it.
                    if let Some(tick_at) = this.schedule.latest_at_or_before(now_millis() + 500) {
                        this.fire_up_to(tick_at).await;
                    }
                })
            },
        )
    }

    /// Arms the timer for the next tick after now, unless it is armed for it.
    pub(super) fn arm(self: &Arc<Self>) {
        let Some(&next) = self
            .schedule
            .occurrences_between(now_millis(), i64::MAX / 2, 1)
            .first()
        else {
            return;
        };
        let mut timer = self.timer.lock().unwrap_or_else(|p| p.into_inner());
        if timer
            .as_ref()
            .is_some_and(|(at, task)| *at == next && !task.is_finished())
        {
            return;
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            // Slept in steps against the wall clock: a monotonic sleep of
            // hours drifts from it.
            loop {
                let wait = next - now_millis();
                if wait <= 0 {
                    break;
                }
                let step = u64::try_from(wait).unwrap_or(0).min(60_000);
                tokio::time::sleep(Duration::from_millis(step)).await;
            }
            this.fire_up_to(next).await;
        });
        if let Some((_, old)) = timer.replace((next, task.abort_handle())) {
            old.abort();
        }
    }

    /// Stops the armed timer (the schedule changed or went away).
    pub(super) fn disarm(&self) {
        if let Some((_, task)) = self.timer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }

    /// Queues the runs of the ticks up to `tick_at` not handled here yet.
    async fn fire_up_to(&self, tick_at: i64) {
        let previous = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let previous = *last;
            if previous.is_none_or(|previous| previous < tick_at) {
                *last = Some(tick_at);
            }
            previous
        };
        let ticks = match previous {
            Some(previous) if previous < tick_at => {
                self.schedule
                    .occurrences_between(previous, tick_at, MAX_FILLED_TICKS)
            }
            Some(_) => Vec::new(),
            None => vec![tick_at],
        };
        for tick_at in ticks {
            self.scheduler
                .tick(&self.script_id, &self.handler, tick_at)
                .await;
        }
    }
}

//! Cron: every schedule trigger of every script's current version becomes a
//! tokio-cron-scheduler job on every node, with a timer for its next tick
//! (ticks.rs). A tick is recorded under a unique
//! (script, handler, tick time) key in the same transaction as its run, so
//! however many nodes fire it, and whatever restarts, it runs once.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use tokio::sync::watch;
use tokio_cron_scheduler::JobScheduler;

use super::ticks::Ticks;

use crate::queue::Runner;
use crate::store::{ScheduleRow, Store, now_millis};

/// How often each node re-reads the schedules (deploys on other nodes).
const SYNC_EVERY: Duration = Duration::from_secs(2);

/// A parsed schedule: the expression (with a seconds field) and its zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    six_field: String,
    tz: Tz,
}

impl Schedule {
    /// Parses a cron expression (5 fields, or 6-7 with seconds first and an
    /// optional year) and an optional IANA timezone.
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Self, String> {
        let fields = expression.split_whitespace().count();
        let six_field = if fields == 5 {
            format!("0 {expression}")
        } else {
            expression.trim().to_string()
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(&six_field)
            .map_err(|e| format!("`{expression}` is not a valid cron expression: {e}"))?;
        let tz = match timezone {
            Some(name) => {
                Tz::from_str(name).map_err(|_| format!("`{name}` is not an IANA timezone"))?
            }
            None => Tz::UTC,
        };
        Ok(Self {
            cron,
            six_field,
            tz,
        })
    }

    /// The expression with its seconds field.
    pub(super) fn six_field(&self) -> &str {
        &self.six_field
    }

    /// The zone its times are read in.
    pub(super) fn tz(&self) -> Tz {
        self.tz
    }

    /// Scheduled times after `after_ms` up to and including `until_ms`, at
    /// most `cap` of them, oldest first.
    pub fn occurrences_between(&self, after_ms: i64, until_ms: i64, cap: usize) -> Vec<i64> {
        let mut found = Vec::new();
        let Some(mut at) = chrono::DateTime::from_timestamp(after_ms.div_euclid(1000), 0)
            .map(|t| t.with_timezone(&self.tz))
        else {
            return found;
        };
        while found.len() < cap {
            match self.cron.find_next_occurrence(&at, false) {
                Ok(next) if next.timestamp_millis() <= until_ms => {
                    found.push(next.timestamp_millis());
                    at = next;
                }
                _ => break,
            }
        }
        found
    }

    /// The latest scheduled time at or before `now_ms` (Unix ms).
    pub fn latest_at_or_before(&self, now_ms: i64) -> Option<i64> {
        // Whole seconds: cron has no finer resolution, and the search keeps
        // whatever fraction it is given.
        let now =
            chrono::DateTime::from_timestamp(now_ms.div_euclid(1000), 0)?.with_timezone(&self.tz);
        self.cron
            .find_previous_occurrence(&now, true)
            .ok()
            .map(|t| t.timestamp_millis())
    }
}

type JobKey = (String, String);
/// This node's jobs: the scheduler's id for each, the expression and zone
/// it was made from (to notice redeploys that change them), and its ticks.
type Jobs = HashMap<JobKey, (uuid::Uuid, String, Option<String>, Arc<Ticks>)>;

/// Keeps this node's cron jobs in line with the stored schedules.
pub struct Scheduler {
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
    jobs: tokio::sync::Mutex<Jobs>,
}

impl Scheduler {
    /// A scheduler queuing through `runner`.
    pub fn new(store: Arc<dyn Store>, runner: Arc<Runner>) -> Arc<Self> {
        Arc::new(Self {
            store,
            runner,
            jobs: tokio::sync::Mutex::default(),
        })
    }

    /// Runs the catch-up pass, then keeps the jobs in sync until `stop`.
    pub fn start(self: &Arc<Self>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut scheduler = match JobScheduler::new().await {
                Ok(scheduler) => scheduler,
                Err(err) => {
                    tracing::error!(error = %err, "the cron scheduler could not start; schedules will not fire");
                    return;
                }
            };
            if let Err(err) = scheduler.start().await {
                tracing::error!(error = %err, "the cron scheduler could not start; schedules will not fire");
                return;
            }
            this.catch_up().await;
            loop {
                this.sync(&scheduler).await;
                tokio::select! {
                    _ = tokio::time::sleep(SYNC_EVERY) => {}
                    _ = stop.changed() => break,
                }
            }
            for (.., ticks) in this.jobs.lock().await.drain().map(|(_, job)| job) {
                ticks.disarm();
            }
            let _ = scheduler.shutdown().await;
        })
    }

    /// Missed ticks: a `run_once` schedule whose latest occurrence was not
    /// handled (the cluster was down) gets that one tick now.
    async fn catch_up(&self) {
        let Ok(schedules) = self.store.schedules(None).await else {
            return;
        };
        for row in schedules
            .iter()
            .filter(|r| r.catch_up == "run_once" && !r.paused)
        {
            let Ok(schedule) = Schedule::parse(&row.cron, row.timezone.as_deref()) else {
                continue;
            };
            let Some(latest) = schedule.latest_at_or_before(now_millis()) else {
                continue;
            };
            if latest
                > row
                    .last_tick_at
                    .unwrap_or(row.created_at)
                    .max(row.created_at)
            {
                tracing::info!(script = %row.script_id, handler = %row.handler, tick_at = latest, "catching up a missed tick");
                self.tick(&row.script_id, &row.handler, latest).await;
            }
        }
    }

    async fn sync(self: &Arc<Self>, scheduler: &JobScheduler) {
        let rows = match self.store.schedules(None).await {
            Ok(rows) => rows,
            Err(err) => {
                tracing::error!(error = %err, "reading schedules failed");
                return;
            }
        };
        let desired: HashMap<JobKey, &ScheduleRow> = rows
            .iter()
            .map(|row| ((row.script_id.clone(), row.handler.clone()), row))
            .collect();
        let mut jobs = self.jobs.lock().await;
        let stale: Vec<JobKey> = jobs
            .iter()
            .filter(|(key, (_, cron, tz, _))| {
                desired
                    .get(*key)
                    .is_none_or(|row| row.cron != *cron || row.timezone != *tz)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some((id, .., ticks)) = jobs.remove(&key) {
                ticks.disarm();
                let _ = scheduler.remove(&id).await;
            }
        }
        for (key, row) in desired {
            if jobs.contains_key(&key) {
                continue;
            }
            let ticks = match Schedule::parse(&row.cron, row.timezone.as_deref()) {
                Ok(schedule) => Ticks::new(self.clone(), row, schedule),
                Err(err) => {
                    tracing::warn!(script = %row.script_id, handler = %row.handler, error = %err, "schedule skipped");
                    continue;
                }
            };
            match ticks.job().map_err(|e| e.to_string()) {
                Ok(job) => match scheduler.add(job).await {
                    Ok(id) => {
                        // The first tick is the timer's too, not the
                        // scheduler loop's.
                        ticks.arm();
                        jobs.insert(key, (id, row.cron.clone(), row.timezone.clone(), ticks));
                    }
                    Err(err) => {
                        tracing::error!(script = %row.script_id, error = %err, "adding a cron job failed")
                    }
                },
                Err(err) => {
                    tracing::warn!(script = %row.script_id, handler = %row.handler, error = %err, "schedule skipped")
                }
            }
        }
    }

    /// Queues tick `tick_at`'s run, once across the cluster.
    pub(super) async fn tick(&self, script_id: &str, handler: &str, tick_at: i64) {
        // Held, not claimed: a catch-up policy runs it once reconnected.
        match self.store.tick_held_by(script_id).await {
            Ok(Some(integration)) => {
                tracing::info!(script = script_id, handler, tick_at, integration = %integration, "cron tick held: a credential needs reconnecting");
                return;
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(script = script_id, error = %err, "checking a tick's credentials failed; ticking")
            }
        }
        match self.store.record_tick(script_id, handler, tick_at).await {
            Ok(Some(run)) => {
                tracing::info!(run_id = %run.id, script = script_id, handler, tick_at, lag_ms = now_millis() - tick_at, "cron tick queued a run");
                crate::telemetry::queued(&run.id, run.trigger_kind.as_str(), script_id);
                self.runner.wake_for(1);
            }
            Ok(None) => tracing::debug!(
                script = script_id,
                handler,
                tick_at,
                "tick already handled, paused or overlapping"
            ),
            Err(err) => {
                tracing::error!(script = script_id, handler, error = %err, "recording a tick failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurrences_between_fill_the_gap() {
        let every_second = Schedule::parse("* * * * * *", None).unwrap();
        assert_eq!(
            every_second.occurrences_between(10_000, 13_000, 60),
            vec![11_000, 12_000, 13_000]
        );
        assert_eq!(every_second.occurrences_between(10_000, 13_000, 2).len(), 2);
        assert!(
            every_second
                .occurrences_between(13_000, 13_000, 60)
                .is_empty()
        );
    }

    #[test]
    fn parses_five_six_and_seven_fields_and_timezones() {
        assert!(Schedule::parse("*/5 * * * *", None).is_ok());
        assert!(Schedule::parse("*/2 * * * * *", Some("Europe/Berlin")).is_ok());
        assert!(Schedule::parse("0 0 12 * * * 2030", None).is_ok());
        assert!(Schedule::parse("every day", None).is_err());
        assert!(
            Schedule::parse("* * * * *", Some("Mars/Olympus"))
                .unwrap_err()
                .contains("IANA")
        );
    }

    #[test]
    fn latest_occurrence_is_on_the_schedule() {
        let schedule = Schedule::parse("*/2 * * * * *", None).unwrap();
        let now = 1_700_000_001_500; // an odd second plus 500 ms
        assert_eq!(schedule.latest_at_or_before(now), Some(1_700_000_000_000));
        assert_eq!(
            schedule.latest_at_or_before(1_700_000_000_000),
            Some(1_700_000_000_000)
        );
        let berlin = Schedule::parse("0 0 9 * * *", Some("Europe/Berlin")).unwrap();
        // 2023-11-14T22:13:20Z: the latest 09:00 in Berlin (UTC+1) was 08:00 UTC that day.
        assert_eq!(
            berlin.latest_at_or_before(1_700_000_000_000),
            Some(1_699_948_800_000)
        );
    }
}

//! A user's last hour of runs, minute by minute, for the dashboard's chart:
//! how many runs ended in each status (and how many are queued or running),
//! and how long the ended ones took (p50 and p99).
//!
//! A run that ended counts in the minute it ended; a run still queued or
//! running counts in the minute it was queued (so one queued more than an
//! hour ago is not shown, nor one that ended more than an hour after it
//! was queued: see `store::LOOKBACK_MS`). Percentiles are computed here
//! from the ended runs' durations, at most [`RunStats::MAX_DURATIONS`] of
//! them, the most recently queued: SQLite has no percentile function, and
//! reading some hundred kilobytes of numbers is cheap. The counts are
//! complete whatever the cap.

use std::sync::Arc;

use serde::Serialize;

use crate::store::{MINUTE_MS, RunStatus, RunsByMinute, StatsWindow, Store, StoreError};

/// Minutes in the chart.
pub const MINUTES: usize = 60;

/// Runs of one minute (or of the hour) by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// Ended with exit 0.
    pub succeeded: u64,
    /// Ended failing.
    pub failed: u64,
    /// Hit the wall-clock limit.
    pub timed_out: u64,
    /// Hit another limit.
    pub limit_exceeded: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Still running (counted by the minute they were queued).
    pub running: u64,
    /// Still queued (counted by the minute they were queued).
    pub queued: u64,
}

impl StatusCounts {
    /// The statuses in the order a chart stacks them, ended ones first.
    pub const ORDER: [RunStatus; 7] = [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::TimedOut,
        RunStatus::LimitExceeded,
        RunStatus::Cancelled,
        RunStatus::Running,
        RunStatus::Queued,
    ];

    /// How many runs have `status`.
    pub fn get(&self, status: RunStatus) -> u64 {
        match status {
            RunStatus::Succeeded => self.succeeded,
            RunStatus::Failed => self.failed,
            RunStatus::TimedOut => self.timed_out,
            RunStatus::LimitExceeded => self.limit_exceeded,
            RunStatus::Cancelled => self.cancelled,
            RunStatus::Running => self.running,
            RunStatus::Queued => self.queued,
        }
    }

    fn slot(&mut self, status: RunStatus) -> &mut u64 {
        match status {
            RunStatus::Succeeded => &mut self.succeeded,
            RunStatus::Failed => &mut self.failed,
            RunStatus::TimedOut => &mut self.timed_out,
            RunStatus::LimitExceeded => &mut self.limit_exceeded,
            RunStatus::Cancelled => &mut self.cancelled,
            RunStatus::Running => &mut self.running,
            RunStatus::Queued => &mut self.queued,
        }
    }

    /// Adds `runs` runs of `status`.
    pub fn add(&mut self, status: RunStatus, runs: u64) {
        let slot = self.slot(status);
        *slot = slot.saturating_add(runs);
    }

    /// Runs of every status.
    pub fn total(&self) -> u64 {
        Self::ORDER.iter().map(|s| self.get(*s)).sum()
    }
}

/// One minute of the chart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MinuteStats {
    /// When the minute starts (Unix ms).
    pub start_ms: i64,
    /// Its runs by status.
    pub counts: StatusCounts,
    /// Median duration of the runs that ended in it, if any had one.
    pub p50_ms: Option<i64>,
    /// 99th percentile of the same.
    pub p99_ms: Option<i64>,
    /// How many durations the percentiles are of.
    pub durations: u64,
}

/// A user's last hour of runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HourStats {
    /// Start of the first minute (Unix ms).
    pub since_ms: i64,
    /// End of the last minute, the current one (Unix ms).
    pub until_ms: i64,
    /// [`MINUTES`] minutes, oldest first; the last is the current minute.
    pub minutes: Vec<MinuteStats>,
    /// The hour's runs by status.
    pub totals: StatusCounts,
    /// Median duration over the hour's ended runs.
    pub p50_ms: Option<i64>,
    /// 99th percentile over the same.
    pub p99_ms: Option<i64>,
    /// How many durations were read.
    pub durations_read: u64,
    /// Whether more runs ended than were read: percentiles are of the most
    /// recently queued [`RunStats::MAX_DURATIONS`], and the oldest minutes
    /// may have fewer durations (or none) than runs.
    pub durations_capped: bool,
}

/// Users' recent runs, counted for charts.
#[derive(Clone)]
pub struct RunStats {
    store: Arc<dyn Store>,
}

impl RunStats {
    /// At most this many ended runs' durations are read for an hour's
    /// percentiles (some 16 bytes each).
    pub const MAX_DURATIONS: i64 = 50_000;

    /// The runs in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// `user_id`'s runs (only `script_id`'s, if given) of the hour up to
    /// the end of the minute `now_ms` falls in.
    pub async fn last_hour(
        &self,
        user_id: &str,
        script_id: Option<&str>,
        now_ms: i64,
    ) -> Result<HourStats, StoreError> {
        let until = (now_ms.div_euclid(MINUTE_MS) + 1) * MINUTE_MS;
        let since = until - MINUTES as i64 * MINUTE_MS;
        let found = self
            .store
            .runs_by_minute(&StatsWindow {
                user_id,
                script_id,
                since,
                until,
                max_durations: Self::MAX_DURATIONS,
            })
            .await?;
        Ok(hour_stats(since, found))
    }
}

/// The chart's hour from what the store found for the hour from `since`:
/// every minute present, those without runs at zero.
pub fn hour_stats(since: i64, found: RunsByMinute) -> HourStats {
    let mut minutes: Vec<MinuteStats> = (0..MINUTES)
        .map(|i| MinuteStats {
            start_ms: since + i as i64 * MINUTE_MS,
            ..MinuteStats::default()
        })
        .collect();
    let mut totals = StatusCounts::default();
    for count in &found.counts {
        let runs = u64::try_from(count.runs).unwrap_or(0);
        // Rows outside the hour (there should be none) are left out.
        if let Some(minute) = usize::try_from(count.minute)
            .ok()
            .and_then(|m| minutes.get_mut(m))
        {
            minute.counts.add(count.status, runs);
            totals.add(count.status, runs);
        }
    }

    let mut per_minute: Vec<Vec<i64>> = vec![Vec::new(); MINUTES];
    let mut all = Vec::with_capacity(found.durations.len());
    for ended in &found.durations {
        let minute = (ended.finished_at - since).div_euclid(MINUTE_MS);
        if let Some(durations) = usize::try_from(minute)
            .ok()
            .and_then(|m| per_minute.get_mut(m))
        {
            durations.push(ended.duration_ms);
            all.push(ended.duration_ms);
        }
    }
    for (minute, mut durations) in minutes.iter_mut().zip(per_minute) {
        durations.sort_unstable();
        minute.p50_ms = percentile(&durations, 50);
        minute.p99_ms = percentile(&durations, 99);
        minute.durations = durations.len() as u64;
    }
    all.sort_unstable();
    HourStats {
        since_ms: since,
        until_ms: since + MINUTES as i64 * MINUTE_MS,
        minutes,
        totals,
        p50_ms: percentile(&all, 50),
        p99_ms: percentile(&all, 99),
        durations_read: all.len() as u64,
        durations_capped: found.durations_capped,
    }
}

/// The `p`th percentile (1 to 100) of `sorted` (ascending), by nearest
/// rank: the smallest value that at least `p`% of the values are at or
/// below, always one of the values. `None` for no values.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(1, 100) as usize;
    // Rank ceil(p * n / 100), counted from 1.
    let rank = (p * sorted.len()).div_ceil(100);
    sorted.get(rank.max(1) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EndedDuration, MinuteCount};

    const SINCE: i64 = 1_700_000_040_000;

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), Some(50));
        assert_eq!(percentile(&values, 99), Some(99));
        assert_eq!(percentile(&values, 100), Some(100));
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 99), Some(7));
        // Two values: the median is the lower, p99 the higher.
        assert_eq!(percentile(&[3, 9], 50), Some(3));
        assert_eq!(percentile(&[3, 9], 99), Some(9));
        // Ten values: p99 is the largest (rank ceil(9.9) = 10).
        let ten: Vec<i64> = (1..=10).map(|v| v * 10).collect();
        assert_eq!(percentile(&ten, 50), Some(50));
        assert_eq!(percentile(&ten, 99), Some(100));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn every_minute_is_there_and_counts_land_in_theirs() {
        let found = RunsByMinute {
            counts: vec![
                MinuteCount {
                    minute: 0,
                    status: RunStatus::Succeeded,
                    runs: 3,
                },
                MinuteCount {
                    minute: 0,
                    status: RunStatus::Failed,
                    runs: 1,
                },
                MinuteCount {
                    minute: 59,
                    status: RunStatus::Queued,
                    runs: 2,
                },
                MinuteCount {
                    minute: 59,
                    status: RunStatus::Running,
                    runs: 1,
                },
                MinuteCount {
                    minute: 17,
                    status: RunStatus::TimedOut,
                    runs: 4,
                },
                // Outside the hour: left out.
                MinuteCount {
                    minute: 60,
                    status: RunStatus::Succeeded,
                    runs: 100,
                },
            ],
            durations: Vec::new(),
            durations_capped: false,
        };
        let stats = hour_stats(SINCE, found);
        assert_eq!(stats.minutes.len(), MINUTES);
        assert_eq!(stats.since_ms, SINCE);
        assert_eq!(stats.until_ms, SINCE + 3_600_000);
        for (i, minute) in stats.minutes.iter().enumerate() {
            assert_eq!(minute.start_ms, SINCE + i as i64 * 60_000);
        }
        assert_eq!(stats.minutes[0].counts.succeeded, 3);
        assert_eq!(stats.minutes[0].counts.failed, 1);
        assert_eq!(stats.minutes[0].counts.total(), 4);
        assert_eq!(stats.minutes[17].counts.timed_out, 4);
        assert_eq!(stats.minutes[59].counts.queued, 2);
        assert_eq!(stats.minutes[59].counts.running, 1);
        let empty = stats
            .minutes
            .iter()
            .enumerate()
            .filter(|(i, _)| ![0, 17, 59].contains(i))
            .all(|(_, m)| m.counts == StatusCounts::default() && m.p50_ms.is_none());
        assert!(empty, "the other minutes are zero");
        assert_eq!(
            stats.totals,
            StatusCounts {
                succeeded: 3,
                failed: 1,
                timed_out: 4,
                running: 1,
                queued: 2,
                ..StatusCounts::default()
            }
        );
        assert_eq!((stats.p50_ms, stats.p99_ms), (None, None));
    }

    #[test]
    fn durations_make_each_minutes_and_the_hours_percentiles() {
        // Durations 1..=100 ms ended in minute 5, 1000 and 3000 in minute 6.
        let mut durations: Vec<EndedDuration> = (1..=100)
            .map(|ms| EndedDuration {
                finished_at: SINCE + 5 * 60_000 + ms,
                duration_ms: ms,
            })
            .collect();
        for (at, ms) in [(0, 1000), (59_999, 3000)] {
            durations.push(EndedDuration {
                finished_at: SINCE + 6 * 60_000 + at,
                duration_ms: ms,
            });
        }
        let stats = hour_stats(
            SINCE,
            RunsByMinute {
                counts: Vec::new(),
                durations,
                durations_capped: true,
            },
        );
        let five = &stats.minutes[5];
        assert_eq!(
            (five.p50_ms, five.p99_ms, five.durations),
            (Some(50), Some(99), 100)
        );
        let six = &stats.minutes[6];
        assert_eq!(
            (six.p50_ms, six.p99_ms, six.durations),
            (Some(1000), Some(3000), 2)
        );
        assert_eq!(stats.minutes[7].p50_ms, None);
        // Over the hour's 102: rank 51 and rank ceil(100.98) = 101.
        assert_eq!((stats.p50_ms, stats.p99_ms), (Some(51), Some(1000)));
        assert_eq!(stats.durations_read, 102);
        assert!(stats.durations_capped);
    }

    #[tokio::test]
    async fn the_hour_ends_with_the_current_minute() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("roost.db").display());
        let store = crate::store::connect(&url).await.unwrap();
        let stats = RunStats::new(store)
            .last_hour("usr_nobody", None, SINCE + 59 * 60_000 + 1234)
            .await
            .unwrap();
        assert_eq!(stats.since_ms, SINCE);
        assert_eq!(stats.minutes.len(), MINUTES);
        assert_eq!(stats.totals.total(), 0);
    }
}

//! How the pages write times, durations, triggers and runs.

use crate::store::{RunRow, TriggerKind, TriggerRow};

/// A time as people read it: UTC, to the second.
pub(crate) fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

/// An optional time, or a dash.
pub(crate) fn maybe_when(ms: Option<i64>) -> String {
    ms.map(when).unwrap_or_else(|| "—".into())
}

/// A duration in the largest unit that keeps it readable.
pub(crate) fn duration(ms: Option<i64>) -> String {
    match ms {
        None => "—".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// A trigger in a few words.
pub(crate) fn trigger(trigger: &TriggerRow) -> String {
    let what = match trigger.kind {
        TriggerKind::Schedule => match &trigger.timezone {
            Some(tz) => format!("cron {} ({tz})", trigger.spec),
            None => format!("cron {}", trigger.spec),
        },
        TriggerKind::Event => format!("event {}", trigger.spec),
        TriggerKind::Mcp => "MCP tool".into(),
        kind => kind.to_string(),
    };
    format!("{what} → {}", trigger.handler)
}

/// A run as the runs table lists it.
pub(crate) struct RunLine {
    pub(crate) id: String,
    pub(crate) short_id: String,
    pub(crate) script: String,
    pub(crate) handler: String,
    pub(crate) trigger: String,
    pub(crate) status: String,
    pub(crate) attempt: i64,
    pub(crate) queued: String,
    pub(crate) duration: String,
}

impl RunLine {
    /// `run`, with its script's name.
    pub(crate) fn new(run: &RunRow, script: &str) -> Self {
        let trigger = match run.trigger_kind {
            TriggerKind::Schedule | TriggerKind::Event if !run.trigger_spec.is_empty() => {
                format!("{} {}", run.trigger_kind, run.trigger_spec)
            }
            kind => kind.to_string(),
        };
        Self {
            short_id: short_id(&run.id),
            id: run.id.clone(),
            script: script.to_string(),
            handler: run.handler.clone().unwrap_or_else(|| "—".into()),
            trigger,
            status: run.status.to_string(),
            attempt: run.attempt,
            queued: when(run.queued_at),
            duration: duration(run.duration_ms),
        }
    }
}

/// Enough of an id to tell runs apart on a page; links carry the whole.
/// Ids begin with their time, so runs of one moment differ at the end.
pub(crate) fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    chars[chars.len().saturating_sub(12)..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(Some(12)), "12 ms");
        assert_eq!(duration(Some(1500)), "1.5 s");
        assert_eq!(duration(Some(125_000)), "2 min 5 s");
        assert_eq!(duration(None), "—");
    }

    #[test]
    fn short_ids_keep_the_end() {
        assert_eq!(short_id("run_01a24ec4ca2c0123456789ab"), "0123456789ab");
        assert_eq!(short_id("r1"), "r1");
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
    }
}

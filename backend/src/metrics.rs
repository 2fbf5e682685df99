//! `/metrics` in the Prometheus text format. Cluster-wide figures (runs by
//! status, queue depth) come from the database when scraped; per-node ones
//! (run durations, trigger lag, runs in hand, events ingested) are counted
//! here as they happen. Hand-rolled: a few atomics need no registry crate.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::store::RunStats;

/// Upper bounds (seconds) of the histogram buckets: 1 ms to 15 minutes.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0,
];

/// A cumulative histogram over [`BUCKETS`].
#[derive(Debug)]
pub struct Histogram {
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str, node: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{node=\"{node}\",le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{node=\"{node}\",le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{node=\"{node}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{node=\"{node}\"}} {count}");
    }
}

/// This node's own counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Wall time of runs this node finished.
    pub run_duration: Histogram,
    /// From when a run could start (queued, or its retry time) to when a
    /// worker of this node started it.
    pub trigger_lag: Histogram,
    /// Runs in this node's hands now.
    pub running: AtomicI64,
    /// Events this node turned into runs (duplicates included).
    pub events_ingested: AtomicU64,
}

impl Metrics {
    /// The exposition: cluster figures from `stats`, then this node's.
    pub fn render(&self, node: &str, stats: &RunStats) -> String {
        let mut out = String::new();
        out.push_str("# HELP roost_runs Runs in the cluster by status.\n# TYPE roost_runs gauge\n");
        for (status, count) in &stats.by_status {
            let _ = writeln!(out, "roost_runs{{status=\"{status}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP roost_queue_depth Queued runs ready to start, cluster-wide.\n# TYPE roost_queue_depth gauge\nroost_queue_depth {}",
            stats.ready
        );
        let _ = writeln!(
            out,
            "# HELP roost_node_running_runs Runs this node is executing.\n# TYPE roost_node_running_runs gauge\nroost_node_running_runs{{node=\"{node}\"}} {}",
            self.running.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP roost_events_ingested_total Events this node turned into runs.\n# TYPE roost_events_ingested_total counter\nroost_events_ingested_total{{node=\"{node}\"}} {}",
            self.events_ingested.load(Ordering::Relaxed)
        );
        self.run_duration.render(
            &mut out,
            "roost_run_duration_seconds",
            "Wall time of runs finished on this node.",
            node,
        );
        self.trigger_lag.render(
            &mut out,
            "roost_trigger_lag_seconds",
            "Time from a run being ready to a worker of this node starting it.",
            node,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_the_text_is_prometheus() {
        let metrics = Metrics::default();
        metrics.run_duration.observe(0.003);
        metrics.run_duration.observe(2.0);
        let stats = RunStats {
            by_status: vec![("queued".into(), 4), ("succeeded".into(), 9)],
            ready: 3,
            running_by_worker: Vec::new(),
        };
        let text = metrics.render("node_a", &stats);
        assert!(text.contains("roost_runs{status=\"succeeded\"} 9\n"));
        assert!(text.contains("roost_queue_depth 3\n"));
        assert!(
            text.contains("roost_run_duration_seconds_bucket{node=\"node_a\",le=\"0.0025\"} 0\n")
        );
        assert!(
            text.contains("roost_run_duration_seconds_bucket{node=\"node_a\",le=\"0.005\"} 1\n")
        );
        assert!(text.contains("roost_run_duration_seconds_bucket{node=\"node_a\",le=\"2.5\"} 2\n"));
        assert!(text.contains("roost_run_duration_seconds_count{node=\"node_a\"} 2\n"));
        assert!(text.contains("roost_trigger_lag_seconds_count{node=\"node_a\"} 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}

//! `/metrics` in the OpenMetrics text format, through `prometheus-client`.
//! Cluster-wide figures (runs by status, queue depth) are read from the
//! database at each scrape and set into a registry made for that scrape;
//! per-node ones (run durations, trigger lag, runs in hand, events
//! ingested) are counted here as they happen and shared with it.

use std::borrow::Cow;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::RunStats;

/// What `GET /metrics` answers with: OpenMetrics text, which Prometheus
/// reads natively (counters' families are named without `_total` there).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the histogram buckets: 1 ms to 15 minutes.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0,
];

/// This node's own counters (cheap clones of shared atomics).
#[derive(Debug)]
pub struct Metrics {
    /// Wall time of runs this node finished.
    pub run_duration: Histogram,
    /// From when a run could start (queued, or its retry time) to when a
    /// worker of this node started it.
    pub trigger_lag: Histogram,
    /// Runs in this node's hands now.
    pub running: Gauge,
    /// Events this node turned into runs (duplicates included).
    pub events_ingested: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            run_duration: Histogram::new(BUCKETS.iter().copied()),
            trigger_lag: Histogram::new(BUCKETS.iter().copied()),
            running: Gauge::default(),
            events_ingested: Counter::default(),
        }
    }
}

impl Metrics {
    /// The exposition: cluster figures from `stats`, then this node's,
    /// each labelled `node`.
    pub fn render(&self, node: &str, stats: &RunStats) -> String {
        let mut registry = Registry::default();
        let runs = Family::<Vec<(&'static str, String)>, Gauge>::default();
        for (status, count) in &stats.by_status {
            runs.get_or_create(&vec![("status", status.clone())])
                .set(*count);
        }
        registry.register("roost_runs", "Runs in the cluster by status.", runs);
        let depth = Gauge::<i64>::default();
        depth.set(stats.ready);
        registry.register(
            "roost_queue_depth",
            "Queued runs ready to start, cluster-wide.",
            depth,
        );
        let here =
            registry.sub_registry_with_label((Cow::Borrowed("node"), Cow::Owned(node.into())));
        here.register(
            "roost_node_running_runs",
            "Runs this node is executing.",
            self.running.clone(),
        );
        // The encoder adds `_total` to a counter's samples.
        here.register(
            "roost_events_ingested",
            "Events this node turned into runs.",
            self.events_ingested.clone(),
        );
        here.register(
            "roost_run_duration_seconds",
            "Wall time of runs finished on this node.",
            self.run_duration.clone(),
        );
        here.register(
            "roost_trigger_lag_seconds",
            "Time from a run being ready to a worker of this node starting it.",
            self.trigger_lag.clone(),
        );
        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String cannot fail");
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
        metrics.events_ingested.inc();
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
        assert!(text.contains("# TYPE roost_run_duration_seconds histogram\n"));
        assert!(
            text.contains("roost_run_duration_seconds_bucket{node=\"node_a\",le=\"+Inf\"} 2\n")
        );
        assert!(text.contains("# TYPE roost_node_running_runs gauge\n"));
        assert!(text.contains("roost_node_running_runs{node=\"node_a\"} 0\n"));
        assert!(text.contains("roost_events_ingested_total{node=\"node_a\"} 1\n"));
        assert!(text.ends_with("# EOF\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}

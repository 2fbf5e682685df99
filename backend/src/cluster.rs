//! Each node reports itself in the `nodes` table every few seconds; the
//! operator view (`GET /v1/cluster`) reads it back with how many runs each
//! node holds. Nodes silent for an hour are forgotten.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::queue::Runner;
use crate::store::{NodeRow, Store, StoreResult, now_millis};

/// How often a node reports.
pub const NODE_HEARTBEAT: Duration = Duration::from_secs(2);
/// A node silent for longer is shown as lost.
pub const NODE_ALIVE_WITHIN: Duration = Duration::from_secs(10);
/// A node silent for longer is removed from the table.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Reports `node` until `stop`, and sweeps long-gone nodes.
pub fn report(
    store: Arc<dyn Store>,
    mut node: NodeRow,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut beat = tokio::time::interval(NODE_HEARTBEAT);
        loop {
            tokio::select! {
                _ = beat.tick() => {}
                _ = stop.changed() => break,
            }
            node.heartbeat_at = now_millis();
            if let Err(err) = store.node_heartbeat(&node).await {
                tracing::warn!(error = %err, "recording this node's heartbeat failed");
            }
            let forget_before = node.heartbeat_at - FORGET_AFTER.as_millis() as i64;
            if let Err(err) = store.forget_nodes(forget_before).await {
                tracing::debug!(error = %err, "forgetting old nodes failed");
            }
        }
    })
}

/// One node in the operator view.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// As the node reported itself.
    #[serde(flatten)]
    pub node: NodeRow,
    /// Heard from within [`NODE_ALIVE_WITHIN`].
    pub alive: bool,
    /// Runs its workers hold now.
    pub running: i64,
}

/// The cluster as the database knows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// Every node heard from in the last hour.
    pub nodes: Vec<NodeView>,
    /// Queued runs ready to start.
    pub queue_depth: i64,
}

/// The operator's view of the cluster this node is part of.
#[derive(Clone)]
pub struct Cluster {
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
}

impl Cluster {
    /// The cluster sharing `store`, seen from the node `runner` works for.
    pub fn new(store: Arc<dyn Store>, runner: Arc<Runner>) -> Self {
        Self { store, runner }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        self.runner.node_id()
    }

    /// The nodes and the queue.
    pub async fn view(&self) -> StoreResult<ClusterView> {
        view(self.store.as_ref()).await
    }

    /// The Prometheus text of `GET /metrics`: the whole queue by status,
    /// and this node's counters.
    pub async fn metrics(&self) -> StoreResult<String> {
        let stats = self.store.run_stats(now_millis()).await?;
        Ok(self.runner.metrics().render(self.runner.node_id(), &stats))
    }
}

/// Reads the operator view.
async fn view(store: &dyn Store) -> StoreResult<ClusterView> {
    let now = now_millis();
    let stats = store.run_stats(now).await?;
    let nodes = store
        .nodes()
        .await?
        .into_iter()
        .map(|node| {
            // Workers are `<node id>-w<n>`.
            let prefix = format!("{}-w", node.id);
            let running = stats
                .running_by_worker
                .iter()
                .filter(|(worker, _)| worker.starts_with(&prefix))
                .map(|(_, n)| n)
                .sum();
            NodeView {
                alive: now - node.heartbeat_at <= NODE_ALIVE_WITHIN.as_millis() as i64,
                running,
                node,
            }
        })
        .collect();
    Ok(ClusterView {
        nodes,
        queue_depth: stats.ready,
    })
}

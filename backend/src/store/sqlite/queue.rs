//! SQLite's run queue: every write goes to the writer thread, which
//! batches the writes of many callers into one transaction per turn
//! (group_commit.rs).

use async_trait::async_trait;

use super::SqliteStore;
use crate::store::queue::RunQueue;
use crate::store::{
    EventIngest, NewEvent, NextClaim, PartialOutput, QueueLimits, Reported, RetryPlan, RunFinish,
    RunReport, RunRow, RunStatus, StartedRun, StoreError, StoreResult,
};

#[async_trait]
impl RunQueue for SqliteStore {
    async fn ingest_event(&self, event: &NewEvent) -> StoreResult<EventIngest> {
        self.queue.writer.ingest_event(event, None).await
    }

    async fn ingest_event_within(
        &self,
        event: &NewEvent,
        limits: QueueLimits,
    ) -> StoreResult<EventIngest> {
        self.queue.writer.ingest_event(event, Some(limits)).await
    }

    async fn claim_run(
        &self,
        worker_id: &str,
        per_script_limit: i64,
        skip_users: &[String],
    ) -> StoreResult<Option<RunRow>> {
        self.queue
            .writer
            .claim_run(worker_id, per_script_limit, skip_users)
            .await
    }

    // One process: its workers and triggers tell each other.
    async fn queue_notices(
        &self,
    ) -> StoreResult<Option<futures_util::stream::BoxStream<'static, crate::store::QueueNotice>>>
    {
        Ok(None)
    }

    async fn heartbeat_run(&self, run_id: &str, worker_id: &str) -> StoreResult<bool> {
        self.queue.writer.heartbeat(run_id, worker_id).await
    }

    async fn write_partial_output(
        &self,
        run_id: &str,
        worker_id: &str,
        output: &PartialOutput,
    ) -> StoreResult<bool> {
        self.queue
            .writer
            .partial_output(run_id, worker_id, output)
            .await
    }

    async fn finish_run(
        &self,
        run_id: &str,
        worker_id: &str,
        finish: &RunFinish,
        retry: Option<&RetryPlan>,
    ) -> StoreResult<bool> {
        let report = RunReport {
            run_id: run_id.to_string(),
            finish: finish.clone(),
            retry: retry.cloned(),
            started_at: None,
        };
        let reported = self
            .queue
            .writer
            .report_and_claim(worker_id, vec![report], Vec::new(), None)
            .await?;
        Ok(reported.recorded.first().copied().unwrap_or(false))
    }

    async fn report_and_claim(
        &self,
        worker_id: &str,
        reports: Vec<RunReport>,
        unstarted: Vec<String>,
        claim: Option<NextClaim>,
    ) -> StoreResult<Reported> {
        self.queue
            .writer
            .report_and_claim(worker_id, reports, unstarted, claim)
            .await
    }

    async fn record_started(&self, run: &StartedRun) -> StoreResult<()> {
        self.queue.writer.record(run, None).await.map(drop)
    }

    async fn record_ended(&self, run: &StartedRun, finish: &RunFinish) -> StoreResult<RunStatus> {
        let recorded = self.queue.writer.record(run, Some(finish)).await?;
        recorded.ok_or_else(|| StoreError::Corrupt("a run recorded with its end has none".into()))
    }

    fn hold_run_starts(&self, window: std::time::Duration) {
        self.queue.writer.hold_starts(window);
    }
}

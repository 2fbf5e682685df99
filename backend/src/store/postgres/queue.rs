//! PostgreSQL's run queue: nodes claim concurrently, each run under a row
//! lock (`FOR UPDATE SKIP LOCKED`) and each script's concurrency cap under
//! an advisory lock; a manual run's end is announced to every node.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use super::PostgresStore;
use super::run_state::{apply_writes, check_writes};
use crate::store::engine::Engine;
use crate::store::queue::{
    FINISH_RUN_SQL, HEARTBEAT_SQL, INSERT_HTTP_RESPONSE_SQL, INSERT_MESSAGE_SQL,
    INSERT_STARTED_RUN_SQL, PARTIAL_OUTPUT_SQL, RETRY_RUN_SQL, RunQueue,
};
use crate::store::state::{Checked, refused_run_error};
use crate::store::{
    EventIngest, NewEvent, NextClaim, PartialOutput, QueueLimits, QueueNotice, Reported, RetryPlan,
    RunFinish, RunReport, RunRow, RunStatus, StartedRun, StateUsage, StoreError, StoreResult,
    TriggerKind, new_id, now_millis,
};

/// `FINISH_RUN_SQL` answering with the run's trigger, to announce the ends
/// of manual runs; written once.
static FINISH_RETURNING_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{FINISH_RUN_SQL} RETURNING trigger_kind"));

/// The channel manual runs' ends are announced on.
const RUN_ENDS_CHANNEL: &str = "roost_run_ends";

/// The channel queued runs are announced on (by the event batches), with
/// the announcing store's mark.
pub(super) const RUNS_QUEUED_CHANNEL: &str = "roost_runs_queued";

#[async_trait]
impl RunQueue for PostgresStore {
    async fn ingest_event(&self, event: &NewEvent) -> StoreResult<EventIngest> {
        self.queue.ingest.ingest(event, None).await
    }

    async fn ingest_event_within(
        &self,
        event: &NewEvent,
        limits: QueueLimits,
    ) -> StoreResult<EventIngest> {
        self.queue.ingest.ingest(event, Some(limits)).await
    }

    // One run as several are claimed (`claim_batch`): one statement, which
    // holds the script's lock only until it ends.
    async fn claim_run(
        &self,
        worker_id: &str,
        per_script_limit: i64,
        skip_users: &[String],
    ) -> StoreResult<Option<RunRow>> {
        let claim = NextClaim {
            per_script_limit,
            runs: 1,
            workers: 1,
            skip_users: skip_users.to_vec(),
        };
        Ok(self
            .claim_batch(worker_id, &claim)
            .await?
            .into_iter()
            .next())
    }

    /// The notices, on a connection of their own. The listener reconnects
    /// by itself after a lost connection; notices sent while it was away
    /// are lost, which the waiting requests' periodic look and the
    /// workers' poll cover. This node's own notices of queued runs are
    /// left out: it wakes its workers itself.
    async fn queue_notices(
        &self,
    ) -> StoreResult<Option<futures_util::stream::BoxStream<'static, QueueNotice>>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener
            .listen_all([RUN_ENDS_CHANNEL, RUNS_QUEUED_CHANNEL])
            .await?;
        let own = self.queue.node_mark.clone();
        let notices = futures_util::stream::unfold(listener, move |mut listener| {
            let own = own.clone();
            async move {
                loop {
                    match listener.recv().await {
                        Ok(notice) if notice.channel() == RUN_ENDS_CHANNEL => {
                            let ended = QueueNotice::RunEnded(notice.payload().to_string());
                            return Some((ended, listener));
                        }
                        Ok(notice) if notice.payload() != own => {
                            return Some((QueueNotice::RunsQueued, listener));
                        }
                        Ok(_) => {}
                        Err(err) => {
                            tracing::warn!(error = %err, "listening for other nodes' runs failed; trying again");
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        });
        Ok(Some(notices.boxed()))
    }

    async fn heartbeat_run(&self, run_id: &str, worker_id: &str) -> StoreResult<bool> {
        let done = sqlx::query(HEARTBEAT_SQL)
            .bind(now_millis())
            .bind(run_id)
            .bind(worker_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn write_partial_output(
        &self,
        run_id: &str,
        worker_id: &str,
        output: &PartialOutput,
    ) -> StoreResult<bool> {
        let done = sqlx::query(PARTIAL_OUTPUT_SQL)
            .bind(&output.stdout)
            .bind(&output.stderr)
            .bind(i64::from(output.stdout_truncated))
            .bind(i64::from(output.stderr_truncated))
            .bind(output.output_cap)
            .bind(run_id)
            .bind(worker_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn finish_run(
        &self,
        run_id: &str,
        worker_id: &str,
        finish: &RunFinish,
        retry: Option<&RetryPlan>,
    ) -> StoreResult<bool> {
        let now = now_millis();
        // `retry` is queued if the run is recorded as anything but a success.
        if finish.effects.is_empty() && (retry.is_none() || finish.status == RunStatus::Succeeded) {
            // One statement needs no transaction of its own.
            let Some(ended) = finish_update(run_id, worker_id, finish, finish.status, None, now)
                .fetch_optional(&self.pool)
                .await?
            else {
                return Ok(false);
            };
            self.announce_end(run_id, &ended).await;
            return Ok(true);
        }
        let mut tx = self.pool.begin_with(sqlx::Postgres::BEGIN).await?;
        let Some((ended, _)) = finish_in(&mut tx, run_id, worker_id, finish, retry, now).await?
        else {
            return Ok(false);
        };
        tx.commit().await?;
        self.announce_end(run_id, &ended).await;
        Ok(true)
    }

    async fn report_and_claim(
        &self,
        worker_id: &str,
        reports: Vec<RunReport>,
        unstarted: Vec<String>,
        claim: Option<NextClaim>,
    ) -> StoreResult<Reported> {
        let mut reported = Reported::default();
        // Runs with nothing but their end to write are written together;
        // the others each in a transaction of their own, as `finish_run`.
        let plain = |report: &RunReport| {
            report.finish.effects.is_empty()
                && (report.retry.is_none() || report.finish.status == RunStatus::Succeeded)
        };
        let plains: Vec<&RunReport> = reports.iter().filter(|r| plain(r)).collect();
        let mut plain_recorded = match plains.len() {
            0 => Vec::new(),
            _ => self.finish_plain(worker_id, &plains).await?,
        }
        .into_iter();
        for report in &reports {
            let done = match plain(report) {
                true => plain_recorded.next().unwrap_or(false),
                false => {
                    self.finish_run(
                        &report.run_id,
                        worker_id,
                        &report.finish,
                        report.retry.as_ref(),
                    )
                    .await?
                }
            };
            reported.recorded.push(done);
        }
        if !unstarted.is_empty() {
            self.give_back(worker_id, &unstarted).await?;
        }
        let Some(claim) = claim.filter(|claim| claim.runs > 0) else {
            return Ok(reported);
        };
        // Several runs at once only where a dead node's runs are queued
        // again: one waiting in a worker's hands reads as running.
        let claim = match self.queue.batch_claims.load(Ordering::Relaxed) {
            true => claim,
            false => NextClaim { runs: 1, ..claim },
        };
        let next = self.claim_batch(worker_id, &claim).await;
        match next {
            Ok(next) => reported.next = next,
            Err(err) => {
                tracing::warn!(error = %err, "claiming the next runs after a finish failed")
            }
        }
        Ok(reported)
    }

    async fn record_started(&self, run: &StartedRun) -> StoreResult<()> {
        insert_started(run).execute(&self.pool).await?;
        Ok(())
    }

    async fn record_ended(&self, run: &StartedRun, finish: &RunFinish) -> StoreResult<RunStatus> {
        let mut tx = self.pool.begin_with(sqlx::Postgres::BEGIN).await?;
        insert_started(run).execute(&mut *tx).await?;
        // Nobody waits on its announced end: its caller is answered.
        let (_, status) = finish_in(&mut tx, &run.id, &run.worker_id, finish, None, now_millis())
            .await?
            .ok_or_else(|| StoreError::Corrupt("a run recorded with its end has none".into()))?;
        tx.commit().await?;
        Ok(status)
    }

    // A cluster's nodes must see every claim: starts are never held. A
    // worker may still be handed several runs, their starts written at the
    // claim and the time each began written with its end.
    fn hold_run_starts(&self, window: std::time::Duration) {
        self.queue
            .batch_claims
            .store(!window.is_zero(), Ordering::Relaxed);
    }
}

/// `run` inserted as running under its worker (`INSERT_STARTED_RUN_SQL`).
fn insert_started(
    run: &StartedRun,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let new = &run.run;
    sqlx::query(INSERT_STARTED_RUN_SQL)
        .bind(&run.id)
        .bind(&new.user_id)
        .bind(&new.script_id)
        .bind(new.script_version)
        .bind(&new.handler)
        .bind(new.trigger_kind.as_str())
        .bind(&new.trigger_spec)
        .bind(new.payload.to_string())
        .bind(run.started_at)
        .bind(&run.worker_id)
        .bind(now_millis())
}

/// `FINISH_RUN_SQL` for `finish`, recorded with `status` and `error`
/// (the finish's own where `None`), answering with the run's trigger.
fn finish_update<'q>(
    run_id: &'q str,
    worker_id: &'q str,
    finish: &'q RunFinish,
    status: RunStatus,
    error: Option<&str>,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(FINISH_RETURNING_SQL.as_str())
        .bind(status.as_str())
        .bind(finish.exit_code)
        .bind(finish.duration_ms)
        .bind(error.map(str::to_string).or_else(|| finish.error.clone()))
        .bind(&finish.stdout)
        .bind(&finish.stderr)
        .bind(i64::from(finish.stdout_truncated))
        .bind(i64::from(finish.stderr_truncated))
        .bind(finish.output_cap)
        .bind(now)
        .bind(run_id)
        .bind(worker_id)
}

/// Records how a running run ended in `tx` (see `RunQueue::finish_run`),
/// with its effects and its retry, answering with the finish's row and
/// the status recorded; `None` if it was no longer running under
/// `worker_id`. A success whose state writes are refused is recorded as a
/// failure, with none of its effects.
async fn finish_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    run_id: &str,
    worker_id: &str,
    finish: &RunFinish,
    retry: Option<&RetryPlan>,
    now: i64,
) -> StoreResult<Option<(PgRow, RunStatus)>> {
    let effects = &finish.effects;
    // The script's state is checked first: its usage row is where the
    // writes of one script take turns.
    let checked = if effects.state.is_empty() {
        Checked::Passed(StateUsage::default())
    } else {
        check_writes(tx, &effects.script_id, &effects.state, now).await?
    };
    let refused = match &checked {
        Checked::Refused(refused) => {
            tracing::warn!(run_id = %run_id, error = %refused, "a run's state writes were refused; it is recorded as failed");
            Some(refused_run_error(refused))
        }
        _ => None,
    };
    let ended = match &refused {
        Some(error) => finish_update(
            run_id,
            worker_id,
            finish,
            RunStatus::Failed,
            Some(error),
            now,
        ),
        None => finish_update(run_id, worker_id, finish, finish.status, None, now),
    }
    .fetch_optional(&mut **tx)
    .await?;
    let Some(ended) = ended else {
        return Ok(None);
    };
    if let Checked::Passed(usage) = checked
        && !effects.state.is_empty()
    {
        apply_writes(tx, &effects.script_id, run_id, &effects.state, usage, now).await?;
    }
    let messages = if refused.is_some() {
        &[][..]
    } else {
        &effects.messages[..]
    };
    for message in messages {
        sqlx::query(INSERT_MESSAGE_SQL)
            .bind(&message.id)
            .bind(&message.user_id)
            .bind(&message.script_id)
            .bind(&message.run_id)
            .bind(&message.channel)
            .bind(&message.recipient)
            .bind(&message.subject)
            .bind(&message.body)
            .bind(message.created_at)
            .execute(&mut **tx)
            .await?;
    }
    if let Some(reply) = effects.http_response.as_ref().filter(|_| refused.is_none()) {
        sqlx::query(INSERT_HTTP_RESPONSE_SQL)
            .bind(run_id)
            .bind(i64::from(reply.status))
            .bind(reply.headers_json())
            .bind(&reply.body)
            .execute(&mut **tx)
            .await?;
    }
    if refused.is_none() {
        super::emitted::write_emitted(tx, effects, now).await?;
    }
    // A success refused at its commit is retried as a failure would be.
    let succeeded = refused.is_none() && finish.status == RunStatus::Succeeded;
    if let Some(retry) = retry.filter(|_| !succeeded) {
        sqlx::query(RETRY_RUN_SQL)
            .bind(new_id("run"))
            .bind(retry.attempt)
            .bind(&retry.first_run_id)
            .bind(now)
            .bind(retry.not_before)
            .bind(run_id)
            .execute(&mut **tx)
            .await?;
    }
    let status = match refused {
        Some(_) => RunStatus::Failed,
        None => finish.status,
    };
    Ok(Some((ended, status)))
}

impl PostgresStore {
    /// Tells every node that a run someone may be waiting on (manual,
    /// HTTP-triggered or an MCP tool call) ended (`ended` is its finish's
    /// row). A lost notice only slows a waiting request to its next look.
    async fn announce_end(&self, run_id: &str, ended: &PgRow) {
        let manual = ended
            .try_get::<String, _>("trigger_kind")
            .is_ok_and(|kind| {
                kind == TriggerKind::Manual.as_str()
                    || kind == TriggerKind::Http.as_str()
                    || kind == TriggerKind::Mcp.as_str()
            });
        if !manual {
            return;
        }
        let notice = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(RUN_ENDS_CHANNEL)
            .bind(run_id)
            .execute(&self.pool)
            .await;
        if let Err(err) = notice {
            tracing::warn!(error = %err, "announcing a run's end failed");
        }
    }
}

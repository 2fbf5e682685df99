//! SQLite's hot write path: one writer connection that takes the events,
//! claims and finishes of many concurrent callers in turns, and commits the
//! events that arrived together in one transaction.
//!
//! SQLite has a single write lock. When several pool connections want it,
//! the losers sleep in SQLite's busy handler (1 ms, then 2, 5, 10 …) and a
//! burst of events turns into a queue of sleepers. Here every hot write is a
//! job on a channel instead; the writer takes whatever has arrived while it
//! was busy:
//! - events: one transaction of four statements for the whole batch
//!   (duplicates, subscribers, runs, events), whatever its size, using
//!   `json_each` over the batch;
//! - then finishes, then claims: each one statement in autocommit (a
//!   transaction would add two round trips to sqlx's connection thread and
//!   buy nothing: each is atomic on its own), so a claim sees the runs
//!   queued and the slots freed before it. A finish with a retry is a
//!   transaction of its own.
//!
//! Nobody waits for a batch to fill: a lone job is written at once, and
//! under load the batches grow by themselves. Each caller gets its answer
//! once its write is committed. If a batch of events fails, its events are
//! retried one by one, so one bad event cannot fail the others.

use std::collections::HashMap;

use serde_json::json;
use sqlx::sqlite::SqlitePool;
use sqlx::{Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};

use super::sql::{FINISH_RUN_SQL, RETRY_RUN_SQL, new_id, run_from_row};
use super::sqlite::{CLAIM_ONE, FINISH_AND_CLAIM};
use super::{
    EventIngest, NewEvent, RetryPlan, RunFinish, RunRow, StoreError, StoreResult, now_millis,
};

/// How often the WAL is copied back into the database file: often enough
/// that each copy is small. Measured under load: every 250 ms, each copy
/// and its fsyncs held up the writer's commits for 10-15 ms; every 50 ms,
/// mostly under 5 ms; every 20 ms was no better.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// At most this many jobs per turn, so one transaction stays short.
const MAX_BATCH: usize = 512;

/// The handle the store writes through; the writer task stops when the
/// last handle is dropped.
pub(super) struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

type Reply<T> = oneshot::Sender<StoreResult<T>>;

enum Job {
    Ingest {
        event: NewEvent,
        reply: Reply<EventIngest>,
    },
    Claim {
        worker_id: String,
        per_script_limit: i64,
        reply: Reply<Option<RunRow>>,
    },
    /// A finish, and then (with `claim_next`) a claim for the same worker.
    Finish {
        run_id: String,
        worker_id: String,
        finish: RunFinish,
        retry: Option<RetryPlan>,
        claim_next: Option<i64>,
        reply: Reply<(bool, Option<RunRow>)>,
    },
}

impl GroupCommit {
    /// Starts the writer on `writer`, a pool of one connection that nothing
    /// else uses and that never checkpoints the WAL itself; `readers`
    /// checkpoints it in the background instead, for as long as the writer
    /// runs.
    pub(super) fn start(writer: SqlitePool, readers: SqlitePool) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let (wrote, written) = watch::channel(());
        tokio::spawn(write_loop(writer, queue, wrote));
        tokio::spawn(checkpoint_loop(readers, written));
        Self { jobs }
    }

    pub(super) async fn ingest_event(&self, event: &NewEvent) -> StoreResult<EventIngest> {
        self.submit(|reply| Job::Ingest {
            event: event.clone(),
            reply,
        })
        .await
    }

    pub(super) async fn claim_run(
        &self,
        worker_id: &str,
        per_script_limit: i64,
    ) -> StoreResult<Option<RunRow>> {
        self.submit(|reply| Job::Claim {
            worker_id: worker_id.to_string(),
            per_script_limit,
            reply,
        })
        .await
    }

    pub(super) async fn finish_and_claim(
        &self,
        run_id: &str,
        worker_id: &str,
        finish: &RunFinish,
        retry: Option<&RetryPlan>,
        claim_next: Option<i64>,
    ) -> StoreResult<(bool, Option<RunRow>)> {
        self.submit(|reply| Job::Finish {
            run_id: run_id.to_string(),
            worker_id: worker_id.to_string(),
            finish: finish.clone(),
            retry: retry.cloned(),
            claim_next,
            reply,
        })
        .await
    }

    async fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(job(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Database(sqlx::Error::WorkerCrashed)
}

/// Takes turns until the last handle is dropped; after each turn, tells the
/// checkpointer there is something to copy (dropping `wrote` stops it).
async fn write_loop(
    writer: SqlitePool,
    mut queue: mpsc::UnboundedReceiver<Job>,
    wrote: watch::Sender<()>,
) {
    // The connection is held for good: taking it from the pool for every
    // turn would cost a round trip to its thread each time.
    let mut conn = None;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if conn.is_none() {
            match writer.acquire().await {
                Ok(acquired) => conn = Some(acquired),
                Err(err) => {
                    tracing::error!(error = %err, "the SQLite writer has no connection");
                    let message = err.to_string();
                    for job in batch {
                        let err = std::io::Error::other(format!(
                            "the SQLite writer has no connection: {message}"
                        ));
                        fail(job, StoreError::Database(sqlx::Error::Io(err)));
                    }
                    continue;
                }
            }
        }
        if let Some(conn) = conn.as_mut() {
            write_batch(conn, batch).await;
            wrote.send_replace(());
        }
    }
}

/// Copies committed pages from the WAL back into the database file.
/// SQLite would do it on the commit that crosses 1,000 WAL pages, and that
/// commit (the writer's) would then wait milliseconds for the copy and its
/// fsyncs, as would every caller in its turn. A passive checkpoint from
/// another connection runs beside the writer and blocks nobody.
async fn checkpoint_loop(readers: SqlitePool, mut written: watch::Receiver<()>) {
    let mut failing = false;
    // An idle server checkpoints nothing: each round starts with a write.
    while written.changed().await.is_ok() {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        written.borrow_and_update();
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&readers)
            .await
        {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("SQLite checkpoints work again");
            }
            Ok(_) => {}
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %err, "checkpointing the SQLite WAL failed; it grows until a checkpoint succeeds");
            }
            Err(_) => {}
        }
    }
}

/// Writes one turn's jobs and answers each (a caller that stopped waiting
/// gets nothing; what was committed stays committed, as for any dropped
/// request).
async fn write_batch(conn: &mut SqliteConnection, batch: Vec<Job>) {
    let mut events = Vec::new();
    let mut finishes = Vec::new();
    let mut claims = Vec::new();
    for job in batch {
        match job {
            Job::Ingest { event, reply } => events.push((event, reply)),
            Job::Finish {
                run_id,
                worker_id,
                finish,
                retry,
                claim_next,
                reply,
            } => finishes.push((run_id, worker_id, finish, retry, claim_next, reply)),
            Job::Claim {
                worker_id,
                per_script_limit,
                reply,
            } => claims.push((worker_id, per_script_limit, reply)),
        }
    }
    if !events.is_empty() {
        ingest_batch(conn, events).await;
    }
    let mut claims_after_finish = Vec::new();
    for (run_id, worker_id, finish, retry, claim_next, reply) in finishes {
        match (retry, claim_next) {
            (None, Some(limit)) => {
                let done = finish_then_claim(conn, &run_id, &worker_id, &finish, limit).await;
                drop(reply.send(done));
            }
            (retry, claim_next) => {
                match finish_run(conn, &run_id, &worker_id, &finish, retry.as_ref()).await {
                    Ok(done) => match claim_next {
                        Some(limit) => claims_after_finish.push((worker_id, limit, done, reply)),
                        None => drop(reply.send(Ok((done, None)))),
                    },
                    Err(err) => drop(reply.send(Err(err))),
                }
            }
        }
    }
    for (worker_id, per_script_limit, reply) in claims {
        drop(reply.send(claim(conn, &worker_id, per_script_limit).await));
    }
    for (worker_id, limit, done, reply) in claims_after_finish {
        // The finish is recorded whatever happens to the claim; a failed
        // claim leaves the worker to claim again in its own loop.
        let next = claim(conn, &worker_id, limit).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "claiming the next run after a finish failed");
            None
        });
        drop(reply.send(Ok((done, next))));
    }
}

fn fail(job: Job, err: StoreError) {
    match job {
        Job::Ingest { reply, .. } => drop(reply.send(Err(err))),
        Job::Claim { reply, .. } => drop(reply.send(Err(err))),
        Job::Finish { reply, .. } => drop(reply.send(Err(err))),
    }
}

/// The events of one turn in one transaction; if it fails, each event in a
/// transaction of its own, so only the bad one gets the error.
async fn ingest_batch(conn: &mut SqliteConnection, events: Vec<(NewEvent, Reply<EventIngest>)>) {
    let all: Vec<&NewEvent> = events.iter().map(|(event, _)| event).collect();
    match ingest_in_transaction(conn, &all).await {
        Ok(outcomes) => {
            for ((_, reply), outcome) in events.into_iter().zip(outcomes) {
                drop(reply.send(Ok(outcome)));
            }
        }
        Err(err) if events.len() == 1 => {
            let (_, reply) = events.into_iter().next().expect("one event");
            drop(reply.send(Err(err)));
        }
        Err(err) => {
            tracing::warn!(events = events.len(), error = %err, "a grouped event commit failed; committing its events one by one");
            for (event, reply) in events {
                drop(
                    reply.send(
                        ingest_in_transaction(conn, &[&event])
                            .await
                            .map(|mut done| done.remove(0)),
                    ),
                );
            }
        }
    }
}

async fn ingest_in_transaction(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> StoreResult<Vec<EventIngest>> {
    use sqlx::Connection;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let outcomes = ingest_events(&mut tx, events).await?;
    tx.commit().await?;
    Ok(outcomes)
}

async fn claim(
    conn: &mut SqliteConnection,
    worker_id: &str,
    per_script_limit: i64,
) -> StoreResult<Option<RunRow>> {
    let row = sqlx::query(CLAIM_ONE.as_str())
        .bind(now_millis())
        .bind(per_script_limit)
        .bind(worker_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| run_from_row(&row)).transpose()
}

/// `sql` with a finish's parameters `$1`–`$12` bound (see `FINISH_RUN_SQL`).
fn finish_query<'q>(
    sql: &'q str,
    run_id: &'q str,
    worker_id: &'q str,
    finish: &'q RunFinish,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    sqlx::query(sql)
        .bind(&finish.status)
        .bind(finish.exit_code)
        .bind(finish.duration_ms)
        .bind(&finish.error)
        .bind(&finish.stdout)
        .bind(&finish.stderr)
        .bind(i64::from(finish.stdout_truncated))
        .bind(i64::from(finish.stderr_truncated))
        .bind(finish.output_cap)
        .bind(now_millis())
        .bind(run_id)
        .bind(worker_id)
}

/// A finish without a retry and the worker's next claim, in one statement.
async fn finish_then_claim(
    conn: &mut SqliteConnection,
    run_id: &str,
    worker_id: &str,
    finish: &RunFinish,
    per_script_limit: i64,
) -> StoreResult<(bool, Option<RunRow>)> {
    let rows = finish_query(FINISH_AND_CLAIM.as_str(), run_id, worker_id, finish)
        .bind(per_script_limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut finished = false;
    let mut next = None;
    for row in &rows {
        let run = run_from_row(row)?;
        if run.id == run_id {
            finished = true;
        } else {
            next = Some(run);
        }
    }
    Ok((finished, next))
}

async fn finish_run(
    conn: &mut SqliteConnection,
    run_id: &str,
    worker_id: &str,
    finish: &RunFinish,
    retry: Option<&RetryPlan>,
) -> StoreResult<bool> {
    use sqlx::Connection;
    let update = finish_query(FINISH_RUN_SQL, run_id, worker_id, finish);
    let Some(retry) = retry else {
        return Ok(update.execute(&mut *conn).await?.rows_affected() > 0);
    };
    // The outcome and the next attempt go together or not at all.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    if update.execute(&mut *tx).await?.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(RETRY_RUN_SQL)
        .bind(new_id("run"))
        .bind(retry.attempt)
        .bind(&retry.first_run_id)
        .bind(now_millis())
        .bind(retry.not_before)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Turns a batch of events into runs, each event id once: an id seen
/// before (stored, or earlier in this batch) queues nothing and answers
/// with the first event's runs.
async fn ingest_events(
    tx: &mut SqliteConnection,
    events: &[&NewEvent],
) -> StoreResult<Vec<EventIngest>> {
    // Within the batch, a repeated id refers to its first occurrence.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut repeat_of: Vec<Option<usize>> = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let key = (event.user_id.as_str(), event.event_id.as_str());
        repeat_of.push(first_of.get(&key).copied());
        first_of.entry(key).or_insert(i);
    }
    let firsts: Vec<usize> = (0..events.len())
        .filter(|i| repeat_of[*i].is_none())
        .collect();

    // Ids already stored.
    let keys = json!(
        firsts
            .iter()
            .map(|i| json!([events[*i].user_id, events[*i].event_id]))
            .collect::<Vec<_>>()
    );
    let mut stored: HashMap<usize, Vec<String>> = HashMap::new();
    for row in sqlx::query(
        "SELECT j.key AS i, e.run_ids FROM json_each($1) j JOIN events e \
         ON e.user_id = json_extract(j.value, '$[0]') AND e.event_id = json_extract(j.value, '$[1]')",
    )
    .bind(keys.to_string())
    .fetch_all(&mut *tx)
    .await?
    {
        let at: i64 = row.try_get("i")?;
        let run_ids: String = row.try_get("run_ids")?;
        let run_ids = serde_json::from_str(&run_ids)
            .map_err(|e| StoreError::Corrupt(format!("event run ids: {e}")))?;
        stored.insert(firsts[at as usize], run_ids);
    }
    let new: Vec<usize> = firsts
        .iter()
        .copied()
        .filter(|i| !stored.contains_key(i))
        .collect();

    // The handlers subscribed to each distinct (user, type) of the new events.
    let mut pairs: Vec<(&str, &str)> = new
        .iter()
        .map(|i| (events[*i].user_id.as_str(), events[*i].event_type.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut subscribers: HashMap<(&str, &str), Vec<(String, i64, String)>> = HashMap::new();
    if !pairs.is_empty() {
        let rows = sqlx::query(
            "SELECT j.key AS i, s.id AS script_id, s.current_version, t.handler FROM json_each($1) j \
             JOIN scripts s ON s.user_id = json_extract(j.value, '$[0]') \
             JOIN triggers t ON t.script_id = s.id \
             WHERE t.kind = 'event' AND t.spec = json_extract(j.value, '$[1]') \
             ORDER BY j.key, s.id, t.handler",
        )
        .bind(json!(pairs.iter().map(|(u, t)| json!([u, t])).collect::<Vec<_>>()).to_string())
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let at: i64 = row.try_get("i")?;
            subscribers.entry(pairs[at as usize]).or_default().push((
                row.try_get("script_id")?,
                row.try_get("current_version")?,
                row.try_get("handler")?,
            ));
        }
    }

    // One run per subscriber of each new event, then the events themselves.
    let now = now_millis();
    let mut runs = Vec::new();
    let mut created: HashMap<usize, Vec<String>> = HashMap::new();
    for i in &new {
        let event = events[*i];
        let key = (event.user_id.as_str(), event.event_type.as_str());
        let payload = event.payload.to_string();
        let ids = created.entry(*i).or_default();
        for (script_id, version, handler) in subscribers.get(&key).into_iter().flatten() {
            let id = new_id("run");
            runs.push(json!([
                id,
                event.user_id,
                script_id,
                version,
                handler,
                event.event_type,
                payload
            ]));
            ids.push(id);
        }
    }
    if !runs.is_empty() {
        sqlx::query(
            "INSERT INTO runs (id, user_id, script_id, script_version, handler, trigger_kind, trigger_spec, \
             payload, status, attempt, queued_at) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
             json_extract(value, '$[3]'), json_extract(value, '$[4]'), 'event', json_extract(value, '$[5]'), \
             json_extract(value, '$[6]'), 'queued', 1, $2 FROM json_each($1) ORDER BY key",
        )
        .bind(serde_json::Value::Array(runs).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    if !new.is_empty() {
        let rows: Vec<_> = new
            .iter()
            .map(|i| {
                let event = events[*i];
                json!([
                    event.user_id,
                    event.event_id,
                    event.event_type,
                    event.source,
                    serde_json::to_string(&created[i]).expect("ids serialise")
                ])
            })
            .collect();
        sqlx::query(
            "INSERT INTO events (user_id, event_id, event_type, source, received_at, run_ids) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
             json_extract(value, '$[3]'), $2, json_extract(value, '$[4]') FROM json_each($1) ORDER BY key",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }

    Ok((0..events.len())
        .map(|i| match (repeat_of[i], stored.get(&i)) {
            (Some(first), _) => EventIngest {
                duplicate: true,
                run_ids: stored
                    .get(&first)
                    .or_else(|| created.get(&first))
                    .cloned()
                    .unwrap_or_default(),
            },
            (None, Some(run_ids)) => EventIngest {
                duplicate: true,
                run_ids: run_ids.clone(),
            },
            (None, None) => EventIngest {
                duplicate: false,
                run_ids: created.get(&i).cloned().unwrap_or_default(),
            },
        })
        .collect())
}

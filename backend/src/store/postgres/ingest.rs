//! Events into runs on PostgreSQL, several events to a statement: each
//! ingest joins the batch being gathered while the one before it commits
//! (group commit), and a batch costs two statements however many events it
//! holds (docs/postgres-queue.md). An event whose subscribers include a
//! flow-controlled handler (debounce, throttle, concurrency) is queued on
//! its own, as is an event of a batch whose id another node recorded
//! meanwhile.

use std::collections::{HashMap, HashSet};

use sqlx::Row as _;
use sqlx::postgres::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::queue::RUNS_QUEUED_CHANNEL;
use crate::store::events::run_ids;
use crate::store::queue::EVENT_LOOKUP_SQL;
use crate::store::{
    EventIngest, NewEvent, QueueDepth, QueueLimits, StoreError, StoreResult, new_id, now_millis,
};

/// Most events in one transaction.
const MAX_BATCH: usize = 128;

/// What a batch needs to know, in one statement, one row each: the events
/// of `$1`/`$2` (users, event ids) already received (`seen`, with their
/// runs); the handlers subscribed to each (user, event type) of `$1`/`$3`
/// (`handler`, as `EVENT_SUBSCRIBERS_SQL` answers for one, in script and
/// handler order); with `$4`, the users' shares of the queue (`depth`, as
/// `QUEUE_DEPTH_SQL`).
const BATCH_READ_SQL: &str = "SELECT 'seen' AS kind, e.user_id, e.event_id AS name, e.run_ids AS detail, \
     NULL::text AS script_id, NULL::int8 AS version, NULL::text AS handler, NULL::int8 AS n, NULL::int8 AS bytes \
     FROM events e JOIN UNNEST($1::text[], $2::text[]) AS u(user_id, event_id) \
     ON e.user_id = u.user_id AND e.event_id = u.event_id \
     UNION ALL SELECT 'handler', u.user_id, u.spec, t.flow, s.id, s.current_version, t.handler, NULL, NULL \
     FROM UNNEST($1::text[], $3::text[]) AS u(user_id, spec) JOIN scripts s ON s.user_id = u.user_id \
     JOIN triggers t ON t.script_id = s.id AND t.kind = 'event' AND t.spec = u.spec \
     UNION ALL SELECT 'depth', user_id, NULL, NULL, NULL, NULL, NULL, COALESCE(SUM(queued), 0)::BIGINT, \
     COALESCE(SUM(payload_bytes), 0)::BIGINT FROM queue_depth WHERE $4 AND user_id = ANY($1) GROUP BY user_id \
     ORDER BY kind, script_id, handler";

/// The batch's events (`$1`-`$7`, as `INSERT_EVENT_SQL`) and their queued
/// runs (`$8`-`$16`, as `INSERT_EVENT_RUN_SQL`), received and queued at
/// `$17`, in one statement. An id another node recorded meanwhile is left
/// out, with its runs; the answer lists the events recorded. Runs queued
/// are announced to the other nodes' idle workers at the commit (`$18`:
/// this store's mark; the channel is `RUNS_QUEUED_CHANNEL`).
const BATCH_WRITE_SQL: &str = "WITH e AS (INSERT INTO events (user_id, event_id, event_type, source, \
     received_at, run_ids, source_run_id, chain_depth) SELECT user_id, event_id, event_type, source, $17, \
     run_ids, source_run_id, chain_depth FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
     $5::text[], $6::text[], $7::int8[]) \
     AS e(user_id, event_id, event_type, source, run_ids, source_run_id, chain_depth) \
     ON CONFLICT (user_id, event_id) DO NOTHING RETURNING user_id, event_id), \
     q AS (INSERT INTO runs (id, user_id, script_id, script_version, handler, trigger_kind, trigger_spec, \
     payload, status, attempt, queued_at, cause_event_id, chain_depth) \
     SELECT r.id, r.user_id, r.script_id, r.version, r.handler, 'event', r.spec, r.payload, 'queued', 1, \
     $17, r.event_id, r.chain_depth FROM UNNEST($8::text[], $9::text[], $10::text[], $11::int8[], \
     $12::text[], $13::text[], $14::text[], $15::text[], $16::int8[]) \
     AS r(id, user_id, script_id, version, handler, spec, payload, event_id, chain_depth) \
     JOIN e ON e.user_id = r.user_id AND e.event_id = r.event_id RETURNING 1), \
     n AS (SELECT pg_notify('roost_runs_queued', $18) FROM (SELECT COUNT(*) AS c FROM q) x WHERE c > 0) \
     SELECT user_id, event_id, (SELECT COUNT(*) FROM n) AS announced FROM e";

/// An event waiting for its batch.
struct Pending {
    event: NewEvent,
    payload: String,
    limits: Option<QueueLimits>,
    answer: oneshot::Sender<StoreResult<EventIngest>>,
}

/// Hands events to the task that writes them in batches.
pub(crate) struct Ingest {
    pending: mpsc::UnboundedSender<Pending>,
}

impl Ingest {
    /// Starts the batching task over `pool`; it ends with the store.
    pub(crate) fn start(pool: PgPool, node_mark: String) -> Self {
        let (pending, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(pool, node_mark, queue));
        Self { pending }
    }

    /// Records `event` and queues its runs (see `RunQueue::ingest_event`),
    /// within `limits` if given, with the events that arrive meanwhile.
    pub(crate) async fn ingest(
        &self,
        event: &NewEvent,
        limits: Option<QueueLimits>,
    ) -> StoreResult<EventIngest> {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            event: event.clone(),
            payload: event.payload.to_string(),
            limits,
            answer,
        };
        self.pending
            .send(pending)
            .map_err(|_| StoreError::Corrupt("the event writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Corrupt("the event writer dropped an event".into()))?
    }
}

async fn write_batches(
    pool: PgPool,
    node_mark: String,
    mut queue: mpsc::UnboundedReceiver<Pending>,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (events, began) = (batch.len(), std::time::Instant::now());
        write_batch(&pool, &node_mark, batch).await;
        tracing::debug!(
            events,
            took_us = began.elapsed().as_micros() as u64,
            "event batch written"
        );
    }
}

/// Writes one batch, or, if the batch cannot commit whole, each of its
/// events on its own.
async fn write_batch(pool: &PgPool, node_mark: &str, batch: Vec<Pending>) {
    let answers = match batched(pool, node_mark, &batch).await {
        Ok(answers) => answers,
        Err(err) => {
            tracing::debug!(error = %err, events = batch.len(), "an event batch was written one by one");
            batch.iter().map(|_| Answer::Alone).collect()
        }
    };
    let mut written: Vec<Option<EventIngest>> = Vec::with_capacity(batch.len());
    let mut alone = Vec::new();
    for (pending, answer) in batch.into_iter().zip(answers) {
        // A repeat of an event written on its own goes on its own too.
        let answer = match answer {
            Answer::RepeatOf(first) => match written.get(first).cloned().flatten() {
                Some(first) => Answer::Done(Ok(EventIngest {
                    duplicate: true,
                    run_ids: first.run_ids,
                })),
                None => Answer::Alone,
            },
            answer => answer,
        };
        let answer = match answer {
            Answer::Done(answer) => answer,
            _ => {
                written.push(None);
                alone.push(pending);
                continue;
            }
        };
        written.push(answer.as_ref().ok().cloned());
        let _ = pending.answer.send(answer);
    }
    // Concurrently, as separate requests would be, and without holding up
    // the next batch (a race between two of them is settled in the store).
    for pending in alone {
        let (pool, node_mark) = (pool.clone(), node_mark.to_string());
        tokio::spawn(async move {
            let answer = ingest_one(
                &pool,
                &node_mark,
                &pending.event,
                &pending.payload,
                pending.limits,
            )
            .await;
            let _ = pending.answer.send(answer);
        });
    }
}

/// How an event of a batch is answered.
enum Answer {
    /// Written with the batch (or refused, or a repeat of an earlier event).
    Done(StoreResult<EventIngest>),
    /// Queued on its own, after the batch.
    Alone,
    /// A repeat of the batch's event at this index: its runs.
    RepeatOf(usize),
}

/// What one subscribed handler's run needs.
struct Subscriber {
    script_id: String,
    version: i64,
    handler: String,
    flow: bool,
}

/// The batch in two statements, one read and one write (the write is
/// atomic on its own, so no transaction is held open across the round
/// trip between them): how each event is answered once it commits.
async fn batched(pool: &PgPool, node_mark: &str, batch: &[Pending]) -> StoreResult<Vec<Answer>> {
    let now = now_millis();
    let users: Vec<&str> = batch.iter().map(|p| p.event.user_id.as_str()).collect();
    let ids: Vec<&str> = batch.iter().map(|p| p.event.event_id.as_str()).collect();
    let types: Vec<&str> = batch.iter().map(|p| p.event.event_type.as_str()).collect();
    let mut seen: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut subscribers: HashMap<(String, String), Vec<Subscriber>> = HashMap::new();
    let mut depths: HashMap<String, QueueDepth> = HashMap::new();
    for row in sqlx::query(BATCH_READ_SQL)
        .bind(&users)
        .bind(&ids)
        .bind(&types)
        .bind(batch.iter().any(|p| p.limits.is_some()))
        .fetch_all(pool)
        .await?
    {
        let user_id: String = row.try_get("user_id")?;
        match row.try_get::<&str, _>("kind")? {
            "seen" => {
                let ids: String = row.try_get("detail")?;
                seen.insert((user_id, row.try_get("name")?), run_ids(&ids)?);
            }
            "handler" => {
                let flow: Option<String> = row.try_get("detail")?;
                let subscriber = Subscriber {
                    script_id: row.try_get("script_id")?,
                    version: row.try_get("version")?,
                    handler: row.try_get("handler")?,
                    flow: flow.is_some(),
                };
                let entry = subscribers
                    .entry((user_id, row.try_get("name")?))
                    .or_default();
                // The same (user, type) twice in the batch lists its
                // handlers twice.
                if !entry
                    .iter()
                    .any(|s| s.script_id == subscriber.script_id && s.handler == subscriber.handler)
                {
                    entry.push(subscriber);
                }
            }
            _ => {
                let depth = QueueDepth {
                    runs: row.try_get("n")?,
                    payload_bytes: row.try_get("bytes")?,
                };
                depths.insert(user_id, depth);
            }
        }
    }

    let mut answers = Vec::with_capacity(batch.len());
    let mut writes = BatchWrite::default();
    // Ids earlier in this batch: a repeat is answered as one.
    let mut in_batch: HashMap<(&str, &str), usize> = HashMap::new();
    for (n, pending) in batch.iter().enumerate() {
        let event = &pending.event;
        let key = (event.user_id.clone(), event.event_id.clone());
        if let Some(earlier) = seen.get(&key) {
            answers.push(Answer::Done(Ok(EventIngest {
                duplicate: true,
                run_ids: earlier.clone(),
            })));
            continue;
        }
        if let Some(&first) = in_batch.get(&(event.user_id.as_str(), event.event_id.as_str())) {
            answers.push(Answer::RepeatOf(first));
            continue;
        }
        let handlers = subscribers
            .get(&(event.user_id.clone(), event.event_type.clone()))
            .map_or(&[][..], Vec::as_slice);
        if handlers.iter().any(|s| s.flow) {
            answers.push(Answer::Alone);
            continue;
        }
        if let Some(limits) = pending.limits {
            let depth = depths.entry(event.user_id.clone()).or_default();
            let copies = handlers.len().max(1) as i64;
            let incoming = copies * pending.payload.len() as i64;
            if let Err(full) = limits.admit(*depth, incoming) {
                answers.push(Answer::Done(Err(full)));
                continue;
            }
            depth.runs += handlers.len() as i64;
            depth.payload_bytes += handlers.len() as i64 * pending.payload.len() as i64;
        }
        in_batch.insert((event.user_id.as_str(), event.event_id.as_str()), n);
        let ids: Vec<String> = handlers.iter().map(|_| new_id("run")).collect();
        for (id, handler) in ids.iter().zip(handlers) {
            writes.push_run(id, event, handler, &pending.payload);
        }
        writes.push_event(event, &ids);
        answers.push(Answer::Done(Ok(EventIngest {
            duplicate: false,
            run_ids: ids,
        })));
    }
    if writes.user_id.is_empty() {
        return Ok(answers);
    }
    let recorded = writes.write(pool, now, node_mark).await?;
    let recorded: HashSet<(&str, &str)> = recorded
        .iter()
        .map(|(u, e)| (u.as_str(), e.as_str()))
        .collect();
    // An id another node recorded meanwhile was left out with its runs:
    // that event, and its repeats, again on their own, where the race is
    // settled.
    for (n, pending) in batch.iter().enumerate() {
        let event = &pending.event;
        let key = (event.user_id.as_str(), event.event_id.as_str());
        if in_batch.contains_key(&key) && !recorded.contains(&key) {
            answers[n] = Answer::Alone;
        }
    }
    Ok(answers)
}

/// The batch's events and their runs, a column per array.
#[derive(Default)]
struct BatchWrite {
    user_id: Vec<String>,
    event_id: Vec<String>,
    event_type: Vec<String>,
    source: Vec<Option<String>>,
    run_ids: Vec<String>,
    source_run_id: Vec<Option<String>>,
    chain_depth: Vec<i64>,
    runs: RunColumns,
}

/// The batch's runs, a column per array.
#[derive(Default)]
struct RunColumns {
    id: Vec<String>,
    user_id: Vec<String>,
    script_id: Vec<String>,
    version: Vec<i64>,
    handler: Vec<String>,
    spec: Vec<String>,
    payload: Vec<String>,
    event_id: Vec<String>,
    chain_depth: Vec<i64>,
}

impl BatchWrite {
    fn push_run(&mut self, id: &str, event: &NewEvent, handler: &Subscriber, payload: &str) {
        let runs = &mut self.runs;
        runs.id.push(id.to_string());
        runs.user_id.push(event.user_id.clone());
        runs.script_id.push(handler.script_id.clone());
        runs.version.push(handler.version);
        runs.handler.push(handler.handler.clone());
        runs.spec.push(event.event_type.clone());
        runs.payload.push(payload.to_string());
        runs.event_id.push(event.event_id.clone());
        runs.chain_depth.push(event.chain_depth);
    }

    fn push_event(&mut self, event: &NewEvent, run_ids: &[String]) {
        self.user_id.push(event.user_id.clone());
        self.event_id.push(event.event_id.clone());
        self.event_type.push(event.event_type.clone());
        self.source.push(event.source.clone());
        self.run_ids
            .push(serde_json::to_string(run_ids).expect("ids serialise"));
        self.source_run_id.push(event.source_run_id.clone());
        self.chain_depth.push(event.chain_depth);
    }

    /// Writes the events and their runs (`BATCH_WRITE_SQL`); the (user,
    /// event id) of each event recorded.
    async fn write(
        &self,
        pool: &PgPool,
        now: i64,
        mark: &str,
    ) -> StoreResult<HashSet<(String, String)>> {
        let runs = &self.runs;
        let rows = sqlx::query(BATCH_WRITE_SQL)
            .bind(&self.user_id)
            .bind(&self.event_id)
            .bind(&self.event_type)
            .bind(&self.source)
            .bind(&self.run_ids)
            .bind(&self.source_run_id)
            .bind(&self.chain_depth)
            .bind(&runs.id)
            .bind(&runs.user_id)
            .bind(&runs.script_id)
            .bind(&runs.version)
            .bind(&runs.handler)
            .bind(&runs.spec)
            .bind(&runs.payload)
            .bind(&runs.event_id)
            .bind(&runs.chain_depth)
            .bind(now)
            .bind(mark)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("user_id")?, row.try_get("event_id")?)))
            .collect()
    }
}

/// One event in a transaction of its own (see `RunQueue::ingest_event`):
/// the path of flow-controlled handlers, and of a batch that could not
/// commit whole.
async fn ingest_one(
    pool: &PgPool,
    node_mark: &str,
    event: &NewEvent,
    payload: &str,
    limits: Option<QueueLimits>,
) -> StoreResult<EventIngest> {
    let seen = |run_ids_json: String| -> StoreResult<EventIngest> {
        Ok(EventIngest {
            duplicate: true,
            run_ids: run_ids(&run_ids_json)?,
        })
    };
    let now = now_millis();
    let mut tx = pool.begin().await?;
    let earlier = sqlx::query(EVENT_LOOKUP_SQL)
        .bind(&event.user_id)
        .bind(&event.event_id)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(row) = earlier {
        return seen(row.try_get("run_ids")?);
    }
    if let Some(limits) = limits {
        let depth = super::emitted::queue_depth_in(&mut tx, &event.user_id).await?;
        limits.admit(depth, payload.len() as i64)?;
    }
    let run_ids = super::emitted::queue_event_runs(&mut tx, event, payload, now).await?;
    // The check before counted one copy of the payload; an event that
    // starts several runs stores several. Checked again with them counted
    // (the triggers have added them), in its transaction: refused, it
    // leaves nothing.
    if let Some(limits) = limits.filter(|_| run_ids.len() > 1) {
        let depth = super::emitted::queue_depth_in(&mut tx, &event.user_id).await?;
        let new_runs = run_ids.len() as i64;
        let incoming = new_runs * payload.len() as i64;
        let before = QueueDepth {
            runs: depth.runs - new_runs,
            payload_bytes: depth.payload_bytes - incoming,
        };
        limits.admit(before, incoming)?;
    }
    let inserted = super::emitted::insert_event(&mut tx, event, &run_ids, None, now).await;
    match inserted {
        Ok(_) => {
            if !run_ids.is_empty() {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(RUNS_QUEUED_CHANNEL)
                    .bind(node_mark)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(EventIngest {
                duplicate: false,
                run_ids,
            })
        }
        // The same event arrived concurrently and won: roll back our runs
        // and report the winner's.
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            tx.rollback().await?;
            let row = sqlx::query(EVENT_LOOKUP_SQL)
                .bind(&event.user_id)
                .bind(&event.event_id)
                .fetch_one(pool)
                .await?;
            seen(row.try_get("run_ids")?)
        }
        Err(err) => Err(err.into()),
    }
}

//! The events a run emitted and the runs it scheduled, written in its
//! finish's transaction (see `sqlite/emitted.rs`).

use sqlx::Row;

use crate::store::engine::Engine;
use crate::store::flow::flow_of;
use crate::store::queue::{
    EVENT_LOOKUP_SQL, EVENT_SUBSCRIBERS_SQL, INSERT_EVENT_RUN_SQL, INSERT_EVENT_SQL,
    INSERT_SCHEDULED_RUN_SQL, INSERT_THROTTLED_RUN_SQL, LIMIT_CONCURRENCY_SQL, THROTTLE_SLOT_SQL,
    UPSERT_DEBOUNCED_RUN_SQL,
};
use crate::store::{NewEvent, QueueDepth, RunEffects, StoreError, StoreResult, new_id};

pub(super) async fn write_emitted(
    tx: &mut sqlx::PgConnection,
    effects: &RunEffects,
    now: i64,
) -> StoreResult<()> {
    for emitted in &effects.emitted {
        let event = &emitted.event;
        if emitted.past_chain_limit {
            insert_event(tx, event, &[], Some("chain_limit"), now).await?;
            continue;
        }
        // An id seen before (a user may post any id) is not recorded
        // twice, as on SQLite: a unique violation would abort the finish.
        let seen = sqlx::query(EVENT_LOOKUP_SQL)
            .bind(&event.user_id)
            .bind(&event.event_id)
            .fetch_optional(&mut *tx)
            .await?;
        if seen.is_some() {
            continue;
        }
        let payload = event.payload.to_string();
        if let Some(limits) = effects.queue_limits {
            let depth = queue_depth_in(tx, &event.user_id).await?;
            match limits.admit(depth, payload.len() as i64) {
                Ok(()) => {}
                Err(StoreError::QueueFull { .. } | StoreError::PayloadQuotaFull { .. }) => {
                    insert_event(tx, event, &[], Some("queue_full"), now).await?;
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
        let run_ids = queue_event_runs(tx, event, &payload, now).await?;
        insert_event(tx, event, &run_ids, None, now).await?;
    }
    for scheduled in &effects.scheduled {
        let run = &scheduled.run;
        let payload = run.payload.to_string();
        if let Some(limits) = effects.queue_limits {
            let depth = queue_depth_in(tx, &run.user_id).await?;
            if let Err(full) = limits.admit(depth, payload.len() as i64) {
                // The asking run succeeded; the run it asked for is not kept.
                tracing::warn!(run_id = %scheduled.id, error = %full, "a scheduled run was dropped: its owner's queue is full");
                continue;
            }
        }
        sqlx::query(INSERT_SCHEDULED_RUN_SQL)
            .bind(&scheduled.id)
            .bind(&run.user_id)
            .bind(&run.script_id)
            .bind(run.script_version)
            .bind(&run.handler)
            .bind(run.trigger_kind.as_str())
            .bind(&run.trigger_spec)
            .bind(&payload)
            .bind(now)
            .bind(run.not_before)
            .bind(scheduled.chain_depth)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// User `user_id`'s share of the queue, read in `tx`.
pub(super) async fn queue_depth_in(
    tx: &mut sqlx::PgConnection,
    user_id: &str,
) -> StoreResult<QueueDepth> {
    let depth = sqlx::query(sqlx::Postgres::QUEUE_DEPTH_SQL)
        .bind(user_id)
        .fetch_one(tx)
        .await?;
    Ok(QueueDepth {
        runs: depth.try_get("n")?,
        payload_bytes: depth.try_get("bytes")?,
    })
}

/// Queues a run of `event` for each handler subscribed to its type; their
/// ids.
pub(super) async fn queue_event_runs(
    tx: &mut sqlx::PgConnection,
    event: &NewEvent,
    payload: &str,
    now: i64,
) -> StoreResult<Vec<String>> {
    let subscribers = sqlx::query(EVENT_SUBSCRIBERS_SQL)
        .bind(&event.user_id)
        .bind(&event.event_type)
        .fetch_all(&mut *tx)
        .await?;
    let mut run_ids = Vec::with_capacity(subscribers.len());
    for row in &subscribers {
        let script_id: String = row.try_get("script_id")?;
        let handler: String = row.try_get("handler")?;
        let version: i64 = row.try_get("current_version")?;
        let flow: Option<String> = row.try_get("flow")?;
        let flow = flow_of(flow.as_deref(), &script_id, &handler, &event.payload, now)?;
        let id = new_id("run");
        // The ten parameters every event run takes (INSERT_EVENT_RUN_SQL).
        let bound = |sql| {
            sqlx::query(sql)
                .bind(&id)
                .bind(&event.user_id)
                .bind(&script_id)
                .bind(version)
                .bind(&handler)
                .bind(&event.event_type)
                .bind(payload)
                .bind(now)
                .bind(&event.event_id)
                .bind(event.chain_depth)
        };
        let queued = if let Some(throttled) = flow.throttled {
            // One key's slots are taken in turn, whichever node queues.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(&throttled.throttle_key)
                .execute(&mut *tx)
                .await?;
            let earlier = sqlx::query(THROTTLE_SLOT_SQL)
                .bind(&throttled.throttle_key)
                .bind(i64::from(throttled.limit.saturating_sub(1)))
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get::<i64, _>("not_before"))
                .transpose()?;
            // Dropped: a run that would have to wait is not queued.
            let Some(slot) = throttled.slot(earlier, now) else {
                continue;
            };
            bound(INSERT_THROTTLED_RUN_SQL)
                .bind(&throttled.throttle_key)
                .bind(slot)
                .execute(&mut *tx)
                .await?;
            id
        } else if let Some(debounced) = flow.debounced {
            let upserted = bound(UPSERT_DEBOUNCED_RUN_SQL)
                .bind(&debounced.flow_key)
                .bind(debounced.not_before)
                .fetch_one(&mut *tx)
                .await?;
            upserted.try_get("id")?
        } else {
            bound(INSERT_EVENT_RUN_SQL).execute(&mut *tx).await?;
            id
        };
        if let Some(limited) = flow.limited {
            sqlx::query(LIMIT_CONCURRENCY_SQL)
                .bind(&limited.concurrency_key)
                .bind(limited.limit)
                .bind(&queued)
                .execute(&mut *tx)
                .await?;
        }
        run_ids.push(queued);
    }
    Ok(run_ids)
}

/// Records `event` with the runs it made, or, `stopped`, with why it made
/// none.
pub(super) async fn insert_event(
    tx: &mut sqlx::PgConnection,
    event: &NewEvent,
    run_ids: &[String],
    stopped: Option<&str>,
    now: i64,
) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    sqlx::query(INSERT_EVENT_SQL)
        .bind(&event.user_id)
        .bind(&event.event_id)
        .bind(&event.event_type)
        .bind(&event.source)
        .bind(now)
        .bind(serde_json::to_string(run_ids).expect("ids serialise"))
        .bind(&event.source_run_id)
        .bind(event.chain_depth)
        .bind(stopped)
        .execute(&mut *tx)
        .await
}

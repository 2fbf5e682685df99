//! Schedules (the `schedule` triggers of scripts' current versions), their
//! policies, and the ticks already handled.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::rows::{RUN_COLUMNS, run_from_sqlx};
use super::{RunRow, SchedulePatch, ScheduleRow, StoreResult, new_id, now_millis};

/// Schedules and their ticks.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// The schedules of scripts' current versions: one user's, or everyone's.
    async fn schedules(&self, user_id: Option<&str>) -> StoreResult<Vec<ScheduleRow>>;
    /// Handles one tick of a schedule: at most one run per (script, handler,
    /// tick) ever, none while paused, none while the previous one is
    /// unfinished if the overlap policy says skip. Returns the run queued.
    async fn record_tick(
        &self,
        script_id: &str,
        handler: &str,
        tick_at: i64,
    ) -> StoreResult<Option<RunRow>>;
    /// Changes a schedule's policies; None if the user has no such schedule.
    async fn update_schedule(
        &self,
        user_id: &str,
        script_id: &str,
        handler: &str,
        patch: &SchedulePatch,
    ) -> StoreResult<Option<ScheduleRow>>;
}

/// Schedules with their policies and last tick. `$1` is a user id to filter
/// on, or the empty string for every user.
const SCHEDULES_SQL: &str = "SELECT t.script_id, s.user_id, t.handler, t.spec, t.timezone, s.created_at, \
     COALESCE(c.paused, 0) AS paused, COALESCE(c.catch_up, 'skip') AS catch_up, COALESCE(c.overlap, 'skip') AS overlap, \
     (SELECT MAX(k.tick_at) FROM schedule_ticks k WHERE k.script_id = t.script_id AND k.handler = t.handler) AS last_tick_at \
     FROM triggers t JOIN scripts s ON s.id = t.script_id \
     LEFT JOIN schedule_settings c ON c.script_id = t.script_id AND c.handler = t.handler \
     WHERE t.kind = 'schedule' AND ($1 = '' OR s.user_id = $1)";

#[async_trait]
impl<DB> ScheduleStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
{
    async fn schedules(&self, user_id: Option<&str>) -> StoreResult<Vec<ScheduleRow>> {
        let rows = sqlx::query(SCHEDULES_SQL)
            .bind(user_id.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    async fn record_tick(
        &self,
        script_id: &str,
        handler: &str,
        tick_at: i64,
    ) -> StoreResult<Option<RunRow>> {
        let now = now_millis();
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        let schedule = sqlx::query(
            "SELECT s.user_id, s.current_version, t.spec, COALESCE(c.paused, 0) AS paused, \
             COALESCE(c.overlap, 'skip') AS overlap FROM triggers t JOIN scripts s ON s.id = t.script_id \
             LEFT JOIN schedule_settings c ON c.script_id = t.script_id AND c.handler = t.handler \
             WHERE t.script_id = $1 AND t.handler = $2 AND t.kind = 'schedule'",
        )
        .bind(script_id)
        .bind(handler)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(schedule) = schedule else {
            return Ok(None);
        };
        if schedule.try_get::<i64, _>("paused")? != 0 {
            return Ok(None);
        }
        // Claim the tick first: whoever inserts it owns it.
        let claimed = sqlx::query(
            "INSERT INTO schedule_ticks (script_id, handler, tick_at, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (script_id, handler, tick_at) DO NOTHING",
        )
        .bind(script_id)
        .bind(handler)
        .bind(tick_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&claimed) == 0 {
            return Ok(None);
        }
        if schedule.try_get::<String, _>("overlap")? == "skip" {
            let busy = sqlx::query(
                "SELECT COUNT(*) AS n FROM runs WHERE script_id = $1 AND handler = $2 \
                 AND trigger_kind = 'schedule' AND status IN ('queued', 'running')",
            )
            .bind(script_id)
            .bind(handler)
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>("n")?;
            if busy > 0 {
                tx.commit().await?;
                return Ok(None);
            }
        }
        let sql = format!(
            "INSERT INTO runs (id, user_id, script_id, script_version, handler, trigger_kind, trigger_spec, \
             payload, status, attempt, queued_at) \
             VALUES ($1, $2, $3, $4, $5, 'schedule', $6, $7, 'queued', 1, $8) RETURNING {RUN_COLUMNS}"
        );
        let run_id = new_id("run");
        let row = sqlx::query(&sql)
            .bind(&run_id)
            .bind(schedule.try_get::<String, _>("user_id")?)
            .bind(script_id)
            .bind(schedule.try_get::<i64, _>("current_version")?)
            .bind(handler)
            .bind(schedule.try_get::<String, _>("spec")?)
            .bind(serde_json::json!({ "tick_at": tick_at }).to_string())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE schedule_ticks SET run_id = $1 WHERE script_id = $2 AND handler = $3 AND tick_at = $4",
        )
        .bind(&run_id)
        .bind(script_id)
        .bind(handler)
        .bind(tick_at)
        .execute(&mut *tx)
        .await?;
        let run = run_from_sqlx(&row)?;
        tx.commit().await?;
        Ok(Some(run))
    }

    async fn update_schedule(
        &self,
        user_id: &str,
        script_id: &str,
        handler: &str,
        patch: &SchedulePatch,
    ) -> StoreResult<Option<ScheduleRow>> {
        let sql = format!("{SCHEDULES_SQL} AND t.script_id = $2 AND t.handler = $3");
        let find = async || -> StoreResult<Option<ScheduleRow>> {
            let row = sqlx::query(&sql)
                .bind(user_id)
                .bind(script_id)
                .bind(handler)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(schedule_from_row).transpose()
        };
        let Some(current) = find().await? else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO schedule_settings (script_id, handler, paused, catch_up, overlap) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (script_id, handler) DO UPDATE SET \
             paused = excluded.paused, catch_up = excluded.catch_up, overlap = excluded.overlap",
        )
        .bind(script_id)
        .bind(handler)
        .bind(i64::from(patch.paused.unwrap_or(current.paused)))
        .bind(patch.catch_up.clone().unwrap_or(current.catch_up))
        .bind(patch.overlap.clone().unwrap_or(current.overlap))
        .execute(&self.pool)
        .await?;
        find().await
    }
}

fn schedule_from_row<R>(row: &R) -> StoreResult<ScheduleRow>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: Column<R::Database>,
    Option<String>: Column<R::Database>,
    i64: Column<R::Database>,
    Option<i64>: Column<R::Database>,
{
    Ok(ScheduleRow {
        script_id: row.try_get("script_id")?,
        user_id: row.try_get("user_id")?,
        handler: row.try_get("handler")?,
        cron: row.try_get("spec")?,
        timezone: row.try_get("timezone")?,
        paused: row.try_get::<i64, _>("paused")? != 0,
        catch_up: row.try_get("catch_up")?,
        overlap: row.try_get("overlap")?,
        last_tick_at: row.try_get("last_tick_at")?,
        created_at: row.try_get("created_at")?,
    })
}

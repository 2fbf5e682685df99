//! Replays: finished runs queued again with their payload, each new run
//! naming the one it replays (`replay_of`). The matching, the checks and
//! the inserts happen in one transaction, so a replay refused (too many
//! runs, a full queue) queues nothing.

use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::rows::{RUN_COLUMNS, run_from_sqlx};
use super::{
    QueueDepth, QueueLimits, RunRow, RunStatus, StoreError, StoreResult, TriggerKind, new_id,
    now_millis,
};

/// Which finished runs a replay takes. A run retried is one chain: its
/// last attempt stands for it (its status and time are the chain's), so a
/// chain is replayed once, and one still retrying matches nothing.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Only this script's runs.
    pub script_id: Option<String>,
    /// Only runs that ended so; finished statuses only, at least one.
    pub statuses: Vec<RunStatus>,
    /// Only runs queued at or after this time (Unix ms).
    pub since: Option<i64>,
    /// Only runs queued before this time (Unix ms).
    pub until: Option<i64>,
}

/// How a replay goes.
#[derive(Debug, Clone, Copy)]
pub struct ReplayPlan {
    /// Say what would be queued, and queue nothing.
    pub dry_run: bool,
    /// Most runs the filter may match (skipped ones included); past it,
    /// nothing is queued.
    pub limit: i64,
    /// The user's queue caps, which the replay as a whole must fit.
    pub queue: QueueLimits,
}

/// Why a matched run was not queued again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Its script was deleted.
    ScriptDeleted,
    /// The script's current version has no handler of its name.
    HandlerRemoved,
    /// An earlier replay already queued it again (replay that run instead).
    AlreadyReplayed,
    /// It answered an HTTP request or an agent's tool call, whose caller
    /// is gone (as for retries, the caller decides whether to ask again).
    AnsweredACaller,
}

/// A run queued again (or, on a dry run, that would be).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayedRun {
    /// The run replayed.
    pub original: String,
    /// The new run; `None` on a dry run.
    pub run_id: Option<String>,
    /// Its script.
    pub script_id: String,
    /// Its handler.
    pub handler: Option<String>,
    /// How the original ended.
    pub original_status: RunStatus,
}

/// A matched run that was not queued again.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SkippedRun {
    /// The run.
    pub run_id: String,
    /// Why.
    pub reason: SkipReason,
}

/// What a replay did, or on a dry run would do.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    /// Runs the filter matched.
    pub matched: i64,
    /// Runs queued again, oldest original first.
    pub queued: Vec<ReplayedRun>,
    /// Runs matched and not queued.
    pub skipped: Vec<SkippedRun>,
}

/// How a replay ended. A refusal queued nothing.
#[derive(Debug, Clone)]
pub enum ReplayOutcome {
    /// Done (or, on a dry run, would be done) as said.
    Done(Replayed),
    /// The filter matches more runs than the plan's limit.
    TooMany {
        /// How many it matches.
        matched: i64,
    },
    /// The runs would not fit the user's queue cap.
    QueueFull {
        /// Runs the user has queued.
        queued: i64,
        /// Runs the replay would add.
        incoming: i64,
        /// The cap.
        limit: i64,
    },
}

/// A matched run, with what decides whether it can go again.
struct Candidate {
    run: RunRow,
    current_version: Option<i64>,
    handler_known: bool,
    replayed: bool,
}

impl Candidate {
    fn skip_reason(&self) -> Option<SkipReason> {
        if matches!(self.run.trigger_kind, TriggerKind::Http | TriggerKind::Mcp) {
            Some(SkipReason::AnsweredACaller)
        } else if self.current_version.is_none() {
            Some(SkipReason::ScriptDeleted)
        } else if !self.handler_known {
            Some(SkipReason::HandlerRemoved)
        } else if self.replayed {
            Some(SkipReason::AlreadyReplayed)
        } else {
            None
        }
    }
}

/// Replays the user's runs matching `filter` as `plan` says (see
/// `RunStore::replay_runs`).
pub(super) async fn replay_runs<DB>(
    store: &SqlStore<DB>,
    user_id: &str,
    filter: &ReplayFilter,
    plan: ReplayPlan,
) -> StoreResult<ReplayOutcome>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
{
    if filter.statuses.is_empty() || filter.statuses.iter().any(|s| !s.is_terminal()) {
        return Err(StoreError::Corrupt(
            "a replay takes finished statuses only".into(),
        ));
    }
    let mut tx = store.pool.begin_with(DB::BEGIN).await?;
    // Replays of one user take turns, so two cannot both count room under
    // the queue cap (SQLite's write transactions already do).
    if let Some(lock) = DB::USER_LOCK_SQL {
        sqlx::query(lock).bind(user_id).execute(&mut *tx).await?;
    }
    let select = format!(
        "SELECT {RUN_COLUMNS}, \
         (SELECT s.current_version FROM scripts s WHERE s.id = r.script_id AND s.user_id = r.user_id) \
           AS current_version, \
         CAST(CASE WHEN r.handler IS NULL OR EXISTS (SELECT 1 FROM triggers t \
           WHERE t.script_id = r.script_id AND t.handler = r.handler) THEN 1 ELSE 0 END AS BIGINT) \
           AS handler_known, \
         CAST(CASE WHEN EXISTS (SELECT 1 FROM runs p WHERE p.replay_of = r.id) THEN 1 ELSE 0 END \
           AS BIGINT) AS replayed {} ORDER BY r.queued_at, r.id LIMIT ${}",
        matching_sql(filter),
        bound_count(filter) + 1
    );
    let rows = bind_filter(sqlx::query(&select), user_id, filter)
        .bind(plan.limit + 1)
        .fetch_all(&mut *tx)
        .await?;
    if rows.len() as i64 > plan.limit {
        let count = format!("SELECT COUNT(*) AS n {}", matching_sql(filter));
        let matched: i64 = bind_filter(sqlx::query(&count), user_id, filter)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        return Ok(ReplayOutcome::TooMany { matched });
    }
    let mut candidates = Vec::with_capacity(rows.len());
    for row in &rows {
        candidates.push(Candidate {
            run: run_from_sqlx(row)?,
            current_version: row.try_get("current_version")?,
            handler_known: row.try_get::<i64, _>("handler_known")? != 0,
            replayed: row.try_get::<i64, _>("replayed")? != 0,
        });
    }
    let mut done = Replayed {
        matched: candidates.len() as i64,
        ..Replayed::default()
    };
    let mut going = Vec::new();
    for candidate in candidates {
        match candidate.skip_reason() {
            Some(reason) => done.skipped.push(SkippedRun {
                run_id: candidate.run.id,
                reason,
            }),
            None => going.push(candidate),
        }
    }
    if !going.is_empty() {
        let depth = sqlx::query(DB::QUEUE_DEPTH_SQL)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        let depth = QueueDepth {
            runs: depth.try_get("n")?,
            payload_bytes: depth.try_get("bytes")?,
        };
        let incoming = going.len() as i64;
        if depth.runs.saturating_add(incoming) > plan.queue.runs {
            return Ok(ReplayOutcome::QueueFull {
                queued: depth.runs,
                incoming,
                limit: plan.queue.runs,
            });
        }
        let bytes: i64 = going
            .iter()
            .map(|c| c.run.payload.to_string().len() as i64)
            .sum();
        if depth.payload_bytes.saturating_add(bytes) > plan.queue.payload_bytes {
            return Err(StoreError::PayloadQuotaFull {
                stored: depth.payload_bytes,
                incoming: bytes,
                limit: plan.queue.payload_bytes,
            });
        }
    }
    let now = now_millis();
    for candidate in going {
        let run = candidate.run;
        let run_id = if plan.dry_run {
            None
        } else {
            let id = new_id("run");
            sqlx::query(INSERT_REPLAY_SQL)
                .bind(id.as_str())
                .bind(user_id)
                .bind(run.script_id.as_str())
                .bind(candidate.current_version.unwrap_or(run.script_version))
                .bind(run.handler.as_deref())
                .bind(run.trigger_kind.as_str())
                .bind(run.trigger_spec.as_str())
                .bind(run.payload.to_string())
                .bind(now)
                .bind(run.id.as_str())
                .execute(&mut *tx)
                .await?;
            Some(id)
        };
        done.queued.push(ReplayedRun {
            original: run.id,
            run_id,
            script_id: run.script_id,
            handler: run.handler,
            original_status: run.status,
        });
    }
    if plan.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(ReplayOutcome::Done(done))
}

/// A new queued first attempt replaying run `$10`: `$1` id, `$2` user,
/// `$3` script, `$4` version, `$5` handler, `$6` trigger kind, `$7`
/// trigger spec, `$8` payload, `$9` now. It keeps the original's
/// concurrency key and limit, as a retry does.
const INSERT_REPLAY_SQL: &str = "INSERT INTO runs (id, user_id, script_id, script_version, handler, \
     trigger_kind, trigger_spec, payload, status, attempt, queued_at, replay_of, concurrency_key, \
     concurrency_limit) SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'queued', 1, $9, $10, o.concurrency_key, \
     o.concurrency_limit FROM runs o WHERE o.id = $10";

/// `FROM … WHERE …` of the runs `filter` matches: the user's (`$1`) last
/// attempts of their chains, in the filter's statuses (written in, from
/// the enum), then `$2…` in the order `bind_filter` binds them.
fn matching_sql(filter: &ReplayFilter) -> String {
    let statuses: Vec<String> = filter
        .statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let mut sql = format!(
        "FROM runs r WHERE r.user_id = $1 AND r.status IN ({}) \
         AND NOT EXISTS (SELECT 1 FROM runs n WHERE n.first_run_id = COALESCE(r.first_run_id, r.id) \
           AND n.attempt > r.attempt)",
        statuses.join(", ")
    );
    let mut n = 1;
    if filter.script_id.is_some() {
        n += 1;
        sql += &format!(" AND r.script_id = ${n}");
    }
    if filter.since.is_some() {
        n += 1;
        sql += &format!(" AND r.queued_at >= ${n}");
    }
    if filter.until.is_some() {
        n += 1;
        sql += &format!(" AND r.queued_at < ${n}");
    }
    sql
}

/// How many placeholders `matching_sql` numbers.
fn bound_count(filter: &ReplayFilter) -> usize {
    1 + usize::from(filter.script_id.is_some())
        + usize::from(filter.since.is_some())
        + usize::from(filter.until.is_some())
}

/// Binds the user and `filter` to a statement over `matching_sql`.
fn bind_filter<'q, DB>(
    query: sqlx::query::Query<'q, DB, DB::Arguments<'q>>,
    user_id: &'q str,
    filter: &'q ReplayFilter,
) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    DB: Engine,
    i64: Column<DB>,
    for<'s> &'s str: Encode<'s, DB> + Type<DB>,
{
    let mut query = query.bind(user_id);
    if let Some(script_id) = &filter.script_id {
        query = query.bind(script_id.as_str());
    }
    if let Some(since) = filter.since {
        query = query.bind(since);
    }
    if let Some(until) = filter.until {
        query = query.bind(until);
    }
    query
}

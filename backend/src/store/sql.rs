//! The SQL shared by both stores. `sql_store!` expands to a full `Store`
//! implementation over a `sqlx` pool; the SQLite and PostgreSQL stores each
//! invoke it and pass the same tests. SQLite's hot writes (events, claims,
//! heartbeats, finishes) leave that path for its writer thread
//! (group_commit.rs), which runs these statements through rusqlite.

use rand::RngCore;

/// An identifier with a readable prefix (`usr_…`, `run_…`): the creation
/// time in milliseconds (12 hex digits), then 96 random bits.
///
/// Time first, because ids are primary keys: new rows land at the end of
/// the key's index, on the same few pages (docs/store-decisions.md).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let millis = super::now_millis() & 0xffff_ffff_ffff;
    format!("{prefix}_{millis:012x}{}", hex::encode(bytes))
}

/// The creation time (Unix ms) an id made by [`new_id`] carries.
pub fn id_time(id: &str) -> Option<i64> {
    let (_, rest) = id.split_once('_')?;
    i64::from_str_radix(rest.get(..12)?, 16).ok()
}

/// Maps unique-constraint violations to `StoreError::Conflict`.
pub(super) fn conflict(err: sqlx::Error, what: &str) -> super::StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            super::StoreError::Conflict(what.to_string())
        }
        _ => super::StoreError::Database(err),
    }
}

/// Columns of a run row, in the order `run_from_row` reads them.
pub(super) const RUN_COLUMNS: &str = "id, user_id, script_id, script_version, handler, trigger_kind, trigger_spec, \
     payload, status, attempt, first_run_id, worker_id, heartbeat_at, queued_at, started_at, finished_at, exit_code, \
     duration_ms, error, stdout_truncated, stderr_truncated, output_cap, not_before";

/// Records how a running run ended, if it is still `$12`'s.
pub(super) const FINISH_RUN_SQL: &str = "UPDATE runs SET status = $1, exit_code = $2, duration_ms = $3, error = $4, \
     stdout = $5, stderr = $6, stdout_truncated = $7, stderr_truncated = $8, output_cap = $9, finished_at = $10 \
     WHERE id = $11 AND status = 'running' AND worker_id = $12";

/// `FINISH_RUN_SQL` answering with the run's trigger, for the stores that
/// announce the end of manual runs (see `Store::manual_run_ends`).
pub(super) static FINISH_RUN_RETURNING_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{FINISH_RUN_SQL} RETURNING trigger_kind"));

/// Stores an outbox message a run left: `$1` id, `$2` user, `$3` script,
/// `$4` run, `$5` channel, `$6` recipient, `$7` subject, `$8` body, `$9`
/// when the script sent it. Written only with the run's end.
pub(super) const INSERT_MESSAGE_SQL: &str = "INSERT INTO messages (id, user_id, script_id, run_id, channel, recipient, \
     subject, body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Records that worker `$3` still runs run `$2`, at `$1`.
pub(super) const HEARTBEAT_SQL: &str =
    "UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND worker_id = $3 AND status = 'running'";

/// Puts run `$1`, handed to worker `$2` and not begun, back on the queue
/// as it was (a held start needs no write: it is still queued).
pub(super) const GIVE_BACK_RUN_SQL: &str = "UPDATE runs SET status = 'queued', worker_id = NULL, heartbeat_at = NULL, \
     started_at = NULL WHERE id = $1 AND worker_id = $2 AND status = 'running'";

/// Queues the next attempt of run `$6`.
pub(super) const RETRY_RUN_SQL: &str = "INSERT INTO runs (id, user_id, script_id, script_version, handler, trigger_kind, \
     trigger_spec, payload, status, attempt, first_run_id, queued_at, not_before) \
     SELECT $1, user_id, script_id, script_version, handler, trigger_kind, trigger_spec, payload, \
     'queued', $2, $3, $4, $5 FROM runs WHERE id = $6";

/// The runs an event id already made (`$1` user, `$2` event id).
pub(super) const EVENT_LOOKUP_SQL: &str =
    "SELECT run_ids FROM events WHERE user_id = $1 AND event_id = $2";

/// The handlers of user `$1`'s scripts subscribed to event type `$2`.
pub(super) const EVENT_SUBSCRIBERS_SQL: &str = "SELECT s.id AS script_id, s.current_version, t.handler \
     FROM triggers t JOIN scripts s ON s.id = t.script_id \
     WHERE s.user_id = $1 AND t.kind = 'event' AND t.spec = $2 ORDER BY s.id, t.handler";

/// A queued run for one subscriber of an event: `$1` id, `$2` user, `$3`
/// script, `$4` version, `$5` handler, `$6` event type, `$7` payload, `$8` now.
pub(super) const INSERT_EVENT_RUN_SQL: &str = "INSERT INTO runs (id, user_id, script_id, script_version, handler, \
     trigger_kind, trigger_spec, payload, status, attempt, queued_at) \
     VALUES ($1, $2, $3, $4, $5, 'event', $6, $7, 'queued', 1, $8)";

/// An event received: `$1` user, `$2` id, `$3` type, `$4` source, `$5` now,
/// `$6` the JSON list of the runs it made.
pub(super) const INSERT_EVENT_SQL: &str = "INSERT INTO events (user_id, event_id, event_type, source, received_at, run_ids) \
     VALUES ($1, $2, $3, $4, $5, $6)";

macro_rules! sql_store {
    ($store:ty, db = $db:ty, begin = $begin:expr, claim_begin = $claim_begin:expr, claim_candidates = $claim_candidates:expr, script_lock_sql = $script_lock_sql:expr, queued_runs_sql = $queued_runs_sql:expr, runs_in_state = $runs_in_state:expr) => {
        impl $store {
            /// How write transactions start.
            const BEGIN: &'static str = $begin;

            /// Tells the nodes sharing the store that a manual run ended
            /// (`ended` is its finish's row), where the store can. A lost
            /// notice only slows a waiting request to its next look.
            async fn announce_end(&self, run_id: &str, ended: &<$db as sqlx::Database>::Row) {
                use sqlx::Row;
                let Some(notice) = self.run_end_notice() else {
                    return;
                };
                if ended.try_get::<String, _>("trigger_kind").is_ok_and(|kind| kind == $crate::store::TriggerKind::Manual.as_str()) {
                    if let Err(err) = sqlx::query(notice).bind(run_id).execute(&self.pool).await {
                        tracing::warn!(error = %err, "announcing a run's end failed");
                    }
                }
            }

            /// Records an event and queues its runs (see `Store::ingest_event`),
            /// within `limits` if given.
            /// `payload` is the event's, serialised once by the caller.
            async fn ingest_checked(&self, event: &$crate::store::NewEvent, payload: &str, limits: Option<$crate::store::QueueLimits>) -> $crate::store::StoreResult<$crate::store::EventIngest> {
                use sqlx::Row;

                let seen = |run_ids: String| -> $crate::store::StoreResult<$crate::store::EventIngest> {
                    let run_ids = serde_json::from_str(&run_ids)
                        .map_err(|e| $crate::store::StoreError::Corrupt(format!("event run ids: {e}")))?;
                    Ok($crate::store::EventIngest { duplicate: true, run_ids })
                };
                let lookup = $crate::store::sql::EVENT_LOOKUP_SQL;
                let now = $crate::store::now_millis();
                let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                if let Some(row) = sqlx::query(lookup).bind(&event.user_id).bind(&event.event_id).fetch_optional(&mut *tx).await? {
                    return seen(row.try_get("run_ids")?);
                }
                let subscribers = sqlx::query($crate::store::sql::EVENT_SUBSCRIBERS_SQL)
                .bind(&event.user_id)
                .bind(&event.event_type)
                .fetch_all(&mut *tx)
                .await?;
                let mut run_ids = Vec::new();
                for row in &subscribers {
                    let id = $crate::store::sql::new_id("run");
                    sqlx::query($crate::store::sql::INSERT_EVENT_RUN_SQL)
                    .bind(&id)
                    .bind(&event.user_id)
                    .bind(row.try_get::<String, _>("script_id")?)
                    .bind(row.try_get::<i64, _>("current_version")?)
                    .bind(row.try_get::<String, _>("handler")?)
                    .bind(&event.event_type)
                    .bind(&payload)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    run_ids.push(id);
                }
                // The check before counted one copy of the payload; an event
                // that starts several runs stores several. Checked again with
                // them counted (the triggers have added them), in its
                // transaction: refused, it leaves nothing.
                if let Some(limits) = limits.filter(|_| run_ids.len() > 1) {
                    let depth = sqlx::query($queued_runs_sql).bind(&event.user_id).fetch_one(&mut *tx).await?;
                    let new_runs = run_ids.len() as i64;
                    let incoming = new_runs * payload.len() as i64;
                    let before = $crate::store::QueueDepth {
                        runs: depth.try_get::<i64, _>("n")? - new_runs,
                        payload_bytes: depth.try_get::<i64, _>("bytes")? - incoming,
                    };
                    limits.admit(before, incoming)?;
                }
                let inserted = sqlx::query($crate::store::sql::INSERT_EVENT_SQL)
                .bind(&event.user_id)
                .bind(&event.event_id)
                .bind(&event.event_type)
                .bind(&event.source)
                .bind(now)
                .bind(serde_json::to_string(&run_ids).expect("ids serialise"))
                .execute(&mut *tx)
                .await;
                match inserted {
                    Ok(_) => {
                        tx.commit().await?;
                        Ok($crate::store::EventIngest { duplicate: false, run_ids })
                    }
                    // The same event arrived concurrently and won: roll back
                    // our runs and report the winner's.
                    Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                        tx.rollback().await?;
                        let row = sqlx::query(lookup).bind(&event.user_id).bind(&event.event_id).fetch_one(&self.pool).await?;
                        seen(row.try_get("run_ids")?)
                    }
                    Err(err) => Err(err.into()),
                }
            }

            /// The statement listing `user_id`'s runs, newest first, with
            /// only the filters given: a `($n IS NULL OR …)` term hides the
            /// column from the planner, and PostgreSQL's generic plan for it
            /// read every run of the user and sorted them
            /// (docs/store-decisions.md). A status the store keeps an index of its runs
            /// for (`runs_in_state`: SQLite's partial indexes) is written
            /// into the statement, from that list, and the index named: a
            /// bound status cannot pick a partial index, and the listing
            /// then walked the user's whole history when none was queued.
            pub(super) fn list_runs_query<'a>(user_id: &'a str, filter: &'a $crate::store::RunFilter) -> sqlx::QueryBuilder<'a, $db> {
                let in_state: &[(&'static str, &'static str)] = $runs_in_state;
                let indexed = filter
                    .status
                    .and_then(|status| in_state.iter().find(|(known, _)| *known == status.as_str()));
                let from = indexed.map_or("runs", |(_, from)| *from);
                let mut query = sqlx::QueryBuilder::new(format!(
                    "SELECT {} FROM {from} WHERE user_id = ",
                    $crate::store::sql::RUN_COLUMNS
                ));
                query.push_bind(user_id);
                if let Some(script_id) = &filter.script_id {
                    query.push(" AND script_id = ").push_bind(script_id);
                }
                match (indexed, &filter.status) {
                    (Some((status, _)), _) => {
                        query.push(format!(" AND status = '{status}'"));
                    }
                    (None, Some(status)) => {
                        query.push(" AND status = ").push_bind(status.as_str());
                    }
                    (None, None) => {}
                }
                if let Some(before) = filter.before {
                    query.push(" AND queued_at < ").push_bind(before);
                }
                if let Some(since) = filter.since {
                    query.push(" AND queued_at >= ").push_bind(since);
                }
                if let Some(after) = &filter.after {
                    query.push(" AND (queued_at, id) < (").push_bind(after.at);
                    query.push(", ").push_bind(&after.id).push(")");
                }
                query.push(" ORDER BY queued_at DESC, id DESC LIMIT ").push_bind(filter.limit);
                query
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn create_user(&self, name: &str, token_hash: &str) -> $crate::store::StoreResult<$crate::store::User> {
                let user = $crate::store::User {
                    id: $crate::store::sql::new_id("usr"),
                    name: name.to_string(),
                    created_at: $crate::store::now_millis(),
                };
                let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                sqlx::query("INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(&user.id)
                    .bind(&user.name)
                    .bind(user.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| $crate::store::sql::conflict(e, &format!("a user named `{name}`")))?;
                sqlx::query("INSERT INTO api_tokens (token_hash, user_id, created_at) VALUES ($1, $2, $3)")
                    .bind(token_hash)
                    .bind(&user.id)
                    .bind(user.created_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(user)
            }

            async fn get_user(&self, user_id: &str) -> $crate::store::StoreResult<Option<$crate::store::User>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT id, name, created_at FROM users WHERE id = $1").bind(user_id).fetch_optional(&self.pool).await?;
                Ok(match row {
                    Some(row) => Some($crate::store::User { id: row.try_get("id")?, name: row.try_get("name")?, created_at: row.try_get("created_at")? }),
                    None => None,
                })
            }

            async fn user_by_token_hash(&self, token_hash: &str) -> $crate::store::StoreResult<Option<$crate::store::User>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT u.id, u.name, u.created_at FROM users u \
                     JOIN api_tokens t ON t.user_id = u.id WHERE t.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row {
                    Some(row) => Some($crate::store::User {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                        created_at: row.try_get("created_at")?,
                    }),
                    None => None,
                })
            }

            async fn upsert_integration_definition(&self, row: &$crate::store::DefinitionRow) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO integration_definitions (integration_id, version, definition, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (integration_id) DO UPDATE SET \
                     version = excluded.version, definition = excluded.definition, updated_at = excluded.updated_at",
                )
                .bind(&row.integration_id)
                .bind(&row.version)
                .bind(&row.definition)
                .bind(row.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn integration_definitions(&self) -> $crate::store::StoreResult<Vec<$crate::store::DefinitionRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT integration_id, version, definition, updated_at FROM integration_definitions \
                     ORDER BY integration_id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|row| {
                        Ok($crate::store::DefinitionRow {
                            integration_id: row.try_get("integration_id")?,
                            version: row.try_get("version")?,
                            definition: row.try_get("definition")?,
                            updated_at: row.try_get("updated_at")?,
                        })
                    })
                    .collect()
            }

            async fn put_credentials(&self, rows: &[$crate::store::CredentialRow]) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                $crate::store::sql::upsert_credentials!(&mut *tx, rows);
                tx.commit().await?;
                Ok(())
            }

            async fn credentials(&self, user_id: &str, integration: Option<&str>) -> $crate::store::StoreResult<Vec<$crate::store::CredentialRow>> {
                let rows = sqlx::query(
                    "SELECT user_id, integration_id, cred_key, key_id, nonce, ciphertext, placement, status, updated_at, expires_at \
                     FROM credentials WHERE user_id = $1 AND ($2 IS NULL OR integration_id = $2) \
                     ORDER BY integration_id, cred_key",
                )
                .bind(user_id)
                .bind(integration)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| Ok($crate::store::sql::credential_from_row(row)?)).collect()
            }

            async fn delete_credentials(&self, user_id: &str, integration: &str) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM credentials WHERE user_id = $1 AND integration_id = $2")
                    .bind(user_id)
                    .bind(integration)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn all_credentials(&self) -> $crate::store::StoreResult<Vec<$crate::store::CredentialRow>> {
                let rows = sqlx::query(
                    "SELECT user_id, integration_id, cred_key, key_id, nonce, ciphertext, placement, status, updated_at, expires_at \
                     FROM credentials ORDER BY user_id, integration_id, cred_key",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| Ok($crate::store::sql::credential_from_row(row)?)).collect()
            }

            async fn reencrypt_credentials(&self, rows: &[$crate::store::CredentialRow]) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                for row in rows {
                    sqlx::query(
                        "UPDATE credentials SET key_id = $1, nonce = $2, ciphertext = $3 \
                         WHERE user_id = $4 AND integration_id = $5 AND cred_key = $6",
                    )
                    .bind(&row.key_id)
                    .bind(&row.nonce)
                    .bind(&row.ciphertext)
                    .bind(&row.user_id)
                    .bind(&row.integration_id)
                    .bind(&row.cred_key)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn create_script_version(&self, new: &$crate::store::NewScriptVersion) -> $crate::store::StoreResult<$crate::store::ScriptVersion> {
                use sqlx::Row;
                let now = $crate::store::now_millis();
                let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                let existing = sqlx::query("SELECT id FROM scripts WHERE user_id = $1 AND name = $2")
                    .bind(&new.user_id)
                    .bind(&new.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                let script_id: String = match existing {
                    Some(row) => row.try_get("id")?,
                    None => {
                        if let Some(max) = new.caps.max_scripts {
                            // Deploys of one user take turns here (SQLite's
                            // write lock does it for every transaction).
                            if let Some(lock) = $script_lock_sql {
                                sqlx::query(lock).bind(&new.user_id).execute(&mut *tx).await?;
                            }
                            let scripts: i64 = sqlx::query("SELECT COUNT(*) AS n FROM scripts WHERE user_id = $1")
                                .bind(&new.user_id)
                                .fetch_one(&mut *tx)
                                .await?
                                .try_get("n")?;
                            if scripts >= max {
                                return Err($crate::store::StoreError::ScriptQuota { scripts });
                            }
                        }
                        let id = $crate::store::sql::new_id("scr");
                        sqlx::query(
                            "INSERT INTO scripts (id, user_id, name, current_version, created_at, updated_at) \
                             VALUES ($1, $2, $3, 0, $4, $4)",
                        )
                        .bind(&id)
                        .bind(&new.user_id)
                        .bind(&new.name)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| $crate::store::sql::conflict(e, "a concurrent deploy of this script"))?;
                        id
                    }
                };
                let version: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM script_versions WHERE script_id = $1")
                    .bind(&script_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get::<i64, _>("v")?
                    + 1;
                let metadata = new.metadata.to_string();
                sqlx::query(
                    "INSERT INTO script_versions (script_id, version, content_hash, component, metadata, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&script_id)
                .bind(version)
                .bind(&new.content_hash)
                .bind(&new.component)
                .bind(&metadata)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::sql::conflict(e, "a concurrent deploy of this script"))?;
                sqlx::query("UPDATE scripts SET current_version = $1, updated_at = $2 WHERE id = $3")
                    .bind(version)
                    .bind(now)
                    .bind(&script_id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(limits) = &new.limits {
                    sqlx::query("UPDATE scripts SET timeout_ms = $1, memory_bytes = $2, output_bytes = $3 WHERE id = $4")
                        .bind(limits.timeout_ms)
                        .bind(limits.memory_bytes)
                        .bind(limits.output_bytes)
                        .bind(&script_id)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(retries) = &new.retries {
                    sqlx::query("UPDATE scripts SET max_retries = $1, retry_on_limits = $2 WHERE id = $3")
                        .bind(retries.max)
                        .bind(i64::from(retries.on_limits))
                        .bind(&script_id)
                        .execute(&mut *tx)
                        .await?;
                }
                $crate::store::sql::replace_triggers!(&mut *tx, &script_id, &new.triggers);
                if let Some(keep) = new.caps.max_versions {
                    // The newest `keep` stay (the one just made is current).
                    sqlx::query("DELETE FROM script_versions WHERE script_id = $1 AND version <= $2")
                        .bind(&script_id)
                        .bind(version - keep)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok($crate::store::ScriptVersion {
                    script_id,
                    version,
                    content_hash: new.content_hash.clone(),
                    metadata: new.metadata.clone(),
                    created_at: now,
                })
            }

            async fn list_scripts(&self, user_id: &str) -> $crate::store::StoreResult<Vec<$crate::store::Script>> {
                let rows = sqlx::query(
                    "SELECT id, user_id, name, current_version, created_at, updated_at FROM scripts \
                     WHERE user_id = $1 ORDER BY name",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| Ok($crate::store::sql::script_from_row(row)?)).collect()
            }

            async fn get_script(&self, user_id: &str, script_id: &str) -> $crate::store::StoreResult<Option<$crate::store::Script>> {
                let row = sqlx::query(
                    "SELECT id, user_id, name, current_version, created_at, updated_at FROM scripts \
                     WHERE user_id = $1 AND id = $2",
                )
                .bind(user_id)
                .bind(script_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row {
                    Some(row) => Some($crate::store::sql::script_from_row(&row)?),
                    None => None,
                })
            }

            async fn list_versions(&self, user_id: &str, script_id: &str) -> $crate::store::StoreResult<Vec<$crate::store::ScriptVersion>> {
                let rows = sqlx::query(
                    "SELECT v.script_id, v.version, v.content_hash, v.metadata, v.created_at FROM script_versions v \
                     JOIN scripts s ON s.id = v.script_id WHERE s.user_id = $1 AND s.id = $2 ORDER BY v.version DESC",
                )
                .bind(user_id)
                .bind(script_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| $crate::store::sql::version_from_row(row)).collect()
            }

            async fn set_current_version(&self, user_id: &str, script_id: &str, version: i64) -> $crate::store::StoreResult<Option<$crate::store::Script>> {
                use sqlx::Row;
                let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                let row = sqlx::query(
                    "SELECT v.metadata FROM script_versions v JOIN scripts s ON s.id = v.script_id \
                     WHERE s.user_id = $1 AND s.id = $2 AND v.version = $3",
                )
                .bind(user_id)
                .bind(script_id)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let metadata: String = row.try_get("metadata")?;
                let metadata: roost_sandbox::metadata::ScriptMetadata = serde_json::from_str(&metadata)
                    .map_err(|e| $crate::store::StoreError::Corrupt(format!("version metadata: {e}")))?;
                sqlx::query("UPDATE scripts SET current_version = $1, updated_at = $2 WHERE id = $3")
                    .bind(version)
                    .bind($crate::store::now_millis())
                    .bind(script_id)
                    .execute(&mut *tx)
                    .await?;
                let triggers = $crate::store::triggers_of(&metadata);
                $crate::store::sql::replace_triggers!(&mut *tx, script_id, &triggers);
                tx.commit().await?;
                self.get_script(user_id, script_id).await
            }

            async fn delete_script(&self, user_id: &str, script_id: &str) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                let done = sqlx::query("DELETE FROM scripts WHERE user_id = $1 AND id = $2")
                    .bind(user_id)
                    .bind(script_id)
                    .execute(&mut *tx)
                    .await?;
                // Its pending runs go with it; finished ones stay as history.
                sqlx::query(
                    "UPDATE runs SET status = 'cancelled', finished_at = $1, error = 'the script was deleted' \
                     WHERE script_id = $2 AND user_id = $3 AND status IN ('queued', 'running')",
                )
                .bind($crate::store::now_millis())
                .bind(script_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_credential_status(&self, user_id: &str, integration: &str, status: $crate::store::CredentialStatus) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE credentials SET status = $1, updated_at = $2 WHERE user_id = $3 AND integration_id = $4")
                    .bind(status.as_str())
                    .bind($crate::store::now_millis())
                    .bind(user_id)
                    .bind(integration)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn put_oauth_state(&self, row: &$crate::store::OAuthStateRow) -> $crate::store::StoreResult<()> {
                // Abandoned authorizations are swept as new ones start.
                sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
                    .bind($crate::store::now_millis())
                    .execute(&self.pool)
                    .await?;
                sqlx::query(
                    "INSERT INTO oauth_states (state, user_id, integration_id, key_id, nonce, ciphertext, \
                     redirect_uri, expires_at, created_at, link_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&row.state)
                .bind(&row.user_id)
                .bind(&row.integration_id)
                .bind(&row.key_id)
                .bind(&row.nonce)
                .bind(&row.ciphertext)
                .bind(&row.redirect_uri)
                .bind(row.expires_at)
                .bind(row.created_at)
                .bind(&row.link_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn take_oauth_state(&self, state: &str) -> $crate::store::StoreResult<Option<$crate::store::OAuthStateRow>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "DELETE FROM oauth_states WHERE state = $1 RETURNING state, user_id, integration_id, key_id, \
                     nonce, ciphertext, redirect_uri, expires_at, created_at, link_id",
                )
                .bind(state)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row {
                    Some(row) => Some($crate::store::OAuthStateRow {
                        state: row.try_get("state")?,
                        user_id: row.try_get("user_id")?,
                        integration_id: row.try_get("integration_id")?,
                        key_id: row.try_get("key_id")?,
                        nonce: row.try_get("nonce")?,
                        ciphertext: row.try_get("ciphertext")?,
                        redirect_uri: row.try_get("redirect_uri")?,
                        expires_at: row.try_get("expires_at")?,
                        created_at: row.try_get("created_at")?,
                        link_id: row.try_get("link_id")?,
                    }),
                    None => None,
                })
            }

            async fn version_component(&self, script_id: &str, version: i64) -> $crate::store::StoreResult<Option<(Vec<u8>, serde_json::Value)>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT component, metadata FROM script_versions WHERE script_id = $1 AND version = $2")
                    .bind(script_id)
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let metadata: String = row.try_get("metadata")?;
                let metadata = serde_json::from_str(&metadata)
                    .map_err(|e| $crate::store::StoreError::Corrupt(format!("version metadata: {e}")))?;
                Ok(Some((row.try_get("component")?, metadata)))
            }

            async fn enqueue_run(&self, run: &$crate::store::NewRun) -> $crate::store::StoreResult<$crate::store::RunRow> {
                let sql = $crate::store::sql::insert_run_sql();
                let row = $crate::store::sql::bind_new_run!(sqlx::query(&sql), run).fetch_one(&self.pool).await?;
                $crate::store::sql::run_from_row(&row)
            }

            async fn enqueue_run_once(
                &self,
                run: &$crate::store::NewRun,
                key: &$crate::store::IdempotencyKey,
                since: i64,
            ) -> $crate::store::StoreResult<$crate::store::Enqueued> {
                // Two tries: a first request of the same key committing
                // meanwhile makes the insert of the key fail, and the second
                // try then finds it.
                for _ in 0..2 {
                    let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                    if let Some(found) = $crate::store::sql::idempotent_lookup!(&mut *tx, &run.user_id, &key.key) {
                        let (run_id, hash, at) = found;
                        if at >= since {
                            return Ok($crate::store::Enqueued::Repeat { run_id, same_request: hash == key.request_hash });
                        }
                        sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2")
                            .bind(&run.user_id)
                            .bind(&key.key)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let sql = $crate::store::sql::insert_run_sql();
                    let row = $crate::store::sql::bind_new_run!(sqlx::query(&sql), run).fetch_one(&mut *tx).await?;
                    let queued = $crate::store::sql::run_from_row(&row)?;
                    let recorded = sqlx::query(
                        "INSERT INTO idempotency_keys (user_id, idem_key, request_hash, run_id, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&run.user_id)
                    .bind(&key.key)
                    .bind(&key.request_hash)
                    .bind(&queued.id)
                    .bind(queued.queued_at)
                    .execute(&mut *tx)
                    .await;
                    match recorded {
                        Ok(_) => {
                            tx.commit().await?;
                            return Ok($crate::store::Enqueued::New(Box::new(queued)));
                        }
                        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => continue,
                        Err(err) => return Err(err.into()),
                    }
                }
                Err($crate::store::StoreError::Conflict("a concurrent request with this idempotency key".into()))
            }

            async fn idempotent_run(&self, user_id: &str, key: &$crate::store::IdempotencyKey, since: i64) -> $crate::store::StoreResult<Option<$crate::store::Enqueued>> {
                let found = $crate::store::sql::idempotent_lookup!(&self.pool, user_id, &key.key);
                Ok(found.filter(|(_, _, at)| *at >= since).map(|(run_id, hash, _)| $crate::store::Enqueued::Repeat {
                    run_id,
                    same_request: hash == key.request_hash,
                }))
            }

            async fn purge_idempotency_keys(&self, before: i64) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn claim_run(&self, worker_id: &str, per_script_limit: i64, skip_users: &[String]) -> $crate::store::StoreResult<Option<$crate::store::RunRow>> {
                if let Some(writer) = self.group_commit() {
                    return writer.claim_run(worker_id, per_script_limit, skip_users).await;
                }
                use sqlx::Row;
                let now = $crate::store::now_millis();
                let skip_users = serde_json::to_string(skip_users).expect("ids serialise");
                // With users skipped, the claim would read past all their
                // queued runs to find none when nobody else has any.
                if skip_users != "[]" {
                    let others: bool = sqlx::query_scalar(self.others_queued_sql()).bind(&skip_users).fetch_one(&self.pool).await?;
                    if !others {
                        return Ok(None);
                    }
                }
                let mut tx = self.pool.begin_with($claim_begin).await?;
                let Some(candidate) = sqlx::query(&format!("SELECT id, script_id {}", $claim_candidates)).bind(now).bind(per_script_limit).bind(&skip_users).fetch_optional(&mut *tx).await? else {
                    return Ok(None);
                };
                let run_id: String = candidate.try_get("id")?;
                let script_id: String = candidate.try_get("script_id")?;
                // Claims of one script's runs take turns, so two workers cannot
                // both see room under the concurrency cap and both start one.
                if let Some(lock) = $script_lock_sql {
                    sqlx::query(lock).bind(&script_id).execute(&mut *tx).await?;
                }
                let running: i64 = sqlx::query("SELECT COUNT(*) AS n FROM runs WHERE script_id = $1 AND status = 'running'")
                    .bind(&script_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if running >= per_script_limit {
                    return Ok(None);
                }
                let sql = format!(
                    "UPDATE runs SET status = 'running', worker_id = $1, started_at = $2, heartbeat_at = $2 \
                     WHERE id = $3 AND status = 'queued' RETURNING {}",
                    $crate::store::sql::RUN_COLUMNS
                );
                let row = sqlx::query(&sql).bind(worker_id).bind(now).bind(&run_id).fetch_optional(&mut *tx).await?;
                let run = match row {
                    Some(row) => $crate::store::sql::run_from_row(&row)?,
                    None => return Ok(None),
                };
                tx.commit().await?;
                Ok(Some(run))
            }

            fn hold_run_starts(&self, window: std::time::Duration) {
                if let Some(writer) = self.group_commit() {
                    writer.hold_starts(window);
                }
            }

            async fn heartbeat_run(&self, run_id: &str, worker_id: &str) -> $crate::store::StoreResult<bool> {
                if let Some(writer) = self.group_commit() {
                    return writer.heartbeat(run_id, worker_id).await;
                }
                let done = sqlx::query($crate::store::sql::HEARTBEAT_SQL)
                    .bind($crate::store::now_millis())
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
                finish: &$crate::store::RunFinish,
                retry: Option<&$crate::store::RetryPlan>,
            ) -> $crate::store::StoreResult<bool> {
                if let Some(writer) = self.group_commit() {
                    let report = $crate::store::RunReport {
                        run_id: run_id.to_string(),
                        finish: finish.clone(),
                        retry: retry.cloned(),
                        started_at: None,
                    };
                    let reported = writer.report_and_claim(worker_id, vec![report], Vec::new(), None).await?;
                    return Ok(reported.recorded.first().copied().unwrap_or(false));
                }
                let update = sqlx::query($crate::store::sql::FINISH_RUN_RETURNING_SQL.as_str())
                    .bind(finish.status.as_str())
                    .bind(finish.exit_code)
                    .bind(finish.duration_ms)
                    .bind(&finish.error)
                    .bind(&finish.stdout)
                    .bind(&finish.stderr)
                    .bind(i64::from(finish.stdout_truncated))
                    .bind(i64::from(finish.stderr_truncated))
                    .bind(finish.output_cap)
                    .bind($crate::store::now_millis())
                    .bind(run_id)
                    .bind(worker_id);
                if retry.is_none() && finish.effects.is_empty() {
                    // One statement needs no transaction of its own.
                    let Some(ended) = update.fetch_optional(&self.pool).await? else {
                        return Ok(false);
                    };
                    self.announce_end(run_id, &ended).await;
                    return Ok(true);
                }
                let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                let Some(ended) = update.fetch_optional(&mut *tx).await? else {
                    return Ok(false);
                };
                if let Some(retry) = retry {
                    sqlx::query($crate::store::sql::RETRY_RUN_SQL)
                        .bind($crate::store::sql::new_id("run"))
                        .bind(retry.attempt)
                        .bind(&retry.first_run_id)
                        .bind($crate::store::now_millis())
                        .bind(retry.not_before)
                        .bind(run_id)
                        .execute(&mut *tx)
                        .await?;
                }
                for message in &finish.effects.messages {
                    sqlx::query($crate::store::sql::INSERT_MESSAGE_SQL)
                        .bind(&message.id)
                        .bind(&message.user_id)
                        .bind(&message.script_id)
                        .bind(&message.run_id)
                        .bind(&message.channel)
                        .bind(&message.recipient)
                        .bind(&message.subject)
                        .bind(&message.body)
                        .bind(message.created_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                self.announce_end(run_id, &ended).await;
                Ok(true)
            }

            async fn manual_run_ends(&self) -> $crate::store::StoreResult<Option<futures_util::stream::BoxStream<'static, String>>> {
                self.listen_for_run_ends().await
            }

            async fn report_and_claim(
                &self,
                worker_id: &str,
                reports: Vec<$crate::store::RunReport>,
                unstarted: Vec<String>,
                claim: Option<$crate::store::NextClaim>,
            ) -> $crate::store::StoreResult<$crate::store::Reported> {
                if let Some(writer) = self.group_commit() {
                    return writer.report_and_claim(worker_id, reports, unstarted, claim).await;
                }
                let mut reported = $crate::store::Reported::default();
                for report in &reports {
                    let done = self.finish_run(&report.run_id, worker_id, &report.finish, report.retry.as_ref()).await?;
                    reported.recorded.push(done);
                }
                for run_id in &unstarted {
                    sqlx::query($crate::store::sql::GIVE_BACK_RUN_SQL).bind(run_id).bind(worker_id).execute(&self.pool).await?;
                }
                // One run at most: this path writes each start at its claim,
                // so a run waiting in a worker's hands would read as running.
                if let Some(claim) = claim.filter(|claim| claim.runs > 0) {
                    match self.claim_run(worker_id, claim.per_script_limit, &claim.skip_users).await {
                        Ok(next) => reported.next.extend(next),
                        Err(err) => tracing::warn!(error = %err, "claiming the next run after a finish failed"),
                    }
                }
                Ok(reported)
            }

            async fn script_settings(&self, script_id: &str) -> $crate::store::StoreResult<Option<$crate::store::ScriptSettings>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT max_retries, retry_on_limits, timeout_ms, memory_bytes, output_bytes FROM scripts WHERE id = $1",
                )
                .bind(script_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row {
                    Some(row) => Some($crate::store::ScriptSettings {
                        retries: $crate::store::RetryPolicy {
                            max: row.try_get("max_retries")?,
                            on_limits: row.try_get::<i64, _>("retry_on_limits")? != 0,
                        },
                        limits: $crate::store::ScriptLimits {
                            timeout_ms: row.try_get("timeout_ms")?,
                            memory_bytes: row.try_get("memory_bytes")?,
                            output_bytes: row.try_get("output_bytes")?,
                        },
                    }),
                    None => None,
                })
            }

            async fn cancel_run(&self, user_id: &str, run_id: &str) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE runs SET status = 'cancelled', finished_at = $1, error = 'cancelled by the user' \
                     WHERE id = $2 AND user_id = $3 AND status IN ('queued', 'running')",
                )
                .bind($crate::store::now_millis())
                .bind(run_id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn requeue_stale_runs(&self, stale_before: i64, requeue: bool) -> $crate::store::StoreResult<u64> {
                let sql = if requeue {
                    "UPDATE runs SET status = 'queued', worker_id = NULL, heartbeat_at = NULL, started_at = NULL \
                     WHERE status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < $1)"
                } else {
                    "UPDATE runs SET status = 'failed', finished_at = $2, error = 'the worker running it stopped (node lost)' \
                     WHERE status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < $1)"
                };
                let mut query = sqlx::query(sql).bind(stale_before);
                if !requeue {
                    query = query.bind($crate::store::now_millis());
                }
                Ok(query.execute(&self.pool).await?.rows_affected())
            }

            async fn get_run(&self, user_id: &str, run_id: &str) -> $crate::store::StoreResult<Option<$crate::store::RunRow>> {
                let sql = format!("SELECT {} FROM runs WHERE user_id = $1 AND id = $2", $crate::store::sql::RUN_COLUMNS);
                let row = sqlx::query(&sql).bind(user_id).bind(run_id).fetch_optional(&self.pool).await?;
                match row {
                    Some(row) => Ok(Some($crate::store::sql::run_from_row(&row)?)),
                    None => Ok(None),
                }
            }

            async fn list_runs(&self, user_id: &str, filter: &$crate::store::RunFilter) -> $crate::store::StoreResult<Vec<$crate::store::RunRow>> {
                let mut query = Self::list_runs_query(user_id, filter);
                let rows = query.build().fetch_all(&self.pool).await?;
                rows.iter().map(|row| $crate::store::sql::run_from_row(row)).collect()
            }

            async fn ingest_event_within(&self, event: &$crate::store::NewEvent, limits: $crate::store::QueueLimits) -> $crate::store::StoreResult<$crate::store::EventIngest> {
                if let Some(writer) = self.group_commit() {
                    return writer.ingest_event(event, Some(limits)).await;
                }
                // A read first, so that a user at a cap who keeps posting is
                // refused without writing runs only to roll them back.
                let payload = event.payload.to_string();
                let incoming = payload.len() as i64;
                if let Err(full) = $crate::store::check_queue_room(self, &event.user_id, limits, incoming).await {
                    // A repeat of an accepted event is answered as one.
                    return match self.get_event(&event.user_id, &event.event_id).await? {
                        Some(seen) => Ok($crate::store::EventIngest { duplicate: true, run_ids: seen.run_ids }),
                        None => Err(full),
                    };
                }
                self.ingest_checked(event, &payload, Some(limits)).await
            }

            async fn ingest_event(&self, event: &$crate::store::NewEvent) -> $crate::store::StoreResult<$crate::store::EventIngest> {
                if let Some(writer) = self.group_commit() {
                    return writer.ingest_event(event, None).await;
                }
                self.ingest_checked(event, &event.payload.to_string(), None).await
            }

            async fn delete_old_runs(&self, before: i64) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query(
                    "DELETE FROM runs WHERE status NOT IN ('queued', 'running') AND COALESCE(finished_at, queued_at) < $1",
                )
                .bind(before)
                .execute(&self.pool)
                .await?;
                sqlx::query("DELETE FROM schedule_ticks WHERE tick_at < $1").bind(before).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }

            async fn purge_events(&self, before: i64) -> $crate::store::StoreResult<u64> {
                sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1").bind(before).execute(&self.pool).await?;
                let done = sqlx::query("DELETE FROM events WHERE received_at < $1").bind(before).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }

            async fn schedules(&self, user_id: Option<&str>) -> $crate::store::StoreResult<Vec<$crate::store::ScheduleRow>> {
                let rows = sqlx::query($crate::store::sql::SCHEDULES_SQL).bind(user_id.unwrap_or("")).fetch_all(&self.pool).await?;
                rows.iter().map(|row| Ok($crate::store::sql::schedule_from_row(row)?)).collect()
            }

            async fn record_tick(&self, script_id: &str, handler: &str, tick_at: i64) -> $crate::store::StoreResult<Option<$crate::store::RunRow>> {
                use sqlx::Row;
                let now = $crate::store::now_millis();
                let mut tx = self.pool.begin_with(Self::BEGIN).await?;
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
                let Some(schedule) = schedule else { return Ok(None) };
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
                if claimed.rows_affected() == 0 {
                    return Ok(None);
                }
                if schedule.try_get::<String, _>("overlap")? == "skip" {
                    let busy = sqlx::query(
                        "SELECT COUNT(*) AS n FROM runs WHERE script_id = $1 AND handler = $2 AND trigger_kind = 'schedule' \
                         AND status IN ('queued', 'running')",
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
                    "INSERT INTO runs (id, user_id, script_id, script_version, handler, trigger_kind, trigger_spec, payload, \
                     status, attempt, queued_at) VALUES ($1, $2, $3, $4, $5, 'schedule', $6, $7, 'queued', 1, $8) RETURNING {}",
                    $crate::store::sql::RUN_COLUMNS
                );
                let run_id = $crate::store::sql::new_id("run");
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
                sqlx::query("UPDATE schedule_ticks SET run_id = $1 WHERE script_id = $2 AND handler = $3 AND tick_at = $4")
                    .bind(&run_id)
                    .bind(script_id)
                    .bind(handler)
                    .bind(tick_at)
                    .execute(&mut *tx)
                    .await?;
                let run = $crate::store::sql::run_from_row(&row)?;
                tx.commit().await?;
                Ok(Some(run))
            }

            async fn update_schedule(
                &self,
                user_id: &str,
                script_id: &str,
                handler: &str,
                patch: &$crate::store::SchedulePatch,
            ) -> $crate::store::StoreResult<Option<$crate::store::ScheduleRow>> {
                let find = |pool| async move {
                    let sql = format!("{} AND t.script_id = $2 AND t.handler = $3", $crate::store::sql::SCHEDULES_SQL);
                    let row = sqlx::query(&sql).bind(user_id).bind(script_id).bind(handler).fetch_optional(pool).await?;
                    match row {
                        Some(row) => Ok::<_, $crate::store::StoreError>(Some($crate::store::sql::schedule_from_row(&row)?)),
                        None => Ok(None),
                    }
                };
                let Some(current) = find(&self.pool).await? else { return Ok(None) };
                sqlx::query(
                    "INSERT INTO schedule_settings (script_id, handler, paused, catch_up, overlap) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (script_id, handler) DO UPDATE SET paused = excluded.paused, catch_up = excluded.catch_up, \
                     overlap = excluded.overlap",
                )
                .bind(script_id)
                .bind(handler)
                .bind(i64::from(patch.paused.unwrap_or(current.paused)))
                .bind(patch.catch_up.clone().unwrap_or(current.catch_up))
                .bind(patch.overlap.clone().unwrap_or(current.overlap))
                .execute(&self.pool)
                .await?;
                find(&self.pool).await
            }

            async fn run_logs(&self, user_id: &str, run_id: &str) -> $crate::store::StoreResult<Option<$crate::store::RunLogs>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT stdout, stderr FROM runs WHERE user_id = $1 AND id = $2")
                    .bind(user_id)
                    .bind(run_id)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some($crate::store::RunLogs {
                    stdout: row.try_get::<Option<Vec<u8>>, _>("stdout")?.unwrap_or_default(),
                    stderr: row.try_get::<Option<Vec<u8>>, _>("stderr")?.unwrap_or_default(),
                }))
            }

            async fn node_heartbeat(&self, row: &$crate::store::NodeRow) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO nodes (id, address, version, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, address = excluded.address",
                )
                .bind(&row.id)
                .bind(&row.address)
                .bind(&row.version)
                .bind(row.started_at)
                .bind(row.heartbeat_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn nodes(&self) -> $crate::store::StoreResult<Vec<$crate::store::NodeRow>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT id, address, version, started_at, heartbeat_at FROM nodes ORDER BY heartbeat_at DESC, id")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::store::NodeRow {
                            id: row.try_get("id")?,
                            address: row.try_get("address")?,
                            version: row.try_get("version")?,
                            started_at: row.try_get("started_at")?,
                            heartbeat_at: row.try_get("heartbeat_at")?,
                        })
                    })
                    .collect()
            }

            async fn forget_nodes(&self, before: i64) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM nodes WHERE heartbeat_at < $1").bind(before).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }

            async fn run_stats(&self, now: i64) -> $crate::store::StoreResult<$crate::store::RunStats> {
                use sqlx::Row;
                let by_status = sqlx::query("SELECT status, COUNT(*) AS n FROM runs GROUP BY status ORDER BY status")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| Ok((row.try_get::<String, _>("status")?, row.try_get::<i64, _>("n")?)))
                    .collect::<$crate::store::StoreResult<Vec<_>>>()?;
                let ready: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM runs WHERE status = 'queued' AND (not_before IS NULL OR not_before <= $1)",
                )
                .bind(now)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
                let running_by_worker = sqlx::query(
                    "SELECT worker_id, COUNT(*) AS n FROM runs WHERE status = 'running' AND worker_id IS NOT NULL GROUP BY worker_id",
                )
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| Ok((row.try_get::<String, _>("worker_id")?, row.try_get::<i64, _>("n")?)))
                .collect::<$crate::store::StoreResult<Vec<_>>>()?;
                Ok($crate::store::RunStats { by_status, ready, running_by_worker })
            }

            async fn get_event(&self, user_id: &str, event_id: &str) -> $crate::store::StoreResult<Option<$crate::store::EventRow>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT event_id, event_type, source, received_at, run_ids FROM events WHERE user_id = $1 AND event_id = $2",
                )
                .bind(user_id)
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let run_ids: String = row.try_get("run_ids")?;
                Ok(Some($crate::store::EventRow {
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    source: row.try_get("source")?,
                    received_at: row.try_get("received_at")?,
                    run_ids: serde_json::from_str(&run_ids)
                        .map_err(|e| $crate::store::StoreError::Corrupt(format!("event run ids: {e}")))?,
                }))
            }

            async fn queue_depth(&self, user_id: &str) -> $crate::store::StoreResult<$crate::store::QueueDepth> {
                use sqlx::Row;
                let row = sqlx::query($queued_runs_sql).bind(user_id).fetch_one(&self.pool).await?;
                Ok($crate::store::QueueDepth {
                    runs: row.try_get("n")?,
                    payload_bytes: row.try_get("bytes")?,
                })
            }

            async fn bind_account(&self, user_id: &str, integration: &str, account_id: &str, app_id: Option<&str>) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO connected_accounts (user_id, integration_id, account_id, app_id, connected_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, integration_id) DO UPDATE SET \
                     account_id = excluded.account_id, app_id = excluded.app_id, connected_at = excluded.connected_at",
                )
                .bind(user_id)
                .bind(integration)
                .bind(account_id)
                .bind(app_id)
                .bind($crate::store::now_millis())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn bound_account(&self, user_id: &str, integration: &str) -> $crate::store::StoreResult<Option<(String, Option<String>)>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT account_id, app_id FROM connected_accounts WHERE user_id = $1 AND integration_id = $2")
                    .bind(user_id)
                    .bind(integration)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some((row.try_get("account_id")?, row.try_get("app_id")?)),
                    None => None,
                })
            }

            async fn claim_delivery(&self, source: &str, delivery_id: &str, user_id: &str) -> $crate::store::StoreResult<String> {
                use sqlx::Row;
                sqlx::query(
                    "INSERT INTO webhook_deliveries (source, delivery_id, user_id, received_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (source, delivery_id) DO NOTHING",
                )
                .bind(source)
                .bind(delivery_id)
                .bind(user_id)
                .bind($crate::store::now_millis())
                .execute(&self.pool)
                .await?;
                Ok(sqlx::query("SELECT user_id FROM webhook_deliveries WHERE source = $1 AND delivery_id = $2")
                    .bind(source)
                    .bind(delivery_id)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("user_id")?)
            }

            async fn setup_link_spent(&self, link_id: &str) -> $crate::store::StoreResult<bool> {
                Ok(sqlx::query("SELECT link_id FROM spent_setup_links WHERE link_id = $1")
                    .bind(link_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .is_some())
            }

            async fn put_credentials_through_link(
                &self,
                rows: &[$crate::store::CredentialRow],
                link: &$crate::store::LinkUse,
            ) -> $crate::store::StoreResult<$crate::store::LinkWrite> {
                let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                if let Some(row) = rows.first() {
                    let newer = sqlx::query(
                        "SELECT 1 AS newer FROM credentials WHERE user_id = $1 AND integration_id = $2 \
                         AND status = 'connected' AND updated_at > $3 LIMIT 1",
                    )
                    .bind(&row.user_id)
                    .bind(&row.integration_id)
                    .bind(link.issued_at)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if newer.is_some() {
                        return Ok($crate::store::LinkWrite::Superseded);
                    }
                }
                sqlx::query("DELETE FROM spent_setup_links WHERE expires_at < $1")
                    .bind($crate::store::now_millis())
                    .execute(&mut *tx)
                    .await?;
                // Insert-if-absent: of two uses of one link, however close,
                // one finds the id taken and writes nothing.
                let spent = sqlx::query(
                    "INSERT INTO spent_setup_links (link_id, expires_at) VALUES ($1, $2) ON CONFLICT (link_id) DO NOTHING",
                )
                .bind(&link.id)
                .bind(link.keep_until)
                .execute(&mut *tx)
                .await?;
                if spent.rows_affected() == 0 {
                    return Ok($crate::store::LinkWrite::Spent);
                }
                $crate::store::sql::upsert_credentials!(&mut *tx, rows);
                tx.commit().await?;
                Ok($crate::store::LinkWrite::Stored)
            }

            async fn insert_audit(&self, entries: &[$crate::store::AuditRow]) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN).await?;
                for entry in entries {
                    sqlx::query(
                        "INSERT INTO audit (id, user_id, action, integration, run_id, detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&entry.id)
                    .bind(&entry.user_id)
                    .bind(&entry.action)
                    .bind(&entry.integration)
                    .bind(&entry.run_id)
                    .bind(&entry.detail)
                    .bind(entry.at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_audit(&self, user_id: &str, filter: &$crate::store::AuditFilter) -> $crate::store::StoreResult<Vec<$crate::store::AuditRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, user_id, action, integration, run_id, detail, at FROM audit \
                     WHERE user_id = $1 AND ($2 IS NULL OR at < $2) AND ($3 IS NULL OR (at, id) < ($3, $4)) \
                     ORDER BY at DESC, id DESC LIMIT $5",
                )
                .bind(user_id)
                .bind(filter.before)
                .bind(filter.after.as_ref().map(|a| a.at))
                .bind(filter.after.as_ref().map(|a| a.id.as_str()))
                .bind(filter.limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::store::AuditRow {
                            id: row.try_get("id")?,
                            user_id: row.try_get("user_id")?,
                            action: row.try_get("action")?,
                            integration: row.try_get("integration")?,
                            run_id: row.try_get("run_id")?,
                            detail: row.try_get("detail")?,
                            at: row.try_get("at")?,
                        })
                    })
                    .collect()
            }

            async fn insert_method_call(&self, call: &$crate::store::MethodCallRow) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO method_calls (id, run_id, integration, method, status, http_status, duration_ms, attempts, refreshed, error, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&call.id)
                .bind(&call.run_id)
                .bind(&call.integration)
                .bind(&call.method)
                .bind(&call.status)
                .bind(call.http_status)
                .bind(call.duration_ms)
                .bind(call.attempts)
                .bind(call.refreshed)
                .bind(&call.error)
                .bind(call.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn method_calls(&self, run_id: &str) -> $crate::store::StoreResult<Vec<$crate::store::MethodCallRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, run_id, integration, method, status, http_status, duration_ms, attempts, refreshed, error, created_at \
                     FROM method_calls WHERE run_id = $1 ORDER BY created_at, id",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::store::MethodCallRow {
                            id: row.try_get("id")?,
                            run_id: row.try_get("run_id")?,
                            integration: row.try_get("integration")?,
                            method: row.try_get("method")?,
                            status: row.try_get("status")?,
                            http_status: row.try_get("http_status")?,
                            duration_ms: row.try_get("duration_ms")?,
                            attempts: row.try_get("attempts")?,
                            refreshed: row.try_get("refreshed")?,
                            error: row.try_get("error")?,
                            created_at: row.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn list_messages(&self, user_id: &str, filter: &$crate::store::MessageFilter) -> $crate::store::StoreResult<Vec<$crate::store::MessageRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, user_id, script_id, run_id, channel, recipient, subject, body, created_at FROM messages \
                     WHERE user_id = $1 AND ($2 IS NULL OR script_id = $2) AND ($3 IS NULL OR created_at < $3) \
                     AND ($4 IS NULL OR (created_at, id) < ($4, $5)) ORDER BY created_at DESC, id DESC LIMIT $6",
                )
                .bind(user_id)
                .bind(&filter.script_id)
                .bind(filter.before)
                .bind(filter.after.as_ref().map(|a| a.at))
                .bind(filter.after.as_ref().map(|a| a.id.as_str()))
                .bind(filter.limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::store::MessageRow {
                            id: row.try_get("id")?,
                            user_id: row.try_get("user_id")?,
                            script_id: row.try_get("script_id")?,
                            run_id: row.try_get("run_id")?,
                            channel: row.try_get("channel")?,
                            recipient: row.try_get("recipient")?,
                            subject: row.try_get("subject")?,
                            body: row.try_get("body")?,
                            created_at: row.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn triggers(&self, script_id: &str) -> $crate::store::StoreResult<Vec<$crate::store::TriggerRow>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT handler, kind, spec, timezone FROM triggers WHERE script_id = $1 ORDER BY handler")
                    .bind(script_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::store::TriggerRow {
                            handler: row.try_get("handler")?,
                            kind: row.try_get::<String, _>("kind")?.parse().map_err($crate::store::StoreError::Corrupt)?,
                            spec: row.try_get("spec")?,
                            timezone: row.try_get("timezone")?,
                        })
                    })
                    .collect()
            }
        }
    };
}

/// Deletes a script's triggers and inserts the given ones, inside `$tx`.
macro_rules! replace_triggers {
    ($tx:expr, $script_id:expr, $triggers:expr) => {
        sqlx::query("DELETE FROM triggers WHERE script_id = $1").bind($script_id).execute($tx).await?;
        for trigger in $triggers {
            sqlx::query("INSERT INTO triggers (script_id, handler, kind, spec, timezone) VALUES ($1, $2, $3, $4, $5)")
                .bind($script_id)
                .bind(&trigger.handler)
                .bind(trigger.kind.as_str())
                .bind(&trigger.spec)
                .bind(&trigger.timezone)
                .execute($tx)
                .await?;
        }
    };
}

/// The statement queuing a new run (`bind_new_run!` binds it), returning
/// the run.
pub(super) fn insert_run_sql() -> String {
    format!(
        "INSERT INTO runs (id, user_id, script_id, script_version, handler, trigger_kind, trigger_spec, payload, \
         status, attempt, queued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 1, $9) RETURNING {RUN_COLUMNS}"
    )
}

/// Binds a `NewRun` (and a new id and the time) to `insert_run_sql()`.
macro_rules! bind_new_run {
    ($query:expr, $run:expr) => {
        $query
            .bind($crate::store::sql::new_id("run"))
            .bind(&$run.user_id)
            .bind(&$run.script_id)
            .bind($run.script_version)
            .bind(&$run.handler)
            .bind($run.trigger_kind.as_str())
            .bind(&$run.trigger_spec)
            .bind($run.payload.to_string())
            .bind($crate::store::now_millis())
    };
}

/// The (run id, request hash, time) an idempotency key of a user was last
/// used with, read through `$executor`.
macro_rules! idempotent_lookup {
    ($executor:expr, $user_id:expr, $key:expr) => {{
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT run_id, request_hash, created_at FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2",
        )
        .bind($user_id)
        .bind($key)
        .fetch_optional($executor)
        .await?;
        match row {
            Some(row) => Some((
                row.try_get::<String, _>("run_id")?,
                row.try_get::<String, _>("request_hash")?,
                row.try_get::<i64, _>("created_at")?,
            )),
            None => None,
        }
    }};
}

/// Inserts or replaces credential rows through `$tx`.
macro_rules! upsert_credentials {
    ($tx:expr, $rows:expr) => {
        for row in $rows {
            sqlx::query(
                "INSERT INTO credentials (user_id, integration_id, cred_key, key_id, nonce, ciphertext, \
                 placement, status, updated_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (user_id, integration_id, cred_key) DO UPDATE SET key_id = excluded.key_id, \
                 nonce = excluded.nonce, ciphertext = excluded.ciphertext, placement = excluded.placement, \
                 status = excluded.status, updated_at = excluded.updated_at, expires_at = excluded.expires_at",
            )
            .bind(&row.user_id)
            .bind(&row.integration_id)
            .bind(&row.cred_key)
            .bind(&row.key_id)
            .bind(&row.nonce)
            .bind(&row.ciphertext)
            .bind(&row.placement)
            .bind(row.status.as_str())
            .bind(row.updated_at)
            .bind(row.expires_at)
            .execute($tx)
            .await?;
        }
    };
}

pub(super) use {bind_new_run, idempotent_lookup, replace_triggers, sql_store, upsert_credentials};

/// Row decoders, generic over the database.
pub(super) fn credential_from_row<R: sqlx::Row>(
    row: &R,
) -> Result<super::CredentialRow, sqlx::Error>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(super::CredentialRow {
        user_id: row.try_get("user_id")?,
        integration_id: row.try_get("integration_id")?,
        cred_key: row.try_get("cred_key")?,
        key_id: row.try_get("key_id")?,
        nonce: row.try_get("nonce")?,
        ciphertext: row.try_get("ciphertext")?,
        placement: row.try_get("placement")?,
        status: row
            .try_get::<String, _>("status")?
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// A run from a row holding `RUN_COLUMNS`.
pub(super) fn run_from_row(row: &impl RunColumns) -> super::StoreResult<super::RunRow> {
    let payload = row.text("payload")?;
    Ok(super::RunRow {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        script_id: row.text("script_id")?,
        script_version: row.int("script_version")?,
        handler: row.maybe_text("handler")?,
        trigger_kind: row
            .text("trigger_kind")?
            .parse()
            .map_err(super::StoreError::Corrupt)?,
        trigger_spec: row.text("trigger_spec")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| super::StoreError::Corrupt(format!("run payload: {e}")))?,
        status: row
            .text("status")?
            .parse()
            .map_err(super::StoreError::Corrupt)?,
        attempt: row.int("attempt")?,
        first_run_id: row.maybe_text("first_run_id")?,
        worker_id: row.maybe_text("worker_id")?,
        heartbeat_at: row.maybe_int("heartbeat_at")?,
        queued_at: row.int("queued_at")?,
        started_at: row.maybe_int("started_at")?,
        finished_at: row.maybe_int("finished_at")?,
        exit_code: row.maybe_int("exit_code")?,
        duration_ms: row.maybe_int("duration_ms")?,
        error: row.maybe_text("error")?,
        stdout_truncated: row.int("stdout_truncated")? != 0,
        stderr_truncated: row.int("stderr_truncated")? != 0,
        output_cap: row.maybe_int("output_cap")?,
        not_before: row.maybe_int("not_before")?,
    })
}

/// A result row's columns by name, whichever driver read it: sqlx's rows
/// for both stores, and rusqlite's for SQLite's writer thread.
pub(super) trait RunColumns {
    fn text(&self, column: &str) -> super::StoreResult<String>;
    fn maybe_text(&self, column: &str) -> super::StoreResult<Option<String>>;
    fn int(&self, column: &str) -> super::StoreResult<i64>;
    fn maybe_int(&self, column: &str) -> super::StoreResult<Option<i64>>;
}

macro_rules! sqlx_run_columns {
    ($row:ty) => {
        impl RunColumns for $row {
            fn text(&self, column: &str) -> super::StoreResult<String> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn maybe_text(&self, column: &str) -> super::StoreResult<Option<String>> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn int(&self, column: &str) -> super::StoreResult<i64> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn maybe_int(&self, column: &str) -> super::StoreResult<Option<i64>> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
        }
    };
}
sqlx_run_columns!(sqlx::sqlite::SqliteRow);
sqlx_run_columns!(sqlx::postgres::PgRow);

/// Schedules with their policies and last tick. `$1` is a user id to filter
/// on, or the empty string for every user.
pub(super) const SCHEDULES_SQL: &str = "SELECT t.script_id, s.user_id, t.handler, t.spec, t.timezone, s.created_at, \
     COALESCE(c.paused, 0) AS paused, COALESCE(c.catch_up, 'skip') AS catch_up, COALESCE(c.overlap, 'skip') AS overlap, \
     (SELECT MAX(k.tick_at) FROM schedule_ticks k WHERE k.script_id = t.script_id AND k.handler = t.handler) AS last_tick_at \
     FROM triggers t JOIN scripts s ON s.id = t.script_id \
     LEFT JOIN schedule_settings c ON c.script_id = t.script_id AND c.handler = t.handler \
     WHERE t.kind = 'schedule' AND ($1 = '' OR s.user_id = $1)";

pub(super) fn schedule_from_row<R: sqlx::Row>(row: &R) -> Result<super::ScheduleRow, sqlx::Error>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(super::ScheduleRow {
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

pub(super) fn script_from_row<R: sqlx::Row>(row: &R) -> Result<super::Script, sqlx::Error>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(super::Script {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        current_version: row.try_get("current_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn version_from_row<R: sqlx::Row>(row: &R) -> super::StoreResult<super::ScriptVersion>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let metadata: String = row.try_get("metadata")?;
    Ok(super::ScriptVersion {
        script_id: row.try_get("script_id")?,
        version: row.try_get("version")?,
        content_hash: row.try_get("content_hash")?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| super::StoreError::Corrupt(format!("version metadata: {e}")))?,
        created_at: row.try_get("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::new_id;

    #[test]
    fn ids_sort_by_creation_time_and_never_repeat() {
        let first = new_id("run");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = new_id("run");
        assert!(first < later, "{first} then {later}");
        assert_eq!(first.len(), "run_".len() + 12 + 24, "{first}");
        let many: std::collections::HashSet<String> = (0..10_000).map(|_| new_id("run")).collect();
        assert_eq!(many.len(), 10_000);
    }
}

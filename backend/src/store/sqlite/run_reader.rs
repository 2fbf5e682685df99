//! The reads on a run's path, on a read-only rusqlite connection of the
//! store's own, on the calling thread: a run's state keys (`get_many`) and
//! the endpoint an HTTP request is for. A read through sqlx's pool cost
//! more in the hand-off to the connection's thread and back than the read
//! itself (BENCHMARKS.md, state and HTTP handlers). SQLite's WAL lets it
//! read while the writer writes; the lock is held for one indexed read.
//! Endpoints are kept in memory between writes (endpoint_cache.rs).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

use super::endpoint_cache::EndpointCache;

use crate::store::http_endpoints::{ENDPOINT_BY_TOKEN_SQL, sealed_secret};
use crate::store::state::padded;
use crate::store::{HttpEndpoint, StateEntry, StoreError, StoreResult};

/// The run reader's connection.
pub(crate) struct RunReader {
    conn: Mutex<Connection>,
    endpoints: EndpointCache,
}

impl RunReader {
    /// A reader of the database at `path`.
    pub(super) fn open(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Self {
            conn: Mutex::new(conn),
            endpoints: EndpointCache::default(),
        })
    }

    /// The live entries of script `script_id` under `keys` at `now`.
    pub(crate) fn entries_by_keys(
        &self,
        script_id: &str,
        keys: &[&str],
        now: i64,
    ) -> StoreResult<Vec<StateEntry>> {
        let keys = padded(keys);
        let places: Vec<String> = (3..keys.len() + 3).map(|n| format!("?{n}")).collect();
        let sql = format!(
            "SELECT key, value, expires_at, updated_at, run_id FROM script_state \
             WHERE script_id = ?1 AND (expires_at IS NULL OR expires_at > ?2) AND key IN ({})",
            places.join(", ")
        );
        let conn = self.connection()?;
        let mut statement = conn.prepare_cached(&sql)?;
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&script_id, &now];
        values.extend(keys.iter().map(|k| k as &dyn rusqlite::ToSql));
        let rows = statement.query_map(values.as_slice(), |row| {
            Ok(StateEntry {
                key: row.get(0)?,
                value: row.get(1)?,
                expires_at: row.get(2)?,
                updated_at: row.get(3)?,
                run_id: row.get(4)?,
            })
        })?;
        let mut entries: Vec<StateEntry> = rows.collect::<Result<_, _>>()?;
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    /// The endpoint whose URL has `token` (see
    /// `HttpEndpointStore::http_endpoint`).
    pub(crate) fn http_endpoint(&self, token: &str) -> StoreResult<Option<HttpEndpoint>> {
        if let Some(endpoint) = self.endpoints.get(token) {
            return Ok(Some(endpoint));
        }
        let generation = self.endpoints.generation();
        let endpoint = self.read_endpoint(token)?;
        if let Some(endpoint) = &endpoint {
            self.endpoints.keep(generation, endpoint);
        }
        Ok(endpoint)
    }

    /// Forgets the endpoints kept in memory: a write may have changed one.
    pub(crate) fn endpoints_changed(&self) {
        self.endpoints.forget_all();
    }

    fn read_endpoint(&self, token: &str) -> StoreResult<Option<HttpEndpoint>> {
        let conn = self.connection()?;
        let mut statement = conn.prepare_cached(&ENDPOINT_BY_TOKEN_SQL)?;
        let mut rows = statement.query([token])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        Ok(Some(HttpEndpoint {
            token: row.get("token")?,
            user_id: row.get("user_id")?,
            script_id: row.get("script_id")?,
            handler: row.get("handler")?,
            script_version: row.get("current_version")?,
            trigger: row.get("spec")?,
            secret: sealed_secret(
                row.get("secret_key_id")?,
                row.get("secret_nonce")?,
                row.get("secret")?,
            ),
        }))
    }

    fn connection(&self) -> StoreResult<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Writer("run reader poisoned".into()))
    }
}

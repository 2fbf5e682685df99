//! The URLs of HTTP-triggered handlers, and what their runs answered.

use async_trait::async_trait;
use rand::RngCore as _;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::{HttpReply, StoreError, StoreResult, now_millis};

/// One HTTP-triggered handler's URL and what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEndpoint {
    /// The unguessable segment of its URL.
    pub token: String,
    /// The script's owner.
    pub user_id: String,
    /// The script.
    pub script_id: String,
    /// The handler.
    pub handler: String,
    /// The script's current version (the one a request runs).
    pub script_version: i64,
    /// Its trigger as the current version declares it (JSON of
    /// `roost_sandbox::HttpTrigger`).
    pub trigger: String,
    /// An `hmac` handler's signing secret, sealed, once its owner set one.
    pub secret: Option<SealedSecret>,
}

/// A secret sealed with AES-GCM under a master key (see
/// `credentials::cipher`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The master key's id.
    pub key_id: String,
    /// The nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext.
    pub ciphertext: Vec<u8>,
}

/// HTTP endpoints.
#[async_trait]
pub trait HttpEndpointStore: Send + Sync {
    /// The endpoint whose URL has `token`, if a current version's handler
    /// answers there.
    async fn http_endpoint(&self, token: &str) -> StoreResult<Option<HttpEndpoint>>;
    /// A user's script's endpoints, by handler; `None` for no such script.
    async fn http_endpoints(
        &self,
        user_id: &str,
        script_id: &str,
    ) -> StoreResult<Option<Vec<HttpEndpoint>>>;
    /// Gives a handler's endpoint a new token (the old URL stops
    /// answering); `None` if the user's script has no such HTTP handler.
    async fn rotate_http_endpoint(
        &self,
        user_id: &str,
        script_id: &str,
        handler: &str,
    ) -> StoreResult<Option<HttpEndpoint>>;
    /// What HTTP-triggered run `run_id` answered, once it succeeded.
    async fn http_response(&self, run_id: &str) -> StoreResult<Option<HttpReply>>;
    /// Sets a handler's signing secret; false if the user's script has no
    /// such HTTP handler.
    async fn set_http_secret(
        &self,
        user_id: &str,
        script_id: &str,
        handler: &str,
        secret: &SealedSecret,
    ) -> StoreResult<bool>;
    /// Every endpoint with a signing secret (master-key rotation).
    async fn sealed_http_secrets(&self) -> StoreResult<Vec<HttpEndpoint>>;
}

/// A fresh URL token: 192 random bits.
pub(super) fn new_endpoint_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("h{}", hex::encode(bytes))
}

/// Gives every HTTP handler of `script_id` an endpoint if it has none;
/// one it had (an earlier version, before a rollback) keeps its URL.
pub(super) const ENSURE_ENDPOINT_SQL: &str = "INSERT INTO http_endpoints (token, script_id, handler, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (script_id, handler) DO NOTHING";

const ENDPOINT_COLUMNS: &str = "SELECT e.token, s.user_id, e.script_id, e.handler, t.spec, s.current_version, \
     e.secret_key_id, e.secret_nonce, e.secret \
     FROM http_endpoints e JOIN scripts s ON s.id = e.script_id \
     JOIN triggers t ON t.script_id = e.script_id AND t.handler = e.handler AND t.kind = 'http'";

/// The endpoint whose token is `$1`.
pub(super) static ENDPOINT_BY_TOKEN_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{ENDPOINT_COLUMNS} WHERE e.token = $1"));

fn endpoint<R>(row: &R) -> StoreResult<HttpEndpoint>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: Column<R::Database>,
    Option<String>: Column<R::Database>,
    Option<Vec<u8>>: Column<R::Database>,
    i64: Column<R::Database>,
{
    Ok(HttpEndpoint {
        token: row.try_get("token")?,
        user_id: row.try_get("user_id")?,
        script_id: row.try_get("script_id")?,
        handler: row.try_get("handler")?,
        script_version: row.try_get("current_version")?,
        trigger: row.try_get("spec")?,
        secret: sealed_secret(
            row.try_get("secret_key_id")?,
            row.try_get("secret_nonce")?,
            row.try_get("secret")?,
        ),
    })
}

/// An endpoint's signing secret, from its three columns (all set, or none).
pub(super) fn sealed_secret(
    key_id: Option<String>,
    nonce: Option<Vec<u8>>,
    ciphertext: Option<Vec<u8>>,
) -> Option<SealedSecret> {
    match (key_id, nonce, ciphertext) {
        (Some(key_id), Some(nonce), Some(ciphertext)) => Some(SealedSecret {
            key_id,
            nonce,
            ciphertext,
        }),
        _ => None,
    }
}

#[async_trait]
impl<DB> HttpEndpointStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
    Vec<u8>: Column<DB>,
    Option<Vec<u8>>: Column<DB>,
{
    async fn http_endpoint(&self, token: &str) -> StoreResult<Option<HttpEndpoint>> {
        if let Some(reader) = DB::run_reader(&self.queue) {
            return reader.http_endpoint(token);
        }
        let row = sqlx::query(&ENDPOINT_BY_TOKEN_SQL)
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(endpoint).transpose()
    }

    async fn http_endpoints(
        &self,
        user_id: &str,
        script_id: &str,
    ) -> StoreResult<Option<Vec<HttpEndpoint>>> {
        let owned = sqlx::query("SELECT id FROM scripts WHERE id = $1 AND user_id = $2")
            .bind(script_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        if owned.is_none() {
            return Ok(None);
        }
        let sql = format!(
            "{ENDPOINT_COLUMNS} WHERE e.script_id = $1 AND s.user_id = $2 ORDER BY e.handler"
        );
        let rows = sqlx::query(&sql)
            .bind(script_id)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(endpoint)
            .collect::<StoreResult<_>>()
            .map(Some)
    }

    async fn rotate_http_endpoint(
        &self,
        user_id: &str,
        script_id: &str,
        handler: &str,
    ) -> StoreResult<Option<HttpEndpoint>> {
        let token = new_endpoint_token();
        // The URL changes; a signing secret stays until its owner sets another.
        let rotated = sqlx::query(
            "UPDATE http_endpoints SET token = $1, created_at = $2 \
             WHERE script_id = $3 AND handler = $4 \
             AND script_id IN (SELECT id FROM scripts WHERE user_id = $5)",
        )
        .bind(&token)
        .bind(now_millis())
        .bind(script_id)
        .bind(handler)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        if DB::rows_affected(&rotated) == 0 {
            return Ok(None);
        }
        self.endpoints_changed();
        self.http_endpoint(&token).await
    }

    async fn http_response(&self, run_id: &str) -> StoreResult<Option<HttpReply>> {
        let row =
            sqlx::query("SELECT status, headers, body FROM run_http_responses WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let status: i64 = row.try_get("status")?;
        let headers: String = row.try_get("headers")?;
        Ok(Some(HttpReply {
            status: u16::try_from(status)
                .map_err(|_| StoreError::Corrupt(format!("HTTP status {status}")))?,
            headers: serde_json::from_str(&headers)
                .map_err(|e| StoreError::Corrupt(format!("HTTP response headers: {e}")))?,
            body: row.try_get("body")?,
        }))
    }

    async fn set_http_secret(
        &self,
        user_id: &str,
        script_id: &str,
        handler: &str,
        secret: &SealedSecret,
    ) -> StoreResult<bool> {
        let set = sqlx::query(
            "UPDATE http_endpoints SET secret_key_id = $1, secret_nonce = $2, secret = $3 \
             WHERE script_id = $4 AND handler = $5 \
             AND script_id IN (SELECT id FROM scripts WHERE user_id = $6) \
             AND EXISTS (SELECT 1 FROM triggers t WHERE t.script_id = $4 AND t.handler = $5 AND t.kind = 'http')",
        )
        .bind(secret.key_id.as_str())
        .bind(&secret.nonce)
        .bind(&secret.ciphertext)
        .bind(script_id)
        .bind(handler)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        self.endpoints_changed();
        Ok(DB::rows_affected(&set) > 0)
    }

    async fn sealed_http_secrets(&self) -> StoreResult<Vec<HttpEndpoint>> {
        let sql = format!("{ENDPOINT_COLUMNS} WHERE e.secret IS NOT NULL");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(endpoint).collect()
    }
}

//! Who may do what in an MCP request: the user and token grant that
//! `super::authenticate` put in its extensions, and a refusal worded as
//! the REST API words it (`isError` with its error body).

use axum::http::request::Parts;
use axum::response::IntoResponse;
use rmcp::ErrorData;
use rmcp::model::CallToolResult;
use serde_json::Value;

use crate::http::ApiError;
use crate::store::User;

/// The refusal, as the REST API words it, when the request's token lacks
/// `scope` for `tool` (the grant is put there by `super::authenticate`).
pub(super) fn refused_scope(
    parts: &Parts,
    scope: crate::store::Scope,
    tool: &str,
) -> Result<Option<ApiError>, ErrorData> {
    let grant = parts
        .extensions
        .get::<crate::store::TokenGrant>()
        .ok_or_else(|| ErrorData::internal_error("request not authenticated", None))?;
    Ok(
        crate::http::scopes::allows(grant, scope, &format!("the tool `{tool}`"))
            .err()
            .map(|message| {
                ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "insufficient_scope",
                    message,
                )
            }),
    )
}

/// The authenticated user, put there by `super::authenticate`.
pub(super) fn user(parts: &Parts) -> Result<&User, ErrorData> {
    parts
        .extensions
        .get::<User>()
        .ok_or_else(|| ErrorData::internal_error("request not authenticated", None))
}

/// A failed tool call, as MCP reports one to the model (`isError`), with the
/// REST API's error body (`{"error": {"code", "message", "details"}}`) both
/// as structured content and as text.
pub(super) async fn tool_error(error: ApiError) -> Result<CallToolResult, ErrorData> {
    let response = error.into_response();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .map_err(|err| ErrorData::internal_error(err.to_string(), None))?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|err| ErrorData::internal_error(err.to_string(), None))?;
    Ok(CallToolResult::structured_error(body))
}

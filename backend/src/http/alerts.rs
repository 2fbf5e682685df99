//! `/v1/alerts`: the user's alert settings and latest alerts, and
//! `/v1/scripts/{id}/alerts`: one script's override.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, AuthUser};
use super::{ApiError, AppState};
use crate::alerts::{AlertError, AlertSettingsPatch};

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource(
        "alerts",
        OpenApiRouter::new()
            .routes(routes!(view, update_default))
            .routes(routes!(update_script, reset_script)),
    )
}

/// The user's alert settings and latest alerts.
#[utoipa::path(
    get,
    path = "/v1/alerts",
    responses((status = 200, description = "Settings and latest alerts", body = Object))
)]
async fn view(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.alerts.view(&user.id).await?))
}

/// Changes the user's default alert settings.
#[utoipa::path(
    put,
    path = "/v1/alerts",
    request_body(content = Object, description = "The settings to change"),
    responses((status = 200, description = "`{settings}`", body = Object))
)]
async fn update_default(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(patch): ApiJson<AlertSettingsPatch>,
) -> Result<impl IntoResponse, ApiError> {
    let settings = state.alerts.update(&user.id, None, patch).await?;
    Ok(Json(json!({ "settings": settings })))
}

/// Sets one script's alert settings over the user's default.
#[utoipa::path(
    put,
    path = "/v1/scripts/{id}/alerts",
    params(("id" = String, Path, description = "Script id")),
    request_body(content = Object, description = "The settings to change"),
    responses((status = 200, description = "`{settings}`", body = Object))
)]
async fn update_script(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<AlertSettingsPatch>,
) -> Result<impl IntoResponse, ApiError> {
    let settings = state.alerts.update(&user.id, Some(&id), patch).await?;
    Ok(Json(json!({ "settings": settings })))
}

/// Drops a script's override: the default applies again.
#[utoipa::path(
    delete,
    path = "/v1/scripts/{id}/alerts",
    params(("id" = String, Path, description = "Script id")),
    responses((status = 204, description = "Reset"))
)]
async fn reset_script(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    match state.alerts.reset(&user.id, &id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found("alert override of this script")),
    }
}

impl From<AlertError> for ApiError {
    fn from(err: AlertError) -> Self {
        match err {
            AlertError::Invalid(message) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_alert_settings", message)
            }
            AlertError::NoScript => ApiError::not_found("script"),
            AlertError::Store(err) => err.into(),
        }
    }
}

//! `/signin`, `/signout` and `/`: a pasted API token becomes a session.

use askama::Template;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::error::WebError;
use super::extract::{CsrfForm, same_origin, session_cookie};
use super::render;
use super::sessions::{COOKIE, SignInRefused};
use crate::http::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/signin", get(form).post(sign_in))
        .route("/signout", post(sign_out))
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    next: String,
    problem: Option<String>,
}

async fn home(headers: HeaderMap) -> Response {
    let to = if session_cookie(&headers).is_some() {
        "/scripts"
    } else {
        "/signin"
    };
    super::see_other(to)
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only a path of this dashboard is a place to return to.
fn safe_next(next: Option<String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/scripts".into())
}

async fn form(Query(query): Query<Next>) -> Response {
    render::ok(&SignInPage {
        next: safe_next(query.next),
        problem: None,
    })
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
    next: Option<String>,
}

async fn sign_in(State(state): State<AppState>, request: Request) -> Result<Response, WebError> {
    let (parts, body) = request.into_parts();
    // No session yet, so no form token: the browser's origin headers keep
    // another site from signing a visitor in to an account of its own.
    same_origin(&parts.headers)?;
    let client = crate::http::client_address(&parts);
    let Form(body) = Form::<SignIn>::from_request(Request::from_parts(parts, body), &state)
        .await
        .map_err(|rejection| WebError::BadForm(rejection.body_text()))?;
    let next = safe_next(body.next);
    let failures = &state.guards.auth_failures;
    let refused = |status, problem: String| {
        render::page(
            status,
            &SignInPage {
                next: next.clone(),
                problem: Some(problem),
            },
        )
    };
    if let Err(wait) = failures.ready(&client) {
        return Ok(refused(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many wrong tokens from this address; try again in {} s.",
                wait.as_secs().max(1)
            ),
        ));
    }
    let token = body.token.trim();
    let signed_in = if token.is_empty() {
        Err(SignInRefused::Invalid)
    } else {
        state.web.sessions.sign_in(token).await?
    };
    let signed_in = match signed_in {
        Ok(signed_in) => signed_in,
        Err(SignInRefused::Invalid) => {
            let _ = failures.check(&client);
            return Ok(refused(
                StatusCode::UNAUTHORIZED,
                "That token is not valid (unknown, revoked or expired). Paste the token \
                 `roost user create` printed, or one made with `roost token create`."
                    .into(),
            ));
        }
        Err(SignInRefused::Narrow) => {
            return Ok(refused(
                StatusCode::FORBIDDEN,
                "That token is limited to some scopes; the dashboard needs a token with every \
                 scope (read, deploy, run, events)."
                    .into(),
            ));
        }
    };
    let mut response = super::see_other(next);
    let secure = if state.web.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        signed_in.cookie,
        state.web.sessions.ttl_secs()
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| WebError::Internal(e.to_string()))?,
    );
    Ok(response)
}

#[derive(Deserialize)]
struct Nothing {}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    CsrfForm {
        form: Nothing {}, ..
    }: CsrfForm<Nothing>,
) -> Result<Response, WebError> {
    if let Some(cookie) = session_cookie(&headers) {
        state.web.sessions.sign_out(cookie).await?;
    }
    let mut response = super::see_other("/signin");
    let secure = if state.web.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        ))
        .map_err(|e| WebError::Internal(e.to_string()))?,
    );
    Ok(response.into_response())
}

//! The public setup pages a refused deploy links to: the OAuth start and
//! callback, and the form for API keys and tokens. No bearer token here: the
//! signed link identifies the user.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::AppState;
use super::pages::{error_page, escape, page};
use crate::oauth::OAuthError;
use crate::registry::{AuthType, CredentialType};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/integrations/{id}/setup", get(start).post(submit_form))
        .route("/oauth/callback", get(callback))
}

#[derive(Deserialize)]
struct LinkParams {
    user: Option<String>,
    link: Option<String>,
    expires: Option<i64>,
    sig: Option<String>,
}

impl LinkParams {
    /// The user the link is for, if it is complete, signed, unexpired and
    /// not yet spent. (Spent is checked again, atomically, by the write.)
    async fn check(&self, state: &AppState, integration: &str) -> Result<String, Box<Response>> {
        let (Some(user), Some(link), Some(expires), Some(sig)) =
            (&self.user, &self.link, self.expires, &self.sig)
        else {
            return Err(Box::new(error_page(
                StatusCode::BAD_REQUEST,
                "Invalid setup link",
                "The link is incomplete; deploy the script again to get a fresh one.",
            )));
        };
        state
            .links
            .verify(integration, user, link, expires, sig)
            .map_err(|err| {
                Box::new(error_page(
                    StatusCode::FORBIDDEN,
                    "Setup link refused",
                    &err.to_string(),
                ))
            })?;
        match state.credentials.link_spent(link).await {
            Ok(false) => Ok(user.clone()),
            Ok(true) => Err(Box::new(spent_page())),
            Err(err) => {
                tracing::error!(error = %err, "checking a setup link");
                Err(Box::new(error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again",
                    "roost could not check this link right now; try again shortly.",
                )))
            }
        }
    }
}

async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<LinkParams>,
) -> Response {
    let Some(definition) = state.registry.get(&id).cloned() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "Unknown integration",
            &format!("roost has no integration `{id}`."),
        );
    };
    let user = match params.check(&state, &id).await {
        Ok(user) => user,
        Err(page) => return *page,
    };
    match definition.auth_type {
        AuthType::Oauth2 => match state
            .oauth
            .start(&user, &definition, params.link.as_deref())
            .await
        {
            Ok(url) => Redirect::to(&url).into_response(),
            Err(err) => oauth_error_page(&err),
        },
        AuthType::None => page(
            StatusCode::OK,
            &definition.name,
            "<p>Nothing to connect: this integration needs no credentials.</p>",
        ),
        AuthType::Apikey | AuthType::Custom => form_page(&definition, &params),
    }
}

fn form_page(definition: &crate::registry::IntegrationDefinition, params: &LinkParams) -> Response {
    let mut fields = String::new();
    for spec in definition
        .credentials
        .iter()
        .filter(|s| s.kind != CredentialType::Oauth2)
    {
        let kind = if matches!(spec.kind, CredentialType::Custom) {
            "text"
        } else {
            "password"
        };
        fields.push_str(&format!(
            "<label for=\"{key}\">{label}</label><input id=\"{key}\" name=\"cred_{key}\" type=\"{kind}\" autocomplete=\"off\"{required}>\
             <div class=\"hint\">{desc} (injected as <code>{env}</code>)</div>",
            key = escape(&spec.key),
            label = escape(&spec.key),
            required = if spec.required { " required" } else { "" },
            desc = escape(&spec.description),
            env = escape(&spec.env_var),
        ));
    }
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    };
    let body = format!(
        "<p>Connect {name} to roost. {description}</p><form method=\"post\">{user}{link}{expires}{sig}{fields}\
         <button type=\"submit\">Connect</button></form><p class=\"hint\">Docs: {docs}</p>",
        name = escape(&definition.name),
        description = escape(&definition.description),
        user = hidden("user", params.user.as_deref().unwrap_or("")),
        link = hidden("link", params.link.as_deref().unwrap_or("")),
        expires = hidden("expires", &params.expires.unwrap_or_default().to_string()),
        sig = hidden("sig", params.sig.as_deref().unwrap_or("")),
        docs = escape(&definition.docs_url),
    );
    page(
        StatusCode::OK,
        &format!("Connect {}", definition.name),
        &body,
    )
}

async fn submit_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let Some(definition) = state.registry.get(&id).cloned() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "Unknown integration",
            &format!("roost has no integration `{id}`."),
        );
    };
    let params = LinkParams {
        user: form.get("user").cloned(),
        link: form.get("link").cloned(),
        expires: form.get("expires").and_then(|e| e.parse().ok()),
        sig: form.get("sig").cloned(),
    };
    let user = match params.check(&state, &id).await {
        Ok(user) => user,
        Err(page) => return *page,
    };
    let values: BTreeMap<String, String> = form
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix("cred_")?.to_string(), value.clone())))
        .filter(|(_, value)| !value.is_empty())
        .collect();
    // The mark outlives the link by an hour, then is swept.
    let link = crate::store::LinkUse::new(
        params.link.as_deref().unwrap_or_default(),
        params.expires.unwrap_or_default() * 1000 + 3_600_000,
    );
    match state
        .credentials
        .put(&user, &definition, &values, Some(&link))
        .await
    {
        Ok(()) => connected_page(&definition.name),
        Err(crate::credentials::CredentialError::LinkSpent) => spent_page(),
        Err(crate::credentials::CredentialError::LinkSuperseded) => error_page(
            StatusCode::GONE,
            "Setup link out of date",
            "This integration was connected again after this link was made, so the link no \
             longer works. Deploy the script again if you need a fresh one.",
        ),
        Err(crate::credentials::CredentialError::Invalid(message)) => error_page(
            StatusCode::BAD_REQUEST,
            "Not saved",
            &format!("{message}. Go back and try again."),
        ),
        Err(err) => {
            tracing::error!(error = %err, "storing credentials from the setup form");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not saved",
                "roost could not store the credential right now; try again shortly.",
            )
        }
    }
}

#[derive(Deserialize)]
struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

async fn callback(State(state): State<AppState>, Query(params): Query<CallbackParams>) -> Response {
    if let Some(error) = params.error {
        // The state is single use even when the provider declined.
        if let Some(s) = &params.state {
            let _ = state.oauth.abandon(s).await;
        }
        // A fixed message per RFC 6749 code: anyone can send a person to
        // this URL, so nothing of the request is shown as roost's words.
        let message = crate::oauth::callback_error_message(&error);
        return error_page(StatusCode::BAD_REQUEST, "Not connected", message);
    }
    let (Some(oauth_state), Some(code)) = (params.state, params.code) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Not connected",
            "The callback is missing its `state` or `code`.",
        );
    };
    match state
        .oauth
        .callback(&state.registry, &oauth_state, &code)
        .await
    {
        Ok((_, integration)) => {
            let name = state
                .registry
                .get(&integration)
                .map_or(integration.clone(), |d| d.name.clone());
            connected_page(&name)
        }
        Err(err) => oauth_error_page(&err),
    }
}

fn spent_page() -> Response {
    error_page(
        StatusCode::GONE,
        "Setup link already used",
        "A credential was already stored through this link, so it no longer works. \
         Deploy the script again for a fresh link.",
    )
}

fn connected_page(name: &str) -> Response {
    page(
        StatusCode::OK,
        &format!("{name} connected"),
        &format!(
            "<p>{} is connected to your roost account. Deploy your script again: it can use it now.</p>",
            escape(name)
        ),
    )
}

fn oauth_error_page(err: &OAuthError) -> Response {
    let status = match err {
        OAuthError::LinkSpent => return spent_page(),
        OAuthError::UnknownState
        | OAuthError::ExpiredState
        | OAuthError::Provider { .. }
        | OAuthError::NotOAuth(_) => StatusCode::BAD_REQUEST,
        OAuthError::NotConfigured(..) | OAuthError::Config(_) => StatusCode::SERVICE_UNAVAILABLE,
        OAuthError::Token(_) => StatusCode::BAD_GATEWAY,
        OAuthError::ReconnectNeeded { .. } => StatusCode::CONFLICT,
        OAuthError::Store(_) | OAuthError::Credential(_) => {
            tracing::error!(error = %err, "OAuth step failed");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not connected",
                "roost could not finish the connection right now; try again shortly.",
            );
        }
    };
    error_page(status, "Not connected", &err.to_string())
}

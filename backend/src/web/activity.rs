//! `/outbox` and `/audit`: what the user's scripts sent, and what was done
//! with their credentials, newest first.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::error::{WebError, urlencode};
use super::extract::Viewer;
use super::view::when;
use super::{Nav, render};
use crate::http::AppState;
use crate::store::{AuditFilter, MessageFilter, PageAfter};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/outbox", get(outbox))
        .route("/audit", get(audit))
}

/// Rows on one page.
const PAGE: i64 = 50;

#[derive(Deserialize)]
struct Older {
    older: Option<String>,
}

impl Older {
    fn cursor(&self) -> Result<Option<PageAfter>, WebError> {
        self.older
            .as_deref()
            .map(|cursor| {
                cursor
                    .split_once(':')
                    .and_then(|(at, id)| {
                        Some(PageAfter {
                            at: at.parse().ok()?,
                            id: id.to_string(),
                        })
                    })
                    .ok_or_else(|| WebError::BadRequest("the page link is damaged".into()))
            })
            .transpose()
    }
}

/// The link to the page after a full one ending at (`at`, `id`).
fn older_link(path: &str, full: bool, last: Option<(i64, &str)>) -> Option<String> {
    let (at, id) = last.filter(|_| full)?;
    Some(format!("{path}?older={}", urlencode(&format!("{at}:{id}"))))
}

struct MessageLine {
    when: String,
    channel: String,
    to: String,
    subject: String,
    body: String,
    run_id: String,
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    nav: Nav,
    messages: Vec<MessageLine>,
    older: Option<String>,
}

async fn outbox(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(older): Query<Older>,
) -> Result<Response, WebError> {
    let filter = MessageFilter {
        after: older.cursor()?,
        limit: PAGE,
        ..Default::default()
    };
    let messages = state.outbox.list(&viewer.user.id, &filter).await?;
    let older = older_link(
        "/outbox",
        messages.len() as i64 == PAGE,
        messages.last().map(|m| (m.created_at, m.id.as_str())),
    );
    Ok(render::ok(&OutboxPage {
        nav: Nav::new(&viewer, "outbox"),
        messages: messages
            .into_iter()
            .map(|m| MessageLine {
                when: when(m.created_at),
                channel: m.channel.unwrap_or_default(),
                to: m.recipient.unwrap_or_default(),
                subject: m.subject.unwrap_or_default(),
                body: m.body,
                run_id: m.run_id,
            })
            .collect(),
        older,
    }))
}

struct AuditLine {
    when: String,
    action: String,
    integration: String,
    run_id: Option<String>,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    entries: Vec<AuditLine>,
    older: Option<String>,
}

async fn audit(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(older): Query<Older>,
) -> Result<Response, WebError> {
    let filter = AuditFilter {
        after: older.cursor()?,
        limit: PAGE,
        ..Default::default()
    };
    let entries = state.audit.list(&viewer.user.id, &filter).await?;
    let older = older_link(
        "/audit",
        entries.len() as i64 == PAGE,
        entries.last().map(|e| (e.at, e.id.as_str())),
    );
    Ok(render::ok(&AuditPage {
        nav: Nav::new(&viewer, "audit"),
        entries: entries
            .into_iter()
            .map(|e| AuditLine {
                when: when(e.at),
                action: e.action,
                integration: e.integration.unwrap_or_default(),
                run_id: e.run_id,
                detail: e.detail.unwrap_or_default(),
            })
            .collect(),
        older,
    }))
}

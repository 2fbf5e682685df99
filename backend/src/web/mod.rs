//! The dashboard: server-rendered pages for people in a browser, signed in
//! with a session cookie, calling the same services as the REST API. Read
//! pages work without JavaScript; a small script adds live updates.

mod activity;
mod assets;
pub(crate) mod chart;
mod connections;
mod error;
mod extract;
mod render;
mod runs;
mod scripts;
mod sessions;
mod signin;
mod view;

use axum::Router;

pub use sessions::WebSessions;

use crate::http::AppState;

/// What the dashboard needs besides the API's services.
pub struct WebServices {
    /// Signed-in browsers.
    pub sessions: WebSessions,
    /// Composed reads (scripts overview, connections).
    pub dashboard: crate::dashboard::Dashboard,
    /// The runs chart's figures.
    pub stats: crate::run_stats::RunStats,
    /// Whether roost is served over https (session cookies are then `Secure`).
    pub secure_cookies: bool,
}

/// The dashboard's routes, with its security headers on every answer.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(signin::router())
        .merge(assets::router())
        .merge(scripts::router())
        .merge(runs::router())
        .merge(connections::router())
        .merge(activity::router())
        .layer(axum::middleware::map_response(render::secure_headers))
}

/// The navigation bar's facts, on every signed-in page.
pub(crate) struct Nav {
    pub(crate) user: String,
    pub(crate) csrf: String,
    pub(crate) active: &'static str,
}

impl Nav {
    fn new(viewer: &extract::Viewer, active: &'static str) -> Self {
        Self {
            user: viewer.user.name.clone(),
            csrf: viewer.csrf.clone(),
            active,
        }
    }
}

/// A 303 to `location`: where a form sends the browser after it was done.
fn see_other(location: impl Into<String>) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::SEE_OTHER,
        [(axum::http::header::LOCATION, location.into())],
    )
        .into_response()
}

/// The runs chart of the last hour for a user (one script's, if given);
/// a chart that cannot be read is left out with a line saying so.
async fn chart(state: &AppState, user_id: &str, script_id: Option<&str>) -> String {
    match state
        .web
        .stats
        .last_hour(user_id, script_id, crate::store::now_millis())
        .await
    {
        Ok(stats) => chart::runs_chart(&stats),
        Err(err) => {
            tracing::error!(error = %err, "the runs chart could not be read");
            "<p class=\"empty\">The chart could not be read just now.</p>".into()
        }
    }
}

/// Whether a request is a browser's asking for a page (not the API's).
pub(crate) fn wants_page(request: &axum::extract::Request) -> bool {
    !request.uri().path().starts_with("/v1/")
        && request
            .headers()
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// The page for an address the dashboard does not have.
pub(crate) fn no_such_page() -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response =
        error::WebError::NotFound("page; the dashboard starts at /scripts".into()).into_response();
    render::add_security_headers(&mut response);
    response
}

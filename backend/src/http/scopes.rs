//! Which scope each route asks of a token: `read` for every `GET`, `events`
//! to post events, `run` to start, cancel and replay runs, `deploy` for
//! every other write. Making and revoking tokens takes a token with every
//! scope, so a narrow token cannot widen itself.

use axum::extract::MatchedPath;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};

use super::ApiError;
use crate::store::{Scope, TokenGrant};

/// What a route asks of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    Scope(Scope),
    /// Every scope.
    Full,
}

/// What a request with `method` to `route` (its pattern, such as
/// `/v1/scripts/{id}/run`) asks of the token.
pub(crate) fn needs(method: &Method, route: &str) -> Needs {
    if route.starts_with("/v1/tokens") && method != Method::GET {
        return Needs::Full;
    }
    if method == Method::GET || method == Method::HEAD || route.starts_with("/mcp") {
        // MCP's tools check their own scopes (mcp/tools.rs).
        return Needs::Scope(Scope::Read);
    }
    Needs::Scope(match route {
        "/v1/events/{event}" => Scope::Events,
        "/v1/scripts/{id}/run" | "/v1/runs/{id}/cancel" | "/v1/runs/replay" => Scope::Run,
        _ => Scope::Deploy,
    })
}

/// Refuses a request whose token lacks what its route asks.
pub(super) fn check(parts: &Parts, grant: &TokenGrant) -> Result<(), ApiError> {
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or_else(|| parts.uri.path(), MatchedPath::as_str);
    let needs = needs(&parts.method, route);
    let allowed = match needs {
        Needs::Scope(scope) => grant.allows(scope),
        Needs::Full => grant.is_full(),
    };
    if allowed {
        return Ok(());
    }
    let held = Scope::join(&grant.token.scopes);
    let message = match needs {
        Needs::Scope(scope) => format!(
            "this token has the scopes `{held}`; {} {route} needs `{scope}` (make a token \
             with it: `roost token create NAME --scope {scope}`)",
            parts.method
        ),
        Needs::Full => format!(
            "this token has the scopes `{held}`; managing tokens needs a token with every \
             scope"
        ),
    };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        message,
    ))
}

/// The same check for a part of a route that asks more than its door
/// (an MCP tool): `Err` with the message to show.
pub(crate) fn allows(grant: &TokenGrant, scope: Scope, what: &str) -> Result<(), String> {
    if grant.allows(scope) {
        Ok(())
    } else {
        Err(format!(
            "this token has the scopes `{}`; {what} needs `{scope}`",
            Scope::join(&grant.token.scopes)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_route_asks_its_scope() {
        let cases = [
            (Method::GET, "/v1/scripts", Needs::Scope(Scope::Read)),
            (Method::GET, "/v1/tokens", Needs::Scope(Scope::Read)),
            (Method::POST, "/v1/tokens", Needs::Full),
            (Method::DELETE, "/v1/tokens/{id}", Needs::Full),
            (
                Method::POST,
                "/v1/events/{event}",
                Needs::Scope(Scope::Events),
            ),
            (
                Method::POST,
                "/v1/scripts/{id}/run",
                Needs::Scope(Scope::Run),
            ),
            (
                Method::POST,
                "/v1/runs/{id}/cancel",
                Needs::Scope(Scope::Run),
            ),
            (
                Method::POST,
                "/v1/scripts/deploy",
                Needs::Scope(Scope::Deploy),
            ),
            (
                Method::DELETE,
                "/v1/scripts/{id}",
                Needs::Scope(Scope::Deploy),
            ),
            (
                Method::PUT,
                "/v1/credentials/{integration}",
                Needs::Scope(Scope::Deploy),
            ),
            (Method::POST, "/mcp", Needs::Scope(Scope::Read)),
        ];
        for (method, route, expected) in cases {
            assert_eq!(needs(&method, route), expected, "{method} {route}");
        }
    }
}

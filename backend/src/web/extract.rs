//! Who is looking (the session cookie) and whether a form came from the
//! dashboard itself (its CSRF token, and the browser's own origin headers).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::error::WebError;
use super::sessions::COOKIE;
use crate::http::AppState;
use crate::store::User;

/// The signed-in user of a dashboard request.
pub(crate) struct Viewer {
    pub(crate) user: User,
    /// The session's form token, for the pages' forms.
    pub(crate) csrf: String,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        // Only a page can be come back to; a form's address is not one.
        let signed_out = || WebError::SignedOut {
            next: match parts.method {
                axum::http::Method::GET => parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default(),
                _ => String::new(),
            },
        };
        let Some(cookie) = session_cookie(&parts.headers) else {
            return Err(signed_out());
        };
        match state.web.sessions.find(cookie).await? {
            Some(session) => Ok(Self {
                user: session.user,
                csrf: session.csrf_token,
            }),
            None => Err(signed_out()),
        }
    }
}

/// The value of the request's session cookie.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Refuses a request the browser says came from another site. Browsers
/// send `Sec-Fetch-Site` and `Origin` with form posts; a request without
/// either (curl, an old browser) is left to the CSRF token.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), WebError> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(WebError::CrossSite);
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    match (origin_host, host) {
        (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(WebError::CrossSite),
    }
}

/// A form posted from one of the session's own pages: the viewer, and
/// the form's fields (`csrf` checked and removed).
pub(crate) struct CsrfForm<T> {
    pub(crate) viewer: Viewer,
    pub(crate) form: T,
}

#[derive(serde::Deserialize)]
struct WithToken<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, WebError> {
        let (mut parts, body) = request.into_parts();
        same_origin(&parts.headers)?;
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let axum::Form(WithToken { csrf, form }) =
            axum::Form::<WithToken<T>>::from_request(request, state)
                .await
                .map_err(|rejection| WebError::BadForm(rejection.body_text()))?;
        if !constant_time_eq(csrf.as_bytes(), viewer.csrf.as_bytes()) {
            return Err(WebError::CsrfToken);
        }
        Ok(Self { viewer, form })
    }
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn another_sites_form_is_refused() {
        let ok = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(same_origin(&ok).is_ok());
        let other = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(same_origin(&other).is_err());
        let fetch = headers(&[("sec-fetch-site", "cross-site")]);
        assert!(same_origin(&fetch).is_err());
        let null = headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]);
        assert!(same_origin(&null).is_err());
        assert!(same_origin(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let map = headers(&[("cookie", "a=1; roost_session=abc ; b=2")]);
        assert_eq!(session_cookie(&map), Some("abc"));
        assert_eq!(
            session_cookie(&headers(&[("cookie", "roost_session=")])),
            None
        );
    }
}

//! The HTTP client the `oauth2` crate uses for token requests, with the
//! provider quirks smoothed out before the crate parses the answer.

use oauth2::{HttpRequest, HttpResponse};

/// A failed token request at the transport level.
#[derive(Debug, thiserror::Error)]
#[error("token endpoint unreachable: {0}")]
pub(super) struct TransportError(String);

/// Sends a token request. Token endpoints are fixed configuration, not user
/// input, so no redirects are followed and a timeout bounds the call.
pub(super) async fn send(
    client: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, TransportError> {
    let (parts, body) = request.into_parts();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| TransportError(e.without_url().to_string()))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| TransportError(e.to_string()))?
        .to_vec();
    let (status, body) = normalise_slack(status, body);
    let mut out = http::Response::builder().status(status);
    for (name, value) in &headers {
        if name != http::header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    out.body(body).map_err(|e| TransportError(e.to_string()))
}

/// Slack answers token requests with HTTP 200 and `{"ok": false, "error":
/// "invalid_code"}` on failure, and puts a user-token-only grant under
/// `authed_user`. Rewrite both into the RFC 6749 shapes.
fn normalise_slack(status: http::StatusCode, body: Vec<u8>) -> (http::StatusCode, Vec<u8>) {
    let Ok(serde_json::Value::Object(mut json)) =
        serde_json::from_slice::<serde_json::Value>(&body)
    else {
        return (status, body);
    };
    match json.get("ok") {
        Some(serde_json::Value::Bool(false)) => {
            let error = json
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("invalid_request")
                .to_string();
            // Slack's names for the standard cases.
            let error = match error.as_str() {
                "invalid_refresh_token"
                | "invalid_code"
                | "code_already_used"
                | "invalid_grant_type" => "invalid_grant".to_string(),
                _ => error,
            };
            let body = serde_json::json!({ "error": error })
                .to_string()
                .into_bytes();
            (http::StatusCode::BAD_REQUEST, body)
        }
        Some(serde_json::Value::Bool(true)) if !json.contains_key("access_token") => {
            if let Some(serde_json::Value::Object(user)) = json.remove("authed_user") {
                for (key, value) in user {
                    json.entry(key).or_insert(value);
                }
            }
            json.entry("token_type").or_insert("bearer".into());
            (
                status,
                serde_json::Value::Object(json).to_string().into_bytes(),
            )
        }
        _ => (status, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_failures_become_oauth_errors() {
        let (status, body) = normalise_slack(
            http::StatusCode::OK,
            br#"{"ok":false,"error":"invalid_refresh_token"}"#.to_vec(),
        );
        assert_eq!(status, 400);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"],
            "invalid_grant"
        );
    }

    #[test]
    fn slack_user_tokens_are_lifted() {
        let raw = br#"{"ok":true,"authed_user":{"id":"U1","access_token":"xoxp-1","token_type":"user","refresh_token":"xoxe-1","expires_in":43200}}"#;
        let (status, body) = normalise_slack(http::StatusCode::OK, raw.to_vec());
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            (
                json["access_token"].as_str(),
                json["refresh_token"].as_str()
            ),
            (Some("xoxp-1"), Some("xoxe-1"))
        );
        assert_eq!(json["expires_in"], 43200);
    }

    #[test]
    fn standard_responses_pass_untouched() {
        let raw = br#"{"access_token":"ya29","expires_in":3599,"token_type":"Bearer"}"#.to_vec();
        assert_eq!(
            normalise_slack(http::StatusCode::OK, raw.clone()),
            (http::StatusCode::OK, raw)
        );
    }
}

//! What roost says of an OAuth provider's refusal: the standard error
//! codes of RFC 6749 by name, and a fixed sentence for the callback page,
//! never words taken from a request anyone can craft.

/// `code` if it is one of RFC 6749's error codes, else a word that says
/// it was not.
pub(super) fn standard_code(code: &str) -> &str {
    const STANDARD: [&str; 11] = [
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "invalid_client",
        "invalid_grant",
        "unsupported_grant_type",
        "interaction_required",
    ];
    STANDARD
        .iter()
        .find(|known| **known == code)
        .copied()
        .unwrap_or("an unrecognised error")
}

/// What the callback page says when the provider sent the person back with
/// `error=<code>`: a fixed sentence per standard code, nothing of the
/// request itself (anyone can craft such a URL and send a person to it).
pub fn callback_error_message(code: &str) -> &'static str {
    match code {
        "access_denied" => {
            "You declined access, so nothing was connected. Open the setup link again to retry."
        }
        "invalid_scope" => {
            "The provider refused the permissions roost asked for, so nothing was connected. \
             Tell the operator; the integration's scopes may need changing."
        }
        "unauthorized_client" | "invalid_client" | "unsupported_response_type" => {
            "The provider does not accept roost's OAuth application as configured, so nothing was \
             connected. Tell the operator."
        }
        "server_error" | "temporarily_unavailable" => {
            "The provider could not complete the request right now, so nothing was connected. Open \
             the setup link again in a moment."
        }
        _ => {
            "The provider did not grant access, so nothing was connected. Open the setup link again \
             to retry."
        }
    }
}

//! When a manual run may start: `run_at` (RFC 3339) or `delay` (`"90s"`,
//! `"15m"`, `"2h"`, `"1d"`, `"500ms"`, or a number of seconds).

use axum::http::StatusCode;

use super::ApiError;

use crate::triggers::manual::MAX_AHEAD_MS;

/// The run's earliest start (Unix ms), `None` for at once. A time in the
/// past is now.
pub(super) fn not_before(
    run_at: Option<&str>,
    delay: Option<&serde_json::Value>,
    now: i64,
) -> Result<Option<i64>, ApiError> {
    let at = match (run_at, delay) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => return Err(invalid("give `run_at` or `delay`, not both".into())),
        (Some(text), None) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|err| {
                invalid(format!(
                    "`run_at` is an RFC 3339 time such as 2026-12-07T09:30:00Z: {err}"
                ))
            })?
            .timestamp_millis(),
        (None, Some(delay)) => now.saturating_add(delay_ms(delay)?),
    };
    if at - now > MAX_AHEAD_MS {
        return Err(invalid(
            "a run can be put at most 366 days ahead".to_string(),
        ));
    }
    Ok(Some(at.max(now)))
}

fn delay_ms(delay: &serde_json::Value) -> Result<i64, ApiError> {
    let bad = || {
        invalid(
            "`delay` is a number of seconds or a duration such as \"500ms\", \"90s\", \"15m\", \
             \"2h\", \"1d\""
                .into(),
        )
    };
    if let Some(seconds) = delay.as_f64() {
        return (seconds >= 0.0 && seconds.is_finite())
            .then(|| (seconds * 1000.0).min(i64::MAX as f64) as i64)
            .ok_or_else(bad);
    }
    let text = delay.as_str().ok_or_else(bad)?;
    crate::duration::millis(text).ok_or_else(bad)
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_run_at", message)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_and_delays() {
        let now = 1_800_000_000_000;
        assert_eq!(not_before(None, None, now).unwrap(), None);
        assert_eq!(
            not_before(None, Some(&json!("90s")), now).unwrap(),
            Some(now + 90_000)
        );
        assert_eq!(
            not_before(None, Some(&json!(1.5)), now).unwrap(),
            Some(now + 1_500)
        );
        assert_eq!(
            not_before(None, Some(&json!("500ms")), now).unwrap(),
            Some(now + 500)
        );
        let at = "2027-01-15T08:00:00Z";
        let expected = chrono::DateTime::parse_from_rfc3339(at)
            .unwrap()
            .timestamp_millis();
        assert_eq!(not_before(Some(at), None, now).unwrap(), Some(expected));
        // The past is now.
        assert_eq!(
            not_before(Some("2020-01-01T00:00:00Z"), None, now).unwrap(),
            Some(now)
        );
        for bad in [
            json!("soon"),
            json!("5 minutes"),
            json!(-1),
            json!("10y"),
            json!(true),
        ] {
            assert!(not_before(None, Some(&bad), now).is_err(), "{bad}");
        }
        assert!(not_before(Some("tomorrow"), None, now).is_err());
        assert!(not_before(Some(at), Some(&json!("1s")), now).is_err());
        assert!(not_before(None, Some(&json!("400d")), now).is_err());
    }
}

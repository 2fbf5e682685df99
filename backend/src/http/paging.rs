//! Cursors of the newest-first listings (`/v1/runs`, `/v1/messages`,
//! `/v1/audit`). A cursor names the last row of a page by its time and id,
//! the listings' total order, so the next page starts right after it even
//! when many rows share its millisecond. Clients treat it as opaque.

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ApiError;
use crate::store::PageAfter;

/// Longest cursor accepted, in characters.
const MAX_CURSOR_CHARS: usize = 256;

/// The `next_cursor` of a page: its last row when the page is full, none
/// when it is the last page.
pub(crate) fn next_cursor<T>(
    page: &[T],
    limit: i64,
    key: impl Fn(&T) -> (i64, &str),
) -> Option<String> {
    if i64::try_from(page.len()).ok()? < limit {
        return None;
    }
    page.last().map(|row| {
        let (at, id) = key(row);
        URL_SAFE_NO_PAD.encode(format!("{at}.{id}"))
    })
}

/// The position a `cursor` query parameter names.
pub(crate) fn parse_cursor(cursor: Option<&str>) -> Result<Option<PageAfter>, ApiError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
            "`cursor` is not a cursor this server gave out; pass a page's `next_cursor` unchanged",
        )
    };
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(invalid());
    }
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let (at, id) = text.split_once('.').ok_or_else(invalid)?;
    let at = at.parse::<i64>().map_err(|_| invalid())?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(invalid());
    }
    Ok(Some(PageAfter {
        at,
        id: id.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_names_the_last_row_of_a_full_page_and_reads_back() {
        let page = [(5_i64, "run_a".to_string()), (5, "run_b".to_string())];
        fn key(row: &(i64, String)) -> (i64, &str) {
            (row.0, &row.1)
        }
        assert_eq!(next_cursor(&page, 3, key), None, "a short page is the last");
        let cursor = next_cursor(&page, 2, key).unwrap();
        assert_eq!(
            parse_cursor(Some(&cursor)).unwrap(),
            Some(PageAfter {
                at: 5,
                id: "run_b".into()
            })
        );
    }

    #[test]
    fn a_cursor_that_was_not_given_out_is_refused() {
        for bad in ["", "!!", "MTIz", "YWJjLnJ1bl94", "MTIzLg", "MTIzLmEnOy0t"] {
            let err = parse_cursor(Some(bad)).unwrap_err();
            assert_eq!(err.code(), "invalid_cursor", "{bad}");
        }
        assert_eq!(parse_cursor(None).unwrap(), None);
    }
}

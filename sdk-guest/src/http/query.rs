use std::fmt::Write as _;

/// A URL query string, percent-encoded as RFC 3986 asks (everything but
/// unreserved characters), so values with `&`, `=`, `+` or spaces arrive
/// intact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(String);

impl Query {
    /// An empty query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `name=value`.
    pub fn push(mut self, name: &str, value: impl ToString) -> Self {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        encode_into(&mut self.0, name);
        self.0.push('=');
        encode_into(&mut self.0, &value.to_string());
        self
    }

    /// Appends `name=value` when there is a value.
    pub fn push_opt<V: ToString>(self, name: &str, value: Option<V>) -> Self {
        match value {
            Some(value) => self.push(name, value),
            None => self,
        }
    }

    /// Appends `name=value` once per value (repeated parameters).
    pub fn push_each<V: ToString>(self, name: &str, values: impl IntoIterator<Item = V>) -> Self {
        values
            .into_iter()
            .fold(self, |query, value| query.push(name, value))
    }

    /// `path` with this query appended (`?` only when there is one).
    pub fn to_path(&self, path: &str) -> String {
        if self.0.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", self.0)
        }
    }

    /// The encoded query, without `?`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn encode_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// The first value of parameter `name` in an encoded query (without `?`),
/// percent-decoded, with `+` read as a space as HTML forms send it. A
/// parameter without `=` has the empty value.
pub(crate) fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| decode(key) == name)
        .map(|(_, value)| decode(value))
}

/// Percent-decodes `text` (lossy UTF-8); a `%` not followed by two hex
/// digits stays as it is.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
        match bytes[i] {
            b'%' => {
                if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) {
                    // Two hex digits are at most 0xFF.
                    out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{Query, param};

    #[test]
    fn reads_parameters_back() {
        let query = Query::new()
            .push("q", "a&b=c d+é")
            .push("n", 1)
            .push("n", 2);
        assert_eq!(param(query.as_str(), "q").as_deref(), Some("a&b=c d+é"));
        assert_eq!(param(query.as_str(), "n").as_deref(), Some("1"));
        assert_eq!(param("flag&x=a+b%2", "flag").as_deref(), Some(""));
        assert_eq!(param("flag&x=a+b%2", "x").as_deref(), Some("a b%2"));
        assert_eq!(param("%6Eame=v", "name").as_deref(), Some("v"));
        assert_eq!(param("", "x"), None);
    }

    #[test]
    fn encodes_reserved_characters_and_repeats() {
        let query = Query::new()
            .push("q", "from:a@b.c is:unread & more")
            .push_opt("pageToken", None::<&str>)
            .push_each("labelIds", ["INBOX", "UNREAD"])
            .push("maxResults", 5);
        assert_eq!(
            query.to_path("/m"),
            "/m?q=from%3Aa%40b.c%20is%3Aunread%20%26%20more&labelIds=INBOX&labelIds=UNREAD&maxResults=5"
        );
        assert_eq!(Query::new().to_path("/m"), "/m");
        assert_eq!(Query::new().push("s", "é").as_str(), "s=%C3%A9");
    }
}

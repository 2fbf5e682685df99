//! `#[on_http(...)]`: its arguments, their checks, and its metadata record.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, LitStr, Token};

/// Methods a handler may answer.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
/// Longest path, in bytes.
const MAX_PATH_BYTES: usize = 256;

/// The checked arguments of `#[on_http("POST", "/orders", access = …)]`.
pub(crate) struct HttpArgs {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) access: String,
    pub(crate) deadline_ms: Option<u64>,
    pub(crate) on_deadline: Option<String>,
}

impl Parse for HttpArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let usage = "expected `#[on_http(\"METHOD\", \"/path\")]`, optionally followed by \
                     `access = \"public\" | \"bearer\" | \"hmac\"`, `deadline_ms = 5000`, \
                     `on_deadline = \"accept\" | \"fail\"`";
        let method: LitStr = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), usage))?;
        input
            .parse::<Token![,]>()
            .map_err(|e| syn::Error::new(e.span(), usage))?;
        let path: LitStr = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), usage))?;
        check_method(&method.value()).map_err(|m| syn::Error::new(method.span(), m))?;
        check_path(&path.value()).map_err(|m| syn::Error::new(path.span(), m))?;
        let mut args = Self {
            method: method.value(),
            path: path.value(),
            access: "public".into(),
            deadline_ms: None,
            on_deadline: None,
        };
        let mut seen: Vec<String> = Vec::new();
        while input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let name = key.to_string();
            if seen.contains(&name) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("`{name}` is given twice"),
                ));
            }
            match name.as_str() {
                "access" => args.access = one_of(input, &["public", "bearer", "hmac"])?,
                "on_deadline" => args.on_deadline = Some(one_of(input, &["accept", "fail"])?),
                "deadline_ms" => {
                    let value: LitInt = input.parse()?;
                    let ms = value.base10_parse::<u64>()?;
                    if ms == 0 {
                        return Err(syn::Error::new(
                            value.span(),
                            "`deadline_ms` is a number of milliseconds, at least 1",
                        ));
                    }
                    args.deadline_ms = Some(ms);
                }
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown argument `{name}`; #[on_http] takes `access`, \
                             `deadline_ms` and `on_deadline`"
                        ),
                    ));
                }
            }
            seen.push(name);
        }
        if !input.is_empty() {
            return Err(input.error(usage));
        }
        Ok(args)
    }
}

/// A string literal that must be one of `allowed`.
fn one_of(input: ParseStream<'_>, allowed: &[&str]) -> syn::Result<String> {
    let value: LitStr = input.parse()?;
    if allowed.contains(&value.value().as_str()) {
        return Ok(value.value());
    }
    let listed: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
    Err(syn::Error::new(
        value.span(),
        format!(
            "expected {}, not \"{}\"",
            listed.join(" or "),
            value.value()
        ),
    ))
}

fn check_method(method: &str) -> Result<(), String> {
    if METHODS.contains(&method) {
        return Ok(());
    }
    Err(format!(
        "the method is one of {} (upper case), not `{method}`",
        METHODS.join(", ")
    ))
}

fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("the path starts with `/`: `{path}`"));
    }
    if let Some(bad) = path
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
    {
        return Err(format!(
            "the path has no whitespace, control characters, `?` or `#` (a query is \
             read at run time with `request.query_param`): found {bad:?} in `{path}`"
        ));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "the path is at most {MAX_PATH_BYTES} bytes; this one has {}",
            path.len()
        ));
    }
    Ok(())
}

impl HttpArgs {
    /// The handler's metadata record, fields in a fixed order:
    /// `{"handler":…,"trigger":{"kind":"http","method":…,"path":…,"access":…[,"deadline_ms":…][,"on_deadline":…]}}`.
    pub(crate) fn record(&self, handler: &str) -> String {
        let string = |s: &str| serde_json::Value::from(s).to_string();
        let mut trigger = format!(
            "{{\"kind\":\"http\",\"method\":{},\"path\":{},\"access\":{}",
            string(&self.method),
            string(&self.path),
            string(&self.access)
        );
        if let Some(ms) = self.deadline_ms {
            trigger.push_str(&format!(",\"deadline_ms\":{ms}"));
        }
        if let Some(on_deadline) = &self.on_deadline {
            trigger.push_str(&format!(",\"on_deadline\":{}", string(on_deadline)));
        }
        format!(
            "{{\"handler\":{},\"trigger\":{trigger}}}}}",
            string(handler)
        )
    }

    /// The `TriggerDef::Http` expression.
    pub(crate) fn trigger_def(&self) -> TokenStream2 {
        let (method, path) = (&self.method, &self.path);
        let access = Ident::new(&capitalised(&self.access), Span::call_site());
        let on_deadline = Ident::new(
            &capitalised(self.on_deadline.as_deref().unwrap_or("accept")),
            Span::call_site(),
        );
        let deadline_ms = match self.deadline_ms {
            Some(ms) => quote!(::core::option::Option::Some(#ms)),
            None => quote!(::core::option::Option::None),
        };
        quote!(::roost_sdk::TriggerDef::Http {
            method: #method,
            path: #path,
            access: ::roost_sdk::http::Access::#access,
            deadline_ms: #deadline_ms,
            on_deadline: ::roost_sdk::http::OnDeadline::#on_deadline,
        })
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: &str) -> syn::Result<HttpArgs> {
        syn::parse_str(tokens)
    }

    #[test]
    fn records_have_the_documented_shape() {
        let full = parse(
            r#""POST", "/orders", access = "bearer", deadline_ms = 5000, on_deadline = "fail""#,
        )
        .unwrap();
        assert_eq!(
            full.record("create"),
            r#"{"handler":"create","trigger":{"kind":"http","method":"POST","path":"/orders","access":"bearer","deadline_ms":5000,"on_deadline":"fail"}}"#
        );
        let plain = parse(r#""GET", "/orders/\"x\"""#).unwrap();
        assert_eq!(
            plain.record("list"),
            r#"{"handler":"list","trigger":{"kind":"http","method":"GET","path":"/orders/\"x\"","access":"public"}}"#
        );
        let trailing = parse(r#""GET", "/a", on_deadline = "accept","#).unwrap();
        assert_eq!(trailing.on_deadline.as_deref(), Some("accept"));
    }

    #[test]
    fn rejects_bad_arguments() {
        let cases = [
            (r#""post", "/a""#, "upper case"),
            (r#""TRACE", "/a""#, "one of GET"),
            (r#""GET", "a""#, "starts with `/`"),
            (r#""GET", "/a b""#, "no whitespace"),
            (r#""GET", "/a?b=1""#, "`?`"),
            (r#""GET", "/a#b""#, "`#`"),
            (r#""GET""#, "expected `#[on_http"),
            (
                r#""GET", "/a", access = "private""#,
                r#"expected "public" or "bearer" or "hmac""#,
            ),
            (
                r#""GET", "/a", on_deadline = "retry""#,
                r#""accept" or "fail""#,
            ),
            (
                r#""GET", "/a", deadline_ms = "5""#,
                "expected integer literal",
            ),
            (r#""GET", "/a", deadline_ms = 0"#, "at least 1"),
            (r#""GET", "/a", timeout = 5"#, "unknown argument `timeout`"),
            (
                r#""GET", "/a", access = "public", access = "bearer""#,
                "given twice",
            ),
        ];
        for (tokens, expected) in cases {
            let err = parse(tokens)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(expected), "{tokens}: {err:?}");
        }
        let long = format!(r#""GET", "/{}""#, "a".repeat(256));
        let err = parse(&long).err().unwrap().to_string();
        assert!(err.contains("at most 256 bytes"), "{err}");
        assert!(parse(&format!(r#""GET", "/{}""#, "a".repeat(255))).is_ok());
    }
}

//! `#[on_event("type", debounce(key = "customer.id", period_ms = 5000))]`,
//! `#[on_event("type", throttle(key = "tenant", limit = 10, period_ms =
//! 60000, drop = false))]` and `#[on_event("type", concurrency(key =
//! "customer.id", limit = 1))]`: flow control the queue enforces, recorded
//! beside the trigger. Concurrency goes with either of the others.

use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitBool, LitInt, LitStr, Token, parenthesized};

/// The longest period roost takes (a day), in ms.
const MAX_PERIOD_MS: u64 = 86_400_000;

pub(crate) struct EventArgs {
    pub(crate) name: LitStr,
    pub(crate) flow: Option<serde_json::Value>,
}

/// What each kind of clause takes.
const EXPECTED: &str = "expected `debounce(key = …, period_ms = …)`, \
     `throttle(key = …, limit = …, period_ms = …[, drop = …])` or \
     `concurrency(key = …, limit = …)`";

impl Parse for EventArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: LitStr = input.parse()?;
        let mut flow = serde_json::Map::new();
        while input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            let kind: Ident = input.parse()?;
            let clause = match kind.to_string().as_str() {
                "debounce" | "throttle"
                    if flow.contains_key("debounce") || flow.contains_key("throttle") =>
                {
                    return Err(syn::Error::new(
                        kind.span(),
                        "a handler is debounced or throttled, not both",
                    ));
                }
                "debounce" | "throttle" | "concurrency" if flow.contains_key(&kind.to_string()) => {
                    return Err(syn::Error::new(
                        kind.span(),
                        format!("`{kind}` is declared twice"),
                    ));
                }
                "debounce" | "throttle" | "concurrency" => parse_clause(&kind, input)?,
                _ => return Err(syn::Error::new(kind.span(), EXPECTED)),
            };
            flow.insert(kind.to_string(), clause);
        }
        let flow = (!flow.is_empty()).then_some(serde_json::Value::Object(flow));
        Ok(Self { name, flow })
    }
}

/// The parenthesised fields of one clause of `kind`, as its record.
fn parse_clause(kind: &Ident, input: ParseStream<'_>) -> syn::Result<serde_json::Value> {
    let content;
    parenthesized!(content in input);
    let (mut key, mut period, mut limit, mut drop) = (None, None, None, None);
    while !content.is_empty() {
        let field: Ident = content.parse()?;
        content.parse::<Token![=]>()?;
        match field.to_string().as_str() {
            "key" => key = Some(content.parse::<LitStr>()?.value()),
            "period_ms" if kind != "concurrency" => period = Some(content.parse::<LitInt>()?),
            "limit" if kind != "debounce" => limit = Some(content.parse::<LitInt>()?),
            "drop" if kind == "throttle" => drop = Some(content.parse::<LitBool>()?.value),
            _ => {
                return Err(syn::Error::new(
                    field.span(),
                    "debounce takes `key` and `period_ms`; throttle `key`, `limit`, \
                     `period_ms` and `drop`; concurrency `key` and `limit`",
                ));
            }
        }
        content.parse::<Option<Token![,]>>()?;
    }
    let key = key.unwrap_or_default();
    let period_ms = match period {
        Some(period) => {
            let period_ms: u64 = period.base10_parse()?;
            if period_ms == 0 || period_ms > MAX_PERIOD_MS {
                return Err(syn::Error::new(
                    period.span(),
                    format!("the period is 1 to {MAX_PERIOD_MS} ms"),
                ));
            }
            period_ms
        }
        None if kind == "concurrency" => 0,
        None => return Err(syn::Error::new(kind.span(), "`period_ms` is needed")),
    };
    let limit = match limit {
        Some(limit) => {
            let runs: u32 = limit.base10_parse()?;
            if runs == 0 {
                return Err(syn::Error::new(limit.span(), "`limit` is at least 1"));
            }
            runs
        }
        None if kind == "debounce" => 0,
        None => {
            return Err(syn::Error::new(
                kind.span(),
                format!("a {kind} needs `limit`"),
            ));
        }
    };
    Ok(match kind.to_string().as_str() {
        "debounce" => serde_json::json!({ "key": key, "period_ms": period_ms }),
        "throttle" => serde_json::json!({
            "key": key, "limit": limit, "period_ms": period_ms, "drop": drop.unwrap_or(false),
        }),
        _ => serde_json::json!({ "key": key, "limit": limit }),
    })
}

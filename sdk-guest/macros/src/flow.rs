//! `#[on_event("type", debounce(key = "customer.id", period_ms = 5000))]`
//! and `#[on_event("type", throttle(key = "tenant", limit = 10, period_ms =
//! 60000, drop = false))]`: flow control the queue enforces, recorded
//! beside the trigger.

use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitBool, LitInt, LitStr, Token, parenthesized};

/// The longest period roost takes (a day), in ms.
const MAX_PERIOD_MS: u64 = 86_400_000;

pub(crate) struct EventArgs {
    pub(crate) name: LitStr,
    pub(crate) flow: Option<serde_json::Value>,
}

impl Parse for EventArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: LitStr = input.parse()?;
        let mut flow = None;
        if input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            let kind: Ident = input.parse()?;
            if kind != "debounce" && kind != "throttle" {
                return Err(syn::Error::new(
                    kind.span(),
                    "expected `debounce(key = …, period_ms = …)` or \
                     `throttle(key = …, limit = …, period_ms = …)`",
                ));
            }
            let content;
            parenthesized!(content in input);
            let (mut key, mut period, mut limit, mut drop) = (None, None, None, None);
            while !content.is_empty() {
                let field: Ident = content.parse()?;
                content.parse::<Token![=]>()?;
                match field.to_string().as_str() {
                    "key" => key = Some(content.parse::<LitStr>()?.value()),
                    "period_ms" => period = Some(content.parse::<LitInt>()?),
                    "limit" if kind == "throttle" => limit = Some(content.parse::<LitInt>()?),
                    "drop" if kind == "throttle" => drop = Some(content.parse::<LitBool>()?.value),
                    _ => {
                        return Err(syn::Error::new(
                            field.span(),
                            "debounce takes `key` and `period_ms`; throttle `key`, `limit`, \
                             `period_ms` and `drop`",
                        ));
                    }
                }
                content.parse::<Option<Token![,]>>()?;
            }
            let period =
                period.ok_or_else(|| syn::Error::new(kind.span(), "`period_ms` is needed"))?;
            let period_ms: u64 = period.base10_parse()?;
            if period_ms == 0 || period_ms > MAX_PERIOD_MS {
                return Err(syn::Error::new(
                    period.span(),
                    format!("the period is 1 to {MAX_PERIOD_MS} ms"),
                ));
            }
            let key = key.unwrap_or_default();
            flow = Some(if kind == "debounce" {
                serde_json::json!({ "debounce": { "key": key, "period_ms": period_ms } })
            } else {
                let limit = limit
                    .ok_or_else(|| syn::Error::new(kind.span(), "a throttle needs `limit`"))?;
                let runs: u32 = limit.base10_parse()?;
                if runs == 0 {
                    return Err(syn::Error::new(limit.span(), "`limit` is at least 1"));
                }
                serde_json::json!({ "throttle": {
                    "key": key, "limit": runs, "period_ms": period_ms, "drop": drop.unwrap_or(false),
                } })
            });
            input.parse::<Option<Token![,]>>()?;
        }
        Ok(Self { name, flow })
    }
}

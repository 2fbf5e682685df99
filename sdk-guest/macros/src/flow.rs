//! `#[on_event("type", debounce(key = "customer.id", period_ms = 5000))]`:
//! flow control the queue enforces, recorded beside the trigger.

use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, LitStr, Token, parenthesized};

/// The longest quiet period roost takes (a day), in ms.
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
            if kind != "debounce" {
                return Err(syn::Error::new(
                    kind.span(),
                    "expected `debounce(key = \"path.in.payload\", period_ms = 5000)`",
                ));
            }
            let content;
            parenthesized!(content in input);
            let (mut key, mut period) = (None, None);
            while !content.is_empty() {
                let field: Ident = content.parse()?;
                content.parse::<Token![=]>()?;
                if field == "key" {
                    key = Some(content.parse::<LitStr>()?);
                } else if field == "period_ms" {
                    period = Some(content.parse::<LitInt>()?);
                } else {
                    return Err(syn::Error::new(
                        field.span(),
                        "debounce takes `key` and `period_ms`",
                    ));
                }
                content.parse::<Option<Token![,]>>()?;
            }
            let key = key.map(|k| k.value()).unwrap_or_default();
            let period = period.ok_or_else(|| {
                syn::Error::new(kind.span(), "debounce needs `period_ms`, the quiet period")
            })?;
            let period_ms: u64 = period.base10_parse()?;
            if period_ms == 0 || period_ms > MAX_PERIOD_MS {
                return Err(syn::Error::new(
                    period.span(),
                    format!("the quiet period is 1 to {MAX_PERIOD_MS} ms"),
                ));
            }
            flow = Some(serde_json::json!({ "debounce": { "key": key, "period_ms": period_ms } }));
            input.parse::<Option<Token![,]>>()?;
        }
        Ok(Self { name, flow })
    }
}

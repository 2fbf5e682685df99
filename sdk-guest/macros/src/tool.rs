//! `#[tool(description = "…")]`: a handler agents call over MCP.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{FnArg, Ident, ItemFn, LitStr, Token};

/// Longest description roost keeps; an agent reads it in every tool list.
const MAX_DESCRIPTION: usize = 1024;

pub(crate) struct ToolArgs {
    description: LitStr,
}

impl Parse for ToolArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input.parse().map_err(|err| {
            syn::Error::new(
                err.span(),
                "expected `description = \"what the tool does\"`",
            )
        })?;
        if key != "description" {
            return Err(syn::Error::new(
                key.span(),
                "expected `description = \"what the tool does\"`",
            ));
        }
        input.parse::<Token![=]>()?;
        let description: LitStr = input.parse()?;
        input.parse::<Option<Token![,]>>()?;
        if !input.is_empty() {
            return Err(input.error("#[tool] takes only `description`"));
        }
        Ok(Self { description })
    }
}

pub(crate) fn expand(args: ToolArgs, function: ItemFn) -> TokenStream {
    let description = args.description.value();
    if description.trim().is_empty() || description.len() > MAX_DESCRIPTION {
        return super::compile_error(
            args.description.span(),
            &format!("a tool's description says what it does in 1 to {MAX_DESCRIPTION} bytes"),
        );
    }
    let name = &function.sig.ident;
    let input = match function.sig.inputs.len() {
        0 => quote!(::roost_sdk::__private::NoArgs),
        1 => match function.sig.inputs.first() {
            Some(FnArg::Typed(arg)) => {
                let ty = &arg.ty;
                quote!(#ty)
            }
            _ => {
                return super::compile_error(
                    name.span(),
                    "a #[tool] is a free function taking its arguments as one value",
                );
            }
        },
        _ => {
            return super::compile_error(
                Span::call_site(),
                "a #[tool] takes no argument or one, a type deriving `Deserialize` and \
                 `schemars::JsonSchema` (the tool's input)",
            );
        }
    };
    let call = match function.sig.inputs.len() {
        0 => quote!(|_: #input| #name()),
        _ => quote!(|args: #input| #name(args)),
    };
    let record = serde_json::json!({
        "handler": name.to_string(),
        "trigger": { "kind": "mcp", "description": description },
    });
    let run = quote!(|invocation| ::roost_sdk::__private::run_tool(invocation, #call));
    super::emit_handler(
        &function,
        &record.to_string(),
        quote!(::roost_sdk::TriggerDef::Tool { description: #description }),
        run,
        quote!(::core::option::Option::Some(
            ::roost_sdk::__private::tool_schema::<#input>
        )),
    )
}

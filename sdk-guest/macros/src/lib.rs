//! Procedural macros of the roost guest SDK. Use them through `roost_sdk`.
//!
//! Each trigger attribute leaves the function untouched and adds two things
//! beside it: a `HandlerDef` constant that `main!` dispatches to, and a
//! metadata record in the `roost-metadata` custom section so that the host
//! can list handlers and triggers without running the script.
#![deny(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, ItemFn, LitStr, Token, parse_macro_input};

mod flow;
mod http;
mod tool;

/// Must match `roost_sandbox::metadata::SECTION_NAME`.
const SECTION_NAME: &str = "roost-metadata";

/// Runs the function on a cron schedule.
///
/// `#[on_schedule("0 */6 * * *")]` or, with seconds and a timezone,
/// `#[on_schedule("0 30 8 * * Mon-Fri", tz = "Europe/Berlin")]`.
#[proc_macro_attribute]
pub fn on_schedule(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as ScheduleArgs);
    let fields = args.cron.value().split_whitespace().count();
    if !(5..=7).contains(&fields) {
        return compile_error(
            args.cron.span(),
            &format!(
                "a cron expression has 5 to 7 fields ([sec] min hour day month weekday [year]); \
                 `{}` has {fields}",
                args.cron.value()
            ),
        );
    }
    let mut trigger = serde_json::json!({ "kind": "schedule", "cron": args.cron.value() });
    if let Some(tz) = &args.timezone {
        trigger["timezone"] = tz.value().into();
    }
    let cron = args.cron.value();
    let tz = match &args.timezone {
        Some(tz) => quote!(::core::option::Option::Some(#tz)),
        None => quote!(::core::option::Option::None),
    };
    expand_handler(
        item,
        trigger,
        quote!(::roost_sdk::TriggerDef::Schedule { cron: #cron, timezone: #tz }),
    )
}

/// Runs the function when an event of the given type arrives:
/// `#[on_event("order.created")]`.
///
/// Flow control, by a key read from each event's payload (a path such as
/// `customer.id`; the queue enforces it):
/// - `debounce(key = "customer.id", period_ms = 5000)`: a burst of events
///   with one value at `key` becomes one run, with the last payload, once
///   no such event has come for `period_ms`;
/// - `throttle(key = "tenant", limit = 10, period_ms = 60000)`: at most
///   `limit` runs per key value start in any `period_ms`; the rest wait
///   their turn (`drop = true`: are not queued);
/// - `concurrency(key = "customer.id", limit = 1)`: at most `limit` runs
///   per key value run at once; the rest wait, in order. It goes with a
///   debounce or a throttle: `concurrency(…), throttle(…)`.
#[proc_macro_attribute]
pub fn on_event(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as flow::EventArgs);
    let name = args.name;
    if name.value().trim().is_empty() {
        return compile_error(name.span(), "the event type must not be empty");
    }
    let trigger = serde_json::json!({ "kind": "event", "name": name.value() });
    let function = parse_macro_input!(item as ItemFn);
    let mut record = handler_record(&function, trigger);
    if let Some(flow) = args.flow {
        record["flow"] = flow;
    }
    expand_record(
        function,
        record,
        quote!(::roost_sdk::TriggerDef::Event { name: #name }),
    )
}

/// Answers HTTP requests: `#[on_http("POST", "/orders")]`, with optional
/// `access = "public" | "bearer" | "hmac"` (default `"public"`), `deadline_ms = 5000`
/// and `on_deadline = "accept" | "fail"` (default `"accept"`).
///
/// The method is one of `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`,
/// `OPTIONS`; the path starts with `/`, has no whitespace, `?` or `#`, and
/// takes at most 256 bytes. The function is
/// `fn name(request: &roost_sdk::http::Request) -> R`, `R` being
/// `roost_sdk::http::Response` or `Result<Response, E: Display>`.
///
/// The response reaches the caller when the run ends successfully (roost
/// records it with the run); an `Err` fails the run and sends none. The
/// deadline applies: past it the caller gets `202` with the run's id
/// (`"accept"`) or `504` (`"fail"`) while the run goes on. `"public"`: the
/// URL, with its unguessable segment, is the secret. `"bearer"`: the caller
/// sends a roost API token of the script's owner in
/// `Authorization: Bearer …`, which the script never sees. `"hmac"`: the
/// caller signs each request with a secret the owner set (see
/// `roost_sdk::http::Access::Hmac`). See
/// `roost_sdk::http` for an example.
#[proc_macro_attribute]
pub fn on_http(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as http::HttpArgs);
    let function = parse_macro_input!(item as ItemFn);
    let name = &function.sig.ident;
    if function.sig.inputs.len() != 1 {
        let span = if function.sig.inputs.is_empty() {
            name.span()
        } else {
            function.sig.inputs.span_of_all()
        };
        return compile_error(
            span,
            "an #[on_http] handler takes one argument, `request: &roost_sdk::http::Request`",
        );
    }
    let record = args.record(&name.to_string());
    let run = quote!(|invocation| ::roost_sdk::__private::serve_http(invocation, #name));
    emit_handler(&function, &record, args.trigger_def(), run, no_describe())
}

/// Offers the function to agents as an MCP tool:
/// `#[tool(description = "The weather for a city")]`.
///
/// The function takes no argument or one, the tool's input: a type deriving
/// `serde::Deserialize` and `schemars::JsonSchema` (its JSON Schema is the
/// tool's input schema, so doc comments on its fields reach the agent). It
/// returns `()`, a `serde_json::Value` or `Result<T, E>` with `T:
/// Serialize` and `E: Display`: the value is the tool's result, an `Err`
/// fails the run and the call.
///
/// roost lists the tool to the script owner's MCP clients as
/// `<script>__<function>`, checks an agent's arguments against the schema
/// and records each call as a run (trigger `mcp`). Started by hand (`roost
/// run`, the API), the handler prints its result as JSON.
#[proc_macro_attribute]
pub fn tool(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as tool::ToolArgs);
    let function = parse_macro_input!(item as ItemFn);
    tool::expand(args, function)
}

/// A handler that only runs when started by hand (`roost run`, the API).
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    if !args.is_empty() {
        return compile_error(Span::call_site(), "#[handler] takes no arguments");
    }
    let trigger = serde_json::json!({ "kind": "manual" });
    expand_handler(item, trigger, quote!(::roost_sdk::TriggerDef::Manual))
}

/// Generates the script's `main`, dispatching to the listed handlers:
/// `roost_sdk::main!(digest, on_order);`
#[proc_macro]
pub fn main(input: TokenStream) -> TokenStream {
    let handlers = parse_macro_input!(input with Punctuated::<Ident, Token![,]>::parse_terminated);
    if handlers.is_empty() {
        return compile_error(Span::call_site(), "main! needs at least one handler");
    }
    let defs = handlers
        .iter()
        .map(|h| format_ident!("__roost_handler_{}", h, span = h.span()));
    let sdk = serde_json::json!({ "sdk": env!("CARGO_PKG_VERSION") });
    let record = metadata_record(&sdk);
    quote! {
        fn main() {
            ::roost_sdk::__private::dispatch(&[#(#defs),*])
        }
        #record
    }
    .into()
}

/// Declares integrations the script uses, so deploy can check the user has
/// connected them: `roost_sdk::uses_integrations!("gmail", "slack");`
#[proc_macro]
pub fn uses_integrations(input: TokenStream) -> TokenStream {
    let names = parse_macro_input!(input with Punctuated::<LitStr, Token![,]>::parse_terminated);
    let mut out = TokenStream2::new();
    for name in &names {
        let id = name.value();
        let valid = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return compile_error(
                name.span(),
                "integration ids are lower-case letters, digits, `_` and `-`",
            );
        }
        out.extend(metadata_record(&serde_json::json!({ "integration": id })));
    }
    out.into()
}

struct ScheduleArgs {
    cron: LitStr,
    timezone: Option<LitStr>,
}

impl Parse for ScheduleArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let cron: LitStr = input.parse()?;
        let mut timezone = None;
        if input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            let key: Ident = input.parse()?;
            if key != "tz" {
                return Err(syn::Error::new(key.span(), "expected `tz = \"Area/City\"`"));
            }
            input.parse::<Token![=]>()?;
            timezone = Some(input.parse()?);
            input.parse::<Option<Token![,]>>()?;
        }
        Ok(Self { cron, timezone })
    }
}

fn expand_handler(
    item: TokenStream,
    trigger: serde_json::Value,
    trigger_def: TokenStream2,
) -> TokenStream {
    let function = parse_macro_input!(item as ItemFn);
    let record = handler_record(&function, trigger);
    expand_record(function, record, trigger_def)
}

/// The metadata record of a handler: its name and trigger.
fn handler_record(function: &ItemFn, trigger: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "handler": function.sig.ident.to_string(), "trigger": trigger })
}

/// A handler taking no argument or one `&Invocation`, with its `record`.
fn expand_record(
    function: ItemFn,
    record: serde_json::Value,
    trigger_def: TokenStream2,
) -> TokenStream {
    let name = &function.sig.ident;
    let (param, call) = match function.sig.inputs.len() {
        0 => (quote!(_), quote!(#name())),
        1 => (quote!(invocation), quote!(#name(invocation))),
        _ => {
            return compile_error(
                function.sig.inputs.span_of_all(),
                "a handler takes no argument or one `&roost_sdk::Invocation`",
            );
        }
    };
    let run = quote! {
        |#param| ::roost_sdk::__private::IntoHandlerResult::into_handler_result(#call)
    };
    emit_handler(
        &function,
        &record.to_string(),
        trigger_def,
        run,
        no_describe(),
    )
}

/// The `describe` of a handler that is no tool.
fn no_describe() -> TokenStream2 {
    quote!(::core::option::Option::None)
}

/// The function, its `HandlerDef` (calling it through `run`, describing
/// its input through `describe`) and its metadata `record` (one line of
/// JSON).
fn emit_handler(
    function: &ItemFn,
    record: &str,
    trigger_def: TokenStream2,
    run: TokenStream2,
    describe: TokenStream2,
) -> TokenStream {
    let name = &function.sig.ident;
    let def = format_ident!("__roost_handler_{}", name);
    let record = metadata_line(record);
    let name_str = name.to_string();
    quote! {
        #function

        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        const #def: ::roost_sdk::HandlerDef = ::roost_sdk::HandlerDef {
            name: #name_str,
            trigger: #trigger_def,
            run: #run,
            describe: #describe,
        };

        #record
    }
    .into()
}

/// A static in the metadata custom section; the linker concatenates all of
/// them, one JSON record per line.
fn metadata_record(record: &serde_json::Value) -> TokenStream2 {
    metadata_line(&record.to_string())
}

/// [`metadata_record`] of a record already written out as JSON.
fn metadata_line(record: &str) -> TokenStream2 {
    let line = format!("{record}\n");
    let bytes = syn::LitByteStr::new(line.as_bytes(), Span::call_site());
    let len = line.len();
    quote! {
        const _: () = {
            #[used]
            #[unsafe(link_section = #SECTION_NAME)]
            static RECORD: [u8; #len] = *#bytes;
        };
    }
}

fn compile_error(span: Span, message: &str) -> TokenStream {
    syn::Error::new(span, message).to_compile_error().into()
}

trait SpanOfAll {
    fn span_of_all(&self) -> Span;
}

impl<T: quote::ToTokens, P: quote::ToTokens> SpanOfAll for Punctuated<T, P> {
    fn span_of_all(&self) -> Span {
        syn::spanned::Spanned::span(self)
    }
}

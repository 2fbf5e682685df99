//! Support code for the macros. Not a public API.

pub use crate::tool::{IntoToolResult, NoArgs, run_tool, tool_schema};
use crate::{Error, HandlerDef, Invocation};

/// Must match `roost_sandbox::DESCRIBE_HANDLER`.
const DESCRIBE_HANDLER: &str = "roost:describe";

/// Lets handlers return `()` or any `Result<(), E: Display>`.
pub trait IntoHandlerResult {
    /// Converts the handler's return value.
    fn into_handler_result(self) -> crate::Result;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> crate::Result {
        Ok(())
    }
}

impl<E: std::fmt::Display> IntoHandlerResult for Result<(), E> {
    fn into_handler_result(self) -> crate::Result {
        self.map_err(Error::msg)
    }
}

/// The `run` of an `#[on_http]` handler: reads the request from the
/// invocation, calls `handler` and hands its response to roost. `dispatch`
/// sends the state writes after this returns, so the response goes first.
pub fn serve_http<F, R>(invocation: &Invocation, handler: F) -> crate::Result
where
    F: FnOnce(&crate::http::Request) -> R,
    R: crate::http::IntoResponse,
{
    crate::http::serve(invocation, handler)
}

/// Sends the run's unsent state writes; set by `state` at its first write.
pub static STATE_FLUSH: std::sync::OnceLock<fn() -> Result<(), String>> =
    std::sync::OnceLock::new();

/// Exit status when the requested handler does not exist.
const EXIT_NO_SUCH_HANDLER: u8 = 2;
/// Exit status when the invocation cannot be read.
const EXIT_BAD_INVOCATION: u8 = 3;

/// The body of the `main` that `main!` generates. Success returns normally
/// (cheaper for the host than an explicit exit); failures exit with a status.
pub fn dispatch(handlers: &[HandlerDef]) {
    let invocation = match Invocation::read() {
        Ok(invocation) => invocation,
        Err(err) => {
            eprintln!("roost: {err}");
            crate::exit(EXIT_BAD_INVOCATION);
        }
    };
    let requested = invocation
        .handler
        .clone()
        .or_else(|| std::env::args().nth(1));
    if requested.as_deref() == Some(DESCRIBE_HANDLER) {
        crate::tool::describe(handlers);
        return;
    }
    let chosen = match &requested {
        Some(name) => handlers.iter().find(|h| h.name == name),
        None if handlers.len() == 1 => handlers.first(),
        None => None,
    };
    let Some(handler) = chosen else {
        let names: Vec<&str> = handlers.iter().map(|h| h.name).collect();
        match requested {
            Some(name) => eprintln!(
                "roost: no handler named `{name}`; this script has: {}",
                names.join(", ")
            ),
            None => eprintln!(
                "roost: this script has several handlers, name one of: {}",
                names.join(", ")
            ),
        }
        crate::exit(EXIT_NO_SUCH_HANDLER);
    };
    // A script that used `state` sends its last writes once the handler
    // succeeded; one that did not links none of that code.
    let sent = |()| match STATE_FLUSH.get() {
        Some(flush) => flush().map_err(Error::msg),
        None => Ok(()),
    };
    match (handler.run)(&invocation).and_then(sent) {
        Ok(()) => {}
        Err(err) => {
            eprintln!("roost: handler `{}` failed: {err}", handler.name);
            crate::exit(1);
        }
    }
}

/// The bytes of a metadata record, sized by the caller's array type.
pub const fn record_bytes<const N: usize>(record: &str) -> [u8; N] {
    let bytes = record.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Records `{"integration":"<id>"}` in the component's `roost-metadata`
/// section, from the script's own crate: a static in the SDK would be
/// dropped by the linker (or kept for every integration under LTO), while
/// one emitted where `init!` is written is kept exactly when it is written.
#[macro_export]
macro_rules! __declare_integration {
    ($integration:literal) => {
        const _: () = {
            const RECORD: &str = concat!("{\"integration\":\"", $integration, "\"}\n");
            #[used]
            #[unsafe(link_section = "roost-metadata")]
            static DECLARATION: [u8; RECORD.len()] = $crate::__private::record_bytes(RECORD);
        };
    };
}

/// Records `{"refresh_token":"<id>"}` in the component's metadata section,
/// from the script's own crate (see `__declare_integration`).
#[macro_export]
macro_rules! __declare_refresh_token {
    ($integration:literal) => {
        const _: () = {
            const RECORD: &str = concat!("{\"refresh_token\":\"", $integration, "\"}\n");
            #[used]
            #[unsafe(link_section = "roost-metadata")]
            static DECLARATION: [u8; RECORD.len()] = $crate::__private::record_bytes(RECORD);
        };
    };
}

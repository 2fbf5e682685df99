//! What the server's logs may say. Whatever level an operator asks for, the
//! crates that would write a guest's own requests (host, path, query: where
//! a script can put a credential) stay at `info`, which says none of that;
//! and a service's URL is logged without its password.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Logs to stderr, filtered by `ROOST_LOG`, else by `default`. Beside the
/// logs sits the trace layer (telemetry.rs), whose spans exist only while a
/// server exports to an OTLP endpoint; they pass whatever `ROOST_LOG` says.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_env("ROOST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let filter = guarded(filter).add_directive(
        format!("{}=info", crate::telemetry::TARGET)
            .parse()
            .expect("a target and a level make a directive"),
    );
    let _ = tracing_subscriber::registry()
        .with(crate::telemetry::layer())
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .try_init();
}

/// Targets held at `info` whatever the filter asks.
const GUEST_REQUEST_TARGETS: [&str; 1] = ["wasmtime_wasi_http"];

/// `filter`, with the targets that log guests' requests held at `info`.
pub fn guarded(filter: EnvFilter) -> EnvFilter {
    GUEST_REQUEST_TARGETS.iter().fold(filter, |filter, target| {
        filter.add_directive(
            format!("{target}=info")
                .parse()
                .expect("a target and a level make a directive"),
        )
    })
}

/// A database or broker URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

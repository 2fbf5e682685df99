//! What the server's logs may say. Whatever level an operator asks for, the
//! crates that would write a guest's own requests (host, path, query: where
//! a script can put a credential) stay at `info`, which says none of that;
//! and a service's URL is logged without its password.

use tracing_subscriber::EnvFilter;

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

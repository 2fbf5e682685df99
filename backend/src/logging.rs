//! The server's log filter. Whatever level an operator asks for, the crates
//! that would write a guest's own requests (host, path, query: where a
//! script can put a credential) stay at `info`, which says none of that.

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

//! Compile-time checks of `#[on_event]`'s flow control, run as doctests.

/// `#[on_event]` takes flow control by a key of the payload:
///
/// ```
/// use roost_sdk::{Invocation, on_event};
///
/// #[on_event("order.sync", concurrency(key = "customer.id", limit = 1))]
/// fn sync(_: &Invocation) {}
///
/// #[on_event("api.call", concurrency(key = "tenant", limit = 4), throttle(key = "tenant", limit = 10, period_ms = 1000))]
/// fn call(_: &Invocation) {}
///
/// #[on_event("cart.updated", debounce(key = "customer", period_ms = 500), concurrency(limit = 2))]
/// fn settle(_: &Invocation) {}
/// ```
///
/// and refuses, at compile time:
///
/// - a concurrency limit without `limit`:
///
/// ```compile_fail
/// #[roost_sdk::on_event("x", concurrency(key = "a"))]
/// fn h(_: &roost_sdk::Invocation) {}
/// ```
///
/// - a limit of 0:
///
/// ```compile_fail
/// #[roost_sdk::on_event("x", concurrency(key = "a", limit = 0))]
/// fn h(_: &roost_sdk::Invocation) {}
/// ```
///
/// - a period on a concurrency limit:
///
/// ```compile_fail
/// #[roost_sdk::on_event("x", concurrency(key = "a", limit = 1, period_ms = 5))]
/// fn h(_: &roost_sdk::Invocation) {}
/// ```
///
/// - a debounce and a throttle together:
///
/// ```compile_fail
/// #[roost_sdk::on_event("x", debounce(key = "a", period_ms = 5), throttle(key = "a", limit = 1, period_ms = 5))]
/// fn h(_: &roost_sdk::Invocation) {}
/// ```
///
/// - one kind twice:
///
/// ```compile_fail
/// #[roost_sdk::on_event("x", concurrency(limit = 1), concurrency(limit = 2))]
/// fn h(_: &roost_sdk::Invocation) {}
/// ```
#[cfg(doctest)]
pub struct FlowCompileChecks;

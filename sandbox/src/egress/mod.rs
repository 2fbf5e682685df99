//! Outbound HTTP for guests: the only door out of the sandbox.
//!
//! Every `wasi:http` request goes through [`hooks::EgressHooks`], which checks
//! the host against the run's [`EgressPolicy`], resolves the name itself and
//! refuses private, loopback and link-local addresses (unless the policy
//! names them), then connects to the exact address it checked so a DNS answer
//! cannot change between the check and the connection.

mod address;
mod body;
pub(crate) mod hooks;
mod internal;
mod send;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use address::is_restricted;
use internal::HostServiceHandle;
pub use internal::{
    HostFuture, HostRequest, HostResponse, HostService, INTERNAL_HOST, MAX_INTERNAL_BODY,
};

/// Ceilings for outbound request timeouts. A guest may ask for shorter ones;
/// longer ones are clamped to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressTimeouts {
    /// Time to establish the TCP (and TLS) connection.
    pub connect: Duration,
    /// Time from sending the request to the first byte of the response.
    pub first_byte: Duration,
    /// Longest silence between two chunks of the response body.
    pub between_bytes: Duration,
}

impl Default for EgressTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(30),
            between_bytes: Duration::from_secs(30),
        }
    }
}

/// Where a run may send HTTP requests.
///
/// Hosts match exactly (case-insensitive), or by suffix when written as
/// `*.example.com` (which does not match `example.com` itself). The default
/// policy allows nothing. Requests to [`INTERNAL_HOST`] go to the policy's
/// [`HostService`], and are refused when it has none.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allowed_hosts: Vec<String>,
    allowed_restricted_ips: Vec<IpAddr>,
    host_service: Option<HostServiceHandle>,
    /// Timeout ceilings.
    pub timeouts: EgressTimeouts,
}

impl EgressPolicy {
    /// A policy that refuses every request.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// A policy allowing the given hosts (public addresses only).
    pub fn allow_hosts<I, S>(hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            allowed_hosts: hosts
                .into_iter()
                .map(|h| h.into().to_ascii_lowercase())
                .collect(),
            ..Self::default()
        }
    }

    /// Also allow connecting to this loopback/private/link-local address.
    /// Meant for tests and for self-hosted services on a private network.
    pub fn allow_restricted_ip(mut self, ip: IpAddr) -> Self {
        self.allowed_restricted_ips.push(ip);
        self
    }

    /// Answers the run's requests to [`INTERNAL_HOST`] with `service`.
    pub fn with_host_service(mut self, service: Arc<dyn HostService>) -> Self {
        self.host_service = Some(HostServiceHandle(service));
        self
    }

    /// The service answering requests to [`INTERNAL_HOST`], if any.
    pub(crate) fn host_service(&self) -> Option<&Arc<dyn HostService>> {
        self.host_service.as_ref().map(|handle| &handle.0)
    }

    /// Replaces the timeout ceilings.
    pub fn with_timeouts(mut self, timeouts: EgressTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The allowed host patterns.
    pub fn allowed_hosts(&self) -> &[String] {
        &self.allowed_hosts
    }

    /// Whether a request to `host` (on any port) passes the host check.
    pub fn host_allowed(&self, host: &str) -> bool {
        self.allows(host, None)
    }

    /// Whether a request to `host` on `port` passes the host check. A
    /// pattern with a port (`127.0.0.1:8443`, `[::1]:80`) allows only that
    /// port; one without allows every port.
    pub fn allows(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.iter().any(|pattern| {
            let (pattern, only_port) = split_port(pattern);
            if only_port.is_some() && only_port != port {
                return false;
            }
            match pattern.strip_prefix("*.") {
                Some(suffix) => {
                    host.len() > suffix.len() + 1
                        && host.ends_with(suffix)
                        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                }
                None => pattern == host,
            }
        })
    }

    /// Whether connecting to `ip` is allowed after resolution.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        !is_restricted(ip) || self.allowed_restricted_ips.contains(&ip)
    }
}

/// A host pattern and the one port it is limited to, if any. IPv6
/// addresses are written in brackets when a port follows.
fn split_port(pattern: &str) -> (&str, Option<u16>) {
    if let Some(rest) = pattern.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((address, tail)) => (address, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (pattern, None),
        };
    }
    match pattern.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (pattern, None),
        },
        _ => (pattern, None),
    }
}

/// An outbound request the policy refused, recorded on the run outcome so a
/// user can see why their script's call failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeniedRequest {
    /// The host the guest asked for.
    pub host: String,
    /// Why it was refused.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard_hosts() {
        let policy = EgressPolicy::allow_hosts(["api.slack.com", "*.googleapis.com"]);
        assert!(policy.host_allowed("api.slack.com"));
        assert!(policy.host_allowed("API.Slack.com."));
        assert!(policy.host_allowed("gmail.googleapis.com"));
        assert!(!policy.host_allowed("googleapis.com"));
        assert!(!policy.host_allowed("evilgoogleapis.com"));
        assert!(!policy.host_allowed("slack.com"));
        assert!(!policy.host_allowed("api.slack.com.evil.net"));
        assert!(!EgressPolicy::deny_all().host_allowed("api.slack.com"));
    }

    #[test]
    fn a_port_in_the_pattern_limits_the_port() {
        let policy = EgressPolicy::allow_hosts(["127.0.0.1:8443", "[::1]:80", "api.example.com"]);
        assert!(policy.allows("127.0.0.1", Some(8443)));
        assert!(!policy.allows("127.0.0.1", Some(8444)));
        assert!(!policy.host_allowed("127.0.0.1"));
        assert!(policy.allows("::1", Some(80)));
        assert!(!policy.allows("::1", Some(81)));
        assert!(policy.allows("api.example.com", Some(443)));
        assert!(policy.allows("api.example.com", Some(8080)));
    }

    #[test]
    fn restricted_ips_need_explicit_permission() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let policy = EgressPolicy::allow_hosts(["localhost"]);
        assert!(!policy.ip_allowed(local));
        assert!(policy.ip_allowed("93.184.216.34".parse().unwrap()));
        assert!(policy.allow_restricted_ip(local).ip_allowed(local));
    }
}

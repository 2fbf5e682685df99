//! Limits that keep one user (or one leaked token) from exhausting a node:
//! a request rate per API token, an event rate per user, and caps on
//! deployed scripts, component size, queued runs and compile time. Every
//! one is configurable and answers with a precise error (429 with
//! `Retry-After` for rates).
//!
//! Rates are counted per node, in memory: a cluster of N nodes behind a
//! balancer admits up to N times the rate. Caps are read from the database,
//! so they hold cluster-wide.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The configurable limits.
#[derive(Debug, Clone, PartialEq)]
pub struct AbuseLimits {
    /// API requests per second per token (sustained).
    pub api_requests_per_sec: f64,
    /// API requests a token may send in a burst.
    pub api_burst: u32,
    /// Events per minute per user.
    pub events_per_minute: u32,
    /// Requests per minute to one user's HTTP handlers, all callers together.
    pub http_requests_per_minute: u32,
    /// Scripts one user may have deployed.
    pub max_scripts_per_user: usize,
    /// Versions kept per script; older ones are deleted at deploy.
    pub max_versions_per_script: i64,
    /// Largest component a deploy may carry, in bytes.
    pub max_component_bytes: usize,
    /// Runs one user may have queued at once.
    pub max_queued_runs_per_user: i64,
    /// Largest body of an event or a manual run (its payload is stored
    /// with every run it starts).
    pub max_payload_bytes: usize,
    /// Bytes of payload one user's runs may keep (until retention deletes
    /// them).
    pub max_stored_payload_bytes_per_user: i64,
    /// Longest a deploy may spend compiling.
    pub compile_timeout: Duration,
    /// Deploys compiling at once; more wait their turn.
    pub max_concurrent_compiles: usize,
    /// Failed authentications per minute from one client address (and as
    /// many at once); past it, the address is refused until it refills.
    pub failed_auths_per_minute: u32,
    /// Entries one script's state may hold.
    pub max_state_keys_per_script: i64,
    /// Bytes of keys and values one script's state may take.
    pub max_state_bytes_per_script: i64,
    /// Most links in a chain of events scripts emit (an event emitted by a
    /// run an emitted event started is one more): past it, an event is
    /// recorded as stopped and starts nothing.
    pub max_event_chain: i64,
    /// MCP sessions one user keeps open at one node (each holds a task and
    /// a stream; idle ones close after 5 minutes).
    pub max_mcp_sessions_per_user: usize,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        Self {
            api_requests_per_sec: 200.0,
            api_burst: 1_000,
            events_per_minute: 60_000,
            http_requests_per_minute: 600_000,
            max_scripts_per_user: 200,
            max_versions_per_script: 50,
            max_component_bytes: 10 * 1024 * 1024,
            max_queued_runs_per_user: 10_000,
            max_payload_bytes: 1024 * 1024,
            max_stored_payload_bytes_per_user: 1024 * 1024 * 1024,
            compile_timeout: Duration::from_secs(60),
            max_concurrent_compiles: std::thread::available_parallelism().map_or(2, |n| n.get()),
            failed_auths_per_minute: 60,
            max_state_keys_per_script: crate::store::StateQuota::default().max_keys,
            max_state_bytes_per_script: crate::store::StateQuota::default().max_bytes,
            max_mcp_sessions_per_user: 16,
            max_event_chain: 16,
        }
    }
}

impl AbuseLimits {
    /// How much of the queue one user may fill.
    pub fn queue_limits(&self) -> crate::store::QueueLimits {
        crate::store::QueueLimits {
            runs: self.max_queued_runs_per_user,
            payload_bytes: self.max_stored_payload_bytes_per_user,
        }
    }
}

impl AbuseLimits {
    /// What bounds the events runs emit.
    pub(crate) fn emit_limits(&self) -> crate::execute::emitted_events::EmitLimits {
        crate::execute::emitted_events::EmitLimits {
            chain_limit: self.max_event_chain,
            max_payload_bytes: self.max_payload_bytes,
            queue: self.queue_limits(),
        }
    }

    /// The most state one script may keep.
    pub fn state_quota(&self) -> crate::store::StateQuota {
        crate::store::StateQuota {
            max_keys: self.max_state_keys_per_script,
            max_bytes: self.max_state_bytes_per_script,
        }
    }
}

/// Token buckets by key: `rate` tokens per second, at most `burst` saved.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets untouched for this long are full again and can be forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

impl RateLimiter {
    /// `rate` per second, bursts of `burst`.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Whether `key` has a token, without taking it; when it has none, how
    /// long until it has.
    pub fn ready(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some((tokens, at)) = buckets.get(key) else {
            return Ok(());
        };
        let tokens = (tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }

    /// Takes one token for `key`; when there is none, how long until there is.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < FORGET_AFTER);
        }
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// The limiters of one node.
#[derive(Debug)]
pub struct Guards {
    /// The configured limits.
    pub limits: AbuseLimits,
    /// API requests per token.
    pub api: RateLimiter,
    /// Events per user.
    pub events: RateLimiter,
    /// Requests to each user's HTTP handlers.
    pub http_requests: RateLimiter,
    /// Failed authentications per client address.
    pub auth_failures: RateLimiter,
}

impl Guards {
    /// Limiters for `limits`.
    pub fn new(limits: AbuseLimits) -> Self {
        Self {
            api: RateLimiter::new(limits.api_requests_per_sec, limits.api_burst),
            events: RateLimiter::new(
                f64::from(limits.events_per_minute) / 60.0,
                limits.events_per_minute,
            ),
            http_requests: RateLimiter::new(
                f64::from(limits.http_requests_per_minute) / 60.0,
                limits.http_requests_per_minute,
            ),
            auth_failures: RateLimiter::new(
                f64::from(limits.failed_auths_per_minute) / 60.0,
                limits.failed_auths_per_minute,
            ),
            limits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(10.0, 3);
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(limiter.check("b").is_ok(), "keys have their own buckets");
        std::thread::sleep(Duration::from_millis(120));
        assert!(limiter.check("a").is_ok());
    }
}

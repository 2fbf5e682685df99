//! Token buckets per (user, integration), from the definition's
//! `rateLimits` hints. A call over the rate waits for its turn instead of
//! failing: the provider would refuse it anyway, and the run's wall-time
//! limit bounds the wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::registry::RateLimits;

/// Buckets are forgotten once this many exist and a bucket has been full
/// for a while, so the map does not grow with every user ever seen.
const PRUNE_ABOVE: usize = 10_000;

/// The rate limiter shared by every host call of a node.
#[derive(Default)]
pub(super) struct RateLimiter {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

struct Bucket {
    /// Tokens at `updated`; negative when callers have reserved future ones.
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// Waits until `user`'s next call to `integration` is within `limits`.
    /// Returns how long it waited.
    pub(super) async fn acquire(
        &self,
        user: &str,
        integration: &str,
        limits: &RateLimits,
    ) -> Duration {
        let wait = self.reserve(user, integration, limits, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }

    /// Takes a token (possibly one not yet refilled) and says how long
    /// until it exists. Reserving before sleeping keeps concurrent callers
    /// in line: each one waits one interval longer than the one before.
    fn reserve(
        &self,
        user: &str,
        integration: &str,
        limits: &RateLimits,
        now: Instant,
    ) -> Duration {
        let rate = limits.requests_per_second.max(0.001);
        let burst = f64::from(limits.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| now.duration_since(b.updated).as_secs_f64() * rate < burst);
        }
        let bucket = buckets
            .entry((user.to_string(), integration.to_string()))
            .or_insert(Bucket {
                tokens: burst,
                updated: now,
            });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_calls_are_spaced_by_the_rate() {
        let limiter = RateLimiter::default();
        let limits = RateLimits {
            requests_per_second: 4.0,
            burst: 2,
        };
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..5)
            .map(|_| limiter.reserve("u1", "acme", &limits, t0))
            .collect();
        assert_eq!(waits[0], Duration::ZERO);
        assert_eq!(waits[1], Duration::ZERO);
        for (i, expected) in [(2, 250), (3, 500), (4, 750)] {
            let ms = waits[i].as_secs_f64() * 1000.0;
            assert!(
                (ms - f64::from(expected)).abs() < 1.0,
                "call {i} waits {ms} ms"
            );
        }
        // Another user, or another integration, has its own bucket.
        assert_eq!(limiter.reserve("u2", "acme", &limits, t0), Duration::ZERO);
        assert_eq!(limiter.reserve("u1", "other", &limits, t0), Duration::ZERO);
        // Time refills the bucket, up to the burst.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            limiter.reserve("u1", "acme", &limits, later),
            Duration::ZERO
        );
        assert_eq!(
            limiter.reserve("u1", "acme", &limits, later),
            Duration::ZERO
        );
        assert!(!limiter.reserve("u1", "acme", &limits, later).is_zero());
    }
}

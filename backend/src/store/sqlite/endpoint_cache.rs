//! HTTP handlers' endpoints as last read, by URL token, so that a request
//! to a handler reads nothing from the database (a read on every request
//! cost about a tenth of the server's CPU: BENCHMARKS.md, HTTP handlers).
//!
//! Every write of this process that can change an endpoint (a deploy, a
//! rollback, a deleted script, a rotated URL, a new signing secret) forgets
//! all of them once it has committed (`SqlStore::endpoints_changed`). A
//! read that began before such a write is not kept (the generation
//! moved on). Writes by another process on the same file (the `roost`
//! CLI) are seen within `FRESH_FOR`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::HttpEndpoint;

/// How long an endpoint is answered from memory before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Most endpoints kept; past it they are all forgotten.
const MOST: usize = 10_000;

#[derive(Default)]
pub(super) struct EndpointCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    by_token: HashMap<String, (Instant, HttpEndpoint)>,
}

impl EndpointCache {
    /// The endpoint of `token`, if it was read less than `FRESH_FOR` ago.
    pub(super) fn get(&self, token: &str) -> Option<HttpEndpoint> {
        let inner = self.lock();
        let (read_at, endpoint) = inner.by_token.get(token)?;
        (read_at.elapsed() < FRESH_FOR).then(|| endpoint.clone())
    }

    /// The generation a read begins in; pass it to `keep`.
    pub(super) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Keeps `endpoint`, read in `generation`, unless a write came since.
    pub(super) fn keep(&self, generation: u64, endpoint: &HttpEndpoint) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.by_token.len() >= MOST {
            inner.by_token.clear();
        }
        inner
            .by_token
            .insert(endpoint.token.clone(), (Instant::now(), endpoint.clone()));
    }

    /// Forgets every endpoint: one may have changed.
    pub(super) fn forget_all(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.by_token.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(token: &str, version: i64) -> HttpEndpoint {
        HttpEndpoint {
            token: token.into(),
            user_id: "u".into(),
            script_id: "s".into(),
            handler: "h".into(),
            script_version: version,
            trigger: "{}".into(),
            secret: None,
        }
    }

    #[test]
    fn a_read_from_before_a_write_is_not_kept() {
        let cache = EndpointCache::default();
        let before = cache.generation();
        cache.keep(before, &endpoint("t", 1));
        assert_eq!(cache.get("t").unwrap().script_version, 1);
        // A read begins, a deploy commits, the read ends with the old row.
        let read_in = cache.generation();
        cache.forget_all();
        cache.keep(read_in, &endpoint("t", 1));
        assert!(cache.get("t").is_none());
        let now = cache.generation();
        cache.keep(now, &endpoint("t", 2));
        assert_eq!(cache.get("t").unwrap().script_version, 2);
    }
}

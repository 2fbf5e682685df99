//! The one HTTP transport of host-mediated calls: a pooled client with
//! timeouts, the per-(user, integration) rate limit, and retries with
//! exponential backoff and jitter.
//!
//! What is retried: connection failures (nothing reached the provider),
//! 429 and 503 (the provider says it did not do the work; `Retry-After` is
//! honoured), and 500, 502, 504 and timeouts only for idempotent requests,
//! where a repeat cannot do the work twice.

use std::time::Duration;

use rand::Rng;

use super::error::CallError;
use super::mapping::ProviderResponse;
use super::rate_limit::RateLimiter;
use crate::registry::RateLimits;

/// Retry and size settings of the transport.
#[derive(Debug, Clone)]
pub struct TransportPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubled each time.
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
    /// Longest `Retry-After` roost waits out; a longer one ends the call
    /// with the 429 so the script can decide.
    pub max_retry_after: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one attempt, answer included.
    pub attempt_timeout: Duration,
    /// Largest answer read.
    pub max_response_bytes: usize,
}

impl Default for TransportPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(30),
            max_response_bytes: 8 * 1024 * 1024,
        }
    }
}

/// A request ready to send, credential included. Not `Debug`: it holds
/// the credential.
pub(super) struct OutgoingRequest {
    /// HTTP method.
    pub method: http::Method,
    /// Full URL.
    pub url: reqwest::Url,
    /// Headers, the credential's among them when it goes in a header.
    pub headers: http::HeaderMap,
    /// Body bytes.
    pub body: Option<Vec<u8>>,
    /// Whether a repeat is harmless.
    pub idempotent: bool,
}

/// Whom a call's rate limit is counted for.
pub(super) struct RateKey<'a> {
    /// User id.
    pub user: &'a str,
    /// The bucket: the integration id, or `<id>.<method>` for a method
    /// with limits of its own.
    pub integration: &'a str,
    /// The definition's hints, when it has some.
    pub limits: Option<&'a RateLimits>,
}

/// How a send went: the final answer (any status) or the failure, and
/// how many attempts it took.
pub(super) struct Sent {
    /// The last answer, or why there is none.
    pub result: Result<ProviderResponse, CallError>,
    /// Attempts made (1 when nothing was retried).
    pub attempts: u32,
    /// Time spent waiting for the rate limit.
    pub throttled: Duration,
}

/// The shared transport.
pub(super) struct Transport {
    client: reqwest::Client,
    policy: TransportPolicy,
    limiter: RateLimiter,
}

impl Transport {
    /// A transport with `policy`.
    pub(super) fn new(policy: TransportPolicy) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.attempt_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("roost/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with these settings builds");
        Self {
            client,
            policy,
            limiter: RateLimiter::default(),
        }
    }

    /// Sends `request`, retrying as the module describes.
    pub(super) async fn send(&self, request: &OutgoingRequest, rate: &RateKey<'_>) -> Sent {
        let mut attempts = 0;
        let mut throttled = Duration::ZERO;
        loop {
            attempts += 1;
            if let Some(limits) = rate.limits {
                throttled += self
                    .limiter
                    .acquire(rate.user, rate.integration, limits)
                    .await;
            }
            let last = attempts >= self.policy.max_attempts;
            let outcome = self.attempt(request).await;
            let delay = match &outcome {
                Ok(response) => self.retry_delay(response, request.idempotent, attempts),
                Err(Failure::Connect(_)) => Some(self.backoff(attempts)),
                Err(Failure::Other {
                    idempotent_retry, ..
                }) => (*idempotent_retry && request.idempotent).then(|| self.backoff(attempts)),
                Err(Failure::TooLarge) => None,
            };
            match delay {
                Some(delay) if !last => {
                    tracing::debug!(attempt = attempts, delay_ms = delay.as_millis() as u64, url = %request.url.path(), "retrying a provider call");
                    tokio::time::sleep(delay).await;
                }
                _ => {
                    return Sent {
                        result: outcome
                            .map_err(|f| f.into_call_error(self.policy.max_response_bytes)),
                        attempts,
                        throttled,
                    };
                }
            }
        }
    }

    async fn attempt(&self, request: &OutgoingRequest) -> Result<ProviderResponse, Failure> {
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone())
            .headers(request.headers.clone());
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let mut response = builder.send().await.map_err(Failure::from_send)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| Failure::Other {
            message: describe(&e),
            idempotent_retry: true,
        })? {
            if body.len() + chunk.len() > self.policy.max_response_bytes {
                return Err(Failure::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(ProviderResponse {
            status,
            headers,
            body: body.into(),
        })
    }

    /// How long to wait before retrying `response`, or `None` to keep it.
    fn retry_delay(
        &self,
        response: &ProviderResponse,
        idempotent: bool,
        attempts: u32,
    ) -> Option<Duration> {
        let retryable = match response.status {
            429 | 503 => true,
            500 | 502 | 504 => idempotent,
            _ => false,
        };
        if !retryable {
            return None;
        }
        match retry_after(&response.headers) {
            Some(wait) if wait > self.policy.max_retry_after => None,
            Some(wait) => Some(wait),
            None => Some(self.backoff(attempts)),
        }
    }

    /// Exponential backoff with equal jitter: half the step, plus a random
    /// part of the other half, so callers that failed together spread out.
    fn backoff(&self, attempts: u32) -> Duration {
        let step = self
            .policy
            .base_delay
            .saturating_mul(1 << attempts.saturating_sub(1).min(16))
            .min(self.policy.max_delay);
        let half = step / 2;
        half + half.mul_f64(rand::thread_rng().r#gen::<f64>())
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and
/// falls back to backoff).
pub(crate) fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

enum Failure {
    /// Nothing reached the provider.
    Connect(String),
    /// Something else went wrong; retried when the request is idempotent.
    Other {
        message: String,
        idempotent_retry: bool,
    },
    TooLarge,
}

impl Failure {
    fn from_send(err: reqwest::Error) -> Self {
        if err.is_connect() {
            Self::Connect(describe(&err))
        } else {
            Self::Other {
                message: describe(&err),
                idempotent_retry: true,
            }
        }
    }

    fn into_call_error(self, cap: usize) -> CallError {
        match self {
            Self::Connect(message) | Self::Other { message, .. } => CallError::Transport(message),
            Self::TooLarge => CallError::ResponseTooLarge(cap),
        }
    }
}

/// The error without its URL: a query-placed credential must not reach a
/// message.
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "reading the answer failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(err);
    let mut detail = None;
    while let Some(inner) = source {
        detail = Some(inner.to_string());
        source = inner.source();
    }
    match detail {
        Some(detail) => format!("{kind}: {detail}"),
        None => kind.to_string(),
    }
}

//! HTTP-triggered handlers: a request to a handler's URL
//! (`/h/{token}{path}`) becomes a recorded run (trigger `http`), and the
//! caller gets the response the run gave once the run has succeeded.
//!
//! The request is mapped onto the run's invocation (its payload) rather
//! than served through a `wasi:http` export, so an HTTP run is a run like
//! any other: limited, retried by nobody, recorded, with its state and
//! outbox committed with its success. It is begun at once by the node that
//! received it (queue/here.rs) and recorded with its end, before its
//! caller is answered. See `docs/http-handlers.md`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use roost_sandbox::metadata::HandlerMeta;
use roost_sandbox::{HttpAccess, HttpTrigger, OnDeadline, Trigger};
use serde_json::json;

use super::signing;
use crate::credentials::MasterKeys;
use crate::credentials::cipher::{open_handler_secret, seal_handler_secret};
use crate::queue::{HereEnd, Runner};
use crate::store::{
    Enqueued, HttpEndpoint, HttpReply, NewRun, QueueLimits, RunStatus, Store, StoreError,
    TriggerKind,
};

/// How long a caller waits for a handler that names no deadline.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// Largest request or response body, in bytes.
pub const MAX_HTTP_BODY: usize = 1024 * 1024;
/// Longest handler path, in bytes.
const MAX_PATH_BYTES: usize = 256;
/// Methods a handler may answer.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Headers that belong to one connection, never passed on (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether header `name` (lower case) is one a proxy drops.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// Checks the HTTP handlers a script declares: known methods, paths a URL
/// can carry, no two handlers on the same method and path.
pub fn check_handlers(handlers: &[HandlerMeta]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for handler in handlers {
        let Trigger::Http(http) = &handler.trigger else {
            continue;
        };
        let name = &handler.name;
        if !METHODS.contains(&http.method.as_str()) {
            return Err(format!(
                "handler `{name}`: method `{}` is not one of {}",
                http.method,
                METHODS.join(", ")
            ));
        }
        let path = &http.path;
        if !path.starts_with('/')
            || path.len() > MAX_PATH_BYTES
            || path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err(format!(
                "handler `{name}`: path `{path}` must start with `/`, take at most {MAX_PATH_BYTES} bytes and have no spaces, `?` or `#`"
            ));
        }
        if !seen.insert((http.method.clone(), path.clone())) {
            return Err(format!(
                "two handlers answer {} {path}; each method and path has one",
                http.method
            ));
        }
    }
    Ok(())
}

/// The trigger a run of an HTTP handler sees, from the run's record
/// (`METHOD /path`).
pub(crate) fn invoked(spec: &str) -> HttpTrigger {
    let (method, path) = spec.split_once(' ').unwrap_or((spec, "/"));
    HttpTrigger {
        method: method.to_string(),
        path: path.to_string(),
        access: HttpAccess::default(),
        deadline_ms: None,
        on_deadline: OnDeadline::default(),
    }
}

/// A request to a handler's URL, as it arrived.
#[derive(Debug, Clone)]
pub struct IncomingRequest {
    /// The URL's token.
    pub token: String,
    /// Method, upper case.
    pub method: String,
    /// The path after the token, starting with `/`.
    pub path: String,
    /// The query, without `?`.
    pub query: String,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (within [`MAX_HTTP_BODY`]).
    pub body: Vec<u8>,
}

/// How a request ended for its caller.
#[derive(Debug)]
pub enum HttpOutcome {
    /// The run succeeded and answered.
    Answered(HttpReply),
    /// The deadline passed and the handler lets its caller go with the run id.
    Accepted {
        /// The run, still going.
        run_id: String,
    },
    /// The deadline passed and the handler says that is a failure.
    DeadlinePassed {
        /// The run, still going.
        run_id: String,
    },
    /// The run ended without a response to give: it failed, or sent none.
    NoAnswer {
        /// The run.
        run_id: String,
        /// How it ended.
        status: RunStatus,
    },
}

/// Why a request started no run.
#[derive(Debug, thiserror::Error)]
pub enum HttpTriggerError {
    /// No handler answers at this URL (also: the token is wrong).
    #[error("no handler answers at this URL")]
    NotFound,
    /// A handler answers this path, with another method.
    #[error("this URL answers {allowed} only")]
    MethodNotAllowed {
        /// The method it takes.
        allowed: String,
    },
    /// The handler takes a roost API token of the script's owner, and the
    /// request had none that is.
    #[error("this handler takes an API token of the script's owner in `Authorization: Bearer`")]
    Unauthorized,
    /// The handler takes signed requests, and this one's signature is
    /// missing, stale or wrong (or the owner set no secret yet).
    #[error("{0}")]
    BadSignature(&'static str),
    /// A signing secret the server does not take.
    #[error("{0}")]
    InvalidSecret(String),
    /// The owner's handlers took as many requests as the rate allows; retry
    /// after this long.
    #[error(
        "this script's owner has had as many requests to their handlers as the server takes per minute; retry later"
    )]
    RateLimited(Duration),
    /// The owner has as many requests waiting as allowed here.
    #[error("the script's owner already has {0} requests waiting on runs at this server")]
    TooManyWaits(usize),
    /// The store failed, or refused (a full queue).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An HTTP handler's URL, as its owner sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointView {
    /// The handler.
    pub handler: String,
    /// The method it answers.
    pub method: String,
    /// Its path.
    pub path: String,
    /// Who may call it.
    pub access: HttpAccess,
    /// Where to call it.
    pub url: String,
}

/// Turns requests to handlers' URLs into runs and their answers.
#[derive(Clone)]
pub struct HttpHandlers {
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
    limits: QueueLimits,
    /// The longest a handler may ask its caller to wait (the run limit).
    max_deadline: Duration,
    /// The server's public address, for handlers' URLs.
    base_url: String,
    /// What signing secrets are sealed with.
    keys: Arc<MasterKeys>,
    /// The rate of requests each owner's handlers take, all callers together.
    rate: Arc<crate::abuse::Guards>,
}

impl HttpHandlers {
    /// Requests queued as runs in `runner`, refused while the owner's queue
    /// is past `limits`; no caller waits past `max_deadline`. URLs start
    /// with `base_url`.
    pub fn new(
        store: Arc<dyn Store>,
        runner: Arc<Runner>,
        limits: QueueLimits,
        max_deadline: Duration,
        base_url: &str,
        keys: Arc<MasterKeys>,
        rate: Arc<crate::abuse::Guards>,
    ) -> Self {
        Self {
            store,
            runner,
            limits,
            max_deadline,
            base_url: base_url.trim_end_matches('/').to_string(),
            keys,
            rate,
        }
    }

    /// Sets the secret a handler's callers sign with (`hmac` access); the
    /// previous one stops working at once. roost never shows it again.
    pub async fn set_secret(
        &self,
        user_id: &str,
        script_id: &str,
        handler: &str,
        secret: &str,
    ) -> Result<(), HttpTriggerError> {
        signing::check_secret(secret).map_err(HttpTriggerError::InvalidSecret)?;
        let sealed = seal_handler_secret(&self.keys, user_id, script_id, handler, secret);
        match self
            .store
            .set_http_secret(user_id, script_id, handler, &sealed)
            .await?
        {
            true => Ok(()),
            false => Err(HttpTriggerError::NotFound),
        }
    }

    /// A user's script's HTTP handlers and their URLs.
    pub async fn endpoints(
        &self,
        user_id: &str,
        script_id: &str,
    ) -> Result<Vec<EndpointView>, HttpTriggerError> {
        let endpoints = self
            .store
            .http_endpoints(user_id, script_id)
            .await?
            .ok_or(HttpTriggerError::NotFound)?;
        endpoints.iter().map(|e| self.view(e)).collect()
    }

    /// Gives a handler a new URL; the old one stops answering at once.
    pub async fn rotate(
        &self,
        user_id: &str,
        script_id: &str,
        handler: &str,
    ) -> Result<EndpointView, HttpTriggerError> {
        let endpoint = self
            .store
            .rotate_http_endpoint(user_id, script_id, handler)
            .await?
            .ok_or(HttpTriggerError::NotFound)?;
        self.view(&endpoint)
    }

    fn view(&self, endpoint: &HttpEndpoint) -> Result<EndpointView, HttpTriggerError> {
        let trigger: HttpTrigger = serde_json::from_str(&endpoint.trigger)
            .map_err(|e| StoreError::Corrupt(format!("an HTTP trigger: {e}")))?;
        Ok(EndpointView {
            url: format!("{}/h/{}{}", self.base_url, endpoint.token, trigger.path),
            handler: endpoint.handler.clone(),
            method: trigger.method,
            path: trigger.path,
            access: trigger.access,
        })
    }

    /// Runs the handler at `request`'s URL and waits for its answer.
    /// `bearer` is the API token the request carried, if any.
    pub async fn call(
        &self,
        request: IncomingRequest,
        bearer: Option<&str>,
    ) -> Result<HttpOutcome, HttpTriggerError> {
        let endpoint = self
            .store
            .http_endpoint(&request.token)
            .await?
            .ok_or(HttpTriggerError::NotFound)?;
        let trigger: HttpTrigger = serde_json::from_str(&endpoint.trigger)
            .map_err(|e| StoreError::Corrupt(format!("an HTTP trigger: {e}")))?;
        if request.path != trigger.path {
            return Err(HttpTriggerError::NotFound);
        }
        // HEAD is answered by a GET handler, as servers do.
        let method_matches = request.method == trigger.method
            || (request.method == "HEAD" && trigger.method == "GET");
        if !method_matches {
            return Err(HttpTriggerError::MethodNotAllowed {
                allowed: trigger.method,
            });
        }
        if trigger.access == HttpAccess::Bearer {
            // The owner's own token, valid now and allowed to start runs.
            let grant = match bearer {
                Some(token) => {
                    self.store
                        .token_grant(&crate::auth::hash_token(token), crate::store::now_millis())
                        .await?
                }
                None => None,
            };
            let allowed = grant.is_some_and(|grant| {
                grant.user.id == endpoint.user_id && grant.allows(crate::store::Scope::Run)
            });
            if !allowed {
                return Err(HttpTriggerError::Unauthorized);
            }
        }
        if trigger.access == HttpAccess::Hmac {
            let Some(sealed) = &endpoint.secret else {
                return Err(HttpTriggerError::BadSignature(signing::NO_SECRET));
            };
            let secret = open_handler_secret(
                &self.keys,
                &endpoint.user_id,
                &endpoint.script_id,
                &endpoint.handler,
                sealed,
            )
            .map_err(|_| {
                tracing::warn!(
                    script_id = %endpoint.script_id,
                    handler = %endpoint.handler,
                    "an HTTP handler's signing secret does not open with this server's master keys; its owner must set it again"
                );
                HttpTriggerError::BadSignature(signing::NO_SECRET)
            })?;
            signing::verify(
                &secret,
                &request.headers,
                &request.body,
                crate::store::now_millis() / 1000,
            )
            .map_err(HttpTriggerError::BadSignature)?;
            // A captured request replayed within the timestamp window
            // carries a signature already taken: it starts nothing.
            let signature = request
                .headers
                .iter()
                .find(|(name, _)| name == "x-roost-signature")
                .map(|(_, value)| value.trim())
                .unwrap_or_default();
            let first = self
                .store
                .first_delivery(
                    "http-hmac",
                    &format!("{}:{signature}", endpoint.token),
                    &endpoint.user_id,
                )
                .await?;
            if !first {
                return Err(HttpTriggerError::BadSignature(signing::REPLAYED));
            }
        }
        // Anyone may call a public handler: its owner's budget, not the
        // server's, is what a flood of callers spends (refused
        // callers start nothing, so they are counted nowhere).
        self.rate
            .http_requests
            .check(&endpoint.user_id)
            .map_err(HttpTriggerError::RateLimited)?;
        let _waiting = self
            .runner
            .wait_slot(&endpoint.user_id)
            .ok_or_else(|| HttpTriggerError::TooManyWaits(self.runner.waits_per_user()))?;
        let new_run = NewRun {
            user_id: endpoint.user_id.clone(),
            script_id: endpoint.script_id.clone(),
            script_version: endpoint.script_version,
            handler: Some(endpoint.handler.clone()),
            trigger_kind: TriggerKind::Http,
            trigger_spec: format!("{} {}", request.method, request.path),
            payload: payload(&request, trigger.access),
            not_before: None,
        };
        let deadline = tokio::time::Instant::now()
            + trigger
                .deadline_ms
                .map_or(DEFAULT_DEADLINE, Duration::from_millis)
                .min(self.max_deadline);
        let past_deadline = |run_id: String| match trigger.on_deadline {
            OnDeadline::Accept => HttpOutcome::Accepted { run_id },
            OnDeadline::Fail => HttpOutcome::DeadlinePassed { run_id },
        };
        // The run is begun here, at once, and recorded with its end; only
        // when no place comes before the deadline does it go to the queue.
        let Some(place) = self
            .runner
            .here_slot(&endpoint.user_id, &endpoint.script_id, deadline)
            .await
        else {
            return match self
                .runner
                .enqueue_manual(&new_run, None, self.limits)
                .await?
            {
                Enqueued::New(run) => Ok(past_deadline(run.id)),
                Enqueued::Repeat { .. } => {
                    Err(StoreError::Corrupt("a request without a key repeated".into()).into())
                }
            };
        };
        Ok(
            match self.runner.run_here(place, new_run, deadline).await? {
                HereEnd::Ended {
                    reply: Some(reply), ..
                } => HttpOutcome::Answered(reply),
                HereEnd::Ended {
                    run_id,
                    status,
                    reply: None,
                } => HttpOutcome::NoAnswer { run_id, status },
                HereEnd::Going { run_id } => past_deadline(run_id),
            },
        )
    }
}

/// The run's payload: the request as the SDK's `http::Request` reads it.
/// A bearer handler's token stays with roost.
pub(crate) fn payload(request: &IncomingRequest, access: HttpAccess) -> serde_json::Value {
    let headers: Vec<[&str; 2]> = request
        .headers
        .iter()
        .filter(|(name, _)| {
            let roosts_token = access == HttpAccess::Bearer && name == "authorization";
            !is_hop_by_hop(name) && !roosts_token
        })
        .map(|(name, value)| [name.as_str(), value.as_str()])
        .collect();
    json!({
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": headers,
        "body_base64": base64::engine::general_purpose::STANDARD.encode(&request.body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(name: &str, method: &str, path: &str) -> HandlerMeta {
        HandlerMeta {
            name: name.into(),
            trigger: Trigger::Http(HttpTrigger {
                method: method.into(),
                path: path.into(),
                access: HttpAccess::Public,
                deadline_ms: None,
                on_deadline: OnDeadline::Accept,
            }),
            flow: None,
        }
    }

    #[test]
    fn handlers_are_checked_for_methods_paths_and_clashes() {
        assert!(check_handlers(&[handler("a", "POST", "/orders")]).is_ok());
        assert!(check_handlers(&[handler("a", "FETCH", "/x")]).is_err());
        assert!(check_handlers(&[handler("a", "GET", "orders")]).is_err());
        assert!(check_handlers(&[handler("a", "GET", "/a b")]).is_err());
        assert!(check_handlers(&[handler("a", "GET", "/a?b")]).is_err());
        let clash = [handler("a", "GET", "/x"), handler("b", "GET", "/x")];
        assert!(check_handlers(&clash).unwrap_err().contains("GET /x"));
        assert!(check_handlers(&[handler("a", "GET", "/x"), handler("b", "POST", "/x")]).is_ok());
    }

    #[test]
    fn the_payload_drops_connection_headers_and_a_bearer_token() {
        let request = IncomingRequest {
            token: "t".into(),
            method: "POST".into(),
            path: "/p".into(),
            query: "a=1".into(),
            headers: vec![
                ("authorization".into(), "Bearer secret".into()),
                ("connection".into(), "keep-alive".into()),
                ("x-a".into(), "1".into()),
            ],
            body: b"hi".to_vec(),
        };
        let bearer = payload(&request, HttpAccess::Bearer);
        assert_eq!(bearer["headers"], json!([["x-a", "1"]]));
        assert_eq!(bearer["body_base64"], "aGk=");
        assert_eq!(bearer["query"], "a=1");
        let public = payload(&request, HttpAccess::Public);
        assert_eq!(
            public["headers"],
            json!([["authorization", "Bearer secret"], ["x-a", "1"]])
        );
    }
}

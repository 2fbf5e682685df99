use std::future::Future;
use std::sync::{Arc, Mutex};

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::internal::{is_internal, serve};
use super::send::{Refusal, SendError, send};
use super::{DeniedRequest, EgressPolicy};

/// The `wasi:http` hooks of one run: every outbound request of the guest
/// passes through [`WasiHttpHooks::send_request`] here.
pub(crate) struct EgressHooks {
    policy: Arc<EgressPolicy>,
    denied: Arc<Mutex<Vec<DeniedRequest>>>,
}

impl EgressHooks {
    pub(crate) fn new(policy: Arc<EgressPolicy>) -> Self {
        Self {
            policy,
            denied: Arc::default(),
        }
    }

    /// Handle on the list of refused requests, readable after the run.
    pub(crate) fn denied(&self) -> Arc<Mutex<Vec<DeniedRequest>>> {
        self.denied.clone()
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        let policy = self.policy.clone();
        let denied = self.denied.clone();
        Box::new(async move {
            let internal = request.uri().host().is_some_and(is_internal);
            let host = request.uri().host().unwrap_or_default().to_string();
            let https = request.uri().scheme() == Some(&http::uri::Scheme::HTTPS);
            let port = request
                .uri()
                .port_u16()
                .unwrap_or(if https { 443 } else { 80 });
            let (parts, body) = request.into_parts();
            let mut body = Some(body);
            let result = match (internal, policy.host_service()) {
                (true, Some(service)) => serve(service.as_ref(), parts, &mut body)
                    .await
                    .map_err(SendError::Failed),
                (true, None) => Err(SendError::Refused(Refusal::HostNotAllowed(
                    super::INTERNAL_HOST.to_string(),
                ))),
                (false, service) => {
                    let sent = send(&policy, parts, &mut body, options).await;
                    if let (Ok(response), Some(service)) = (&sent, service) {
                        service.response_seen(&host, port, response.status().as_u16());
                    }
                    sent
                }
            };
            // A request that failed before its body went anywhere: the guest
            // writes the body while it waits for the response, and if nobody
            // read it the write would fail first, so the guest (wstd sends
            // both at once) would see "connection reset" instead of the real
            // error. Reading the body to nowhere lets the refusal through.
            if result.is_err()
                && let Some(body) = body.take()
            {
                tokio::spawn(discard(body));
            }
            match result {
                Ok(response) => Ok((response, Box::new(async { Ok(()) }) as IoFuture)),
                Err(SendError::Refused(refusal)) => {
                    // The host may be built from a credential: it goes on
                    // the run's record, which the caller masks, not in logs.
                    let record = refusal.record();
                    tracing::debug!("outbound request denied; recorded on the run");
                    denied
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(record);
                    Err(refusal.error())
                }
                Err(SendError::Failed(err)) => Err(err),
            }
        })
    }
}

/// Reads a body to its end (or its first error) and drops the data. It ends
/// at the latest when the guest's side is dropped with its store.
async fn discard(mut body: WasiBody) {
    use http_body_util::BodyExt;
    while let Some(Ok(_)) = body.frame().await {}
}

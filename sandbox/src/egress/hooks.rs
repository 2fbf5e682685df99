use std::future::Future;
use std::sync::{Arc, Mutex};

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::send::{SendError, send};
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
            match send(&policy, request, options).await {
                Ok(response) => Ok((response, Box::new(async { Ok(()) }) as IoFuture)),
                Err(SendError::Refused(refusal)) => {
                    let record = refusal.record();
                    tracing::warn!(host = %record.host, reason = %record.reason, "outbound request denied");
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

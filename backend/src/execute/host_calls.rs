//! `POST http://roost.internal/v1/integrations/{id}/{method}`: a script's
//! host-mediated integration call. The connectors do the work; this side
//! caps calls per run, records each call on the run (never its input,
//! output or credential) and shapes the answer for the guest.

use std::sync::atomic::Ordering;

use roost_sandbox::HostResponse;
use serde_json::{Value, json};

use super::host_services::{Inner, error};
use crate::connectors::{CallError, CallRequest};
use crate::store::{MethodCallRow, new_id, now_millis};

/// Most host-mediated calls one run may make.
pub(crate) const MAX_CALLS_PER_RUN: u32 = 1_000;

impl Inner {
    pub(super) async fn call_integration(
        &self,
        integration: &str,
        method: &str,
        input: &[u8],
    ) -> HostResponse {
        if self.calls_made.fetch_add(1, Ordering::Relaxed) >= MAX_CALLS_PER_RUN {
            return error(
                429,
                "too_many_calls",
                format!("a run may make at most {MAX_CALLS_PER_RUN} integration calls"),
            );
        }
        let request = CallRequest {
            user_id: &self.user_id,
            declared: &self.integrations,
            integration,
            method,
            input,
        };
        let report = self
            .deps
            .connectors
            .call(&request, self.deps.credentials.as_ref())
            .await;
        // A provider may echo what it was sent; nothing stored or returned
        // carries a credential value.
        let failure = report
            .result
            .as_ref()
            .err()
            .map(|err| self.masker.mask_str(&err.to_string()));
        match &report.result {
            Ok(_) => tracing::info!(
                run_id = %self.run_id, integration, method,
                attempts = report.attempts, duration_ms = report.duration.as_millis() as u64,
                throttled_ms = report.throttled.as_millis() as u64,
                "integration call succeeded"
            ),
            Err(err) => tracing::warn!(
                run_id = %self.run_id, integration, method,
                attempts = report.attempts, code = err.code(),
                error = failure.as_deref().unwrap_or_default(),
                "integration call failed"
            ),
        }
        if report.attempts > 0 {
            self.audit_credential_use(integration).await;
        }
        // Calls to methods that do not exist are not worth a row; every
        // call that reached a real method is recorded.
        if !matches!(
            report.result,
            Err(CallError::UnknownIntegration(_) | CallError::UnknownMethod { .. })
        ) {
            let row = MethodCallRow {
                id: new_id("call"),
                run_id: self.run_id.clone(),
                integration: integration.to_string(),
                method: method.to_string(),
                status: match &report.result {
                    Ok(_) => "ok".to_string(),
                    Err(err) => err.code().to_string(),
                },
                http_status: report.http_status.map(i64::from),
                duration_ms: i64::try_from(report.duration.as_millis()).unwrap_or(i64::MAX),
                attempts: i64::from(report.attempts),
                refreshed: report.refreshed,
                error: failure.clone(),
                created_at: now_millis(),
            };
            if let Err(err) = self.deps.store.insert_method_call(&row).await {
                tracing::error!(run_id = %self.run_id, error = %err, "recording an integration call failed");
            }
        }
        match report.result {
            // A provider that echoes the credential (a "whoami" answer)
            // must not hand a host-only token to the script.
            Ok(output) => HostResponse {
                status: 200,
                content_type: "application/json".into(),
                body: self.masker.mask_str(&output.to_string()).into_bytes(),
            },
            Err(err) => {
                let message = failure.unwrap_or_default();
                if matches!(err, CallError::NotConnected { .. }) {
                    self.note(format!("{integration}: {message}"));
                }
                HostResponse::json(err.status(), &error_body(&err, message))
            }
        }
    }
}

impl Inner {
    /// The first request a run sends with an integration's credential is
    /// an audited read, as the env vars of a run are.
    async fn audit_credential_use(&self, integration: &str) {
        let first = self
            .audited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(integration.to_string());
        if first {
            crate::audit::record(
                self.deps.store.as_ref(),
                &[crate::audit::entry(
                    &self.user_id,
                    crate::audit::action::READ_FOR_RUN,
                    Some(integration),
                    Some(&self.run_id),
                    Some("for host-side calls".into()),
                )],
            )
            .await;
        }
    }
}

/// `{"error": {code, message, field?, providerCode?, retryAfter?}}`.
fn error_body(err: &CallError, message: String) -> Value {
    let mut body = json!({ "code": err.code(), "message": message });
    if let Some(field) = err.field() {
        body["field"] = Value::String(field.to_string());
    }
    if let CallError::Provider {
        code, retry_after, ..
    } = err
    {
        if let Some(code) = code {
            body["providerCode"] = Value::String(code.clone());
        }
        if let Some(seconds) = retry_after {
            body["retryAfter"] = json!(seconds);
        }
    }
    json!({ "error": body })
}

//! `POST http://roost.internal/v1/credentials/{id}/refused`: a script's
//! direct call to a provider (through the SDK, with the credential from its
//! env) was answered 401. roost checks that it saw that 401 itself, then
//! renews the credential once (an OAuth refresh) and hands the script the
//! new value, or marks the credential for the user to reconnect or replace
//! and answers with the setup URL, which the run's error then carries.

use std::collections::BTreeMap;
use std::sync::Arc;

use roost_sandbox::{EgressPolicy, HostResponse};
use serde_json::json;

use super::host_services::{Inner, error};
use crate::connectors::{CallError, HostCredential};
use crate::registry::{IntegrationDefinition, Placement};

/// A credential a run was given in its env, as the host knows it: what
/// lets it check and renew a refusal the script reports.
#[derive(Debug)]
pub(crate) struct Given {
    /// The integration.
    pub(crate) definition: Arc<IntegrationDefinition>,
    /// The values the run got, each with the placement it is sent with.
    pub(crate) values: HostCredential,
    /// The env var of each of those placements.
    pub(crate) env_vars: Vec<(Placement, String)>,
    /// The hosts the integration's requests go to.
    pub(crate) hosts: EgressPolicy,
}

/// Per integration, the credential the run was given.
pub(crate) type GivenCredentials = BTreeMap<String, Given>;

impl Inner {
    /// Records a provider's 401, as the sandbox saw it.
    pub(super) fn note_response(&self, host: &str, port: u16, status: u16) {
        if status == 401 {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            self.refused_hosts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((host.to_ascii_lowercase(), port));
        }
    }

    pub(super) async fn credential_refused(&self, integration: &str) -> HostResponse {
        if !self.integrations.iter().any(|id| id == integration) {
            return error(
                403,
                "integration_not_declared",
                format!("this script does not declare `{integration}`"),
            );
        }
        let Some(given) = self.given.get(integration) else {
            return error(
                404,
                "no_credential",
                format!("this run was given no `{integration}` credential to report"),
            );
        };
        let seen = self
            .refused_hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(host, port)| given.hosts.allows(host, Some(*port)));
        if !seen {
            return error(
                409,
                "no_refusal_seen",
                format!("no `{integration}` host answered this run with 401"),
            );
        }
        // One report per integration and run: a renewal is tried once, and
        // a script cannot flood the store and the audit trail with marks.
        let first = self
            .reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(integration.to_string());
        if !first {
            return error(
                409,
                "already_reported",
                format!("this run already reported `{integration}` refused"),
            );
        }
        match self
            .deps
            .credentials
            .credential_refused(&self.user_id, &given.definition, &given.values)
            .await
        {
            Ok(renewed) => {
                // The new value is a secret of this run from now on.
                self.masker
                    .add(renewed.parts.iter().map(|(_, value)| value.as_str()));
                let env: serde_json::Map<String, serde_json::Value> = given
                    .env_vars
                    .iter()
                    .filter_map(|(placement, var)| {
                        let (_, value) = renewed.parts.iter().find(|(p, _)| p == placement)?;
                        Some((var.clone(), json!(value)))
                    })
                    .collect();
                tracing::info!(run_id = %self.run_id, integration, "a refused credential was renewed for the run");
                HostResponse::json(200, &json!({ "env": env }))
            }
            Err(err) => {
                let message = self.masker.mask_str(&err.to_string());
                if matches!(err, CallError::NotConnected { .. }) {
                    self.note(format!("{integration}: {message}"));
                }
                error(err.status(), err.code(), message)
            }
        }
    }
}

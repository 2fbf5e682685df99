//! The provider request as it goes out (base URL, query, headers, the
//! credential in its placement, JSON body) and a refusal as it comes back.

use serde_json::Value;

use super::credentials::HostCredential;
use super::error::CallError;
use super::mapping::{ProviderRequest, ProviderResponse};
use super::transport::{OutgoingRequest, retry_after};
use crate::registry::{IntegrationDefinition, PlacementLocation};

/// `https://{host}` from a credential placed `in: host` (Shopify's shop
/// domain), for an integration the server has no base URL for. The user
/// chose the host, so it must be one of the definition's outbound hosts.
pub(super) fn host_base(
    definition: &IntegrationDefinition,
    credential: Option<&HostCredential>,
) -> Result<String, CallError> {
    let id = &definition.integration_id;
    let Some((_, host)) = credential
        .iter()
        .flat_map(|c| c.parts.iter())
        .find(|(placement, _)| placement.location == PlacementLocation::Host)
    else {
        return Err(CallError::NotConfigured(format!(
            "`{id}` has no base URL on this server; the operator sets integration_config.{id}.baseUrl"
        )));
    };
    let host = host.trim().trim_end_matches('/').to_ascii_lowercase();
    let is_name = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let allowed =
        roost_sandbox::EgressPolicy::allow_hosts(definition.outbound_hosts.iter().cloned())
            .host_allowed(&host);
    if !(is_name && allowed) {
        return Err(CallError::NotConfigured(format!(
            "the stored host of `{id}` is not one of {}; store the account's host (as \
             my-store.myshopify.com) again",
            definition.outbound_hosts.join(", ")
        )));
    }
    Ok(format!("https://{host}"))
}

/// The full request: base URL, path, query, headers, JSON body, and the
/// credential in the placement its definition names.
pub(super) fn outgoing(
    base: &str,
    request: &ProviderRequest,
    credential: Option<&HostCredential>,
) -> Result<OutgoingRequest, CallError> {
    let mut url = reqwest::Url::parse(&format!("{}{}", base.trim_end_matches('/'), request.path))
        .map_err(|e| {
        CallError::NotConfigured(format!("the base URL does not form a URL: {e}"))
    })?;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    for (name, value) in &request.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| CallError::Internal(format!("header `{name}`: {e}")))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|e| CallError::Internal(format!("header `{name}`: {e}")))?;
        headers.insert(name, value);
    }
    {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &request.query {
            pairs.append_pair(name, value);
        }
        for (placement, value) in credential.iter().flat_map(|c| c.parts.iter()) {
            if placement.location == PlacementLocation::Query {
                let prefix = placement.prefix.as_deref().unwrap_or("");
                pairs.append_pair(&placement.name, &format!("{prefix}{value}"));
            }
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    for (placement, value) in credential.iter().flat_map(|c| c.parts.iter()) {
        if placement.location == PlacementLocation::Header {
            let prefix = placement.prefix.as_deref().unwrap_or("");
            let name = http::HeaderName::from_bytes(placement.name.as_bytes()).map_err(|e| {
                CallError::Internal(format!("credential header `{}`: {e}", placement.name))
            })?;
            // The value itself stays out of the error.
            let mut value =
                http::HeaderValue::from_str(&format!("{prefix}{value}")).map_err(|_| {
                    CallError::Internal(format!(
                        "the stored credential for `{}` is not a valid header value",
                        placement.name
                    ))
                })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
    }
    let body = match &request.body {
        Some(body) => {
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json; charset=utf-8"),
            );
            Some(serde_json::to_vec(body).expect("JSON values serialise"))
        }
        None => None,
    };
    Ok(OutgoingRequest {
        method: request.method.clone(),
        url,
        headers,
        body,
        idempotent: request.idempotent,
    })
}

/// A non-2xx answer as a [`CallError::Provider`], with the provider's own
/// explanation when its body has one.
pub(super) fn provider_error(response: &ProviderResponse) -> CallError {
    let json: Option<Value> = serde_json::from_slice(&response.body).ok();
    let found = json.as_ref().and_then(|json| {
        json["error"]["message"]
            .as_str()
            .or_else(|| json["error_description"].as_str())
            .or_else(|| json["error"].as_str())
            .or_else(|| json["errors"][0]["message"].as_str())
            .or_else(|| json["message"].as_str())
            .map(str::to_string)
    });
    let code = json.as_ref().and_then(|json| {
        json["error"]["status"]
            .as_str()
            .or_else(|| json["code"].as_str())
            .or_else(|| json["error"].as_str())
            .map(str::to_string)
    });
    let message = found.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&response.body);
        let text = text.trim();
        if text.is_empty() {
            "no details".to_string()
        } else {
            text.chars().take(300).collect()
        }
    });
    CallError::Provider {
        status: response.status,
        code,
        message,
        retry_after: retry_after(&response.headers).map(|d| d.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Placement, Registry};

    fn shop(domain: &str) -> HostCredential {
        let placement = |location, name: &str| Placement {
            location,
            name: name.into(),
            prefix: None,
        };
        HostCredential {
            parts: vec![
                (
                    placement(PlacementLocation::Header, "X-Shopify-Access-Token"),
                    "shpat_x".into(),
                ),
                (
                    placement(PlacementLocation::Host, "shop_domain"),
                    domain.into(),
                ),
            ],
        }
    }

    /// The shop's own host, and nothing the user could point elsewhere.
    #[test]
    fn a_stored_host_must_be_one_of_the_outbound_hosts() {
        let registry = Registry::load(None).unwrap();
        let shopify = registry.get("shopify").unwrap();
        assert_eq!(
            host_base(shopify, Some(&shop("My-Store.myshopify.com"))).unwrap(),
            "https://my-store.myshopify.com"
        );
        for bad in [
            "evil.example",
            "myshopify.com",
            "evilmyshopify.com",
            "a.myshopify.com@evil.example",
            "a.myshopify.com/path",
            "127.0.0.1",
            "",
        ] {
            let err = host_base(shopify, Some(&shop(bad))).unwrap_err();
            assert!(
                err.to_string().contains("is not one of *.myshopify.com"),
                "{bad}: {err}"
            );
        }
        // Without a host credential the server's base URL is the only one.
        let gmail = registry.get("gmail").unwrap();
        let err = host_base(gmail, None).unwrap_err().to_string();
        assert!(err.contains("integration_config.gmail.baseUrl"), "{err}");
    }
}

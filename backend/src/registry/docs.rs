//! Markdown docs rendered from the definitions, for people and for LLM
//! agents writing scripts (list, one integration, several at once).

use std::fmt::Write;

use super::{AuthType, IntegrationDefinition};

/// A one-line-per-integration index.
pub fn render_index<'a>(definitions: impl Iterator<Item = &'a IntegrationDefinition>) -> String {
    let mut out =
        String::from("# Integrations\n\n| id | name | auth | description |\n|---|---|---|---|\n");
    for d in definitions {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            d.integration_id,
            d.name,
            auth_label(d.auth_type),
            one_line(&d.description)
        );
    }
    out
}

/// Full docs of one integration: auth, env vars, methods with their
/// parameters, and an example script.
pub fn render_docs(d: &IntegrationDefinition) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {} (`{}`) v{}\n\n{}\n",
        d.name, d.integration_id, d.version, d.description
    );
    let _ = writeln!(out, "## Authentication\n\n{}", auth_label(d.auth_type));
    if let Some(oauth) = &d.oauth2_config {
        let scopes = if oauth.scopes.is_empty() {
            "none".to_string()
        } else {
            oauth.scopes.join(", ")
        };
        let _ = writeln!(out, "\nOAuth 2.0 scopes: {scopes}");
    }
    if d.credentials.is_empty() {
        out.push_str("\nNothing to connect.\n");
    } else {
        out.push_str(
            "\n| credential | type | environment variable | required |\n|---|---|---|---|\n",
        );
        for spec in &d.credentials {
            let _ = writeln!(
                out,
                "| `{}` | {:?} | `{}` | {} |",
                spec.key,
                spec.kind,
                spec.env_var,
                if spec.required { "yes" } else { "no" }
            );
            if let (Some(key), Some(env)) = (&spec.refresh_key, &spec.refresh_env_var) {
                let _ = writeln!(out, "| `{key}` | refresh token | `{env}` | no |");
            }
        }
        out.push_str("\nroost injects these variables into every run of a script that declares this integration. \
                      A deploy of such a script is refused with a setup URL until they are connected.\n");
    }
    if !d.outbound_hosts.is_empty() {
        let hosts: Vec<String> = d.outbound_hosts.iter().map(|h| format!("`{h}`")).collect();
        let _ = writeln!(out, "\nScripts using it may call: {}.", hosts.join(", "));
    }
    if let Some(limits) = &d.rate_limits {
        let _ = writeln!(
            out,
            "Rate limit: about {} requests/second, bursts of {}.",
            limits.requests_per_second, limits.burst
        );
    }
    if !d.methods.is_empty() {
        out.push_str("\n## Methods\n");
        for method in &d.methods {
            let _ = writeln!(
                out,
                "\n### `{}` — {}\n\n{}\n",
                method.id, method.name, method.description
            );
            if let Some(http) = &method.http {
                let _ = writeln!(out, "`{} {}`\n", http.method, http.path);
            }
            render_params(&mut out, "Parameters", &method.input_schema);
            render_params(&mut out, "Returns", &method.output_schema);
        }
    }
    if let Some(webhooks) = &d.webhooks {
        render_webhooks(&mut out, d, webhooks);
    }
    let _ = writeln!(
        out,
        "\n## Example\n\n```rust\n{}```\n\nProvider docs: {}",
        example(d),
        d.docs_url
    );
    out
}

fn render_webhooks(out: &mut String, d: &IntegrationDefinition, webhooks: &super::WebhookDef) {
    let id = &d.integration_id;
    let example = webhooks
        .test_vectors
        .iter()
        .find_map(|v| v.event_type.clone())
        .unwrap_or_else(|| format!("{id}.<type>"));
    let secret = match &webhooks.secret {
        super::SecretSource::Credential { key } => format!("the user's `{key}` credential"),
        super::SecretSource::Server => "the server's app secret".into(),
    };
    let _ = writeln!(
        out,
        "\n## Webhook events\n\n{} sends its events to `POST /webhooks/{id}/{{user_id}}`; roost \
         verifies each delivery (HMAC-SHA256 in `{}`, with {secret}) and turns it into an event of type \
         `{id}.<type>` (the type from the {}), for example `{example}`: a script takes it with \
         `#[on_event(\"{example}\")]`. A delivery the provider retries runs once.",
        d.name, webhooks.signature.header, webhooks.event_type.from,
    );
    if webhooks.subscriptions.is_some() {
        out.push_str(
            "\nroost registers the subscriptions the user's deployed scripts need at the provider \
             once the user is connected, and removes them when no script takes those events.\n",
        );
    }
}

fn render_params(out: &mut String, title: &str, schema: &serde_json::Value) {
    let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) else {
        return;
    };
    if properties.is_empty() {
        return;
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "{title}:\n");
    for (name, property) in properties {
        let kind = property
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("any");
        let description = property
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or("");
        let marker = if required.contains(&name.as_str()) {
            ", required"
        } else {
            ""
        };
        let _ = writeln!(out, "- `{name}` ({kind}{marker}) {}", one_line(description));
    }
    out.push('\n');
}

fn example(d: &IntegrationDefinition) -> String {
    let mut code = String::from("use roost_sdk::{Invocation, handler};\n\n");
    let _ = writeln!(
        code,
        "roost_sdk::uses_integrations!(\"{}\");\n",
        d.integration_id
    );
    code.push_str("#[handler]\nfn run(invocation: &Invocation) -> roost_sdk::Result {\n");
    for spec in d.required_keys() {
        let _ = writeln!(
            code,
            "    let {} = std::env::var(\"{}\")?;",
            spec.key, spec.env_var
        );
    }
    if let (Some(host), Some(method)) = (
        d.outbound_hosts.first(),
        d.methods.iter().find_map(|m| m.http.as_ref()),
    ) {
        let _ = writeln!(
            code,
            "    // {} https://{}{}",
            method.method,
            host.trim_start_matches("*."),
            method.path
        );
    }
    code.push_str("    println!(\"payload: {}\", invocation.payload);\n    Ok(())\n}\n\nroost_sdk::main!(run);\n");
    code
}

fn auth_label(auth: AuthType) -> &'static str {
    match auth {
        AuthType::Oauth2 => "OAuth 2.0 (connect through the setup URL)",
        AuthType::Apikey => {
            "API key or token (paste it on the setup page or `PUT /v1/credentials/{id}`)"
        }
        AuthType::Custom => "custom credentials",
        AuthType::None => "none",
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

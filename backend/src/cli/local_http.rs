//! `roost run --request "METHOD /path?query"`: an HTTP handler tried
//! locally. The request goes to the handler whose method and path match
//! (as the server would route it), and the response it gives is printed:
//! status and headers on stderr, the body on stdout.

use std::io::Write as _;

use anyhow::{Context, bail};
use roost_sandbox::{Trigger, metadata};

use crate::store::HttpReply;
use crate::triggers::http::{IncomingRequest, invoked, payload};

/// A request as given on the command line.
pub(super) struct LocalRequest {
    /// The handler that answers it.
    pub(super) handler: String,
    /// Its trigger, as a run of it sees it.
    pub(super) trigger: Trigger,
    /// The run's payload: the request as the SDK reads it.
    pub(super) payload: serde_json::Value,
}

/// The request `line` (`POST /orders?x=1`) with `headers` (`name: value`)
/// and `body`, routed to the handler of `component` that answers it.
pub(super) fn request(
    component: &[u8],
    line: &str,
    headers: &[String],
    body: Vec<u8>,
) -> anyhow::Result<LocalRequest> {
    let Some((method, target)) = line.trim().split_once(' ') else {
        bail!("--request takes `METHOD /path`, such as `POST /orders?id=1`, not `{line}`");
    };
    let method = method.to_ascii_uppercase();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let declared = metadata::read(component)
        .context("reading the script's metadata")?
        .unwrap_or_default();
    let mut routes = Vec::new();
    let mut found = None;
    for handler in &declared.handlers {
        if let Trigger::Http(http) = &handler.trigger {
            routes.push(format!("{} {}", http.method, http.path));
            let method_matches =
                http.method == method || (method == "HEAD" && http.method == "GET");
            if http.path == path && method_matches {
                found = Some((handler.name.clone(), http.access));
            }
        }
    }
    let Some((handler, access)) = found else {
        bail!(
            "no HTTP handler of this script answers {method} {path}; it answers: {}",
            if routes.is_empty() {
                "none".to_string()
            } else {
                routes.join(", ")
            }
        );
    };
    let mut parsed = Vec::new();
    for header in headers {
        let Some((name, value)) = header.split_once(':') else {
            bail!("--header takes `name: value`, not `{header}`");
        };
        parsed.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let incoming = IncomingRequest {
        token: String::new(),
        method: method.clone(),
        path: path.to_string(),
        query: query.to_string(),
        headers: parsed,
        body,
    };
    Ok(LocalRequest {
        handler,
        trigger: Trigger::Http(invoked(&format!("{method} {path}"))),
        payload: payload(&incoming, access),
    })
}

/// Prints the handler's response, or says it gave none.
pub(super) fn print(reply: Option<HttpReply>) -> anyhow::Result<()> {
    let Some(reply) = reply else {
        eprintln!("roost: the handler gave no HTTP response");
        return Ok(());
    };
    eprintln!("roost: HTTP {}", reply.status);
    for (name, value) in &reply.headers {
        eprintln!("roost:   {name}: {value}");
    }
    std::io::stdout().write_all(&reply.body)?;
    Ok(())
}

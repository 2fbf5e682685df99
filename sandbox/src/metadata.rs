//! The script metadata the guest SDK embeds in a component, read without
//! running it.
//!
//! Wire format (written by `roost-sdk`'s macros, one record per declaration):
//! a custom section named [`SECTION_NAME`] whose content is a sequence of
//! JSON objects, each terminated by `\n`. The linker concatenates sections of
//! the same name, so every handler and integration declaration contributes
//! its own record. Records are one of:
//!
//! ```text
//! {"sdk":"0.1.0"}
//! {"handler":"digest","trigger":{"kind":"schedule","cron":"0 0 8 * * *"}}
//! {"handler":"on_order","trigger":{"kind":"event","name":"order.created"}}
//! {"handler":"orders","trigger":{"kind":"http","method":"POST","path":"/orders","access":"public"}}
//! {"handler":"forecast","trigger":{"kind":"mcp","description":"The weather for a city"}}
//! {"integration":"gmail"}
//! {"refresh_token":"gmail"}
//! ```
//!
//! Unknown record kinds are ignored so older hosts can read newer guests.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{SandboxError, Trigger};

/// Name of the custom section holding roost metadata.
pub const SECTION_NAME: &str = "roost-metadata";

/// One handler the script exposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerMeta {
    /// Function name, used to select the handler at run time.
    pub name: String,
    /// What starts it.
    pub trigger: Trigger,
    /// How the queue paces its runs, when declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowControl>,
}

/// How the queue paces a handler's runs, by a key read from each run's
/// payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowControl {
    /// A burst of runs for one key value becomes one run, with the last
    /// payload, once the burst has been quiet for the period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<Debounce>,
    /// At most `limit` runs per key value start in any `period_ms`; the
    /// others wait their turn (or, with `drop`, are not queued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// At most `limit` runs per key value run at once; the others wait,
    /// in the order they were queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
}

/// See [`FlowControl::concurrency`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// A path into the payload (`customer.id`; empty: one key for all).
    pub key: String,
    /// Runs of one key value at once.
    pub limit: u32,
}

/// See [`FlowControl::throttle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// A path into the payload (`tenant`; empty: one key for all).
    pub key: String,
    /// Runs per period.
    pub limit: u32,
    /// The period, in milliseconds.
    pub period_ms: u64,
    /// Drop a run that would have to wait, rather than queue it.
    #[serde(default)]
    pub drop: bool,
}

/// See [`FlowControl::debounce`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Debounce {
    /// A path into the payload (`customer.id`; empty: one key for all).
    pub key: String,
    /// The quiet period, in milliseconds.
    pub period_ms: u64,
}

/// Everything a script declares about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptMetadata {
    /// Version of the SDK that built the script.
    pub sdk_version: Option<String>,
    /// Handlers, sorted by name (the linker does not keep declaration order).
    pub handlers: Vec<HandlerMeta>,
    /// Integrations the script uses, sorted and without duplicates.
    pub integrations: Vec<String>,
    /// Integrations whose OAuth refresh token the script asks to be given
    /// (roost refreshes on the host, so scripts rarely need it), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refresh_tokens: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Record {
    Sdk {
        sdk: String,
    },
    Handler {
        handler: String,
        trigger: Trigger,
        #[serde(default)]
        flow: Option<FlowControl>,
    },
    Integration {
        integration: String,
    },
    RefreshToken {
        refresh_token: String,
    },
    Other(serde::de::IgnoredAny),
}

/// Reads the metadata embedded in a component or module, wherever it sits in
/// the nesting (the SDK's records end up inside the component's core module).
/// Returns `Ok(None)` when the binary carries no roost metadata at all.
pub fn read(wasm: &[u8]) -> Result<Option<ScriptMetadata>, SandboxError> {
    crate::GuestKind::detect(wasm)?;
    let mut content = Vec::new();
    let mut found = false;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|err| SandboxError::InvalidGuest {
            reason: format!("cannot parse WebAssembly: {err}"),
        })?;
        if let wasmparser::Payload::CustomSection(section) = payload
            && section.name() == SECTION_NAME
        {
            found = true;
            content.extend_from_slice(section.data());
        }
    }
    if !found {
        return Ok(None);
    }
    parse_records(&content).map(Some)
}

/// Parses the concatenated records of the metadata section.
pub fn parse_records(content: &[u8]) -> Result<ScriptMetadata, SandboxError> {
    let text = std::str::from_utf8(content)
        .map_err(|_| SandboxError::Metadata("the section is not UTF-8".into()))?;
    let mut meta = ScriptMetadata::default();
    let mut integrations = BTreeSet::new();
    let mut refresh_tokens = BTreeSet::new();
    for line in text
        .split('\n')
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        let record: Record = serde_json::from_str(line)
            .map_err(|err| SandboxError::Metadata(format!("bad record {line:?}: {err}")))?;
        match record {
            Record::Sdk { sdk } => meta.sdk_version = Some(sdk),
            Record::Handler {
                handler,
                trigger,
                flow,
            } => {
                if meta.handlers.iter().any(|h| h.name == handler) {
                    return Err(SandboxError::Metadata(format!(
                        "handler `{handler}` is declared twice"
                    )));
                }
                meta.handlers.push(HandlerMeta {
                    name: handler,
                    trigger,
                    flow,
                });
            }
            Record::Integration { integration } => {
                integrations.insert(integration);
            }
            Record::RefreshToken { refresh_token } => {
                refresh_tokens.insert(refresh_token);
            }
            Record::Other(_) => {}
        }
    }
    if let Some(stray) = refresh_tokens.difference(&integrations).next() {
        return Err(SandboxError::Metadata(format!(
            "the refresh token of `{stray}` is asked for, but the script does not use `{stray}`"
        )));
    }
    meta.integrations = integrations.into_iter().collect();
    meta.refresh_tokens = refresh_tokens.into_iter().collect();
    meta.handlers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_concatenated_records() {
        let content = concat!(
            "{\"sdk\":\"0.1.0\"}\n",
            "{\"handler\":\"tick\",\"trigger\":{\"kind\":\"schedule\",\"cron\":\"0 * * * * *\"}}\n",
            "{\"integration\":\"slack\"}\n{\"integration\":\"gmail\"}\n{\"integration\":\"slack\"}\n",
            "{\"refresh_token\":\"gmail\"}\n",
            "{\"future\":\"record\"}\n",
        );
        let meta = parse_records(content.as_bytes()).unwrap();
        assert_eq!(meta.sdk_version.as_deref(), Some("0.1.0"));
        assert_eq!(meta.integrations, ["gmail", "slack"]);
        assert_eq!(meta.refresh_tokens, ["gmail"]);
        let stray = parse_records(b"{\"integration\":\"slack\"}\n{\"refresh_token\":\"gmail\"}\n");
        assert!(stray.is_err(), "a refresh token of an integration not used");
        assert_eq!(
            meta.handlers[0].trigger,
            Trigger::Schedule {
                cron: "0 * * * * *".into(),
                timezone: None
            }
        );
    }

    #[test]
    fn rejects_duplicate_handlers_and_garbage() {
        let twice = "{\"handler\":\"a\",\"trigger\":{\"kind\":\"manual\"}}\n".repeat(2);
        assert!(parse_records(twice.as_bytes()).is_err());
        assert!(parse_records(b"{not json}\n").is_err());
    }
}

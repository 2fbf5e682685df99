//! The integration docs as MCP resources, in Wren's three loading modes:
//! the index (`roost://integrations`), one integration's docs
//! (`roost://integrations/gmail`) and several at once
//! (`roost://integrations/gmail,slack`).

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use serde_json::json;

use crate::http::AppState;
use crate::registry::{render_docs, render_index};

const INDEX_URI: &str = "roost://integrations";
const MARKDOWN: &str = "text/markdown";

/// The index and each integration's docs.
pub(super) fn list(state: &AppState) -> Vec<Resource> {
    let mut resources = vec![
        Resource::new(INDEX_URI, "integrations")
            .with_title("Integrations")
            .with_description("Every integration a script can use, one line each.")
            .with_mime_type(MARKDOWN),
    ];
    resources.extend(state.registry.all().map(|d| {
        Resource::new(
            format!("{INDEX_URI}/{}", d.integration_id),
            &d.integration_id,
        )
        .with_title(format!("{} docs", d.name))
        .with_description(d.description.clone())
        .with_mime_type(MARKDOWN)
    }));
    resources
}

/// Docs of any set of integrations, by id.
pub(super) fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{INDEX_URI}/{{ids}}"), "integration-docs")
            .with_title("Integration docs")
            .with_description(
                "The docs of one integration (`gmail`) or of several, comma-separated \
                 (`gmail,slack`), as one markdown document.",
            )
            .with_mime_type(MARKDOWN),
    ]
}

/// The docs `uri` names.
pub(super) fn read(state: &AppState, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let registry = &state.registry;
    let text = if uri == INDEX_URI {
        render_index(registry.all().map(|d| d.as_ref()))
    } else {
        let ids = uri
            .strip_prefix(INDEX_URI)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|ids| !ids.is_empty())
            .ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!(
                        "no resource `{uri}`; roost serves {INDEX_URI} and {INDEX_URI}/{{ids}}"
                    ),
                    None,
                )
            })?;
        let mut docs = Vec::new();
        for id in ids.split(',').map(str::trim) {
            let definition = registry.get(id).ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!("no integration `{id}`"),
                    Some(json!({ "code": "unknown_integration", "known": registry.ids() })),
                )
            })?;
            docs.push(render_docs(definition));
        }
        docs.join("\n---\n\n")
    };
    Ok(ReadResourceResult::new(vec![
        ResourceContents::TextResourceContents {
            uri: uri.to_string(),
            mime_type: Some(MARKDOWN.into()),
            text,
            meta: None,
        },
    ]))
}

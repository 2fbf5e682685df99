//! `roost integration new NAME --auth oauth2|apikey|none`: a starting point
//! for a new integration, complete enough to build, pass its tests and load
//! into a server as generated:
//!
//! - `NAME.json`: the definition, with two methods (`get_item`,
//!   `create_item`) mapped declaratively to a REST API, for the author to
//!   point at the real one;
//! - `Cargo.toml` and `src/lib.rs`: a typed SDK client whose methods are
//!   host-mediated calls (`roost_sdk::integrations`);
//! - `tests/definition.rs`: holds the client against the definition.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::registry::Registry;

/// How the scaffolded integration authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum ScaffoldAuth {
    /// OAuth 2.0 (access and refresh token).
    Oauth2,
    /// An API key the user pastes.
    Apikey,
    /// Nothing to connect.
    None,
}

/// What `roost integration new` was asked for.
pub(super) struct ScaffoldRequest {
    pub(super) id: String,
    pub(super) auth: ScaffoldAuth,
    pub(super) host_only: bool,
    pub(super) dir: PathBuf,
    pub(super) sdk_path: Option<PathBuf>,
}

/// Writes the scaffold into `dir/<id>/` and checks the definition as the
/// server would. Returns the folder.
pub(super) fn scaffold(request: &ScaffoldRequest) -> anyhow::Result<PathBuf> {
    let id = &request.id;
    let valid = id.len() <= 40
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        bail!(
            "`{id}` is not an integration id: lower-case letters, digits and `-`, starting with a letter"
        );
    }
    if Registry::load(None)?.get(id).is_some() {
        bail!("`{id}` is a built-in integration; choose another name");
    }
    let root = request.dir.join(id);
    if root.exists() {
        bail!(
            "{} already exists; roost does not overwrite it",
            root.display()
        );
    }
    let sdk = match &request.sdk_path {
        Some(path) => path.clone(),
        None => default_sdk_path().context(
            "the roost SDK was not found next to this roost binary's sources; pass --sdk-path",
        )?,
    };
    let sdk = std::fs::canonicalize(&sdk)
        .with_context(|| format!("the SDK path {} does not exist", sdk.display()))?;
    let names = Names::new(id, &sdk);

    let definition = definition(id, &names.title, request.auth, request.host_only);
    let files = [
        (
            format!("{id}.json"),
            serde_json::to_string_pretty(&definition)? + "\n",
        ),
        (
            "Cargo.toml".to_string(),
            names.fill(include_str!("scaffold/Cargo.toml.tmpl")),
        ),
        (
            "src/lib.rs".to_string(),
            names.fill(include_str!("scaffold/lib.rs.tmpl")),
        ),
        (
            "tests/definition.rs".to_string(),
            names.fill(include_str!("scaffold/definition_test.rs.tmpl")),
        ),
    ];
    for (path, text) in &files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("files are inside the folder"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Registry::check_file(&root.join(format!("{id}.json")))
        .context("the generated definition does not validate (a roost bug)")?;
    Ok(root)
}

/// The SDK of the sources this binary was built from, when they are still
/// there.
fn default_sdk_path() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk-guest");
    path.join("Cargo.toml").exists().then_some(path)
}

/// The id in the spellings the templates need.
struct Names {
    id: String,
    snake: String,
    type_name: String,
    title: String,
    sdk: String,
}

impl Names {
    fn new(id: &str, sdk: &Path) -> Self {
        let words: Vec<String> = id
            .split('-')
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut chars = w.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        Self {
            id: id.to_string(),
            snake: id.replace('-', "_"),
            type_name: words.concat(),
            title: words.join(" "),
            sdk: format!("path = {}", toml_string(&sdk.display().to_string())),
        }
    }

    fn fill(&self, template: &str) -> String {
        template
            .replace("__ID__", &self.id)
            .replace("__SNAKE__", &self.snake)
            .replace("__TYPE__", &self.type_name)
            .replace("__NAME__", &self.title)
            .replace("__SDK__", &self.sdk)
    }
}

fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The generated definition: a REST API at `https://api.<id>.example`.
fn definition(id: &str, title: &str, auth: ScaffoldAuth, host_only: bool) -> Value {
    let env = id.to_ascii_uppercase().replace('-', "_");
    let host = format!("api.{id}.example");
    let item = json!({
        "type": "object",
        "properties": {
            "id": { "type": "string", "description": "Item id" },
            "name": { "type": "string", "description": "Item name" },
            "description": { "type": "string", "description": "Free text" }
        },
        "required": ["id", "name"]
    });
    let mut definition = json!({
        "integrationId": id,
        "name": title,
        "description": format!("{title}'s items API. Generated by roost integration new: point baseUrl, the paths and the schemas at the real API."),
        "version": "0.1.0",
        "authType": "none",
        "credentials": [],
        "setupUrlTemplate": format!("{{base_url}}/integrations/{id}/setup?user={{user_id}}"),
        "docsUrl": format!("https://{host}/docs"),
        "outboundHosts": [host],
        "rateLimits": { "requestsPerSecond": 5, "burst": 10 },
        "configSchema": {
            "type": "object",
            "properties": {
                "baseUrl": {
                    "type": "string",
                    "format": "uri",
                    "description": "Override the API base URL (tests, proxies)",
                    "default": format!("https://{host}")
                }
            },
            "additionalProperties": false
        },
        "methods": [
            {
                "id": "get_item",
                "name": "Get item",
                "description": "Fetch one item by id.",
                "inputSchema": {
                    "type": "object",
                    "properties": { "id": { "type": "string", "minLength": 1, "description": "Item id" } },
                    "required": ["id"],
                    "additionalProperties": false
                },
                "outputSchema": item,
                "http": { "method": "GET", "path": "/v1/items/{id}" }
            },
            {
                "id": "create_item",
                "name": "Create item",
                "description": "Create an item.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string", "minLength": 1, "description": "Item name" },
                        "description": { "type": "string", "description": "Free text" }
                    },
                    "required": ["name"],
                    "additionalProperties": false
                },
                "outputSchema": item,
                "http": { "method": "POST", "path": "/v1/items" }
            }
        ]
    });
    match auth {
        ScaffoldAuth::None => {}
        ScaffoldAuth::Apikey => {
            definition["authType"] = json!("apikey");
            definition["credentials"] = json!([{
                "key": "api_key",
                "type": "api_key",
                "description": format!("{title} API key"),
                "envVar": format!("{env}_API_KEY"),
                "required": true,
                "placement": { "in": "header", "name": "Authorization", "prefix": "Bearer " }
            }]);
        }
        ScaffoldAuth::Oauth2 => {
            definition["authType"] = json!("oauth2");
            definition["oauth2Config"] = json!({
                "authorizationUrl": format!("https://{host}/oauth/authorize"),
                "tokenUrl": format!("https://{host}/oauth/token"),
                "scopes": ["items:read", "items:write"]
            });
            definition["credentials"] = json!([{
                "key": "access_token",
                "type": "oauth2",
                "description": format!("{title} OAuth access token"),
                "envVar": format!("{env}_ACCESS_TOKEN"),
                "required": true,
                "refreshKey": "refresh_token",
                "refreshEnvVar": format!("{env}_REFRESH_TOKEN"),
                "scopes": ["items:read", "items:write"],
                "placement": { "in": "header", "name": "Authorization", "prefix": "Bearer " }
            }]);
        }
    }
    if host_only && auth != ScaffoldAuth::None {
        definition["credentialDelivery"] = json!("host");
    }
    definition
}

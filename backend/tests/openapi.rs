//! `GET /v1/openapi.json` against the routes the server really has: every
//! documented operation answers (neither the fallback's 404 nor a 405),
//! with the access it documents; a documented path refuses the methods it
//! does not document; and every route registered with plain axum in
//! backend/src is documented or named below as left out on purpose
//! (docs/openapi.md). Then a validator nobody here wrote reads the document.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::Value;
use support::{Backend, TestApp};

/// Routes outside the document on purpose, by the file registering them,
/// with why. Everything under src/web/ is the dashboard's pages.
const LEFT_OUT: &[(&str, &str, &str)] = &[
    (
        "src/http/setup.rs",
        "/integrations/{id}/setup",
        "a browser page",
    ),
    ("src/http/setup.rs", "/oauth/callback", "a browser page"),
    (
        "src/mcp/mod.rs",
        "/mcp",
        "MCP's JSON-RPC, whose methods and tools list themselves",
    ),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(format!("{}/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the document needs no token");
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.unwrap()
}

/// `path` with each `{parameter}` filled in (keys and rests with a `/`).
fn concrete(path: &str) -> String {
    path.replace("{key}", "some/key")
        .replace("{path}", "some/path")
        .split('/')
        .map(|part| if part.starts_with('{') { "x" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

/// A request with no token; its status and JSON body (`Null` if not JSON).
async fn call(app: &TestApp, method: &str, path: &str) -> (u16, Value) {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let url = format!("{}{}", app.base, concrete(path));
    let mut request = app.client.request(method.clone(), url);
    if method != Method::GET && method != Method::DELETE {
        request = request.json(&serde_json::json!({}));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Whether an answer is the router's: no such route, or not this method.
fn unrouted(status: u16, body: &Value) -> bool {
    status == 405 || (status == 404 && body["error"]["message"] == "no such route")
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_ids_errors_and_scopes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(!path.contains('*'), "{path}: OpenAPI has no wildcards");
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "{method} {path}: `{id}` twice");
            assert!(operation["tags"][0].is_string(), "{method} {path}: no tag");
            assert_eq!(
                operation["responses"]["default"]["$ref"], "#/components/responses/Error",
                "{method} {path}"
            );
        }
    }
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    assert_eq!(op("/v1/scripts/deploy", "post")["x-roost-scope"], "deploy");
    assert_eq!(
        op("/v1/scripts/deploy", "post")["security"][0]["token"][0],
        "deploy"
    );
    assert_eq!(op("/v1/runs", "get")["x-roost-scope"], "read");
    assert_eq!(op("/v1/events/{event}", "post")["x-roost-scope"], "events");
    assert_eq!(op("/v1/tokens", "post")["x-roost-scope"], "all");
    assert_eq!(
        op("/v1/admin/users", "get")["security"][0]["operator"],
        serde_json::json!([])
    );
    assert!(op("/health", "get")["security"].is_null());
    let body = &op("/v1/scripts/deploy", "post")["requestBody"]["content"]["application/json"];
    assert_eq!(body["schema"]["$ref"], "#/components/schemas/DeployBody");
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
}

#[tokio::test]
async fn every_documented_route_answers_as_documented_and_only_there() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = document(&app).await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 40, "only {} paths", paths.len());
    for (path, item) in paths {
        let item = item.as_object().unwrap();
        for (method, operation) in item {
            let (status, body) = call(&app, method, path).await;
            assert!(
                !unrouted(status, &body),
                "{method} {path} is documented but answers {status} {body}"
            );
            // Without a token, a route that asks for one says so.
            let code = &body["error"]["code"];
            match operation["security"][0]
                .as_object()
                .and_then(|s| s.keys().next())
            {
                Some(scheme) if scheme == "token" => {
                    assert_eq!(
                        (status, code.as_str()),
                        (401, Some("missing_token")),
                        "{method} {path}"
                    )
                }
                Some(scheme) if scheme == "operator" => {
                    assert_eq!(code, "operator_only", "{method} {path}: {status}")
                }
                Some(other) => panic!("{method} {path}: unknown scheme {other}"),
                None => assert_ne!(status, 401, "{method} {path} is documented as open: {body}"),
            }
        }
        for method in METHODS.iter().filter(|m| !item.contains_key(**m)) {
            let (status, body) = call(&app, method, path).await;
            assert_eq!(
                status, 405,
                "{method} {path} answers but is not documented: {body}"
            );
        }
    }
}

/// Each `.route("…"`-like registration in `root`'s Rust files, by file.
fn registered_routes(root: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let file = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            for call in [".route(", ".route_service(", ".nest_service(", ".nest("] {
                for (at, _) in text.match_indices(call) {
                    let rest = text[at + call.len()..].trim_start();
                    let literal = rest
                        .strip_prefix('"')
                        .and_then(|rest| rest.split_once('"'))
                        .map(|(literal, _)| literal.to_string());
                    // A path this test cannot read could hide a route.
                    let literal = literal.unwrap_or_else(|| {
                        panic!("{file}: `{call}` with a path that is not a string literal")
                    });
                    found.push((file.clone(), literal));
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn every_route_in_the_source_is_documented_or_left_out_on_purpose() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = document(&app).await;
    let documented: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let routes = registered_routes(&root);
    assert!(
        routes.iter().any(|(_, path)| path == "/mcp"),
        "the scan found nothing: {routes:?}"
    );
    let mut left_out = BTreeMap::new();
    for (file, path) in &routes {
        let page = file.starts_with("src/web/");
        let on_purpose = LEFT_OUT.iter().any(|(f, p, _)| f == file && p == path);
        if page || on_purpose {
            left_out.insert(path.clone(), file.clone());
            continue;
        }
        // OpenAPI spells axum's `{*rest}` as `{rest}`.
        let spec_path = path.replace("{*", "{");
        assert!(
            documented.contains(spec_path.as_str()),
            "{file} registers {path} outside the OpenAPI document: register it with \
             `routes!` and a `#[utoipa::path]` (docs/openapi.md), or list it in LEFT_OUT"
        );
    }
    for (_, path, why) in LEFT_OUT {
        assert!(
            left_out.contains_key(*path),
            "LEFT_OUT names {path} ({why}), which no file registers"
        );
    }
    // The routes left out exist (the list does not outlive them).
    for (path, file) in &left_out {
        let (status, body) = call(&app, "get", path).await;
        assert!(
            !(status == 404 && body["error"]["message"] == "no such route"),
            "{file}: {path} is not served"
        );
    }
}

/// The venv's Python with `openapi-spec-validator` (tests/setup installs it).
fn validator_python() -> Option<PathBuf> {
    let python = support::mcp_python()?;
    let found = std::process::Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .status()
        .is_ok_and(|status| status.success());
    found.then_some(python)
}

#[tokio::test]
async fn an_independent_validator_accepts_the_document() {
    let Some(python) = validator_python() else {
        eprintln!(
            "skipped: run tests/setup to install openapi-spec-validator into ~/.cache/roost-mcp-venv"
        );
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = document(&app).await;
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let output = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the document:\n{said}"
    );
    assert!(said.contains("OK"), "{said}");
}

//! `GET /v1/openapi.json`: the API in OpenAPI 3.1 (docs/openapi.md). Each
//! resource's router registers its handlers with utoipa-axum's `routes!`,
//! which takes method and path from the handler's `#[utoipa::path]`, so a
//! route registered so is in the document as it is served. What every
//! operation has alike is added here rather than in each attribute: its tag
//! and id, who may call it (with the token scope scopes.rs asks), and the
//! shared error body.

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, header};
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::scopes::{Needs, needs};
use crate::api::{ErrorBody, ErrorDetail};
use crate::store::Scope;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "roost",
        description = "Deploy small WebAssembly scripts and run them with your integrations. \
            Every error answers `{\"error\": {\"code\", \"message\", \"details\"}}`."
    ),
    // Registered with axum's `any` (every method, as a script may answer
    // any), which `routes!` cannot express: documented by hand.
    paths(super::endpoints::at_root, super::endpoints::below),
    components(schemas(ErrorBody, ErrorDetail))
)]
struct ApiDoc;

/// The document the routers' operations are added to.
pub(super) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `routes` as one resource: each operation under `tag`, its id
/// `{tag}_{handler}` (handlers' names repeat across resources).
pub(super) fn resource<S>(tag: &str, mut routes: OpenApiRouter<S>) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    for item in routes.get_openapi_mut().paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            operation.tags = Some(vec![tag.to_string()]);
            operation.operation_id = operation
                .operation_id
                .take()
                .map(|id| format!("{tag}_{id}"));
        }
    }
    routes
}

/// Who may call a route.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    Anyone,
    /// A user's token, with the scope scopes.rs asks.
    User,
    /// The operator's token.
    Operator,
}

fn access(route: &str) -> Access {
    if matches!(route, "/v1/cluster" | "/metrics") || route.starts_with("/v1/admin/") {
        Access::Operator
    } else if matches!(route, "/health" | "/v1/openapi.json")
        || route.starts_with("/webhooks/")
        || route.starts_with("/h/")
    {
        // Webhooks prove themselves by signature; a handler's URL token is its secret.
        Access::Anyone
    } else {
        Access::User
    }
}

/// The document as served: `doc` with security, scopes, the error response,
/// and OpenAPI's spelling of axum's wildcards (`{*key}` is `{key}`).
pub(super) fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    let bearer = |description: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build(),
        )
    };
    components.add_security_scheme(
        "token",
        bearer(
            "A user's API token (`roost token create`). Each operation lists the scope it \
             needs (also as `x-roost-scope`): read, deploy, run or events; `all` means a \
             token with every scope.",
        ),
    );
    components.add_security_scheme(
        "operator",
        bearer("The operator's token (`ROOST_OPERATOR_TOKEN`); these routes are off without one."),
    );
    components.responses.insert(
        "Error".into(),
        ResponseBuilder::new()
            .description("An error: `code` for programs, `message` for people.")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
            .into(),
    );
    let paths = std::mem::take(&mut doc.paths.paths);
    for (route, mut item) in paths {
        // One handler for several methods (`/h/…`) would repeat its id.
        let ids: Vec<_> = operations(&mut item)
            .filter_map(|(_, operation)| operation.operation_id.clone())
            .collect();
        for (method, operation) in operations(&mut item) {
            if let Some(id) = &mut operation.operation_id
                && ids.iter().filter(|other| *other == id).count() > 1
            {
                id.push_str(&format!("_{}", method.as_str().to_ascii_lowercase()));
            }
            describe_access(&route, &method, operation);
            operation
                .responses
                .responses
                .entry("default".into())
                .or_insert_with(|| Ref::from_response_name("Error").into());
        }
        doc.paths.paths.insert(spec_path(&route), item);
    }
    doc
}

fn describe_access(route: &str, method: &Method, operation: &mut Operation) {
    let (scheme, scopes) = match access(route) {
        Access::Anyone => return,
        Access::Operator => ("operator", Vec::new()),
        Access::User => {
            let (scope, scopes) = match needs(method, route) {
                Needs::Scope(scope) => (scope.as_str(), vec![scope.as_str()]),
                Needs::Full => ("all", Scope::ALL.iter().map(|s| s.as_str()).collect()),
            };
            let extensions = operation.extensions.get_or_insert_with(Extensions::default);
            extensions.insert("x-roost-scope".into(), scope.into());
            ("token", scopes)
        }
    };
    // OpenAPI 3.1 lets a bearer requirement list the roles it needs.
    operation.security = Some(vec![SecurityRequirement::new(scheme, scopes)]);
}

/// axum's `{*rest}` as an OpenAPI path template parameter.
fn spec_path(route: &str) -> String {
    route.replace("{*", "{")
}

/// Each operation of `item`, with its method.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::OPTIONS, &mut item.options),
        (Method::HEAD, &mut item.head),
        (Method::PATCH, &mut item.patch),
        (Method::TRACE, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|op| (method, op)))
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    resource("openapi", OpenApiRouter::new().routes(routes!(spec)))
}

/// The served document, made once when the router is.
#[derive(Clone)]
pub(super) struct Document(Bytes);

/// `api` serving `doc` at `/v1/openapi.json` (which `spec` registers).
pub(super) fn serve(api: Router<AppState>, doc: &utoipa::openapi::OpenApi) -> Router<AppState> {
    let json = serde_json::to_vec(doc).expect("an OpenAPI document is plain data");
    api.route_layer(Extension(Document(json.into())))
}

/// The API's OpenAPI 3.1 document. Public: it holds nothing of anyone's.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    responses((status = 200, description = "This document.", body = Object))
)]
pub(super) async fn spec(Extension(Document(json)): Extension<Document>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_the_operators_the_users_or_anyones() {
        assert_eq!(access("/v1/admin/users/{id}"), Access::Operator);
        assert_eq!(access("/metrics"), Access::Operator);
        assert_eq!(access("/webhooks/{integration}/{user_id}"), Access::Anyone);
        assert_eq!(access("/v1/scripts"), Access::User);
        assert_eq!(
            spec_path("/v1/scripts/{id}/state/{*key}"),
            "/v1/scripts/{id}/state/{key}"
        );
    }
}

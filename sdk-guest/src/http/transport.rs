//! The one place requests leave the script: `wasi:http` through `wstd` on
//! wasm, an explanatory error elsewhere.

use super::{HttpError, Response};

#[cfg(target_arch = "wasm32")]
pub(super) fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    use wstd::http::{Body, Client, Method, Request, Uri};

    let uri: Uri = url
        .parse()
        .map_err(|e| HttpError::Invalid(format!("`{url}` is not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(HttpError::Invalid(format!(
            "`{url}` is not an absolute http(s) URL"
        )));
    }
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|e| HttpError::Invalid(format!("method `{method}`: {e}")))?;
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Body::from(body.to_vec()))
        .map_err(|e| HttpError::Invalid(e.to_string()))?;

    wstd::runtime::block_on(async move {
        let mut response = Client::new().send(request).await.map_err(classify)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .contents()
            .await
            .map_err(classify)?
            .to_vec();
        Ok(Response {
            status,
            headers,
            body,
        })
    })
}

/// Sorts `wstd`'s errors into ours: the host's refusals by their
/// `wasi:http` error code, everything else as a transport failure.
#[cfg(target_arch = "wasm32")]
fn classify(err: wstd::http::Error) -> HttpError {
    use wstd::http::ErrorCode;
    match err.downcast_ref::<ErrorCode>() {
        Some(ErrorCode::HttpRequestDenied) => HttpError::Denied("the host is not allowed".into()),
        Some(ErrorCode::DestinationIpProhibited) => {
            HttpError::Denied("the address is not allowed".into())
        }
        Some(code) => HttpError::Transport(format!("{code:?}")),
        None => HttpError::Transport(format!("{err:#}")),
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(super) fn send(
    method: &str,
    url: &str,
    _headers: &[(&str, &str)],
    _body: &[u8],
) -> Result<Response, HttpError> {
    Err(HttpError::Transport(format!(
        "{method} {url}: scripts reach the network only as wasm32-wasip2 components run by roost"
    )))
}

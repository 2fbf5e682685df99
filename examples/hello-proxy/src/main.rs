//! The same answer as `hello-http`, as a plain `wasi:http/proxy`
//! component for `wasmtime serve`, which the HTTP benchmark compares roost
//! with. Every path answers.

use wstd::http::body::Body;
use wstd::http::{Error, Request, Response};

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body("hello, world\n".to_owned().into())
        .expect("a valid response"))
}

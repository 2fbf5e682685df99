//! `GET /hello` answers `hello, world`. The HTTP benchmark runs it under
//! roost and the same answer from `hello-proxy` under `wasmtime serve`.

use roost_sdk::http::{Request, Response};
use roost_sdk::on_http;

#[on_http("GET", "/hello")]
fn hello(_request: &Request) -> Response {
    Response::from_text(200, "hello, world\n")
}

roost_sdk::main!(hello);

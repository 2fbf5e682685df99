//! HTTP-triggered handlers for the tests: an echo, a bearer-only route, a
//! signed-only route, a
//! chosen status, sleeps past a deadline (accepted or failed), a counter
//! kept in the script's state, and a handler that fails on purpose.

use std::time::Duration;

use roost_sdk::http::{Request, Response};
use roost_sdk::{on_http, state};
use serde_json::{Map, Value, json};

/// 200 with the request as JSON: method, path, query, headers (first value
/// per name) and the body as text.
#[on_http("POST", "/echo")]
fn echo(request: &Request) -> Response {
    let mut headers = Map::new();
    for (name, value) in &request.headers {
        headers
            .entry(name.clone())
            .or_insert_with(|| Value::from(value.as_str()));
    }
    let body = json!({
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": headers,
        "body": request.text(),
    });
    Response::from_json(200, &body).with_header("x-echo", "yes")
}

/// Reachable only with a roost API token of the script's owner.
#[on_http("GET", "/private", access = "bearer")]
fn private(_request: &Request) -> Response {
    Response::from_text(200, "private ok")
}

/// Reachable only with a request signed with the secret its owner set.
#[on_http("POST", "/signed", access = "hmac")]
fn signed(request: &Request) -> Response {
    Response::from_text(200, format!("signed ok: {}", request.text()))
}

/// Answers with the status in `?code=` (200 by default), plus a hop-by-hop
/// header and a cookie roost must strip, and one header it must keep.
#[on_http("GET", "/status")]
fn status(request: &Request) -> Result<Response, String> {
    let code = match request.query_param("code") {
        Some(code) => code
            .parse::<u16>()
            .map_err(|e| format!("code `{code}`: {e}"))?,
        None => 200,
    };
    Ok(Response::from_text(code, format!("status {code}"))
        .with_header("connection", "close")
        .with_header("set-cookie", "session=from-a-script")
        .with_header("x-kept", "1"))
}

/// Sleeps `?ms=` milliseconds; past its 300 ms deadline the caller gets 202.
#[on_http("POST", "/slow", deadline_ms = 300)]
fn slow(request: &Request) -> Result<Response, String> {
    sleep(request)
}

/// Sleeps `?ms=` milliseconds; past its 300 ms deadline the caller gets 504.
#[on_http("POST", "/slow-fail", deadline_ms = 300, on_deadline = "fail")]
fn slow_fail(request: &Request) -> Result<Response, String> {
    sleep(request)
}

fn sleep(request: &Request) -> Result<Response, String> {
    let ms = match request.query_param("ms") {
        Some(ms) => ms.parse::<u64>().map_err(|e| format!("ms `{ms}`: {e}"))?,
        None => 0,
    };
    std::thread::sleep(Duration::from_millis(ms));
    Ok(Response::from_text(200, "slept"))
}

/// Adds one to `count` in the script's state, hands the write to roost,
/// sleeps `?ms=` milliseconds and answers the new count: a run stopped in
/// its sleep (its server killed) must keep nothing.
#[on_http("POST", "/count")]
fn count(request: &Request) -> Result<Response, String> {
    let count = state::get::<u64>("count")
        .map_err(|e| e.to_string())?
        .unwrap_or(0)
        + 1;
    state::set("count", &count).map_err(|e| e.to_string())?;
    state::flush().map_err(|e| e.to_string())?;
    sleep(request)?;
    Ok(Response::from_text(200, count.to_string()))
}

/// Fails the run: no response is sent.
#[on_http("POST", "/boom")]
fn boom(_request: &Request) -> Result<Response, &'static str> {
    Err("boom on purpose")
}

roost_sdk::main!(echo, private, signed, status, slow, slow_fail, count, boom);

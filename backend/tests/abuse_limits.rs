//! Abuse limits, each driven past its edge: the API rate per token, events
//! per minute, scripts per user, component size, queued runs, compile time.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::{Backend, TestApp};

#[tokio::test]
async fn a_token_over_its_request_rate_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.abuse.api_requests_per_sec = 1.0;
        config.abuse.api_burst = 3;
    })
    .await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    for _ in 0..3 {
        assert_eq!(app.get(&ada, "/v1/scripts").await.0, 200);
    }
    let response = app
        .client
        .get(format!("{}/v1/scripts", app.base))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Another token is not affected, and the allowance comes back.
    assert_eq!(app.get(&bob, "/v1/scripts").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.get(&ada, "/v1/scripts").await.0, 200);
}

#[tokio::test]
async fn events_scripts_components_and_queues_have_caps() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.abuse.events_per_minute = 2;
        config.abuse.max_scripts_per_user = 1;
        config.abuse.max_queued_runs_per_user = 2;
        config.abuse.max_component_bytes = 400 * 1024;
        // No workers: runs stay queued.
        config.runner.workers = 0;
    })
    .await;
    let ada = app.user("ada").await;

    let (status, body) = app
        .deploy(&ada, "big", &roost_tests::example("gmail-digest"))
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "component_too_large");

    let (status, deployed) = app
        .deploy(&ada, "echo", &roost_tests::example("event-echo"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let (status, body) = app
        .deploy(&ada, "hello", &roost_tests::example("hello"))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    // A new version of an existing script is not a new script.
    let (status, _) = app
        .deploy(&ada, "echo", &roost_tests::example("event-echo"))
        .await;
    assert_eq!(status, 201);

    for n in 0..2 {
        let (status, body) = app
            .send(
                Method::POST,
                &ada,
                "/v1/events/order.created",
                json!({ "payload": { "n": n } }),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    // Two runs queued: the queue is full for manual runs too.
    let script = deployed["script_id"].as_str().unwrap();
    let (status, body) = app
        .send(
            Method::POST,
            &ada,
            &format!("/v1/scripts/{script}/run"),
            json!({ "handler": "on_created" }),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "queue_full");
    let (status, body) = app
        .send(Method::POST, &ada, "/v1/events/order.created", json!({}))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "event_rate_limited");
}

#[tokio::test]
async fn an_event_over_the_queue_cap_is_refused_and_queues_nothing() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.abuse.max_queued_runs_per_user = 2;
        // No workers: runs stay queued.
        config.runner.workers = 0;
    })
    .await;
    let ada = app.user("ada").await;
    let (status, deployed) = app
        .deploy(&ada, "echo", &roost_tests::example("event-echo"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let post = |id: &str| {
        let body = json!({ "id": id, "payload": {} });
        app.send(Method::POST, &ada, "/v1/events/order.created", body)
    };
    for id in ["e0", "e1"] {
        let (status, body) = post(id).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = post("e2").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "queue_full");
    assert_eq!(body["error"]["details"]["retry_after_secs"], 1);
    let (status, _) = app.get(&ada, "/v1/events/e2").await;
    assert_eq!(status, 404, "the refused event was not stored");
    // A sender retrying an event that was accepted hears it was, full
    // queue or not.
    let (status, body) = post("e1").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["duplicate"], true);
}

#[tokio::test]
async fn a_deploy_that_compiles_too_long_is_stopped_and_stores_nothing() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.abuse.compile_timeout = Duration::from_millis(1);
    })
    .await;
    let ada = app.user("ada").await;
    let (status, body) = app
        .deploy(&ada, "digest", &roost_tests::example("notify"))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "compile_timeout");
    let (_, scripts) = app.get(&ada, "/v1/scripts").await;
    assert_eq!(scripts["scripts"], json!([]));
}

/// Deploys arriving together cannot pass the script quota (it is counted in
/// the deploy's transaction), and a script keeps its newest versions only.
async fn concurrent_deploys_stay_within_the_quota_and_versions_are_capped(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.abuse.max_scripts_per_user = 3;
        config.abuse.max_versions_per_script = 4;
    })
    .await;
    let app = std::sync::Arc::new(app);
    let ada = app.user("ada").await;
    let hello = roost_tests::example("hello");
    let mut deploys = tokio::task::JoinSet::new();
    for n in 0..25 {
        let (app, ada, hello) = (app.clone(), ada.clone(), hello.clone());
        deploys.spawn(async move { app.deploy(&ada, &format!("s{n}"), &hello).await });
    }
    let answers = deploys.join_all().await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 3, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 201) {
        assert_eq!(*status, 403, "{body}");
        assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    }
    let (_, listed) = app.get(&ada, "/v1/scripts").await;
    assert_eq!(listed["scripts"].as_array().unwrap().len(), 3, "{listed}");

    // Ten more versions of one script: the newest four are kept.
    let name = listed["scripts"][0]["name"].as_str().unwrap().to_string();
    let id = listed["scripts"][0]["id"].as_str().unwrap().to_string();
    for _ in 0..10 {
        let (status, body) = app.deploy(&ada, &name, &hello).await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, versions) = app.get(&ada, &format!("/v1/scripts/{id}/versions")).await;
    let numbers: Vec<i64> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [11, 10, 9, 8], "{versions}");
}
on_both_stores!(concurrent_deploys_stay_within_the_quota_and_versions_are_capped);

/// Guessing tokens is throttled per client address: past the limit the
/// address is refused (429 with Retry-After) before any token is looked at,
/// a right one included, while requests without a token are not counted.
#[tokio::test]
async fn wrong_tokens_from_one_address_are_throttled() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.abuse.failed_auths_per_minute = 3;
    })
    .await;
    let ada = app.user("ada").await;
    let status_of = |token: Option<String>| {
        let app = &app;
        async move {
            let mut request = app.client.get(format!("{}/v1/scripts", app.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry = response.headers().get("retry-after").is_some();
            let body: serde_json::Value = response.json().await.unwrap();
            (
                status,
                body["error"]["code"].as_str().map(str::to_string),
                retry,
            )
        }
    };
    for _ in 0..5 {
        assert_eq!(status_of(None).await.0, 401, "no token is not a guess");
    }
    for n in 0..3 {
        let (status, code, _) = status_of(Some(format!("roost_guess{n}"))).await;
        assert_eq!((status, code.as_deref()), (401, Some("invalid_token")));
    }
    for token in ["roost_guess9".to_string(), ada.clone()] {
        let (status, code, retry) = status_of(Some(token)).await;
        assert_eq!(
            (status, code.as_deref(), retry),
            (429, Some("auth_throttled"), true)
        );
    }
}

/// A client that sends its request's headers and never finishes them is
/// cut off at the header deadline; the server keeps answering others.
#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: roost\r\nX-Slow: a")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 512];
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was still open after 10 s");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "cut off after {waited:?}"
    );
    let ok = app
        .client
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// A client that sends part of a body and then trickles (or stalls) is
/// answered 408 at the body deadline; nothing it sent is acted on.
#[tokio::test]
async fn a_client_trickling_its_body_is_answered_408() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.body_read_timeout = Duration::from_secs(1);
        config
            .webhook_secrets
            .insert("slack".into(), "s3cret".into());
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(
        b"POST /webhooks/slack/usr_x HTTP/1.1\r\nHost: roost\r\nContent-Length: 100\r\n\r\n{\"type\"",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let (answer, _) = answer_on(&mut slow, "body_timeout").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A client that sends its whole body before it reads the answer (as a
/// simple client does) hears the 413 of a body over the limit: the server
/// reads the rest of the body first. Closing the connection on unread bytes
/// would reset it, and the client would see "broken pipe" instead.
#[tokio::test]
async fn a_body_over_the_limit_sent_whole_still_hears_its_413() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.max_body_bytes = 2048;
    })
    .await;
    let token = app.user("ada").await;
    let address = app.base.trim_start_matches("http://").to_string();
    let body = vec![b'x'; 4 * 1024 * 1024];
    let mut client = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/scripts/deploy HTTP/1.1\r\nHost: roost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await.unwrap();
    client
        .write_all(&body)
        .await
        .expect("the server reads the whole body before it answers");
    let (answer, failed) = answer_on(&mut client, "body_too_large").await;
    assert!(failed.is_none(), "the answer was lost: {failed:?}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""limit_bytes":2048"#), "{answer}");
    let (_, listed) = app.get(&token, "/v1/scripts").await;
    assert_eq!(listed["scripts"], json!([]), "{listed}");
}

/// A client that stops sending after going over the limit hears 413, not
/// 408, at the body deadline: what it sent already says it is too large.
#[tokio::test]
async fn a_body_over_the_limit_that_stalls_hears_413_at_the_deadline() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.max_body_bytes = 2048;
        config.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let token = app.user("ada").await;
    let address = app.base.trim_start_matches("http://").to_string();
    let mut client = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/scripts/deploy HTTP/1.1\r\nHost: roost\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 100000\r\n\r\n"
    );
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(&[b'x'; 3000]).await.unwrap();
    let (answer, _) = answer_on(&mut client, "\r\n\r\n{").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");
}

/// What the server wrote on `stream` up to `until` (or the connection's
/// end), and the error reading it ended with, if any; within 10 s.
async fn answer_on(
    stream: &mut tokio::net::TcpStream,
    until: &str,
) -> (String, Option<std::io::Error>) {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let mut failed = None;
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains(until) {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer after 10 s");
    (String::from_utf8_lossy(&answer).into_owned(), failed)
}

/// A body declared larger than the server would read past its limit is
/// answered at once, before any of it is read: the drain that lets a
/// client hear its 413 is not a way to make the server swallow gigabytes.
#[tokio::test]
async fn a_body_declared_far_too_large_is_answered_at_once() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.max_body_bytes = 2048;
        config.body_read_timeout = Duration::from_secs(30);
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_string();
    let mut client = tokio::net::TcpStream::connect(&address).await.unwrap();
    client
        .write_all(
            b"POST /v1/scripts/deploy HTTP/1.1\r\nHost: roost\r\nContent-Length: 1073741824\r\n\r\n",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (answer, _) = answer_on(&mut client, "\r\n\r\n{").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}, not at once",
        started.elapsed()
    );
}

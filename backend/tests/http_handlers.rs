//! HTTP-triggered handlers (`#[on_http]`): a request to a handler's URL is
//! a recorded run whose response reaches the caller, with connection
//! headers dropped both ways; each access mode refuses a caller without its
//! credential; deadlines answer 202 or 504; bodies are capped; a rotated
//! URL stops answering. Real HTTP requests against the server, driven by
//! the `http-echo` example guest.

mod support;

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::sdk_app::finished;
use support::{Backend, TestApp};

/// Deploys `http-echo`; its id and each handler's URL.
async fn deploy_echo(app: &TestApp, token: &str) -> (String, BTreeMap<String, String>) {
    let component = roost_tests::example("http-echo");
    let (status, deployed) = app.deploy(token, "echo", &component).await;
    assert_eq!(status, 201, "{deployed}");
    let script = deployed["script_id"].as_str().unwrap().to_string();
    (script.clone(), handler_urls(app, token, &script).await)
}

async fn handler_urls(app: &TestApp, token: &str, script: &str) -> BTreeMap<String, String> {
    let (status, listed) = app.get(token, &format!("/v1/scripts/{script}/http")).await;
    assert_eq!(status, 200, "{listed}");
    listed["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["handler"].as_str().unwrap().to_string(),
                h["url"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

async fn answers_its_caller_and_every_request_is_a_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("alice").await;
    let (script, urls) = deploy_echo(&app, &token).await;
    assert_eq!(urls.len(), 8, "{urls:?}");
    assert!(urls["echo"].ends_with("/echo"), "{urls:?}");

    let echoed = client()
        .post(format!("{}?q=1&name=a%20b", urls["echo"]))
        .header("x-test", "yes")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status(), StatusCode::OK);
    assert_eq!(echoed.headers()["x-echo"], "yes");
    let echoed = json_of(echoed).await;
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/echo");
    assert_eq!(echoed["query"], "q=1&name=a%20b");
    assert_eq!(echoed["body"], "hello");
    assert_eq!(echoed["headers"]["x-test"], "yes");
    assert!(
        echoed["headers"].get("connection").is_none(),
        "connection headers are not passed on: {echoed}"
    );

    // The script's status and headers reach the caller; its hop-by-hop
    // header does not, and an error status keeps the script's own body.
    let teapot = client()
        .get(format!("{}?code=418", urls["status"]))
        .send()
        .await
        .unwrap();
    assert_eq!(teapot.status().as_u16(), 418);
    assert_eq!(teapot.headers()["x-kept"], "1");
    assert!(teapot.headers().get("connection").is_none());
    assert!(
        teapot.headers().get("set-cookie").is_none(),
        "a script sets no cookie on roost's origin"
    );
    assert_eq!(
        teapot.headers()["content-security-policy"],
        "sandbox allow-scripts allow-forms allow-popups"
    );
    assert_eq!(teapot.text().await.unwrap(), "status 418");

    // Wrong method, wrong path, wrong token.
    let wrong_method = client().get(&urls["echo"]).send().await.unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers()["allow"], "POST");
    assert_eq!(
        json_of(wrong_method).await["error"]["code"],
        "method_not_allowed"
    );
    let wrong_path = urls["echo"].replace("/echo", "/nowhere");
    let wrong_path = client().post(wrong_path).send().await.unwrap();
    assert_eq!(wrong_path.status(), StatusCode::NOT_FOUND);
    let base = app.base.clone();
    let unknown = client()
        .post(format!("{base}/h/hnotatoken/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(unknown).await["error"]["code"], "not_found");

    // A handler that fails: the caller learns which run, nothing else.
    let boom = client().post(&urls["boom"]).send().await.unwrap();
    assert_eq!(boom.status(), StatusCode::BAD_GATEWAY);
    let boom = json_of(boom).await;
    assert_eq!(boom["error"]["code"], "handler_failed", "{boom}");
    let boom_run = boom["error"]["details"]["run_id"].as_str().unwrap();
    let shown = finished(&app, &token, boom_run).await;
    assert_eq!(shown["run"]["status"], "failed", "{shown}");

    // Every request that reached a handler is a run, recorded as `http`
    // with its method and path; a failed one is not retried.
    let (_, page) = app
        .get(&token, &format!("/v1/runs?script_id={script}&limit=50"))
        .await;
    let runs = page["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "echo, status and boom: {page}");
    let mut seen: Vec<String> = runs
        .iter()
        .map(|run| {
            assert_eq!(run["trigger_kind"], "http", "{run}");
            run["trigger_spec"].as_str().unwrap().to_string()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["GET /status", "POST /boom", "POST /echo"]);
}

on_both_stores!(answers_its_caller_and_every_request_is_a_run);

async fn access_deadlines_caps_and_rotation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("alice").await;
    let other = app.user("bob").await;
    let (script, urls) = deploy_echo(&app, &token).await;

    // Bearer: no token, another user's token, the owner's.
    let bare = client().get(&urls["private"]).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bare.headers()["www-authenticate"], "Bearer");
    assert_eq!(json_of(bare).await["error"]["code"], "unauthorized");
    let stranger = client()
        .get(&urls["private"])
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);
    let owner = client()
        .get(&urls["private"])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(owner.status(), StatusCode::OK);
    assert_eq!(owner.text().await.unwrap(), "private ok");
    // The token never reached the run.
    let (_, page) = app
        .get(&token, &format!("/v1/runs?script_id={script}&limit=5"))
        .await;
    assert!(!page.to_string().contains(&token), "{page}");

    // Past the deadline: 202 with the run, which goes on and succeeds; or
    // 504 where the handler says so.
    let accepted = client()
        .post(format!("{}?ms=1500", urls["slow"]))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let accepted = json_of(accepted).await;
    let slow_run = accepted["run_id"].as_str().unwrap();
    let shown = finished(&app, &token, slow_run).await;
    assert_eq!(shown["run"]["status"], "succeeded", "{shown}");
    let failed = client()
        .post(format!("{}?ms=1500", urls["slow_fail"]))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(json_of(failed).await["error"]["code"], "deadline_passed");
    // Within its deadline the same handler answers.
    let quick = client().post(&urls["slow"]).send().await.unwrap();
    assert_eq!(quick.status(), StatusCode::OK);

    // A body past the cap starts no run.
    let (_, before) = app
        .get(&token, &format!("/v1/runs?script_id={script}&limit=50"))
        .await;
    let huge = client()
        .post(&urls["echo"])
        .body(vec![b'x'; 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(huge).await["error"]["code"], "body_too_large");
    let (_, after) = app
        .get(&token, &format!("/v1/runs?script_id={script}&limit=50"))
        .await;
    assert_eq!(
        before["runs"].as_array().unwrap().len(),
        after["runs"].as_array().unwrap().len()
    );

    // Rotation: the old URL stops answering, the new one answers; a
    // redeploy keeps the URL; another user cannot list or rotate.
    let (status, rotated) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{script}/http/echo/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_url = rotated["url"].as_str().unwrap().to_string();
    assert_ne!(new_url, urls["echo"]);
    let old = client().post(&urls["echo"]).send().await.unwrap();
    assert_eq!(old.status(), StatusCode::NOT_FOUND);
    let new = client().post(&new_url).body("again").send().await.unwrap();
    assert_eq!(new.status(), StatusCode::OK);
    let (status, _) = app
        .deploy(&token, "echo", &roost_tests::example("http-echo"))
        .await;
    assert_eq!(status, 201);
    assert_eq!(handler_urls(&app, &token, &script).await["echo"], new_url);
    // The next request runs the new version at once.
    let after_deploy = client().post(&new_url).send().await.unwrap();
    assert_eq!(after_deploy.status(), StatusCode::OK);
    let (_, page) = app
        .get(&token, &format!("/v1/runs?script_id={script}&limit=1"))
        .await;
    assert_eq!(page["runs"][0]["script_version"], 2, "{page}");
    let (status, _) = app.get(&other, &format!("/v1/scripts/{script}/http")).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .send(
            Method::POST,
            &other,
            &format!("/v1/scripts/{script}/http/echo/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(status, 404);

    // A deleted script's URLs stop answering at once.
    let (status, _) = app
        .send(
            Method::DELETE,
            &token,
            &format!("/v1/scripts/{script}"),
            json!(null),
        )
        .await;
    assert_eq!(status, 204);
    let gone = client().post(&new_url).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

on_both_stores!(access_deadlines_caps_and_rotation);

/// A script runs at most its concurrency cap of requests at once; a
/// request that gets no place before its deadline is queued as a run of
/// its own, its caller gets 202 with the run id, and the run ends once a
/// place is free.
async fn requests_past_the_scripts_cap_wait_then_queue(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.per_script_concurrency = 1;
    })
    .await;
    let token = app.user("alice").await;
    let (_, urls) = deploy_echo(&app, &token).await;

    // The first takes the script's one place for 1.5 s.
    let first = client()
        .post(format!("{}?ms=1500", urls["slow"]))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first_run = json_of(first).await["run_id"].as_str().unwrap().to_string();
    // The second would answer at once, but has no place within its 300 ms.
    let began = std::time::Instant::now();
    let second = client().post(&urls["slow"]).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    assert!(began.elapsed() >= std::time::Duration::from_millis(300));
    let second_run = json_of(second).await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, shown) = app.get(&token, &format!("/v1/runs/{second_run}")).await;
    assert_eq!(shown["run"]["status"], "queued", "{shown}");
    // Both end: the queued one once the first has let go of the place.
    let first = finished(&app, &token, &first_run).await;
    let second = finished(&app, &token, &second_run).await;
    assert_eq!(first["run"]["status"], "succeeded", "{first}");
    assert_eq!(second["run"]["status"], "succeeded", "{second}");
    let first_end = first["run"]["finished_at"].as_i64().unwrap();
    let second_start = second["run"]["started_at"].as_i64().unwrap();
    assert!(second_start >= first_end, "{first} {second}");
}

on_both_stores!(requests_past_the_scripts_cap_wait_then_queue);

/// One owner's slow handlers take at most half of a node's places: another
/// owner's requests are still answered at once.
async fn one_owner_cannot_take_every_place(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.http_runs = 2;
    })
    .await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let (_, alices) = deploy_echo(&app, &alice).await;
    let (_, bobs) = deploy_echo(&app, &bob).await;

    // Alice's first request holds her one place for 1.5 s; her second
    // waits for it, past its deadline, and Bob's takes the node's other.
    let first = client()
        .post(format!("{}?ms=1500", alices["slow"]))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let second = tokio::spawn(client().post(format!("{}?ms=1500", alices["slow"])).send());
    // Had she a second place, her second request would hold it by now.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let began = std::time::Instant::now();
    let answered = client()
        .post(&bobs["echo"])
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    assert!(
        began.elapsed() < std::time::Duration::from_millis(1000),
        "Bob waited {:?}",
        began.elapsed()
    );
    let second = second.await.unwrap().unwrap();
    assert_eq!(
        second.status(),
        StatusCode::ACCEPTED,
        "Alice's second waited"
    );
}

on_both_stores!(one_owner_cannot_take_every_place);

/// `hmac` access: refused until the owner sets a secret; then a request
/// signed with it passes, and a wrong secret, a changed body, a stale
/// timestamp or no signature are refused with nothing queued. The secret
/// is never answered back.
async fn signed_requests(backend: Backend) {
    use roost::triggers::signing::sign;
    let app = TestApp::spawn(backend).await;
    let token = app.user("alice").await;
    let other = app.user("bob").await;
    let (script, urls) = deploy_echo(&app, &token).await;
    let url = &urls["signed"];
    let now = roost::store::now_millis() / 1000;
    let send = |timestamp: i64, signature: String, body: &'static str| {
        client()
            .post(url)
            .header("x-roost-timestamp", timestamp.to_string())
            .header("x-roost-signature", signature)
            .body(body)
            .send()
    };
    let secret = "5f2b9c0e7a1d4e3f8b6a9c2d1e0f4a7b5c8d3e6f9a0b1c2d";
    let good = || format!("v1={}", sign(secret, now, b"order 1"));

    let before = send(now, good(), "order 1").await.unwrap();
    assert_eq!(
        before.status(),
        StatusCode::UNAUTHORIZED,
        "no secret set yet"
    );
    assert_eq!(json_of(before).await["error"]["code"], "invalid_signature");

    let path = format!("/v1/scripts/{script}/http/signed/secret");
    let (status, short) = app
        .send(Method::PUT, &token, &path, json!({ "secret": "short" }))
        .await;
    assert_eq!(status, 400, "{short}");
    assert_eq!(short["error"]["code"], "invalid_secret");
    let (status, _) = app
        .send(Method::PUT, &other, &path, json!({ "secret": secret }))
        .await;
    assert_eq!(status, 404, "another user cannot set it");
    let (status, set) = app
        .send(Method::PUT, &token, &path, json!({ "secret": secret }))
        .await;
    assert_eq!(status, 204, "{set}");

    let ok = send(now, good(), "order 1").await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "signed ok: order 1");

    let wrong_secret = format!("v1={}", sign(&"x".repeat(40), now, b"order 1"));
    let refusals = [
        // The accepted request again: a signature is taken once.
        send(now, good(), "order 1"),
        send(now, wrong_secret, "order 1"),
        send(now, good(), "order 2"),
        send(
            now - 600,
            format!("v1={}", sign(secret, now - 600, b"order 1")),
            "order 1",
        ),
        send(now, "v1=zz".into(), "order 1"),
    ];
    for refused in refusals {
        let refused = refused.await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(json_of(refused).await["error"]["code"], "invalid_signature");
    }
    let unsigned = client().post(url).body("order 1").send().await.unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);

    // One run: the signed request's; refusals queue nothing.
    let (_, page) = app
        .get(&token, &format!("/v1/runs?script_id={script}&limit=50"))
        .await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 1, "{page}");
    let (_, listed) = app.get(&token, &format!("/v1/scripts/{script}/http")).await;
    assert!(
        !listed.to_string().contains(secret),
        "the secret is never shown"
    );
}

on_both_stores!(signed_requests);

/// `roost hooks list` prints each handler's URL; `roost hooks rotate`
/// replaces one; an unknown script or handler is one readable line.
// The CLI blocks its thread while the server answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_and_rotates_urls() {
    use support::process::{roost, text};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("alice").await;
    let (_, urls) = deploy_echo(&app, &token).await;
    let env = [
        ("ROOST_SERVER", app.base.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();

    let listed = roost(dir.path(), &["hooks", "list", "echo"], &env);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed = text(&listed.stdout);
    assert_eq!(listed.lines().count(), 8, "{listed}");
    assert!(
        listed.contains(&format!("echo  POST /echo  public  {}", urls["echo"])),
        "{listed}"
    );
    assert!(
        listed.contains("private  GET /private  bearer  "),
        "{listed}"
    );

    let rotated = roost(dir.path(), &["hooks", "rotate", "echo", "echo"], &env);
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    let rotated = text(&rotated.stdout);
    assert!(
        rotated.starts_with("echo  POST /echo  public  "),
        "{rotated}"
    );
    assert!(!rotated.contains(&urls["echo"]), "a new URL: {rotated}");

    // A new signing secret, printed once, signs requests to the handler.
    let secret = roost(dir.path(), &["hooks", "secret", "echo", "signed"], &env);
    assert!(secret.status.success(), "{}", text(&secret.stderr));
    let secret = text(&secret.stdout).trim().to_string();
    assert_eq!(secret.len(), 64, "{secret}");
    let now = roost::store::now_millis() / 1000;
    let signed = client()
        .post(&urls["signed"])
        .header("x-roost-timestamp", now.to_string())
        .header(
            "x-roost-signature",
            format!("v1={}", roost::triggers::signing::sign(&secret, now, b"hi")),
        )
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::OK);

    let unknown = roost(dir.path(), &["hooks", "rotate", "echo", "nope"], &env);
    assert!(!unknown.status.success());
    let said = text(&unknown.stderr);
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert!(said.contains("not found"), "{said}");
}

/// One owner's handlers take at most `http_requests_per_minute` requests,
/// all callers together; past it a caller gets 429 with `Retry-After` and
/// no run is queued.
#[tokio::test]
async fn a_flood_of_callers_is_held_to_the_owners_rate() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.abuse.http_requests_per_minute = 2;
    })
    .await;
    let token = app.user("alice").await;
    let (script, urls) = deploy_echo(&app, &token).await;
    for _ in 0..2 {
        let ok = client().get(&urls["status"]).send().await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
    }
    let flooded = client().get(&urls["status"]).send().await.unwrap();
    assert_eq!(flooded.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(flooded.headers().get("retry-after").is_some());
    assert_eq!(json_of(flooded).await["error"]["code"], "rate_limited");
    let (_, page) = app
        .get(&token, &format!("/v1/runs?script_id={script}&limit=50"))
        .await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 2, "{page}");
}

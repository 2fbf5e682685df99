//! API tokens: named, scoped, optionally expiring, listed with their last
//! use and revoked at once (on every node); users made, listed and removed
//! by the operator.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{Backend, TestApp};

const OPERATOR: &str = "the-operator-of-the-token-tests";

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.operator_token = Some(OPERATOR.into());
    })
    .await
}

/// Makes a token with `body` using `token`; the answer.
async fn make(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.send(Method::POST, token, "/v1/tokens", body).await
}

on_both_stores!(a_scoped_token_reaches_only_its_routes);

async fn a_scoped_token_reaches_only_its_routes(backend: Backend) {
    let app = spawn(backend).await;
    let ada = app.user("ada").await;
    let script = app.deploy_example(&ada, "echo", "event-echo").await;
    let (status, reader) = make(&app, &ada, json!({ "name": "dash", "scopes": ["read"] })).await;
    assert_eq!(status, 201, "{reader}");
    assert_eq!(reader["scopes"], json!(["read"]));
    let reader = reader["token"].as_str().unwrap().to_string();
    let (_, poster) = make(&app, &ada, json!({ "name": "hook", "scopes": ["events"] })).await;
    let poster = poster["token"].as_str().unwrap().to_string();

    // Reading: yes. Each kind of write: refused, saying what it needs.
    assert_eq!(app.get(&reader, "/v1/scripts").await.0, 200);
    let writes = [
        (Method::POST, format!("/v1/scripts/{script}/run"), "run"),
        (Method::POST, "/v1/events/order.created".into(), "events"),
        (Method::DELETE, format!("/v1/scripts/{script}"), "deploy"),
        (Method::PUT, "/v1/credentials/slack".into(), "deploy"),
        (Method::POST, "/v1/tokens".into(), "every scope"),
    ];
    for (method, path, needs) in writes {
        let (status, body) = app
            .send(
                method.clone(),
                &reader,
                &path,
                json!({ "name": "x", "payload": {} }),
            )
            .await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "insufficient_scope", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needs),
            "{body}"
        );
    }
    // The script is still there: nothing was done.
    assert_eq!(app.get(&ada, &format!("/v1/scripts/{script}")).await.0, 200);

    // An events token posts events and reads nothing.
    let (status, body) = app
        .send(
            Method::POST,
            &poster,
            "/v1/events/order.created",
            json!({ "payload": {} }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(app.get(&poster, "/v1/runs").await.0, 403);

    // The list names every token, never a value, with its last use.
    let (_, listed) = app.get(&ada, "/v1/tokens").await;
    let tokens = listed["tokens"].as_array().unwrap();
    let names: Vec<&str> = tokens.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dash", "default", "hook"]);
    let text = listed.to_string();
    assert!(!text.contains(&reader) && !text.contains(&poster) && !text.contains(&ada));
    assert!(!text.contains("token_hash"), "{text}");
    let used =
        |name: &str| tokens.iter().find(|t| t["name"] == name).unwrap()["last_used_at"].clone();
    assert!(used("dash").is_i64() && used("hook").is_i64(), "{listed}");
}

on_both_stores!(bad_token_requests_are_refused_precisely);

async fn bad_token_requests_are_refused_precisely(backend: Backend) {
    let app = spawn(backend).await;
    let ada = app.user("ada").await;
    for (body, status, code) in [
        (
            json!({ "name": "x", "scopes": ["admin"] }),
            400,
            "invalid_scopes",
        ),
        (json!({ "name": "x", "scopes": [] }), 400, "invalid_scopes"),
        (
            json!({ "name": "x", "expires_in": "tomorrow" }),
            400,
            "invalid_expiry",
        ),
        (
            json!({ "name": "x", "expires_in": "0s" }),
            400,
            "invalid_expiry",
        ),
        (json!({ "name": "" }), 400, "invalid_name"),
        (json!({ "name": "default" }), 409, "conflict"),
        (json!({ "name": "x", "owner": "bob" }), 422, "invalid_body"),
    ] {
        let (got, answer) = make(&app, &ada, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
    }
    let (_, listed) = app.get(&ada, "/v1/tokens").await;
    assert_eq!(
        listed["tokens"].as_array().unwrap().len(),
        1,
        "nothing made: {listed}"
    );
    let (status, body) = app
        .send(Method::DELETE, &ada, "/v1/tokens/tok_nope", json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    // Another user's token is not yours to revoke.
    let bob = app.user("bob").await;
    let (_, bobs) = app.get(&bob, "/v1/tokens").await;
    let bobs_id = bobs["tokens"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .send(
            Method::DELETE,
            &ada,
            &format!("/v1/tokens/{bobs_id}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(app.get(&bob, "/v1/scripts").await.0, 200);
}

on_both_stores!(revoked_and_expired_tokens_stop_at_once);

async fn revoked_and_expired_tokens_stop_at_once(backend: Backend) {
    let app = spawn(backend).await;
    let ada = app.user("ada").await;
    let (_, ci) = make(&app, &ada, json!({ "name": "ci" })).await;
    let (id, ci) = (
        ci["id"].as_str().unwrap().to_string(),
        ci["token"].as_str().unwrap().to_string(),
    );
    // Used, so this node remembers it as valid.
    assert_eq!(app.get(&ci, "/v1/scripts").await.0, 200);
    let (status, _) = app
        .send(Method::DELETE, &ada, &format!("/v1/tokens/{id}"), json!({}))
        .await;
    assert_eq!(status, 204);
    let (status, body) = app.get(&ci, "/v1/scripts").await;
    assert_eq!(status, 401, "revoked, and not remembered: {body}");
    assert_eq!(body["error"]["code"], "invalid_token");

    let (_, brief) = make(&app, &ada, json!({ "name": "brief", "expires_in": "1s" })).await;
    assert!(brief["expires_at"].is_i64(), "{brief}");
    let brief = brief["token"].as_str().unwrap().to_string();
    assert_eq!(app.get(&brief, "/v1/scripts").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.get(&brief, "/v1/scripts").await.0, 401, "expired");
}

/// Two nodes on one PostgreSQL database: a token revoked on one stops on
/// the other at once, though the other had just found it valid (and would
/// otherwise trust it for 5 s).
#[tokio::test]
async fn a_revocation_reaches_another_node_at_once() {
    if support::postgres_base_url().is_none() {
        eprintln!("skipped: set ROOST_TEST_POSTGRES_URL to run the two-node case");
        return;
    }
    let app = spawn(Backend::Postgres).await;
    let other = app.another_node().await;
    let ada = app.user("ada").await;
    let (_, ci) = make(&app, &ada, json!({ "name": "ci" })).await;
    let (id, ci) = (
        ci["id"].as_str().unwrap().to_string(),
        ci["token"].as_str().unwrap().to_string(),
    );
    let at_other = || async {
        app.client
            .get(format!("{other}/v1/scripts"))
            .bearer_auth(&ci)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(at_other().await, 200);
    let (status, _) = app
        .send(Method::DELETE, &ada, &format!("/v1/tokens/{id}"), json!({}))
        .await;
    assert_eq!(status, 204);
    let revoked = Instant::now();
    while at_other().await != 401 {
        assert!(
            revoked.elapsed() < Duration::from_secs(3),
            "the other node still takes the revoked token"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

on_both_stores!(the_operator_makes_lists_and_removes_users);

async fn the_operator_makes_lists_and_removes_users(backend: Backend) {
    let app = spawn(backend).await;
    let ada = app.user("ada").await;
    // A user's token is not the operator's.
    let (status, body) = app
        .send(
            Method::POST,
            &ada,
            "/v1/admin/users",
            json!({ "name": "eve" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("operator_only"))
    );

    let (status, made) = app
        .send(
            Method::POST,
            OPERATOR,
            "/v1/admin/users",
            json!({ "name": "bob" }),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let bob = made["token"].as_str().unwrap().to_string();
    let bob_id = made["user"]["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .send(
            Method::POST,
            OPERATOR,
            "/v1/admin/users",
            json!({ "name": "bob" }),
        )
        .await;
    assert_eq!(status, 409);
    let (_, users) = app.get(OPERATOR, "/v1/admin/users").await;
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ada", "bob"]);

    // Every token of bob's goes at once, and his dashboard session with it.
    let (_, second) = make(&app, &bob, json!({ "name": "second" })).await;
    let second = second["token"].as_str().unwrap().to_string();
    let session = support::dashboard::Session::sign_in(&app, &bob).await;
    assert_eq!(session.get("/scripts").await.status, 200);
    let (status, revoked) = app
        .send(
            Method::DELETE,
            OPERATOR,
            &format!("/v1/admin/users/{bob_id}/tokens"),
            json!({}),
        )
        .await;
    assert_eq!((status, revoked["revoked"].clone()), (200, json!(2)));
    assert_eq!(app.get(&bob, "/v1/scripts").await.0, 401);
    assert_eq!(app.get(&second, "/v1/scripts").await.0, 401);
    assert_eq!(session.get("/scripts").await.status, 303, "signed out");

    // Removing ada takes her scripts with her.
    let ada_id = app.user_id(&ada).await;
    app.deploy_example(&ada, "echo", "event-echo").await;
    let (status, _) = app
        .send(
            Method::DELETE,
            OPERATOR,
            &format!("/v1/admin/users/{ada_id}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(app.get(&ada, "/v1/scripts").await.0, 401);
    let (status, _) = app
        .send(
            Method::DELETE,
            OPERATOR,
            &format!("/v1/admin/users/{ada_id}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
}

on_both_stores!(the_dashboard_takes_a_full_token_and_ends_with_it);

async fn the_dashboard_takes_a_full_token_and_ends_with_it(backend: Backend) {
    let app = spawn(backend).await;
    let ada = app.user("ada").await;
    let (_, reader) = make(&app, &ada, json!({ "name": "reader", "scopes": ["read"] })).await;
    let answer = support::dashboard::sign_in_answer(&app, reader["token"].as_str().unwrap()).await;
    assert_eq!(answer.status, 403);
    assert!(
        answer.body.contains("needs a token with every"),
        "{}",
        answer.body
    );

    let (_, full) = make(&app, &ada, json!({ "name": "laptop" })).await;
    let session = support::dashboard::Session::sign_in(&app, full["token"].as_str().unwrap()).await;
    assert_eq!(session.get("/scripts").await.status, 200);
    let path = format!("/v1/tokens/{}", full["id"].as_str().unwrap());
    assert_eq!(
        app.send(Method::DELETE, &ada, &path, json!({})).await.0,
        204
    );
    assert_eq!(
        session.get("/scripts").await.status,
        303,
        "the session ended with its token"
    );
}

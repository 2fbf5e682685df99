//! The dashboard over plain HTTP: sessions and their cookie, form tokens
//! and origins, escaping of what scripts and users control, one user's
//! pages kept from another. (The browser tests drive the same pages in
//! Chromium: dashboard_browser.rs.)

mod support;

use serde_json::json;
use support::dashboard::{Session, sign_in_answer};
use support::{Backend, TestApp};

async fn sessions_are_cookies_that_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;

    // No session: every page sends the browser to sign in, and back after.
    let anonymous = app
        .client
        .get(format!("{}/runs?status=failed", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(
        anonymous.headers()["location"],
        "/signin?next=/runs%3Fstatus%3Dfailed"
    );

    // A wrong token: refused, no cookie.
    let wrong = sign_in_answer(&app, "roost_not-a-token").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.headers.get("set-cookie").is_none());
    assert!(
        wrong.body.contains("That token is not valid"),
        "{}",
        wrong.body
    );

    // The right one: a cookie that scripts cannot read and other sites
    // cannot send, holding neither the token nor its hash.
    let answer = sign_in_answer(&app, &token).await;
    assert_eq!(answer.status, 303);
    assert_eq!(answer.location(), "/scripts");
    let cookie = answer.headers["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    assert!(!cookie.contains(&token[6..]), "{cookie}");

    let session = Session::sign_in(&app, &token).await;
    let scripts = session.get("/scripts").await;
    assert_eq!(scripts.status, 200, "{}", scripts.body);
    assert!(scripts.body.contains("ada"));
    let csp = scripts.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(scripts.headers["x-frame-options"], "DENY");
    assert_eq!(scripts.headers["cache-control"], "no-store");

    // Signing out ends the session on the server: the same cookie, sent
    // again, is signed out.
    let csrf = scripts.csrf();
    let out = session.post("/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = session.get("/scripts").await;
    assert_eq!(after.status, 303);
    assert!(after.location().starts_with("/signin"));
}
on_both_stores!(sessions_are_cookies_that_end);

#[tokio::test]
async fn over_https_the_cookie_is_secure() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.base_url = Some("https://roost.example".into());
    })
    .await;
    let token = app.user("ada").await;
    // The browser's Origin is the public address; the test reaches the
    // server directly, so it sends none (the form token still holds).
    let answer = app
        .client
        .post(format!("{}/signin", app.base))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    let cookie = answer.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

async fn forms_need_the_pages_token_and_origin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;
    let script = app.deploy_example(&token, "echo", "event-echo").await;
    app.deploy_example(&token, "echo", "event-echo").await; // version 2
    let session = Session::sign_in(&app, &token).await;
    let page = session.get(&format!("/scripts/{script}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    let rollback = format!("/scripts/{script}/rollback");

    let refused = [
        session.post(&rollback, &[("version", "1")]).await,
        session
            .post(&rollback, &[("version", "1"), ("csrf", "0000")])
            .await,
        session
            .post_from(
                &rollback,
                &[("version", "1"), ("csrf", &csrf)],
                Some("https://evil.example"),
            )
            .await,
    ];
    for answer in &refused {
        assert_eq!(answer.status, 403, "{}", answer.body);
        assert!(answer.body.contains("Form refused"), "{}", answer.body);
    }
    let cross_site = app
        .client
        .post(format!("{}{rollback}", app.base))
        .header("cookie", &session.cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&[("version", "1"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let (_, current) = app.get(&token, &format!("/v1/scripts/{script}")).await;
    assert_eq!(
        current["script"]["current_version"], 2,
        "a refused form changed the script"
    );

    // The page's own form, from the page's origin, works.
    let done = session
        .post(&rollback, &[("version", "1"), ("csrf", &csrf)])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location(),
        format!("/scripts/{script}?done=rolled-back")
    );
    let (_, current) = app.get(&token, &format!("/v1/scripts/{script}")).await;
    assert_eq!(current["script"]["current_version"], 1);

    // Bad input in a good form: a clear 400 page, nothing changed.
    let bad = session
        .post(&rollback, &[("version", "one"), ("csrf", &csrf)])
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("`one` is not a version number"),
        "{}",
        bad.body
    );
    let unknown = session
        .post(&rollback, &[("version", "9"), ("csrf", &csrf)])
        .await;
    assert_eq!(unknown.status, 404);

    // Run now: bad JSON is refused, good JSON starts a run and shows it.
    let run_now = format!("/scripts/{script}/run");
    let bad_json = session
        .post(
            &run_now,
            &[
                ("handler", "on_created"),
                ("payload", "{nope"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(bad_json.status, 400);
    assert!(
        bad_json.body.contains("the payload is not JSON"),
        "{}",
        bad_json.body
    );
    let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let too_large = session
        .post(
            &run_now,
            &[
                ("handler", "on_created"),
                ("payload", &huge),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    let (_, runs) = app.get(&token, "/v1/runs").await;
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        0,
        "a refused form queued a run"
    );
    let started = session
        .post(
            &run_now,
            &[
                ("handler", "on_created"),
                ("payload", "{\"n\":1}"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    assert!(
        started.location().starts_with("/runs/run_"),
        "{}",
        started.location()
    );
}
on_both_stores!(forms_need_the_pages_token_and_origin);

async fn what_scripts_and_users_control_is_text(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;
    let run_id = &support::dashboard::hostile_script_and_run(&app, &token).await;

    let session = Session::sign_in(&app, &token).await;
    let scripts = session.get("/scripts").await;
    // Escaped: shown, but not markup.
    assert!(
        scripts
            .body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        scripts.body
    );
    assert!(!scripts.body.contains("<script>alert(1)"));

    let page = session.get(&format!("/runs/{run_id}")).await;
    assert_eq!(page.status, 200);
    // In the output and in the payload, escaped.
    assert!(
        page.body.contains("&#60;img src=x onerror=alert(2)&#62;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<img src=x"), "{}", page.body);
}
on_both_stores!(what_scripts_and_users_control_is_text);

async fn one_user_never_sees_anothers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let script = app
        .deploy_example(&ada, "adas-secret-script", "event-echo")
        .await;
    let (_, run) = app
        .send(
            reqwest::Method::POST,
            &ada,
            &format!("/v1/scripts/{script}/run?wait=true"),
            json!({ "handler": "on_created" }),
        )
        .await;
    let run_id = run["run_id"].as_str().unwrap();

    let bobs = Session::sign_in(&app, &bob).await;
    for path in ["/scripts", "/runs", "/connections", "/outbox", "/audit"] {
        let page = bobs.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(!page.body.contains("adas-secret-script"), "{path}");
        assert!(!page.body.contains(run_id), "{path}");
    }
    assert_eq!(bobs.get(&format!("/scripts/{script}")).await.status, 404);
    assert_eq!(bobs.get(&format!("/runs/{run_id}")).await.status, 404);
    assert_eq!(bobs.get(&format!("/runs/{run_id}/live")).await.status, 404);
    let csrf = bobs.get("/scripts").await.csrf();
    let rollback = bobs
        .post(
            &format!("/scripts/{script}/rollback"),
            &[("version", "1"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(rollback.status, 404);
    let cancel = bobs
        .post(&format!("/runs/{run_id}/cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(cancel.status, 404);

    // Ada sees hers.
    let adas = Session::sign_in(&app, &ada).await;
    assert!(
        adas.get("/scripts")
            .await
            .body
            .contains("adas-secret-script")
    );
    assert!(adas.get("/runs").await.body.contains(run_id));
}
on_both_stores!(one_user_never_sees_anothers);

#[tokio::test]
async fn unknown_pages_and_bad_filters_say_so() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;
    let session = Session::sign_in(&app, &token).await;
    let missing = session.get("/no-such-page").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(missing.headers.contains_key("content-security-policy"));
    // An API client still gets JSON.
    let (status, body) = app.get(&token, "/v1/nothing").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let bad_status = session.get("/runs?status=exploded").await;
    assert_eq!(bad_status.status, 400);
    assert!(bad_status.body.contains("`exploded` is not a run status"));
    let bad_time = session.get("/runs?since=yesterday").await;
    assert_eq!(bad_time.status, 400);
    let bad_page = session.get("/runs?older=garbage").await;
    assert_eq!(bad_page.status, 400);
}

async fn a_session_works_on_every_node(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;
    let on_a = Session::sign_in(&app, &token).await;
    let mut on_b = Session::sign_in(&app, &token).await;
    on_b.cookie = on_a.cookie.clone();
    on_b.base = app.another_node().await;

    let page = on_b.get("/scripts").await;
    assert_eq!(page.status, 200, "node B does not know node A's session");
    // Signed out on B: A refuses the cookie at once, not after a cache period.
    let out = on_b.post("/signout", &[("csrf", &page.csrf())]).await;
    assert_eq!(out.status, 303);
    assert_eq!(on_a.get("/scripts").await.status, 303);
}
on_both_stores!(a_session_works_on_every_node);

async fn expired_sessions_are_signed_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;
    let user_id = app.user_id(&token).await;
    let now = roost::store::now_millis();
    let cookie = "0123456789abcdef".repeat(4);
    app.store
        .insert_web_session(
            &roost::auth::hash_token(&cookie),
            &user_id,
            "tok_any",
            "csrf",
            now - 10_000,
            now - 1,
        )
        .await
        .unwrap();
    let answer = app
        .client
        .get(format!("{}/scripts", app.base))
        .header("cookie", format!("roost_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "an expired session still works");
}
on_both_stores!(expired_sessions_are_signed_out);

async fn connections_show_how_each_integration_stands(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;
    let (status, body) = app
        .send(
            reqwest::Method::PUT,
            &token,
            "/v1/credentials/sendgrid",
            json!({ "values": { "api_key": "SG.connections-page-key-0123456789" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .deploy(&token, "printer", &roost_tests::example("slow-printer"))
        .await;
    assert_eq!(status, 201, "{body}");

    let session = Session::sign_in(&app, &token).await;
    let page = session.get("/connections").await;
    assert_eq!(page.status, 200);
    let row = |body: &str| {
        let start = body
            .find("id=\"connection-sendgrid\"")
            .expect("a sendgrid row");
        body[start..start + body[start..].find("</tr>").unwrap()].to_string()
    };
    let sendgrid = row(&page.body);
    assert!(
        sendgrid.contains("standing-connected") && sendgrid.contains("printer"),
        "{sendgrid}"
    );
    assert!(
        sendgrid.contains("/integrations/sendgrid/setup?"),
        "{sendgrid}"
    );
    assert!(
        !page.body.contains("connections-page-key"),
        "a credential value is on the page"
    );
    // The audit trail has the connection, never the value.
    let audit = session.get("/audit").await;
    assert!(audit.body.contains("sendgrid"), "{}", audit.body);
    assert!(!audit.body.contains("connections-page-key"));

    let csrf = page.csrf();
    let gone = session
        .post("/connections/sendgrid/disconnect", &[("csrf", &csrf)])
        .await;
    assert_eq!(gone.status, 303, "{}", gone.body);
    let sendgrid = row(&session.get("/connections").await.body);
    assert!(
        sendgrid.contains("standing-missing") && sendgrid.contains("Connect"),
        "{sendgrid}"
    );
    let again = session
        .post("/connections/sendgrid/disconnect", &[("csrf", &csrf)])
        .await;
    assert_eq!(again.status, 404);
}
on_both_stores!(connections_show_how_each_integration_stands);

//! The dashboard as a person uses it, in headless Chromium over WebDriver
//! (`roost_tests::browser`): find a failed run and read why, watch a run's
//! output arrive, reconnect a credential, pause a schedule, roll back.
//! Each step saves a screenshot under `<target dir>/browser-screenshots/`.
//! Skipped, saying so, when chromedriver is not installed (`tests/setup`).

mod support;

use std::time::Duration;

use roost::store::CredentialStatus;
use roost_tests::browser::Browser;
use serde_json::json;
use support::{Backend, TestApp};

/// Signs the browser in with `token` through the sign-in page.
async fn sign_in(browser: &Browser, app: &TestApp, token: &str) {
    browser.goto(&format!("{}/", app.base)).await;
    browser.wait_for_path("/signin").await;
    browser.fill("#token", token).await;
    browser
        .click("form[action='/signin'] button[type=submit]")
        .await;
    browser.wait_for_path("/scripts").await;
}

async fn connect_sendgrid(app: &TestApp, token: &str) {
    let (status, body) = app
        .send(
            reqwest::Method::PUT,
            token,
            "/v1/credentials/sendgrid",
            json!({ "values": { "api_key": "SG.browser-test-key-0123456789" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_failed_run_is_found_and_its_error_read() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;
    let script = app
        .deploy_example(&token, "fetcher", "forbidden-egress")
        .await;
    let (status, run) = app
        .send(
            reqwest::Method::POST,
            &token,
            &format!("/v1/scripts/{script}/run?wait=true"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "failed", "{run}");
    let run_id = run["run_id"].as_str().unwrap().to_string();

    sign_in(&browser, &app, &token).await;
    // The scripts page counts the failure and links to it.
    browser.wait_for("#scripts a.failures").await;
    let failures: u32 = browser
        .text("#scripts a.failures")
        .await
        .trim()
        .parse()
        .unwrap();
    assert!(failures >= 1, "{failures} failures shown");
    browser.screenshot("scripts-with-a-failure").await;

    browser.goto(&format!("{}/runs", app.base)).await;
    browser
        .wait_for_text("#run-rows .status-failed", "failed")
        .await;
    // Filter to failures with the form (keyboard-reachable controls).
    browser
        .find("#filter-status")
        .await
        .select_by_value("failed")
        .await
        .unwrap();
    browser.click(".filters button[type=submit]").await;
    browser.wait_for_text("#run-rows", "fetcher").await;
    assert!(browser.url().await.contains("status=failed"));
    browser.screenshot("failed-runs").await;

    // Its retries are listed too (the default policy retries a failure).
    browser
        .click(&format!("#run-rows a.run-link[href='/runs/{run_id}']"))
        .await;
    browser.wait_for_path(&format!("/runs/{run_id}")).await;
    browser.wait_for_text("#run-status", "failed").await;
    let error = browser.text("#run-error").await;
    assert!(error.contains("exited with status 10"), "{error}");
    assert!(error.contains("outbound requests denied"), "{error}");
    browser
        .wait_for_text("#denials", "forbidden.example.com")
        .await;
    // Its retry (the default policy retries a failure), linked.
    browser.wait_for_text("#retries", "attempt 2").await;
    let stderr = browser.text("#stderr").await;
    assert!(!stderr.trim().is_empty(), "the run's stderr is shown");
    browser.screenshot("failed-run").await;
}

#[tokio::test]
async fn a_running_runs_output_arrives_while_the_page_is_open() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;
    connect_sendgrid(&app, &token).await;
    let script = app.deploy_example(&token, "printer", "slow-printer").await;
    sign_in(&browser, &app, &token).await;

    // The runs list, open before the run starts, shows it without a reload.
    browser.goto(&format!("{}/runs", app.base)).await;
    browser.wait_for("#no-runs").await;
    let (status, started) = app
        .send(
            reqwest::Method::POST,
            &token,
            &format!("/v1/scripts/{script}/run"),
            json!({ "payload": { "lines": 4, "pause_ms": 1200 } }),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    browser.wait_for_text("#run-rows", "printer").await;
    browser.screenshot("runs-list-live").await;

    browser.click("#run-rows a.run-link").await;
    browser.wait_for_path(&format!("/runs/{run_id}")).await;
    // Output mid-run: a line is there while the run is still going.
    browser
        .wait_for_text_within("#stdout", "line 2", Duration::from_secs(15))
        .await;
    let status = browser.text("#run-status").await;
    assert_eq!(
        status.trim(),
        "running",
        "the output arrived only after the end"
    );
    assert!(!browser.text("#stdout").await.contains("done"));
    browser.screenshot("run-output-live").await;
    // Then the end, without a reload.
    browser
        .wait_for_text_within("#run-status", "succeeded", Duration::from_secs(20))
        .await;
    let stdout = browser.text("#stdout").await;
    assert!(
        stdout.contains("line 4") && stdout.contains("done"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("line 1").count(),
        1,
        "output shown twice: {stdout}"
    );
    browser.wait_for_text("#stderr", "note 4").await;
    browser.screenshot("run-output-ended").await;
}

#[tokio::test]
async fn a_credential_is_reconnected_through_its_setup_page() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;
    connect_sendgrid(&app, &token).await;
    app.deploy_example(&token, "printer", "slow-printer").await;
    let user_id = app.user_id(&token).await;
    app.store
        .set_credential_status(&user_id, "sendgrid", CredentialStatus::Rejected)
        .await
        .unwrap();

    sign_in(&browser, &app, &token).await;
    browser.goto(&format!("{}/connections", app.base)).await;
    browser
        .wait_for_text("#connection-sendgrid .standing", "rejected")
        .await;
    browser
        .wait_for_text("#connection-sendgrid", "printer")
        .await;
    browser.screenshot("connections-rejected").await;

    browser.click("#connection-sendgrid a.setup").await;
    browser.wait_for("input#api_key").await;
    browser.screenshot("setup-page").await;
    browser
        .fill("#api_key", "SG.a-new-key-that-works-0123456789")
        .await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_text("body", "onnected").await;

    browser.goto(&format!("{}/connections", app.base)).await;
    browser
        .wait_for_text("#connection-sendgrid .standing", "connected")
        .await;
    browser.screenshot("connections-connected").await;
}

#[tokio::test]
async fn a_schedule_is_paused_and_a_version_rolled_back() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;
    let script = app.deploy_example(&token, "beat", "heartbeat").await;
    app.deploy_example(&token, "beat", "heartbeat").await;

    sign_in(&browser, &app, &token).await;
    browser.click("#scripts a.script-name").await;
    browser.wait_for_path(&format!("/scripts/{script}")).await;
    browser
        .wait_for_text("#schedule-beat .schedule-state", "active")
        .await;
    browser.screenshot("script-page").await;

    browser.click("#schedule-beat button.pause").await;
    browser
        .wait_for_text("#schedule-beat .schedule-state", "paused")
        .await;
    browser
        .wait_for_text("#notice", "schedule was changed")
        .await;
    let (_, schedules) = app
        .get(&token, &format!("/v1/scripts/{script}/schedules"))
        .await;
    assert_eq!(schedules["schedules"][0]["paused"], true, "{schedules}");
    browser.screenshot("schedule-paused").await;

    browser.click("#version-1 button.rollback").await;
    browser.wait_for_text("#notice", "made current").await;
    browser.wait_for_text("h1 .version", "v1").await;
    let (_, current) = app.get(&token, &format!("/v1/scripts/{script}")).await;
    assert_eq!(current["script"]["current_version"], 1);
    browser.screenshot("rolled-back").await;
}

#[tokio::test]
async fn the_pages_fit_a_phone_and_work_without_a_mouse() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;
    app.deploy_example(&token, "beat", "heartbeat").await;
    browser.emulate_phone(390, 844).await;

    // Sign in with the keyboard alone: type the token, press Enter.
    browser.goto(&format!("{}/signin", app.base)).await;
    let field = browser.wait_for("#token").await;
    field.send_keys(&format!("{token}\u{E007}")).await.unwrap();
    browser.wait_for_path("/scripts").await;

    for path in ["/scripts", "/runs", "/connections", "/outbox", "/audit"] {
        browser.goto(&format!("{}{path}", app.base)).await;
        browser.wait_for("main h1").await;
        let overflow = browser
            .client()
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            overflow.as_i64().unwrap_or(0) <= 0,
            "{path} is wider than a phone by {overflow}px"
        );
        browser
            .screenshot(&format!("phone{}", path.replace('/', "-")))
            .await;
    }
}

#[tokio::test]
async fn hostile_names_and_output_show_as_text_and_run_nothing() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;
    let run_id = &support::dashboard::hostile_script_and_run(&app, &token).await;

    sign_in(&browser, &app, &token).await;
    browser
        .wait_for_text("#scripts", "<script>alert(1)</script>")
        .await;
    browser.screenshot("hostile-name").await;
    assert!(
        browser.client().get_alert_text().await.is_err(),
        "a script name ran as code"
    );

    browser.goto(&format!("{}/runs/{run_id}", app.base)).await;
    browser
        .wait_for_text("#stdout", "<img src=x onerror=alert(2)>")
        .await;
    assert!(browser.find_all("#stdout img").await.is_empty());
    assert!(
        browser.client().get_alert_text().await.is_err(),
        "a run's output ran as code"
    );
    browser.screenshot("hostile-output").await;
}

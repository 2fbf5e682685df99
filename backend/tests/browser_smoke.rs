//! The real server in a real browser (headless Chromium over WebDriver,
//! `roost_tests::browser`): the harness works against roost, and the
//! dashboard's sign-in does what a person does. Skipped, saying so, when
//! chromedriver is not installed (`tests/setup` installs it). Screenshots go
//! to `<target dir>/browser-screenshots/`.

mod support;

use roost_tests::browser::Browser;
use support::{Backend, TestApp};

#[tokio::test]
async fn the_browser_reads_the_health_page() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;

    browser.goto(&format!("{}/health", app.base)).await;
    assert_eq!(browser.wait_for_text("body", "ok").await.trim(), "ok");
    assert_eq!(browser.path().await, "/health");
    let shot = browser.screenshot("health").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 0);
}

#[tokio::test]
async fn signing_in_with_an_api_token_opens_the_scripts_page() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;

    // A wrong token: no session.
    browser.goto(&format!("{}/signin", app.base)).await;
    browser
        .wait_for("form[method=post][action='/signin'] input#token[name=token][type=password]")
        .await;
    browser.screenshot("signin").await;
    browser.fill("#token", "not-a-token").await;
    browser
        .click("form[action='/signin'] button[type=submit]")
        .await;
    browser.wait_for("#token").await;
    assert_ne!(browser.path().await, "/scripts");
    assert!(
        browser.cookie("roost_session").await.is_none(),
        "a wrong token got a session: {:?}",
        browser.cookies().await
    );

    // The user's API token: signed in, on the scripts page.
    browser.fill("#token", &token).await;
    browser
        .click("form[action='/signin'] button[type=submit]")
        .await;
    browser.wait_for_path("/scripts").await;
    browser.screenshot("scripts").await;

    let cookies = browser.cookies().await;
    let session = cookies
        .iter()
        .find(|cookie| cookie.name == "roost_session")
        .unwrap_or_else(|| panic!("no roost_session cookie: {cookies:?}"));
    assert!(session.http_only, "page scripts can read it: {session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Strict"), "{session:?}");
    assert!(
        !session.value.contains(&token),
        "the session cookie holds the API token: {session:?}"
    );
}

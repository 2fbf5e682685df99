//! The browser harness (`roost_tests::browser`) against a tiny page server
//! of its own, so it is known to work before a dashboard test relies on
//! it: a form filled and posted, a redirect followed, cookie flags read, a
//! wait that times out and says what it waited for. Skipped, saying so,
//! when chromedriver is not installed (`tests/setup` installs it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use roost_tests::browser::{Browser, VIEWPORT, screenshot_dir};

const FORM: &str = r#"<!doctype html><title>Sign in</title>
<form method="post" action="/signin"><input id="token" name="token" type="password">
<button type="submit">Sign in</button></form>"#;

/// Serves `/signin` (the token `letmein` gets a session cookie and a
/// redirect to `/scripts`) and `/scripts` on a free port; its base URL.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || answer(stream));
        }
    });
    base
}

fn answer(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let body = String::from_utf8_lossy(&body);
    let mut words = request_line.split_whitespace();
    let response = match (words.next(), words.next()) {
        (Some("GET"), Some("/signin")) => page("200 OK", "", FORM),
        (Some("POST"), Some("/signin")) if body == "token=letmein" => page(
            "303 See Other",
            "Location: /scripts\r\n\
             Set-Cookie: roost_session=s3ss10n; Path=/; HttpOnly; SameSite=Strict\r\n",
            "",
        ),
        (Some("POST"), Some("/signin")) => page("401 Unauthorized", "", FORM),
        (Some("GET"), Some("/scripts")) => page("200 OK", "", "<h1>Your scripts</h1>"),
        _ => page("404 Not Found", "", "not found"),
    };
    let _ = stream.write_all(response.as_bytes());
}

fn page(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}content-type: text/html; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Width and height from a PNG's header.
fn png_size(png: &[u8]) -> (u32, u32) {
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[tokio::test]
async fn a_form_is_filled_posted_and_its_cookie_read() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let base = serve();

    browser.goto(&format!("{base}/signin")).await;
    browser.wait_for("input#token[type=password]").await;
    browser.fill("#token", "wrong").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("#token").await;
    assert_eq!(browser.path().await, "/signin");
    assert_eq!(browser.cookie("roost_session").await, None);

    browser.fill("#token", "letmein").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_path("/scripts").await;
    assert_eq!(browser.wait_for_text("h1", "scripts").await, "Your scripts");
    assert_eq!(browser.text("h1").await, "Your scripts");
    assert_eq!(browser.url().await, format!("{base}/scripts"));

    let cookie = browser.cookie("roost_session").await.expect("the cookie");
    assert_eq!(cookie.value, "s3ss10n");
    assert!(cookie.http_only);
    assert!(!cookie.secure);
    assert_eq!(cookie.same_site.as_deref(), Some("Strict"));

    let shot = browser.screenshot("scripts").await;
    assert!(shot.starts_with(screenshot_dir()));
    assert!(
        shot.ends_with("a_form_is_filled_posted_and_its_cookie_read-scripts.png"),
        "{}",
        shot.display()
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(png_size(&png), VIEWPORT);

    // A phone's viewport: what the page sees, and what the screenshot holds.
    browser.set_viewport(390, 844).await;
    let seen = browser
        .client()
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    assert_eq!(seen, serde_json::json!([390, 844]));
    let phone = std::fs::read(browser.screenshot("phone").await).unwrap();
    assert_eq!(png_size(&phone), (390, 844));
    // As a phone: its screen; a page without `<meta name=viewport>` (this
    // one) is laid out wider and zoomed out, as phones do.
    browser.emulate_phone(360, 780).await;
    let screen = browser
        .client()
        .execute("return [screen.width, screen.height];", vec![])
        .await
        .unwrap();
    assert_eq!(screen, serde_json::json!([360, 780]));
    browser.set_viewport(VIEWPORT.0, VIEWPORT.1).await;
    let desktop = std::fs::read(browser.screenshot("desktop").await).unwrap();
    assert_eq!(png_size(&desktop), VIEWPORT);
}

#[tokio::test]
async fn a_wait_that_times_out_names_what_it_awaited_and_where() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let base = serve();
    browser.goto(&format!("{base}/signin")).await;

    // The browser is dropped while the panic unwinds, as in a failed test.
    let waiting = tokio::spawn(async move {
        browser
            .wait_for_within("#never", Duration::from_millis(500))
            .await;
    });
    let panic = waiting.await.expect_err("the wait timed out").into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "timed out after 500ms waiting for an element matching `#never` at {base}/signin"
        )),
        "{message}"
    );
    assert!(message.contains("-timeout.png"), "{message}");
    assert!(message.contains("Sign in"), "the page's text: {message}");
}

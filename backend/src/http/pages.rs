//! Small server-rendered HTML pages for people in a browser (setup forms,
//! OAuth results). Everything interpolated is escaped.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML (and SVG) bodies and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page with a title and an already-escaped body.
pub(super) fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · roost</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}\
         label{{display:block;margin-top:1rem;font-weight:600}}input{{width:100%;padding:.4rem;font-size:1rem}}\
         button{{margin-top:1.5rem;padding:.5rem 1.2rem;font-size:1rem}}.hint{{color:#555;font-size:.9rem}}</style>\
         </head><body><h1>{title}</h1>{body_html}</body></html>",
        title = escape(title),
    );
    let mut response = (status, Html(html)).into_response();
    // Setup pages carry signed links and forms for secrets: never cache them,
    // never frame them.
    let headers = response.headers_mut();
    headers.insert("cache-control", "no-store".parse().expect("valid header"));
    headers.insert("x-frame-options", "DENY".parse().expect("valid header"));
    headers.insert(
        "referrer-policy",
        "no-referrer".parse().expect("valid header"),
    );
    response
}

/// An error page: what went wrong and what to do.
pub(super) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    page(status, title, &format!("<p>{}</p>", escape(message)))
}

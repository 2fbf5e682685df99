//! Fetches `payload.url` (by default a host no egress policy allows) and
//! reports the status or the error.
//!
//! Exit status: 0 on a response, 10 when roost's egress policy refused the
//! request, 11 on any other failure.

use roost_sdk::Invocation;
use roost_sdk::http::{self, HttpError};

const DEFAULT_URL: &str = "https://forbidden.example.com/steal";

#[roost_sdk::handler]
fn fetch(invocation: &Invocation) {
    let url = invocation.payload["url"].as_str().unwrap_or(DEFAULT_URL);
    match http::get(url) {
        Ok(response) => {
            println!("status {}", response.status);
            println!("body {}", response.text());
        }
        Err(err @ HttpError::Denied(_)) => {
            eprintln!("{err}");
            roost_sdk::exit(10);
        }
        Err(err) => {
            eprintln!("{err}");
            roost_sdk::exit(11);
        }
    }
}

roost_sdk::main!(fetch);

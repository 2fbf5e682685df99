//! The deploy's progress on a terminal: a bar while the component
//! uploads, then a spinner while the server checks and compiles it. Not
//! drawn when stderr is not a terminal (scripts, CI, tests).

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Bytes handed to the connection at a time.
const CHUNK: usize = 64 * 1024;

// The current deploy's bar; `roost dev` deploys many times in one process.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// `body` as a request body that moves the bar as it is sent.
pub(super) fn uploading(body: Vec<u8>) -> reqwest::Body {
    let bar = ProgressBar::new(body.len() as u64).with_style(
        ProgressStyle::with_template("uploading {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})")
            .expect("a valid template"),
    );
    if let Some(old) = BAR.lock().expect("not poisoned").replace(bar.clone()) {
        old.finish_and_clear();
    }
    let total = body.len();
    let chunks: Vec<Vec<u8>> = body.chunks(CHUNK).map(<[u8]>::to_vec).collect();
    let mut sent = 0;
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
        sent += chunk.len();
        bar.set_position(sent as u64);
        if sent == total {
            // The server answers once it has compiled the component.
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} the server checks and compiles it ({elapsed})",
                )
                .expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Ok::<_, std::io::Error>(chunk)
    }));
    reqwest::Body::wrap_stream(stream)
}

/// Clears the bar once the answer is in.
pub(super) fn done() {
    if let Some(bar) = BAR.lock().expect("not poisoned").take() {
        bar.finish_and_clear();
    }
}

//! Reading the address a `roost serve` child announces (shared with the
//! benches, which include this file).

use std::io::{BufRead, BufReader, Write};
use std::process::Child;

/// Reads the child's stderr until `roost: listening on <url>` and returns
/// the URL. From then on a thread keeps draining stderr, into `log` when
/// given, so the server never blocks on a full pipe.
pub fn listening_url(child: &mut Child, log: Option<std::fs::File>) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("roost serve exited before listening")
            .unwrap();
        if let Some(url) = line.strip_prefix("roost: listening on ") {
            break url.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || {
        let mut log = log;
        for line in lines.map_while(Result::ok) {
            if let Some(log) = log.as_mut() {
                let _ = writeln!(log, "{line}");
            }
        }
    });
    url
}

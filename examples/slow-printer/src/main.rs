//! Prints a line to stdout and one to stderr, pauses, and again, `lines`
//! times (default 3), `pause_ms` apart (default 1500), then `done`: the
//! tests of live output read its output while it runs. With
//! `{"leak": true}` it also prints its SendGrid key, once whole and once
//! with a pause after its first half, which roost must mask in the output
//! it shows mid-run as well as in the final one.

use std::io::Write;
use std::time::Duration;

use roost_sdk::{Invocation, handler};

roost_sdk::uses_integrations!("sendgrid");

#[handler]
fn print_slowly(invocation: &Invocation) -> roost_sdk::Result {
    let lines = invocation.payload["lines"].as_u64().unwrap_or(3);
    let pause = Duration::from_millis(invocation.payload["pause_ms"].as_u64().unwrap_or(1500));
    let key = std::env::var("SENDGRID_API_KEY").unwrap_or_default();
    let mut stdout = std::io::stdout();
    for n in 1..=lines {
        println!("line {n}");
        eprintln!("note {n}");
        if invocation.payload["leak"] == true && !key.is_empty() {
            println!("whole key {key}");
            // The first half alone ends the output for a while.
            let (head, tail) = key.split_at(key.len() / 2);
            write!(stdout, "half key {head}")?;
            stdout.flush()?;
            std::thread::sleep(pause);
            writeln!(stdout, "{tail}")?;
        }
        std::thread::sleep(pause);
    }
    println!("done");
    Ok(())
}

roost_sdk::main!(print_slowly);

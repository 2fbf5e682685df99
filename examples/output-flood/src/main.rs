//! Writes lines to stdout without end.

use std::io::Write;

#[roost_sdk::handler]
fn flood() {
    let mut out = std::io::stdout().lock();
    let mut line: u64 = 0;
    loop {
        if writeln!(
            out,
            "flood line {line}: the quick brown fox jumps over the lazy dog"
        )
        .is_err()
        {
            // The host refused the write; keep trying so only the host can end the run.
            continue;
        }
        line += 1;
    }
}

roost_sdk::main!(flood);

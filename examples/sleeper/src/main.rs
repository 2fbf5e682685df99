//! Blocks in a host call: a sleep of `payload.ms` milliseconds (one minute
//! by default). No wasm runs meanwhile, so the epoch deadline cannot fire;
//! only the sandbox's outer timeout stops it. The cluster tests use short
//! sleeps to keep runs in a node's hands while they kill it.

#[roost_sdk::handler]
fn sleep(invocation: &roost_sdk::Invocation) {
    let ms = invocation.payload["ms"].as_u64().unwrap_or(60_000);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    println!("woke up after {ms} ms");
}

roost_sdk::main!(sleep);

//! Blocks in a host call (a one-minute sleep). No wasm runs meanwhile, so
//! the epoch deadline cannot fire; only the sandbox's outer timeout stops it.

#[roost_sdk::handler]
fn sleep() {
    std::thread::sleep(std::time::Duration::from_secs(60));
    println!("woke up");
}

roost_sdk::main!(sleep);

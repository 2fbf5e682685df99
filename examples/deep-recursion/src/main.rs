//! Recurses until the WebAssembly call stack runs out.

#[allow(unconditional_recursion)]
fn descend(depth: u64) -> u64 {
    // black_box keeps the compiler from turning this into a loop.
    std::hint::black_box(descend(std::hint::black_box(depth + 1))) + 1
}

#[roost_sdk::handler]
fn recurse() {
    println!("reached {}", descend(0));
}

roost_sdk::main!(recurse);

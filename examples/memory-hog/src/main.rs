//! Allocates and touches memory in 1 MiB steps until it is stopped.

#[roost_sdk::handler]
fn hog() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let chunk = vec![0xA5u8; 1024 * 1024];
        hoard.push(std::hint::black_box(chunk));
        if hoard.len().is_multiple_of(64) {
            eprintln!("memory-hog: holding {} MiB", hoard.len());
        }
    }
}

roost_sdk::main!(hog);

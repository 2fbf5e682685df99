//! Spins forever without calling the host. Only the epoch deadline (or a
//! fuel budget) can stop it.

#[roost_sdk::handler]
fn spin() {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

roost_sdk::main!(spin);

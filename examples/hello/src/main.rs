//! Prints what the script can see: its environment and its invocation.
//! The tests use it to check exactly which variables reach a guest.

use roost_sdk::{Invocation, handler};

#[handler]
fn hello(invocation: &Invocation) {
    println!("hello from roost");
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (key, value) in vars {
        println!("env {key}={value}");
    }
    println!("trigger {:?}", invocation.trigger);
    println!("payload {}", invocation.payload);
}

roost_sdk::main!(hello);

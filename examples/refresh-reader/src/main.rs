//! Asks for gmail's OAuth refresh token (`wants_refresh_token!`) and prints
//! the names of the gmail variables its run got, never their values. The
//! tests compare it with scripts that use gmail without asking.

roost_sdk::wants_refresh_token!("gmail");

#[roost_sdk::handler]
fn report() {
    let mut names: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("GMAIL_"))
        .collect();
    names.sort();
    println!("gmail variables: {}", names.join(", "));
}

roost_sdk::main!(report);

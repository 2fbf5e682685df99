/// Ends the script now with `code` as its exit status.
///
/// Prefer this to `std::process::exit`: on `wasm32-wasip2` the standard
/// library can only report success or failure (every non-zero code becomes
/// 1), while roost records the exact status passed here.
pub fn exit(code: u8) -> ! {
    #[cfg(target_arch = "wasm32")]
    wasip2::cli::exit::exit_with_code(code);
    // Not reached on wasm (the host ends the instance); elsewhere, and as a
    // fallback, the standard exit.
    std::process::exit(i32::from(code))
}

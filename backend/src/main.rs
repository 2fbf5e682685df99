//! The `roost` binary: everything lives in the library; this only starts it.

// mimalloc instead of the system allocator: a request to an HTTP handler
// allocates in many small pieces (BENCHMARKS.md, HTTP handlers).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    roost::cli::main()
}

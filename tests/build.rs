//! Builds the example guests (`examples/`, a wasm32-wasip2 workspace) so the
//! tests can run real components, and tells the tests where they are.
//!
//! The guests get their own target directory beside the host's (under
//! `<target>/guest`), so this nested cargo never waits on the outer one's
//! lock and CI's cached target directory keeps them too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let examples = workspace.join("examples");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target_dir = out_dir.ancestors().nth(4).unwrap_or(&out_dir).to_path_buf();
    let guest_target = std::env::var_os("ROOST_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir.join("guest"));

    for dir in ["examples", "sdk-guest"] {
        watch(&workspace.join(dir));
    }
    println!("cargo:rerun-if-env-changed=ROOST_GUEST_TARGET_DIR");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .arg("build")
        .arg("--release")
        .arg("--target")
        .arg("wasm32-wasip2")
        .arg("--manifest-path")
        .arg(examples.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&guest_target);
    // The outer build's flags are for the host, not for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .expect("running cargo to build the example guests");
    if !status.success() {
        panic!(
            "building the example guests failed; is the wasm target installed? \
             run `rustup target add wasm32-wasip2`"
        );
    }
    let wasm_dir = guest_target.join("wasm32-wasip2").join("release");
    println!(
        "cargo:rustc-env=ROOST_EXAMPLES_WASM_DIR={}",
        wasm_dir.display()
    );
}

fn watch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

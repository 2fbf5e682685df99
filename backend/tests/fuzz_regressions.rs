//! Every fuzz target's seeds and the inputs fuzzing found (`fuzz/seeds/<target>`,
//! `fuzz/regressions/<target>`) run through the same entry points as
//! `cargo fuzz`, in the normal test run: a fixed crash stays fixed.

use std::path::Path;

#[test]
fn every_kept_fuzz_input_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut ran = 0;
    for (name, target) in roost::fuzzing::TARGETS {
        let mut inputs = 0;
        for kind in ["seeds", "regressions"] {
            let dir = root.join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.file_name().is_some_and(|n| n == ".gitkeep") {
                    continue;
                }
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name} panicked on {}", path.display());
                inputs += 1;
            }
        }
        assert!(inputs > 0, "fuzz target {name} has no seeds");
        ran += inputs;
    }
    assert!(ran >= roost::fuzzing::TARGETS.len());
}

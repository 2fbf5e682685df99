//! What the sandbox accepts as a guest, what it reads from one without
//! running it, and its compiled-artifact cache.

mod support;

use roost_sandbox::metadata::{self, HandlerMeta};
use roost_sandbox::{GuestKind, Sandbox, SandboxConfig, SandboxError, Trigger};
use support::{run_plain, sandbox};

#[test]
fn metadata_is_read_from_a_built_example_without_running_it() {
    let meta = metadata::read(&roost_tests::example("heartbeat"))
        .unwrap()
        .expect("heartbeat has metadata");
    assert_eq!(meta.sdk_version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(
        meta.handlers,
        [
            HandlerMeta {
                name: "beat".into(),
                trigger: Trigger::Schedule {
                    cron: "0 */5 * * * *".into(),
                    timezone: None
                },
                flow: None,
            },
            HandlerMeta {
                name: "status".into(),
                trigger: Trigger::Manual,
                flow: None,
            },
        ]
    );
    assert!(meta.integrations.is_empty());

    let hello = metadata::read(&roost_tests::example("hello"))
        .unwrap()
        .unwrap();
    assert_eq!(
        hello.handlers,
        [HandlerMeta {
            name: "hello".into(),
            trigger: Trigger::Manual,
            flow: None,
        }]
    );
}

#[test]
fn wasm_without_roost_metadata_reads_as_none() {
    let module = wat_module(r#"(module (func (export "_start")))"#);
    assert_eq!(metadata::read(&module).unwrap(), None);
}

#[test]
fn non_wasm_is_rejected_with_what_was_expected() {
    let sandbox = sandbox();
    let err = sandbox.load(b"#!/bin/sh\necho hi\n").unwrap_err();
    assert!(matches!(err, SandboxError::NotWasm { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("expected a wasm32-wasip2 component"),
        "{err}"
    );
    assert!(matches!(
        sandbox.load(b"").unwrap_err(),
        SandboxError::NotWasm { .. }
    ));
}

#[test]
fn truncated_component_is_rejected() {
    let sandbox = sandbox();
    let bytes = roost_tests::example("hello");
    let err = sandbox.load(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(matches!(err, SandboxError::InvalidGuest { .. }), "{err:?}");
}

#[test]
fn component_without_a_run_export_is_rejected() {
    let sandbox = sandbox();
    let err = sandbox.load(&wat_module("(component)")).unwrap_err();
    assert!(err.to_string().contains("wasi:cli/run"), "{err}");
}

#[test]
fn module_without_start_is_rejected() {
    let sandbox = sandbox();
    let err = sandbox.load(&wat_module("(module)")).unwrap_err();
    assert!(err.to_string().contains("_start"), "{err}");
}

#[tokio::test]
async fn wasip1_module_runs_with_captured_stdout() {
    let sandbox = sandbox();
    let module = wat_module(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write"
                (func $fd_write (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 16) "hi from wasip1\n")
            (func (export "_start")
                (i32.store (i32.const 0) (i32.const 16))
                (i32.store (i32.const 4) (i32.const 15))
                (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    );
    let guest = sandbox.load(&module).unwrap();
    assert_eq!(guest.kind(), GuestKind::Module);
    let outcome = run_plain(&sandbox, &guest).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.stdout.to_text(), "hi from wasip1\n");
}

#[test]
fn compiled_artifacts_are_reused_across_restarts() {
    let cache = tempfile::tempdir().unwrap();
    let config = SandboxConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..SandboxConfig::default()
    };
    let hello = roost_tests::example("hello");

    let first = Sandbox::new(config.clone()).unwrap();
    first.load(&hello).unwrap();
    assert_eq!((first.cache_misses(), first.cache_hits()), (1, 0));
    drop(first);

    // A new engine with the same configuration, as after a restart.
    let second = Sandbox::new(config.clone()).unwrap();
    let guest = second.load(&hello).unwrap();
    assert_eq!(
        (second.cache_misses(), second.cache_hits()),
        (0, 1),
        "the restart recompiled"
    );
    assert_eq!(guest.content_hash().len(), 64);

    // A different engine configuration must not reuse those artifacts.
    let fuel = Sandbox::new(SandboxConfig {
        fuel_metering: true,
        ..config
    })
    .unwrap();
    fuel.load(&hello).unwrap();
    assert_eq!((fuel.cache_misses(), fuel.cache_hits()), (1, 0));
}

fn wat_module(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

#[tokio::test]
async fn runs_without_the_pooling_allocator() {
    use roost_sandbox::PoolingMode;
    let sandbox = Sandbox::new(SandboxConfig {
        pooling: PoolingMode::Disabled,
        ..SandboxConfig::default()
    })
    .unwrap();
    assert!(!sandbox.uses_pooling());
    assert_runs_hello(&sandbox).await;
}

#[tokio::test]
async fn pool_too_large_for_the_address_space_falls_back_cleanly() {
    use roost_sandbox::PoolingMode;
    // 4 million memory slots of 4 GiB each cannot be reserved anywhere.
    let huge = SandboxConfig {
        max_concurrent_instances: 2_000_000,
        max_memory_bytes: 4 << 30,
        ..SandboxConfig::default()
    };
    let required = Sandbox::new(SandboxConfig {
        pooling: PoolingMode::Required,
        ..huge.clone()
    });
    assert!(
        matches!(required, Err(SandboxError::Engine(_))),
        "the pool should not fit"
    );

    let sandbox = Sandbox::new(SandboxConfig {
        pooling: PoolingMode::Auto,
        ..huge
    })
    .unwrap();
    assert!(!sandbox.uses_pooling());
    assert_runs_hello(&sandbox).await;
}

async fn assert_runs_hello(sandbox: &Sandbox) {
    let guest = sandbox.load(&roost_tests::example("hello")).unwrap();
    let outcome = run_plain(sandbox, &guest).await;
    assert!(outcome.succeeded(), "{outcome:?}");
}

/// A guest that exits 1 if its memory holds anything a fresh instance's
/// would not: the data segment changed, or a word set at 32 KiB, 1 MiB or
/// 2.5 MiB (inside and past the part of a pooled memory kept resident
/// between instances). Then it changes all of them, for the next run to
/// find. `extra` is more module text (a data segment, to see the check
/// fire).
fn residue_probe(extra: &str) -> Vec<u8> {
    wat_module(&format!(
        r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 48)
            (data (i32.const 16) "\2a\00\00\00")
            {extra}
            (func $set (param $at i32) (result i32)
                (i32.ne (i32.load (local.get $at)) (i32.const 0))
                (i32.store (local.get $at) (i32.const 0x5ec2e7)))
            (func (export "_start")
                (local $dirty i32)
                (local.set $dirty (i32.ne (i32.load (i32.const 16)) (i32.const 42)))
                (i32.store (i32.const 16) (i32.const 7))
                (local.set $dirty (i32.or (local.get $dirty) (call $set (i32.const 0x8000))))
                (local.set $dirty (i32.or (local.get $dirty) (call $set (i32.const 0x100000))))
                (local.set $dirty (i32.or (local.get $dirty) (call $set (i32.const 0x280000))))
                (local.set $dirty (i32.or (local.get $dirty)
                    (i32.ne (memory.size) (i32.const 48))))
                (drop (memory.grow (i32.const 1)))
                (call $exit (local.get $dirty))))"#
    ))
}

#[tokio::test]
async fn a_pooled_slot_holds_nothing_of_the_run_before() {
    let sandbox = sandbox();
    assert!(
        sandbox.uses_pooling(),
        "this test is about reused pool slots"
    );
    // The probe sees what it should: a word set before it starts.
    let marked = sandbox
        .load(&residue_probe(r#"(data (i32.const 0x100000) "\01")"#))
        .unwrap();
    let outcome = run_plain(&sandbox, &marked).await;
    assert_eq!(
        outcome.termination,
        roost_sandbox::Termination::Exited { code: 1 }
    );

    // Run after run in the same slot, each finds a fresh memory.
    let probe = sandbox.load(&residue_probe("")).unwrap();
    for n in 0..5 {
        let outcome = run_plain(&sandbox, &probe).await;
        assert!(
            outcome.succeeded(),
            "run {n} found the last run's memory: {outcome:?}"
        );
    }
}

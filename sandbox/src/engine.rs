use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker as ComponentLinker};
use wasmtime::{Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, Linker, Module};
use wasmtime::{PoolingAllocationConfig, WasmBacktraceDetails};
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::guest::{GuestKind, GuestPre, LoadedGuest};
use crate::store_data::{ComponentState, ModuleState};
use crate::{PoolingMode, SandboxConfig, SandboxError};

/// A configured wasmtime engine plus everything shared by all runs: the
/// linkers, the epoch ticker and the compiled-artifact cache.
///
/// Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Sandbox {
    pub(crate) engine: Engine,
    pub(crate) config: SandboxConfig,
    component_linker: ComponentLinker<ComponentState>,
    module_linker: Linker<ModuleState>,
    cache: Option<Cache>,
    pooling: bool,
    ticker: Option<Ticker>,
}

impl Sandbox {
    /// Builds the engine. With [`PoolingMode::Auto`] a failure to reserve the
    /// pool's address space falls back to on-demand allocation.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let cache = match &config.cache_dir {
            Some(dir) => Some(open_cache(dir)?),
            None => None,
        };
        let (engine, pooling) = match config.pooling {
            PoolingMode::Disabled => (build_engine(&config, cache.clone(), false)?, false),
            PoolingMode::Required => (build_engine(&config, cache.clone(), true)?, true),
            PoolingMode::Auto => match build_engine(&config, cache.clone(), true) {
                Ok(engine) => (engine, true),
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        "pooling allocator unavailable; falling back to on-demand instance allocation"
                    );
                    (build_engine(&config, cache.clone(), false)?, false)
                }
            },
        };

        let mut component_linker = ComponentLinker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker).map_err(engine_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component_linker)
            .map_err(engine_err)?;
        let mut module_linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut module_linker, |state: &mut ModuleState| {
            &mut state.wasi
        })
        .map_err(engine_err)?;

        let ticker = Some(Ticker::start(engine.clone(), config.epoch_tick));
        Ok(Self {
            engine,
            config,
            component_linker,
            module_linker,
            cache,
            pooling,
            ticker,
        })
    }

    /// Whether the pooling allocator is in use (false after a fallback).
    pub fn uses_pooling(&self) -> bool {
        self.pooling
    }

    /// How many compilations were served from the on-disk artifact cache.
    pub fn cache_hits(&self) -> usize {
        self.cache.as_ref().map_or(0, Cache::cache_hits)
    }

    /// How many compilations missed the on-disk cache and ran the compiler.
    pub fn cache_misses(&self) -> usize {
        self.cache.as_ref().map_or(0, Cache::cache_misses)
    }

    /// Validates and compiles a guest, then resolves its imports once so
    /// that every later run only has to instantiate.
    ///
    /// Accepts a `wasm32-wasip2` component exporting `wasi:cli/run`, or a
    /// `wasm32-wasip1` core module exporting `_start` (such a module gets no
    /// outbound HTTP). Anything else is rejected with a reason.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedGuest, SandboxError> {
        let kind = GuestKind::detect(bytes)?;
        let hash = hex::encode(Sha256::digest(bytes));
        let pre = match kind {
            GuestKind::Component => {
                let component = Component::new(&self.engine, bytes).map_err(invalid)?;
                let instance_pre = self
                    .component_linker
                    .instantiate_pre(&component)
                    .map_err(invalid)?;
                let command =
                    CommandPre::new(instance_pre).map_err(|err| SandboxError::InvalidGuest {
                        reason: format!(
                            "the component does not export `wasi:cli/run` (build it as a \
                         wasm32-wasip2 binary with a `main`): {err:#}"
                        ),
                    })?;
                GuestPre::Component(command)
            }
            GuestKind::Module => {
                let module = Module::new(&self.engine, bytes).map_err(invalid)?;
                if module.get_export("_start").is_none() {
                    return Err(SandboxError::InvalidGuest {
                        reason: "the wasip1 module does not export `_start` (build it as a \
                                 wasm32-wasip1 binary with a `main`)"
                            .into(),
                    });
                }
                let instance_pre = self
                    .module_linker
                    .instantiate_pre(&module)
                    .map_err(invalid)?;
                GuestPre::Module(instance_pre)
            }
        };
        Ok(LoadedGuest {
            hash,
            kind,
            pre: Arc::new(pre),
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
        }
    }
}

/// Makes a pool reset a slot's memory for its next instance with memset,
/// over the pages the last instance touched (found with Linux's
/// PAGEMAP_SCAN), instead of madvise. madvise drops the pages, so the next
/// instance faults each one back in, copying it from the module's image,
/// and every drop and copy flushes the other cores' TLBs with an interrupt
/// (a VM exit on a virtual machine). Profiles of event-triggered runs put
/// those flushes at a tenth of the CPU. What the next instance sees is the
/// same either way: the module's initial memory. Public so that benchmarks
/// can compare roost with a bare wasmtime set up alike.
pub fn reset_in_place(pool: &mut PoolingAllocationConfig) -> &mut PoolingAllocationConfig {
    pool.linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES)
        .pagemap_scan(wasmtime::Enabled::Auto)
}

/// How much of each pooled linear memory stays resident between instances:
/// a small Rust guest's stack (its first megabyte), data and first heap
/// pages. Bounded, because every warm slot keeps it.
const KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// The same for each pooled table.
const KEEP_RESIDENT_TABLE_BYTES: usize = 64 << 10;

fn build_engine(
    config: &SandboxConfig,
    cache: Option<Cache>,
    pooling: bool,
) -> Result<Engine, SandboxError> {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(config.fuel_metering)
        .max_wasm_stack(config.max_wasm_stack_bytes)
        .wasm_backtrace_details(WasmBacktraceDetails::Disable)
        .cache(cache);
    if pooling {
        let n = config.max_concurrent_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // A Rust wasip2 component holds a handful of core instances, memories
        // and tables (the program, the WASI adapter, lowering shims).
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .total_stacks(n)
            .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX));
        reset_in_place(&mut pool);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&cfg).map_err(engine_err)
}

fn open_cache(dir: &std::path::Path) -> Result<Cache, SandboxError> {
    let cache_err = |reason: String| SandboxError::Cache {
        path: dir.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|err| cache_err(err.to_string()))?;
    // wasmtime wants an absolute path; users pass relative ones (`roost-data`).
    let dir = std::path::absolute(dir).map_err(|err| cache_err(err.to_string()))?;
    let mut cache_config = CacheConfig::new();
    cache_config.with_directory(dir);
    Cache::new(cache_config).map_err(|err| cache_err(format!("{err:#}")))
}

fn engine_err(err: wasmtime::Error) -> SandboxError {
    SandboxError::Engine(format!("{err:#}"))
}

fn invalid(err: wasmtime::Error) -> SandboxError {
    SandboxError::InvalidGuest {
        reason: format!("{err:#}"),
    }
}

/// Advances the engine's epoch at a fixed period so that running guests
/// reach their deadline checks; stopped when the sandbox is dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Ticker {
    fn start(engine: Engine, period: std::time::Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("roost-epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(period);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch ticker thread");
        Self { stop, handle }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::egress::DeniedRequest;
use crate::egress::hooks::EgressHooks;
use crate::guest::GuestPre;
use crate::limits::MemoryLimiter;
use crate::output::CappedOutput;
use crate::store_data::{ComponentState, ModuleState};
use crate::{
    EgressPolicy, Invocation, Limit, LoadedGuest, RunLimits, RunOutcome, Sandbox, SandboxError,
    Termination,
};

/// What each run's streams and flags are, kept outside the store so they can
/// be read whether the guest finished, trapped or was abandoned on timeout.
struct RunProbes {
    stdout: CappedOutput,
    stderr: CappedOutput,
    memory_hit: Arc<std::sync::atomic::AtomicBool>,
    denied: Arc<std::sync::Mutex<Vec<DeniedRequest>>>,
}

impl Sandbox {
    /// Runs one invocation of `guest` in a fresh store.
    ///
    /// Returns `Err` only when the host could not start the run (for example
    /// the instance pool is exhausted, or a fuel budget was asked of an
    /// engine without fuel metering); everything the guest does, including
    /// trapping or exceeding a limit, is a [`RunOutcome`].
    pub async fn run(
        &self,
        guest: &LoadedGuest,
        invocation: &Invocation,
        limits: &RunLimits,
        egress: &EgressPolicy,
    ) -> Result<RunOutcome, SandboxError> {
        if limits.fuel.is_some() && !self.config.fuel_metering {
            return Err(SandboxError::Engine(
                "a fuel budget needs a sandbox built with fuel_metering enabled".into(),
            ));
        }
        let stdout = CappedOutput::new(limits.max_output_bytes);
        let stderr = CappedOutput::new(limits.max_output_bytes);
        if let Some(probe) = &invocation.output_probe {
            probe.connect(&stdout, &stderr);
        }
        let memory_cap = limits.max_memory_bytes.min(self.config.max_memory_bytes);
        let limiter = MemoryLimiter::new(memory_cap);

        let mut wasi = WasiCtxBuilder::new();
        let env: Vec<(&String, &String)> = invocation.env.iter().collect();
        wasi.stdin(MemoryInputPipe::new(invocation.envelope()))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(&env)
            .args(&invocation.argv())
            // Belt and braces: wasi:sockets is off; outbound traffic only
            // through wasi:http and the egress policy.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);

        let started = Instant::now();
        let deadline = started + limits.timeout;
        let mut instantiated = false;
        let (result, fuel_consumed, probes) = match &*guest.pre {
            GuestPre::Component(pre) => {
                let egress_hooks = EgressHooks::new(Arc::new(egress.clone()));
                let probes = RunProbes {
                    stdout,
                    stderr,
                    memory_hit: limiter.hit.clone(),
                    denied: egress_hooks.denied(),
                };
                let state = ComponentState {
                    wasi: wasi.build(),
                    table: ResourceTable::new(),
                    http: WasiHttpCtx::new(),
                    egress: egress_hooks,
                    limiter,
                };
                let mut store = Store::new(&self.engine, state);
                store.limiter(|state| &mut state.limiter);
                self.arm_store(&mut store, limits, deadline);
                let run = async {
                    let command = pre.instantiate_async(&mut store).await?;
                    instantiated = true;
                    match command.wasi_cli_run().call_run(&mut store).await? {
                        Ok(()) => Ok(0),
                        Err(()) => Ok(1),
                    }
                };
                let result = tokio::time::timeout_at(deadline.into(), run).await;
                (result, self.fuel_consumed(&store, limits), probes)
            }
            GuestPre::Module(pre) => {
                let probes = RunProbes {
                    stdout,
                    stderr,
                    memory_hit: limiter.hit.clone(),
                    denied: Arc::default(),
                };
                let state = ModuleState {
                    wasi: wasi.build_p1(),
                    limiter,
                };
                let mut store = Store::new(&self.engine, state);
                store.limiter(|state| &mut state.limiter);
                self.arm_store(&mut store, limits, deadline);
                let run = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instantiated = true;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await?;
                    Ok(0)
                };
                let result = tokio::time::timeout_at(deadline.into(), run).await;
                (result, self.fuel_consumed(&store, limits), probes)
            }
        };
        let duration = started.elapsed();

        let termination = match result {
            Err(_elapsed) => wall_time_exceeded(limits),
            Ok(Ok(code)) => Termination::Exited { code },
            Ok(Err(err)) => match classify(&err, &probes, limits, memory_cap) {
                // A failure before the guest ran is the host's (for example an
                // exhausted instance pool), unless a limit explains it.
                Termination::Trapped { message } if !instantiated => {
                    return Err(SandboxError::Instantiate(message));
                }
                termination => termination,
            },
        };
        let denied_requests = probes
            .denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(RunOutcome {
            termination,
            stdout: probes.stdout.snapshot(),
            stderr: probes.stderr.snapshot(),
            duration,
            fuel_consumed,
            denied_requests,
        })
    }

    /// Sets the fuel budget and the epoch deadline. The deadline callback
    /// yields to the async executor on every tick (so one busy guest cannot
    /// starve other tasks) and interrupts the guest once the wall-clock
    /// deadline has passed.
    fn arm_store<T: Send + 'static>(
        &self,
        store: &mut Store<T>,
        limits: &RunLimits,
        deadline: Instant,
    ) {
        if self.config.fuel_metering {
            store
                .set_fuel(limits.fuel.unwrap_or(u64::MAX))
                .expect("fuel metering is enabled on this engine");
        }
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
    }

    fn fuel_consumed<T>(&self, store: &Store<T>, limits: &RunLimits) -> Option<u64> {
        let budget = limits.fuel?;
        let left = store.get_fuel().ok()?;
        Some(budget.saturating_sub(left))
    }
}

fn wall_time_exceeded(limits: &RunLimits) -> Termination {
    Termination::LimitExceeded {
        limit: Limit::WallTime,
        detail: format!("wall-clock limit of {:?}", limits.timeout),
    }
}

/// Maps a failed run to how it ended. The order matters: an exit code is a
/// normal end, and a guest that hit a limit usually dies by a trap that
/// would otherwise hide the cause.
fn classify(
    err: &wasmtime::Error,
    probes: &RunProbes,
    limits: &RunLimits,
    memory_cap: u64,
) -> Termination {
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return Termination::Exited { code: exit.0 };
    }
    if probes.stdout.overflowed() || probes.stderr.overflowed() {
        return Termination::LimitExceeded {
            limit: Limit::Output,
            detail: format!(
                "output limit of {} bytes per stream",
                limits.max_output_bytes
            ),
        };
    }
    if probes.memory_hit.load(Ordering::Relaxed) {
        return Termination::LimitExceeded {
            limit: Limit::Memory,
            detail: format!("linear-memory limit of {memory_cap} bytes"),
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => wall_time_exceeded(limits),
        Some(Trap::OutOfFuel) => Termination::LimitExceeded {
            limit: Limit::Fuel,
            detail: format!("fuel budget of {}", limits.fuel.unwrap_or_default()),
        },
        Some(Trap::StackOverflow) => Termination::LimitExceeded {
            limit: Limit::Stack,
            detail: "WebAssembly call stack exhausted".into(),
        },
        Some(trap) => Termination::Trapped {
            message: trap.to_string(),
        },
        None => Termination::Trapped {
            message: format!("{err:#}"),
        },
    }
}

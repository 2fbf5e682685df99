use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use roost_sandbox::{
    EgressPolicy, HostFuture, HostRequest, HostResponse, HostService, Invocation, RunLimits,
    RunOutcome, Sandbox, SandboxConfig, Termination, Trigger,
};

use super::local_state::LocalState;
use crate::data_dir::DataDir;
use crate::execute::http_reply::{Caller, HttpReplySlot};
use crate::execute::masking::Masker;
use crate::execute::run_state::RunState;
use crate::store::StateQuota;

/// Exit status of `roost run` when the guest trapped.
const EXIT_TRAPPED: u8 = 125;
/// Exit status of `roost run` when the guest exceeded a limit.
const EXIT_LIMIT: u8 = 124;

#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// The script (`.wasm` component) to run; with `--remote`, a deployed
    /// script's name or id.
    component: PathBuf,
    /// Run the deployed script on the server (ROOST_SERVER, ROOST_TOKEN):
    /// wait for its end, print its output, exit 0 only if it succeeded.
    #[arg(long, conflicts_with_all = ["env", "event", "request", "state", "fuel", "allow_hosts", "allow_ips"])]
    remote: bool,
    /// With `--remote`: the server's URL.
    #[arg(
        long,
        env = "ROOST_SERVER",
        default_value = "http://127.0.0.1:8080",
        requires = "remote"
    )]
    server: String,
    /// With `--remote`: your API token.
    #[arg(long, env = "ROOST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// An environment variable for the script, `KEY=VALUE` (repeatable). The
    /// script sees these and nothing of roost's own environment.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Handler to run (needed when the script has several).
    #[arg(long)]
    handler: Option<String>,
    /// Payload handed to the handler, as JSON.
    #[arg(long, value_parser = parse_json)]
    payload: Option<serde_json::Value>,
    /// Deliver the payload as this event type instead of a manual run.
    #[arg(long, value_name = "TYPE")]
    event: Option<String>,
    /// Wall-clock limit, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Linear-memory limit, in MiB.
    #[arg(long, default_value_t = 128)]
    memory_mib: u64,
    /// Cap on captured stdout and on captured stderr, in KiB.
    #[arg(long, default_value_t = 1024)]
    output_kib: usize,
    /// Fuel budget (enables fuel metering for this run).
    #[arg(long)]
    fuel: Option<u64>,
    /// Host the script may call over HTTP (repeatable; `*.example.com` allowed).
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Private or loopback address the script may reach (repeatable).
    #[arg(long = "allow-ip", value_name = "IP")]
    allow_ips: Vec<IpAddr>,
    /// Keep the script's state (`roost_sdk::state`) in this JSON file: read
    /// at the start, written only if the run succeeds. Without it the run
    /// starts from empty state and its writes are dropped.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Run the HTTP handler that answers this request (`"POST /orders?id=1"`)
    /// and print its response (status and headers on stderr, body on stdout).
    #[arg(long, value_name = "METHOD /PATH", conflicts_with_all = ["event", "payload", "handler"])]
    request: Option<String>,
    /// A header of the `--request` (`"name: value"`, repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "request")]
    headers: Vec<String>,
    /// The `--request`'s body: this text, or a file's bytes as `@FILE`.
    #[arg(long, value_name = "TEXT|@FILE", requires = "request")]
    body: Option<String>,
}

pub(super) fn execute(args: RunArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    if args.remote {
        let token = args
            .token
            .context("--remote needs your API token: set ROOST_TOKEN or pass --token")?;
        return super::start::start(super::start::StartArgs::waiting(
            args.component.to_string_lossy().into_owned(),
            args.handler,
            args.payload.unwrap_or(serde_json::Value::Null),
            super::client::ServerArgs {
                server: args.server,
                token,
            },
        ));
    }
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("reading {}", args.component.display()))?;
    let data_dir = DataDir::new(data_dir);
    let config = SandboxConfig {
        cache_dir: Some(data_dir.compile_cache()),
        fuel_metering: args.fuel.is_some(),
        ..SandboxConfig::default()
    };
    let committed = match &args.state {
        Some(path) => LocalState::load(path)?,
        None => LocalState::default(),
    };
    let request = match &args.request {
        Some(line) => {
            let body = match args.body.as_deref() {
                Some(file) if file.starts_with('@') => std::fs::read(&file[1..])
                    .with_context(|| format!("reading the body from {}", &file[1..]))?,
                Some(text) => text.as_bytes().to_vec(),
                None => Vec::new(),
            };
            Some(super::local_http::request(
                &bytes,
                line,
                &args.headers,
                body,
            )?)
        }
        None => None,
    };
    let services = std::sync::Arc::new(LocalServices {
        sent: Default::default(),
        // A tool handler run here is a manual run: it prints its result.
        http_reply: HttpReplySlot::new(
            if request.is_some() {
                Caller::Http
            } else {
                Caller::Nobody
            },
            Masker::new(args.env.iter().map(|(_, value)| value.as_str())),
        ),
        state: std::sync::Arc::new(RunState::new(
            Box::new(committed.clone()),
            StateQuota::default(),
            Masker::new(args.env.iter().map(|(_, value)| value.as_str())),
        )),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let sandbox = Sandbox::new(config)?;
        let guest = sandbox
            .load(&bytes)
            .with_context(|| format!("loading {}", args.component.display()))?;
        let (handler, trigger, payload) = match &request {
            Some(request) => (
                Some(request.handler.clone()),
                request.trigger.clone(),
                request.payload.clone(),
            ),
            None => (
                args.handler.clone(),
                match &args.event {
                    Some(name) => Trigger::Event { name: name.clone() },
                    None => Trigger::Manual,
                },
                args.payload.clone().unwrap_or(serde_json::Value::Null),
            ),
        };
        let invocation = Invocation {
            env: args.env.iter().cloned().collect::<BTreeMap<_, _>>(),
            handler,
            trigger: Some(trigger),
            payload,
            program_name: args
                .component
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned()),
            output_probe: None,
        };
        let limits = RunLimits {
            timeout: Duration::from_millis(args.timeout_ms),
            max_memory_bytes: args.memory_mib * 1024 * 1024,
            max_output_bytes: args.output_kib * 1024,
            fuel: args.fuel,
        };
        let mut egress = EgressPolicy::allow_hosts(args.allow_hosts.iter().cloned());
        for ip in &args.allow_ips {
            egress = egress.allow_restricted_ip(*ip);
        }
        let egress = egress.with_host_service(services.clone());
        anyhow::Ok(sandbox.run(&guest, &invocation, &limits, &egress).await?)
    })?;
    let writes = services.state.take_writes();
    if let Some(path) = &args.state
        && matches!(outcome.termination, Termination::Exited { code: 0 })
        && !writes.is_empty()
    {
        committed.save(path, &writes)?;
        eprintln!(
            "roost: state saved to {} ({} change(s))",
            path.display(),
            writes.changes.len()
        );
    }
    let code = report(&outcome)?;
    if request.is_some() {
        super::local_http::print(services.http_reply.take())?;
    }
    Ok(code)
}

/// What roost serves a local run at `http://roost.internal`: the
/// `messaging` outbox, printed on roost's own stderr as messages arrive
/// (there is no server to keep them), the script's state, and an HTTP
/// handler's response.
struct LocalServices {
    sent: std::sync::atomic::AtomicU32,
    state: std::sync::Arc<RunState>,
    /// The response of a `--request`'s handler.
    http_reply: HttpReplySlot,
}

impl HostService for LocalServices {
    fn handle(&self, request: HostRequest) -> HostFuture {
        if request.method == "POST"
            && let Some(operation) = request.path.strip_prefix("/v1/state/")
        {
            let (operation, state) = (operation.to_string(), self.state.clone());
            return Box::pin(async move { state.handle(&operation, &request.body).await });
        }
        let answer = if request.method == "POST" && request.path == "/v1/http/response" {
            self.http_reply.handle(&request.body)
        } else if request.method == "POST" && request.path == "/v1/messages" {
            match serde_json::from_slice::<serde_json::Value>(&request.body) {
                Ok(message) if message["body"].is_string() => {
                    let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    let id = format!("local-{n}");
                    let subject = message["subject"]
                        .as_str()
                        .map(|s| format!(" [{s}]"))
                        .unwrap_or_default();
                    eprintln!(
                        "roost: outbox message {id}{subject}: {}",
                        message["body"].as_str().unwrap_or_default()
                    );
                    HostResponse::json(201, &serde_json::json!({ "id": id }))
                }
                _ => HostResponse::json(
                    400,
                    &serde_json::json!({ "error": { "code": "invalid_input", "message": "a message needs a string `body`" } }),
                ),
            }
        } else if request.method == "POST" && request.path == "/v1/events/emit" {
            // Nothing subscribes here: the event is shown, not delivered.
            match serde_json::from_slice::<serde_json::Value>(&request.body) {
                Ok(event)
                    if event["type"]
                        .as_str()
                        .is_some_and(crate::triggers::valid_type) =>
                {
                    let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    let id = format!("local-e{n}");
                    eprintln!(
                        "roost: emitted event {id} {}: {}",
                        event["type"].as_str().unwrap_or_default(),
                        event["payload"]
                    );
                    HostResponse::json(200, &serde_json::json!({ "event_id": id }))
                }
                _ => HostResponse::json(
                    400,
                    &serde_json::json!({ "error": { "code": "invalid_event", "message": "an event needs a valid `type`" } }),
                ),
            }
        } else if request.path.starts_with("/v1/integrations/") {
            // Host-mediated calls need the user's stored credentials, which
            // only a server holds.
            HostResponse::json(
                501,
                &serde_json::json!({ "error": { "code": "needs_server", "message": "host-side integration calls need a roost server with the user's credentials; deploy the script (or run it with `roost run` against env vars and the SDK's direct clients)" } }),
            )
        } else {
            HostResponse::json(
                404,
                &serde_json::json!({ "error": { "code": "not_found", "message": "`roost run` serves only the messaging outbox, the script's state, emitted events and HTTP responses" } }),
            )
        };
        Box::pin(async move { answer })
    }
}

fn report(outcome: &RunOutcome) -> anyhow::Result<ExitCode> {
    std::io::stdout().write_all(outcome.stdout.to_text().as_bytes())?;
    std::io::stderr().write_all(outcome.stderr.to_text().as_bytes())?;
    for denied in &outcome.denied_requests {
        eprintln!(
            "roost: outbound request to {} denied: {}",
            denied.host, denied.reason
        );
    }
    eprintln!("roost: {}", outcome.summary());
    Ok(match &outcome.termination {
        Termination::Exited { code } => ExitCode::from(u8::try_from(*code).unwrap_or(1)),
        Termination::Trapped { .. } => ExitCode::from(EXIT_TRAPPED),
        Termination::LimitExceeded { .. } => ExitCode::from(EXIT_LIMIT),
    })
}

fn parse_env(raw: &str) -> anyhow::Result<(String, String)> {
    let Some((key, value)) = raw.split_once('=') else {
        bail!("expected KEY=VALUE, got `{raw}`");
    };
    if key.is_empty() || key.contains('\0') || value.contains('\0') {
        bail!("`{raw}` is not a valid environment variable");
    }
    Ok((key.to_string(), value.to_string()))
}

fn parse_json(raw: &str) -> anyhow::Result<serde_json::Value> {
    serde_json::from_str(raw).context("the payload is not valid JSON")
}

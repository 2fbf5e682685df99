//! `roost` subcommands. Each one parses its flags into checked values and
//! hands over to the library; none holds logic of its own.

mod admin;
mod client;
mod compile;
mod dev;
mod dev_build;
mod dev_runs;
mod follow;
mod hooks;
mod inspect;
mod integration;
mod local_http;
mod local_state;
mod manage;
mod mcp;
mod progress;
mod replay;
mod run;
mod scaffold;
mod serve;
mod start;
mod state;
mod table;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::data_dir::DEFAULT_DATA_DIR;

#[derive(Debug, Parser)]
#[command(
    name = "roost",
    version,
    about = "Deploy small scripts and run them safely"
)]
struct Cli {
    /// Where roost keeps its state (compiled-artifact cache, database, keys).
    #[arg(long, global = true, env = "ROOST_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compile (cached) and run one invocation of a script.
    Run(run::RunArgs),
    /// Print the metadata embedded in a script (handlers, triggers,
    /// integrations) as JSON, without running it.
    Inspect(inspect::InspectArgs),
    /// Start the server (SQLite in the data directory unless --database-url).
    Serve(serve::ServeArgs),
    /// Compile a component from stdin into an artifact cache (the server
    /// runs this for deploys).
    #[command(hide = true)]
    Compile(compile::CompileArgs),
    /// Manage users, on the database directly (the operator's).
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Make, list and revoke your API tokens on the server.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// List, show, roll back and delete your scripts on the server.
    #[command(subcommand)]
    Scripts(manage::ScriptsCommand),
    /// Post events to the server.
    #[command(subcommand)]
    Events(manage::EventsCommand),
    /// List and delete your stored credentials on the server.
    #[command(subcommand)]
    Credentials(manage::CredentialsCommand),
    /// Print (and open, where a browser is) the link that connects an
    /// integration.
    Connect(manage::ConnectArgs),
    /// Manage the master keys that encrypt credentials.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Deploy a script to a server.
    Deploy(client::DeployArgs),
    /// Build a script crate, deploy it and follow its runs' output; again
    /// on every save (`--once`: just once).
    Dev(dev::DevArgs),
    /// Browse the server's integrations.
    #[command(subcommand)]
    Integrations(client::IntegrationsCommand),
    /// Work on an integration definition locally.
    #[command(subcommand)]
    Integration(integration::IntegrationCommand),
    /// Start a run of a deployed script on the server.
    Start(start::StartArgs),
    /// List runs on the server, newest first (`runs replay`: queue finished
    /// runs again).
    Runs(client::RunsArgs),
    /// Print a run's captured output (`--follow`: as it arrives).
    Logs(client::LogsArgs),
    /// List the messages scripts left in your outbox, newest first.
    Messages(client::MessagesArgs),
    /// Inspect or reset what a deployed script remembers between runs.
    #[command(subcommand)]
    State(state::StateCommand),
    /// List or rotate the URLs of a deployed script's HTTP handlers.
    #[command(subcommand)]
    Hooks(hooks::HooksCommand),
    /// Serve the server's MCP tools over stdio, for a local agent client
    /// (connects to ROOST_SERVER with ROOST_TOKEN).
    #[command(long_about = mcp::LONG_ABOUT)]
    Mcp(mcp::McpArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `roost mcp` speaks MCP on stdout; on stderr, only what goes wrong.
    init_tracing(match cli.command {
        Command::Mcp(_) => "roost=warn",
        _ => "info,sqlx=warn,tower_http=info,wasmtime_cache=warn",
    });
    let result = match cli.command {
        Command::Run(args) => run::execute(args, &cli.data_dir),
        Command::Inspect(args) => inspect::execute(args),
        Command::Serve(args) => serve::execute(args, &cli.data_dir),
        Command::Compile(args) => compile::execute(args),
        Command::User(command) => admin::user(command, &cli.data_dir),
        Command::Keys(command) => admin::keys(command, &cli.data_dir),
        Command::Token(command) => token::execute(command),
        Command::Scripts(command) => manage::scripts(command),
        Command::Events(command) => manage::events(command),
        Command::Credentials(command) => manage::credentials(command),
        Command::Connect(args) => manage::connect(args),
        Command::Deploy(args) => client::deploy(args),
        Command::Dev(args) => dev::execute(args),
        Command::Integrations(command) => client::integrations(command),
        Command::Integration(command) => integration::execute(command),
        Command::Start(args) => start::start(args),
        Command::Runs(args) => client::runs(args),
        Command::Logs(args) => client::logs(args),
        Command::Messages(args) => client::messages(args),
        Command::State(command) => state::execute(command),
        Command::Hooks(command) => hooks::execute(command),
        Command::Mcp(args) => mcp::execute(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("roost: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr, filtered by `ROOST_LOG`, else by `default`.
fn init_tracing(default: &str) {
    crate::logging::init(default);
}

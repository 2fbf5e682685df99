//! Local administration against the database: users and master keys. A
//! revocation made here reaches running nodes at once on PostgreSQL (its
//! notice); a SQLite server stops accepting the tokens within a few
//! seconds (`roost token revoke` through the server is at once).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::accounts::Accounts;
use crate::config::{ServerConfig, sqlite_url};
use crate::credentials::{MasterKeys, reencrypt_all};
use crate::store;

#[derive(Debug, clap::Args)]
pub(super) struct DbArgs {
    /// Database: `sqlite://path` (default: roost.db in the data directory) or `postgres://…`.
    #[arg(long, env = "ROOST_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum UserCommand {
    /// Create a user and print its API token (shown once).
    Create {
        /// Unique user name.
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the users.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove a user and everything of theirs (scripts, runs, credentials,
    /// tokens).
    Remove {
        /// The user's name or id.
        user: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke every API token of a user and end their dashboard sessions.
    RevokeTokens {
        /// The user's name or id.
        user: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum KeysCommand {
    /// Re-encrypt every credential under a new master key, then retire the old ones.
    Rotate {
        #[command(flatten)]
        db: DbArgs,
    },
}

fn database_url(db: DbArgs, data_dir: &Path) -> String {
    db.database_url.unwrap_or_else(|| sqlite_url(data_dir))
}

pub(super) fn user(command: UserCommand, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = match &command {
            UserCommand::Create { db, .. }
            | UserCommand::List { db, .. }
            | UserCommand::Remove { db, .. }
            | UserCommand::RevokeTokens { db, .. } => db.database_url.clone(),
        };
        std::fs::create_dir_all(data_dir)?;
        let store = store::connect(&db.unwrap_or_else(|| sqlite_url(data_dir)))
            .await
            .context("opening the database")?;
        let accounts = Accounts::new(store, std::time::Duration::ZERO);
        match command {
            UserCommand::Create { name, .. } => {
                let (user, token) = accounts.create_user(&name).await?;
                eprintln!(
                    "roost: created user `{}` ({}). Its API token, shown only now:",
                    user.name, user.id
                );
                println!("{token}");
            }
            UserCommand::List { json, .. } => {
                let users = accounts.users().await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&users)?);
                } else {
                    let rows = users
                        .into_iter()
                        .map(|u| vec![u.id, u.name, super::table::time(Some(u.created_at))])
                        .collect();
                    super::table::print(&["id", "name", "created"], rows);
                }
            }
            UserCommand::Remove { user, .. } => {
                let user = find(&accounts, &user).await?;
                accounts.remove_user(&user.id).await?;
                eprintln!(
                    "roost: removed user `{}` ({}) and everything of theirs",
                    user.name, user.id
                );
            }
            UserCommand::RevokeTokens { user, .. } => {
                let user = find(&accounts, &user).await?;
                let count = accounts.revoke_all(&user.id).await?;
                eprintln!(
                    "roost: revoked {count} token(s) of `{}` and ended their dashboard sessions",
                    user.name
                );
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The user named or numbered `user`.
async fn find(accounts: &Accounts, user: &str) -> anyhow::Result<crate::store::User> {
    accounts
        .users()
        .await?
        .into_iter()
        .find(|u| u.id == user || u.name == user)
        .with_context(|| format!("no user `{user}` (see `roost user list`)"))
}

pub(super) fn keys(command: KeysCommand, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let KeysCommand::Rotate { db } = command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = ServerConfig::for_data_dir(data_dir);
        let store = store::connect(&database_url(db, data_dir)).await.context("opening the database")?;
        let env_key = std::env::var("ROOST_MASTER_KEY").ok().filter(|v| !v.is_empty());
        let env_old = std::env::var("ROOST_MASTER_KEY_OLD").ok().filter(|v| !v.is_empty());
        let mut keys = MasterKeys::load(env_key.as_deref(), env_old.as_deref(), &config.key_file())?;
        if keys.is_file_backed() {
            let id = keys.add_new_current()?;
            eprintln!("roost: new master key {id} added to {}", config.key_file().display());
        }
        let count = reencrypt_all(store.as_ref(), &keys).await?;
        eprintln!("roost: re-encrypted {count} credential(s) and HTTP handler secret(s) under key {}", keys.current_id());
        let retired = keys.retire_old()?;
        if keys.is_file_backed() {
            eprintln!("roost: retired old key(s): {}", if retired.is_empty() { "none".into() } else { retired.join(", ") });
        } else {
            eprintln!("roost: every credential now uses ROOST_MASTER_KEY; ROOST_MASTER_KEY_OLD can be removed");
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

//! Local administration against the database: users and master keys.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::auth::{hash_token, new_token};
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
    let UserCommand::Create { name, db } = command;
    if name.trim().is_empty() || name.len() > 64 {
        anyhow::bail!("a user name is 1 to 64 characters");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        std::fs::create_dir_all(data_dir)?;
        let store = store::connect(&database_url(db, data_dir))
            .await
            .context("opening the database")?;
        let token = new_token();
        let user = store.create_user(&name, &hash_token(&token)).await?;
        eprintln!(
            "roost: created user `{}` ({}). Its API token, shown only now:",
            user.name, user.id
        );
        println!("{token}");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
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

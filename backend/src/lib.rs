//! roost: deploy small WebAssembly scripts and run them safely.
//!
//! This crate holds the command-line interface and, as it grows, the server
//! and the domain (integration registry, credentials, deploy, triggers,
//! runs). The wasmtime side lives in `roost-sandbox`.

pub mod abuse;
pub mod accounts;
pub mod alerts;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod connectors;
pub mod credentials;
pub mod dashboard;
pub mod data_dir;
pub mod deploy;
pub mod duration;
pub mod execute;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod outbox;
pub mod queue;
pub mod registry;
pub mod run_stats;
pub mod script_state;
pub mod scripts;
mod serve;
pub mod setup_link;
pub mod store;
pub mod subscriptions;
pub mod telemetry;
pub mod triggers;
pub mod web;

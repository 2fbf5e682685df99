//! What the benches share: a fresh PostgreSQL database, an in-process
//! server without the abuse limits (they measure roost, not its rate
//! limiter), `roost serve` children, a lean HTTP client for the load, and
//! where reports go.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use roost::config::ServerConfig;

#[path = "../../tests/support/serve.rs"]
pub mod serve;

pub mod cpu;
pub mod lean_http;
pub mod pg_wire;

/// A new, empty database next to `base` (a PostgreSQL URL).
pub async fn fresh_postgres(base: &str) -> String {
    use sqlx::Connection;
    let name = format!("roost_bench_{}", hex::encode(rand::random::<[u8; 6]>()));
    let mut admin = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    format!("{}/{name}", base.rsplit_once('/').unwrap().0)
}

/// The PostgreSQL URL from ROOST_TEST_POSTGRES_URL, if set.
pub fn postgres_url() -> Option<String> {
    std::env::var("ROOST_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// An in-process server's config on a random port, limits lifted.
pub fn server_config(dir: &std::path::Path, database: Option<String>) -> ServerConfig {
    let mut config = ServerConfig::for_data_dir(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    if let Some(url) = database {
        config.database_url = url;
    }
    config.abuse.api_requests_per_sec = 1e9;
    config.abuse.api_burst = u32::MAX;
    config.abuse.events_per_minute = u32::MAX;
    config.abuse.max_scripts_per_user = usize::MAX;
    config
}

/// The same, for a `roost serve` child: a roost.toml in its data directory.
pub fn lift_limits_for_serve(data_dir: &std::path::Path) {
    std::fs::create_dir_all(data_dir).unwrap();
    std::fs::write(
        data_dir.join("roost.toml"),
        "api_requests_per_sec = 1000000000.0\napi_burst = 4000000000\n\
         events_per_minute = 4000000000\nmax_scripts_per_user = 1000000000\n",
    )
    .unwrap();
}

/// Writes `report` as `<name>.json` into target/roost-bench (or
/// $ROOST_BENCH_DIR) and says where.
pub fn write_report(name: &str, report: &serde_json::Value) {
    let out = std::env::var_os("ROOST_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/roost-bench"));
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(report).unwrap()).unwrap();
    println!("written to {}", path.display());
}

/// The `p`th percentile (0–100) of sorted samples.
pub fn pct<T: Copy>(sorted: &[T], p: usize) -> T {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Deploys example guest `example` as script `name` for `token`, with
/// `extra` deploy fields (`{"retries": …}`); returns its id.
pub async fn deploy(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    example: &str,
    extra: serde_json::Value,
) -> String {
    use base64::Engine as _;
    let mut body = serde_json::json!({
        "name": name,
        "component": base64::engine::general_purpose::STANDARD.encode(roost_tests::example(example)),
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let deployed = send_json(
        client
            .post(format!("{base}/v1/scripts/deploy"))
            .bearer_auth(token)
            .json(&body),
    )
    .await;
    deployed["script_id"]
        .as_str()
        .unwrap_or_else(|| panic!("deploying {example}: {deployed}"))
        .to_string()
}

/// `GET {base}{path}` with `token`, as JSON.
pub async fn get_json(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
) -> serde_json::Value {
    send_json(client.get(format!("{base}{path}")).bearer_auth(token)).await
}

async fn send_json(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

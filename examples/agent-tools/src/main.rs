//! Tools an agent can call through roost's MCP server: each `#[tool]`
//! handler's argument type derives its JSON Schema, which roost lists to
//! the agent and checks every call against.

use roost_sdk::schemars;
use roost_sdk::{handler, tool};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SumArgs {
    /// The numbers to add up.
    #[schemars(length(min = 1, max = 1000))]
    numbers: Vec<f64>,
}

#[derive(Serialize)]
struct Sum {
    total: f64,
    count: usize,
}

#[tool(description = "Adds up a list of numbers and says how many there were.")]
fn sum(args: SumArgs) -> Result<Sum, String> {
    println!("adding {} numbers", args.numbers.len());
    Ok(Sum {
        total: args.numbers.iter().sum(),
        count: args.numbers.len(),
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct GreetArgs {
    /// Who to greet.
    #[schemars(length(min = 1, max = 64))]
    name: String,
    /// How many exclamation marks (0 to 3).
    #[serde(default)]
    #[schemars(range(max = 3))]
    excitement: u8,
}

#[tool(description = "Greets someone by name. Refuses to greet `nobody`.")]
fn greet(args: GreetArgs) -> Result<String, String> {
    if args.name == "nobody" {
        eprintln!("asked to greet nobody");
        return Err("there is nobody to greet".into());
    }
    Ok(format!(
        "Hello, {}{}",
        args.name,
        "!".repeat(args.excitement.into())
    ))
}

#[tool(description = "Says what time roost ran this call at, as Unix seconds.")]
fn now() -> serde_json::Value {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    serde_json::json!({ "unix_seconds": seconds })
}

/// Not a tool: agents do not see it.
#[handler]
fn status() {
    println!("three tools ready");
}

roost_sdk::main!(sum, greet, now, status);

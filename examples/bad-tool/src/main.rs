//! MCP tools take a JSON object: a tool whose input is a bare number
//! builds, but roost refuses to deploy it (`invalid_tool`).

use roost_sdk::tool;

#[tool(description = "Doubles a number.")]
fn double(n: u32) -> Result<u32, String> {
    n.checked_mul(2).ok_or_else(|| "too large".to_string())
}

roost_sdk::main!(double);

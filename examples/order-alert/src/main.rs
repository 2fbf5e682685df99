//! On each new Shopify order (`shopify.orders.create`, with Shopify's order
//! JSON as the payload), posts a one-line alert to Slack. Needs `slack`.
//!
//! One alert per order: Shopify delivers a webhook again when it is unsure
//! it arrived, under a new event id, so the script remembers the orders it
//! alerted on (for 30 days) and skips one it has seen.

use std::time::Duration;

use roost_sdk::slack::PostMessage;
use roost_sdk::state::SeenSet;
use roost_sdk::{Error, Invocation, on_event};

const CHANNEL: &str = "#orders";
const REMEMBER_ORDERS_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

#[on_event("shopify.orders.create")]
fn alert(invocation: &Invocation) -> roost_sdk::Result {
    let slack = roost_sdk::slack::init!();
    let order = &invocation.payload;
    let name = order["name"]
        .as_str()
        .map(str::to_string)
        .or_else(|| order["id"].as_u64().map(|id| format!("#{id}")))
        .ok_or_else(|| Error::msg("the payload is not an order: it has neither `name` nor `id`"))?;
    let order_id = order["id"]
        .as_u64()
        .map(|id| id.to_string())
        .unwrap_or_else(|| name.clone());
    let alerted = SeenSet::new("orders", REMEMBER_ORDERS_FOR);
    if !alerted.insert(&order_id)? {
        println!("order {name} was alerted on already; nothing to post");
        return Ok(());
    }
    let total = order["total_price"].as_str().unwrap_or("?");
    let currency = order["currency"].as_str().unwrap_or("");
    let customer = order["email"].as_str().unwrap_or("a customer");
    let text = format!("New order {name}: {total} {currency} from {customer}");
    let posted = slack.post_message(&PostMessage::new(CHANNEL, text.trim()))?;
    println!(
        "alerted {} about order {name} (ts {})",
        posted.channel.as_deref().unwrap_or(CHANNEL),
        posted.ts.as_deref().unwrap_or("?")
    );
    Ok(())
}

roost_sdk::main!(alert);

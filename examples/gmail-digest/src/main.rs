//! Every morning at 8:00 (UTC), lists unread Gmail and posts one digest
//! line per message to Slack. Needs the `gmail` and `slack` integrations:
//! both `init!` calls declare them, so deploy asks for both connections.
//!
//! Each mail is digested once: the script remembers the newest receive
//! time it digested (a high-water mark in its state) and skips mail at or
//! below it. The mark moves only when the run succeeds, so a run that fails
//! halfway (Gmail down on the second message) leaves it where it was, and
//! the retry digests every mail of the failed run, once.
//!
//! A manual run can pass `{"channel": "…", "query": "…", "max": N}` to try
//! other settings; the schedule uses the defaults.

use roost_sdk::gmail::{GetMessage, ListMessages};
use roost_sdk::slack::PostMessage;
use roost_sdk::state::HighWater;
use roost_sdk::{Invocation, on_schedule};

const DEFAULT_CHANNEL: &str = "#inbox";
const DEFAULT_QUERY: &str = "is:unread";
const DEFAULT_MAX: u64 = 20;

#[on_schedule("0 0 8 * * *")]
fn digest(invocation: &Invocation) -> roost_sdk::Result {
    let gmail = roost_sdk::gmail::init!();
    let slack = roost_sdk::slack::init!();
    let settings = &invocation.payload;
    let channel = settings["channel"].as_str().unwrap_or(DEFAULT_CHANNEL);
    let query = settings["query"].as_str().unwrap_or(DEFAULT_QUERY);
    let max = settings["max"]
        .as_u64()
        .unwrap_or(DEFAULT_MAX)
        .clamp(1, 500);

    let unread = gmail.list_messages(&ListMessages {
        q: Some(query.to_string()),
        max_results: Some(max as u32),
        ..ListMessages::default()
    })?;
    if unread.messages.is_empty() {
        println!("no messages match `{query}`; nothing to post");
        return Ok(());
    }
    // Receive times, ms since the epoch; the newest digested so far.
    let mut digested = HighWater::<i64>::load("gmail.internalDate")?;
    let mut lines = Vec::with_capacity(unread.messages.len());
    let mut newest = None;
    for found in &unread.messages {
        let message = gmail.get_message(&GetMessage::metadata(&found.id))?;
        let received = message
            .internal_date
            .as_deref()
            .and_then(|d| d.parse::<i64>().ok())
            .unwrap_or(0);
        if !digested.is_new(&received) {
            continue;
        }
        newest = newest.max(Some(received));
        let from = message.header("From").unwrap_or("(unknown sender)");
        let subject = message.header("Subject").unwrap_or("(no subject)");
        lines.push(format!("• *{subject}* from {from}"));
    }
    let Some(newest) = newest else {
        println!(
            "{} message(s) match `{query}`, all digested before; nothing to post",
            unread.messages.len()
        );
        return Ok(());
    };
    // Posted last: a run that fails before this line posts nothing, and its
    // retry finds the mark where this run found it.
    digested.advance(newest)?;
    let text = format!("{} unread message(s):\n{}", lines.len(), lines.join("\n"));
    let posted = slack.post_message(&PostMessage::new(channel, &text))?;
    println!(
        "posted a digest of {} message(s) to {} (ts {})",
        lines.len(),
        posted.channel.as_deref().unwrap_or(channel),
        posted.ts.as_deref().unwrap_or("?")
    );
    Ok(())
}

roost_sdk::main!(digest);

//! A payment service in miniature (`docs/consuming-events.md`): follows `DISPUTE_EVENTS` through
//! the durable consumer `payments-example`, prints the payout of each `DisputeResolved`, and keeps
//! its position in a small JSON file, so that a restart goes on after the last event it handled.
//!
//! With `./x serve` running, `cargo run -p disputes-client --example payments -- [NATS_URL]
//! [POSITION_FILE]` (defaults `nats://127.0.0.1:4333` and `./payments-example.json`); then
//! `./x demo` in another terminal walks a dispute to its resolution.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use disputes_client::{Client, Delivered, Position, Subscription};
use disputes_domain::Event;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4333".to_owned());
    let path = args
        .next()
        .unwrap_or_else(|| "payments-example.json".to_owned());
    let path = Path::new(&path);
    let client = Client::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let mut subscription = Subscription::durable("payments-example");
    if let Some(position) = load(path)? {
        println!("resuming after seq {}", position.seq);
        subscription = subscription.resume_after(position);
    }
    let mut events = client.subscribe(subscription).await?;
    loop {
        // In seq order, each once, each verified. A gap or a broken chain is an error: stop.
        let delivered = events.next().await?;
        act(&delivered);
        // A real service writes the payout and this position in ONE transaction of its own
        // database, then acknowledges. Here the print and the file are not atomic: a crash
        // between them prints that payout again when the event is delivered again.
        save(path, &delivered.position())?;
        events.ack(&delivered).await?;
    }
}

/// What a payment service does with an event: here, print it.
fn act(delivered: &Delivered) {
    let (seq, dispute) = (delivered.envelope.seq, &delivered.envelope.dispute_id);
    let Event::DisputeResolved {
        solution,
        refund_amount,
        release_amount,
        currency,
        basis,
    } = &delivered.event
    else {
        let event_type = &delivered.envelope.event_type;
        println!("seq {seq}: {dispute} {event_type}");
        return;
    };
    println!(
        "seq {seq}: {dispute} resolved, {solution} ({basis}): pay {refund_amount} to the buyer \
         and {release_amount} to the seller, in minor units of {currency}"
    );
}

/// The position the last run stored, if any.
fn load(path: &Path) -> anyhow::Result<Option<Position>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let position: Position = serde_json::from_value(value)
        .with_context(|| format!("{} holds no position", path.display()))?;
    Ok(Some(Position::new(position.seq, &position.hash)?))
}

/// Writes the position to a temporary file, flushed to disk, then renames it over `path`: a crash
/// leaves the old position or the new one, never part of one.
fn save(path: &Path, position: &Position) -> anyhow::Result<()> {
    let body = serde_json::to_value(position)?;
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(body.to_string().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(temp, path)?;
    Ok(())
}

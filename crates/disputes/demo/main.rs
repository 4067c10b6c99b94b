//! Walks one dispute through a few commands against a running `disputes serve`
//! (`./x serve` in another terminal), printing each reply.
//!
//! `./x demo`, or `disputes-demo [nats://127.0.0.1:4333]` (a binary of the `disputes` package, so
//! the release build `./x serve` made already has it).

use serde_json::{json, Value};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nats://127.0.0.1:4333".into());
    let client = async_nats::connect(&url).await?;
    let run = std::process::id();
    let dispute = format!("d-demo-{run}");
    let (buyer, seller) = (format!("b-{run}"), format!("s-{run}"));
    let steps = [
        (
            "open",
            json!({"role": "buyer", "id": buyer}),
            json!({
            "order_id": format!("o-demo-{run}"), "seller_id": seller, "reason": "not_received",
            "order_amount": {"amount": 12999, "currency": "USD"}, "proposal": {"solution": "full_refund"}}),
        ),
        (
            "counter_propose",
            json!({"role": "seller", "id": seller}),
            json!({"proposal": {"solution": "partial_refund", "amount": 5000}}),
        ),
        (
            "reject_proposal",
            json!({"role": "buyer", "id": buyer}),
            json!({"reason": "I want it all back"}),
        ),
        (
            "submit_shipping_proof",
            json!({"role": "seller", "id": seller}),
            json!({"carrier": "DHL", "tracking_number": "JD014600003828"}),
        ),
        (
            "rule",
            json!({"role": "mediator", "id": "m-1"}),
            json!({"outcome": "partial_refund", "amount": 8000, "responsible_party": "logistics"}),
        ),
    ];
    let mut seq = 0;
    for (i, (command, actor, data)) in steps.into_iter().enumerate() {
        let body = json!({"command_id": format!("c-demo-{run}-{i}"), "dispute_id": dispute, "actor": actor, "data": data});
        let reply = request(&client, &format!("disputes.cmd.{command}"), &body).await?;
        println!(
            "{command:>22} -> ok={} status={} version={}",
            reply["ok"], reply["status"], reply["version"]
        );
        anyhow::ensure!(reply["ok"] == true, "refused: {reply}");
        seq = reply["seq"].as_u64().unwrap_or(seq);
    }
    let view = request(
        &client,
        "disputes.query.get",
        &json!({"dispute_id": dispute, "min_seq": seq}),
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&view["dispute"])?);
    Ok(())
}

async fn request(
    client: &async_nats::Client,
    subject: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let reply = client
        .request(subject.to_owned(), serde_json::to_vec(body)?.into())
        .await?;
    Ok(serde_json::from_slice(&reply.payload)?)
}

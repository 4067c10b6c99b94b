//! Walks one dispute through a few commands against a running `disputes serve`
//! (`./x serve` in another terminal), printing each reply, through `disputes-client`.
//!
//! `./x demo`, or `disputes-demo [nats://127.0.0.1:4333]` (a binary of the `disputes` package, so
//! the release build `./x serve` made already has it).

use disputes_client::{Client, Outgoing};
use disputes_domain::{
    Actor, Amount, Command, Currency, DisputeId, Money, Open, OrderId, PartyId, ProposalTerms,
    Reason, ResponsibleParty, Role, RulingTerms,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nats://127.0.0.1:4333".into());
    let client = Client::connect(&url).await?;
    let run = std::process::id();
    let id = |text: String| PartyId::parse(&text).map_err(|e| anyhow::anyhow!("{e}"));
    let dispute = DisputeId::parse(&format!("d-demo-{run}")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let buyer = Actor::new(Role::Buyer, id(format!("b-{run}"))?);
    let seller = Actor::new(Role::Seller, id(format!("s-{run}"))?);
    let mediator = Actor::new(Role::Mediator, id("m-1".into())?);
    let money = |minor| Amount::new(minor).map_err(|e| anyhow::anyhow!("{e}"));
    let open = Open {
        order_id: OrderId::parse(&format!("o-demo-{run}")).map_err(|e| anyhow::anyhow!("{e}"))?,
        seller_id: seller.id.clone(),
        reason: Reason::NotReceived,
        order_amount: Money::new(
            money(12_999)?,
            Currency::parse("USD").map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        proposal: ProposalTerms::FullRefund,
        description: None,
    };
    let steps = [
        (buyer.clone(), Command::Open(open)),
        (
            seller.clone(),
            Command::CounterPropose {
                proposal: ProposalTerms::PartialRefund(money(5_000)?),
            },
        ),
        (
            buyer,
            Command::RejectProposal {
                reason: Some("I want it all back".into()),
            },
        ),
        (
            seller,
            Command::SubmitShippingProof {
                carrier: "DHL".into(),
                tracking_number: "JD014600003828".into(),
            },
        ),
        (
            mediator,
            Command::Rule {
                outcome: RulingTerms::PartialRefund(money(8_000)?),
                responsible_party: ResponsibleParty::Logistics,
                note: None,
            },
        ),
    ];
    let mut seq = 0;
    for (actor, command) in steps {
        let outgoing =
            Outgoing::new(&dispute, actor, command).correlation_id(&format!("demo-{run}"));
        let accepted = client.send(&outgoing).await?;
        println!(
            "{:>22} -> status={} version={} seq={}",
            outgoing.command_type(),
            accepted.status,
            accepted.version,
            accepted.seq
        );
        seq = accepted.seq;
    }
    let view = client.after(seq).get(&dispute).await?;
    println!("{view:#?}");
    Ok(())
}

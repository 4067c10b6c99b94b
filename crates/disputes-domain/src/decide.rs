//! `decide`: a request against the current state gives the events to append, or a refusal.
//! Pure: time comes in as `now`, durations as `policy`.

use chrono::{DateTime, Utc};

use crate::actor::{Actor, Party, Role};
use crate::command::{Command, CommandType, Open, Request};
use crate::consequences::{deadline_set, escalate, execute, refund_return, release_funds};
use crate::error::{ErrorCode, Refusal};
use crate::event::Event;
use crate::expiry::expire;
use crate::policy::Policy;
use crate::rules;
use crate::state::{Dispute, State};
use crate::status::{DeadlineKind, ResolutionBasis};
use crate::terms::{Proposal, ProposalTerms, RulingTerms, Solution};
use crate::vocab::{EscalationCause, Reason, ResponsibleParty};

/// The events `request` appends to a dispute in `state` at `now`, or why it is refused.
/// Refusals come in the order of rules.md "Which refusal wins", steps 3 to 6.
/// A stale or early expiry is not an error: it decides no events.
pub fn decide(
    state: &State,
    request: &Request,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    match state {
        State::Initial => decide_initial(request, now, policy),
        State::Active(dispute) => decide_active(dispute, request, now, policy),
    }
}

fn decide_initial(
    request: &Request,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    let Command::Open(open) = &request.command else {
        return Err(Refusal::new(ErrorCode::NotFound, "no such dispute"));
    };
    rules::check_role(request.actor.role, CommandType::Open)?;
    rules::check_version(0, request.expected_version)?;
    let proposal = judge_open(open, &request.actor)?;
    let opened = Event::DisputeOpened {
        order_id: open.order_id.clone(),
        buyer_id: request.actor.id.clone(),
        seller_id: open.seller_id.clone(),
        reason: open.reason,
        order_amount: open.order_amount,
        proposal,
        description: open.description.clone(),
    };
    Ok(vec![
        opened,
        deadline_set(DeadlineKind::SellerResponse, now, policy),
    ])
}

/// What of an `open` is judged on its own: the proposal against its own order amount, and a
/// seller who is not the buyer (the actor, when a buyer sends it). Parsing judges it first
/// (step 2); `decide` again for requests built without parsing.
pub(crate) fn judge_open(open: &Open, actor: &Actor) -> Result<Proposal, Refusal> {
    if actor.role == Role::Buyer && open.seller_id == actor.id {
        return Err(Refusal::invalid_value(
            "data.seller_id must not be the buyer's own id (actor.id)",
        ));
    }
    let order_amount = open.order_amount.amount();
    open.proposal
        .against(order_amount)
        .map_err(|refusal| Refusal::invalid_value(format!("data.proposal: {}", refusal.message())))
}

fn decide_active(
    dispute: &Dispute,
    request: &Request,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    match &request.command {
        Command::Open(_) => Err(Refusal::new(
            ErrorCode::AlreadyExists,
            "the dispute already exists",
        )),
        Command::ExpireDeadline { deadline, due_at } => {
            rules::check_role(request.actor.role, CommandType::ExpireDeadline)?;
            rules::check_version(dispute.version(), request.expected_version)?;
            Ok(expire(dispute, *deadline, *due_at, now, policy))
        }
        _ => {
            rules::admit(dispute, request, now)?;
            decide_party(dispute, request, now, policy)
        }
    }
}

/// A party's admitted command: step 6 (amounts and outcomes judged against the dispute), then events.
fn decide_party(
    dispute: &Dispute,
    request: &Request,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    let events = match &request.command {
        Command::AcceptProposal => accept(dispute, request.actor.role, now, policy),
        Command::CounterPropose { proposal } => counter(dispute, *proposal, now, policy)?,
        Command::RejectProposal { reason } => escalate(
            dispute,
            EscalationCause::BuyerRejected,
            reason.clone(),
            now,
            policy,
        )
        .to_vec(),
        Command::Rule {
            outcome,
            responsible_party,
            note,
        } => rule(
            dispute,
            *outcome,
            *responsible_party,
            note.clone(),
            now,
            policy,
        )?,
        command => decide_step(dispute, command, now, policy),
    };
    Ok(events)
}

/// The commands that move one step without judging anything.
fn decide_step(
    dispute: &Dispute,
    command: &Command,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Vec<Event> {
    match command.clone() {
        Command::SubmitShippingProof {
            carrier,
            tracking_number,
        } => {
            vec![Event::ShippingProofSubmitted {
                carrier,
                tracking_number,
            }]
        }
        Command::SubmitEvidence {
            description,
            attachments,
        } => {
            vec![Event::EvidenceSubmitted {
                description,
                attachments,
            }]
        }
        Command::ProvideReturnAddress { address } => vec![
            Event::ReturnAddressProvided { address },
            deadline_set(DeadlineKind::ReturnShipment, now, policy),
        ],
        Command::ProvideReturnTracking {
            carrier,
            tracking_number,
        } => vec![
            Event::ReturnTrackingProvided {
                carrier,
                tracking_number,
            },
            deadline_set(DeadlineKind::ReturnReceipt, now, policy),
        ],
        Command::ConfirmReturnReceived => {
            vec![
                Event::ReturnReceived {},
                refund_return(dispute, ResolutionBasis::ReturnReceived),
            ]
        }
        Command::ReportReturnProblem { problem, note } => {
            vec![Event::ReturnProblemReported { problem, note }]
        }
        Command::Withdraw { reason } => vec![
            Event::DisputeWithdrawn { reason },
            release_funds(dispute, ResolutionBasis::Withdrawn),
        ],
        Command::PostMessage { text, attachments } => {
            vec![Event::MessagePosted { text, attachments }]
        }
        other => unreachable!("{} is decided elsewhere", other.command_type()),
    }
}

/// The proposal on the table is agreed and executed.
fn accept(dispute: &Dispute, role: Role, now: DateTime<Utc>, policy: &Policy) -> Vec<Event> {
    let by = match role {
        Role::Buyer => Party::Buyer,
        Role::Seller => Party::Seller,
        Role::Mediator | Role::System => unreachable!("only the parties accept proposals"),
    };
    let proposal = dispute.proposal();
    vec![
        Event::ProposalAccepted { by, proposal },
        execute(
            dispute,
            proposal.settlement(),
            ResolutionBasis::Agreement,
            now,
            policy,
        ),
    ]
}

fn counter(
    dispute: &Dispute,
    terms: ProposalTerms,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    let proposal = terms.against(dispute.order_amount().amount())?;
    Ok(vec![
        Event::CounterProposed { proposal },
        deadline_set(DeadlineKind::BuyerDecision, now, policy),
    ])
}

fn rule(
    dispute: &Dispute,
    outcome: RulingTerms,
    responsible_party: ResponsibleParty,
    note: Option<String>,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<Vec<Event>, Refusal> {
    check_outcome_allowed(dispute, outcome.solution())?;
    let settlement = outcome.against(dispute.order_amount().amount())?;
    let ruling = Event::RulingIssued {
        outcome: settlement.solution(),
        amount: settlement.amount(),
        responsible_party,
        note,
    };
    Ok(vec![
        ruling,
        execute(dispute, settlement, ResolutionBasis::Ruling, now, policy),
    ])
}

/// A return may be ruled only for `not_as_described`, and only once (not after a return problem).
fn check_outcome_allowed(dispute: &Dispute, solution: Solution) -> Result<(), Refusal> {
    if solution != Solution::ReturnAndRefund {
        return Ok(());
    }
    if dispute.reason() == Reason::NotReceived {
        return Err(Refusal::invalid_value(
            "return_and_refund may not be ruled for a not_received dispute",
        ));
    }
    if dispute.return_problem().is_some() {
        return Err(Refusal::invalid_value(
            "return_and_refund may not be ruled after a reported return problem (no second return)",
        ));
    }
    Ok(())
}

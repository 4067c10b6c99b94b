//! Pass one: the request's shape. Everything here is `invalid_request`; values stay raw
//! (ids as strings, amounts as signed integers) for pass two to judge.

use serde_json::Value;

use super::fields::Fields;
use crate::actor::Role;
use crate::command::CommandType;
use crate::error::Refusal;
use crate::terms::Solution;
use crate::vocab::{Reason, ResponsibleParty, ReturnProblem};

/// A well-formed request, not yet judged.
pub(super) struct Shape {
    pub command_id: String,
    pub dispute_id: String,
    pub role: Role,
    pub actor_id: String,
    pub expected_version: Option<u64>,
    pub data: RawData,
}

/// A solution with its amount present or absent as the solution requires.
pub(super) struct RawTerms {
    pub solution: Solution,
    pub amount: Option<i128>,
}

pub(super) struct RawMoney {
    pub amount: i128,
    pub currency: String,
}

pub(super) struct RawOpen {
    pub order_id: String,
    pub seller_id: String,
    pub reason: Reason,
    pub order_amount: RawMoney,
    pub proposal: RawTerms,
    pub description: Option<String>,
}

/// `data`, by command type.
pub(super) enum RawData {
    Open(RawOpen),
    AcceptProposal,
    CounterPropose {
        proposal: RawTerms,
    },
    RejectProposal {
        reason: Option<String>,
    },
    SubmitShippingProof {
        carrier: String,
        tracking_number: String,
    },
    SubmitEvidence {
        description: String,
        attachments: Vec<String>,
    },
    Rule {
        outcome: RawTerms,
        responsible_party: ResponsibleParty,
        note: Option<String>,
    },
    ProvideReturnAddress {
        address: String,
    },
    ProvideReturnTracking {
        carrier: String,
        tracking_number: String,
    },
    ConfirmReturnReceived,
    ReportReturnProblem {
        problem: ReturnProblem,
        note: Option<String>,
    },
    Withdraw {
        reason: Option<String>,
    },
    PostMessage {
        text: String,
        attachments: Vec<String>,
    },
}

/// `{"command_id", "dispute_id", "actor": {"role", "id"}, "expected_version"?, "data": {...}}`.
pub(super) fn read(command_type: CommandType, body: Value) -> Result<Shape, Refusal> {
    let mut top = Fields::root(body)?;
    let command_id = top.string("command_id")?;
    let dispute_id = top.string("dispute_id")?;
    let mut actor = top.object("actor")?;
    let role = actor.choice::<Role>("role")?;
    let actor_id = actor.string("id")?;
    actor.finish()?;
    let expected_version = top.opt_unsigned("expected_version")?;
    let mut data = top.object("data")?;
    top.finish()?;
    let data_shape = read_data(command_type, &mut data)?;
    data.finish()?;
    Ok(Shape {
        command_id,
        dispute_id,
        role,
        actor_id,
        expected_version,
        data: data_shape,
    })
}

fn read_data(command_type: CommandType, data: &mut Fields) -> Result<RawData, Refusal> {
    use CommandType as C;
    Ok(match command_type {
        C::Open => RawData::Open(read_open(data)?),
        C::AcceptProposal => RawData::AcceptProposal,
        C::CounterPropose => RawData::CounterPropose {
            proposal: read_proposal(data)?,
        },
        C::RejectProposal => RawData::RejectProposal {
            reason: data.opt_string("reason")?,
        },
        C::SubmitShippingProof => RawData::SubmitShippingProof {
            carrier: data.string("carrier")?,
            tracking_number: data.string("tracking_number")?,
        },
        C::SubmitEvidence => RawData::SubmitEvidence {
            description: data.string("description")?,
            attachments: data.strings("attachments")?,
        },
        C::Rule => RawData::Rule {
            outcome: read_terms(data, "outcome")?,
            responsible_party: data.choice("responsible_party")?,
            note: data.opt_string("note")?,
        },
        C::ProvideReturnAddress => RawData::ProvideReturnAddress {
            address: data.string("address")?,
        },
        C::ProvideReturnTracking => RawData::ProvideReturnTracking {
            carrier: data.string("carrier")?,
            tracking_number: data.string("tracking_number")?,
        },
        C::ConfirmReturnReceived => RawData::ConfirmReturnReceived,
        C::ReportReturnProblem => RawData::ReportReturnProblem {
            problem: data.choice("problem")?,
            note: data.opt_string("note")?,
        },
        C::Withdraw => RawData::Withdraw {
            reason: data.opt_string("reason")?,
        },
        C::PostMessage => RawData::PostMessage {
            text: data.string("text")?,
            attachments: data.opt_strings("attachments")?,
        },
        C::ExpireDeadline => {
            unreachable!("expire_deadline has no subject; refused as unknown_command before")
        }
    })
}

fn read_open(data: &mut Fields) -> Result<RawOpen, Refusal> {
    let order_id = data.string("order_id")?;
    let seller_id = data.string("seller_id")?;
    let reason = data.choice("reason")?;
    let mut money = data.object("order_amount")?;
    let order_amount = RawMoney {
        amount: money.integer("amount")?,
        currency: money.string("currency")?,
    };
    money.finish()?;
    let proposal = read_proposal(data)?;
    let description = data.opt_string("description")?;
    Ok(RawOpen {
        order_id,
        seller_id,
        reason,
        order_amount,
        proposal,
        description,
    })
}

/// `"proposal": {"solution", "amount"?}`.
fn read_proposal(data: &mut Fields) -> Result<RawTerms, Refusal> {
    let mut proposal = data.object("proposal")?;
    let terms = read_terms(&mut proposal, "solution")?;
    proposal.finish()?;
    Ok(terms)
}

/// A solution under `solution_key` and its `amount`: required with `partial_refund`, optional with
/// `return_and_refund`, absent with `full_refund` and `release_funds`.
fn read_terms(fields: &mut Fields, solution_key: &str) -> Result<RawTerms, Refusal> {
    let solution: Solution = fields.choice(solution_key)?;
    let amount = fields.opt_integer("amount")?;
    match (solution, amount) {
        (Solution::FullRefund | Solution::ReleaseFunds, Some(_)) => Err(Refusal::invalid_request(
            format!("{} must be absent with {solution}", fields.name("amount")),
        )),
        (Solution::PartialRefund, None) => Err(Refusal::invalid_request(format!(
            "{} is required with {solution}",
            fields.name("amount")
        ))),
        _ => Ok(RawTerms { solution, amount }),
    }
}

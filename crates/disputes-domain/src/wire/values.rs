//! Pass two: the values of a well-formed request, judged without the dispute (`invalid_value`).

use super::shape::{RawData, RawMoney, RawOpen, RawTerms, Shape};
use super::{Limits, ParsedCommand};
use crate::actor::Actor;
use crate::command::{Command, Open, Request};
use crate::decide::judge_open;
use crate::error::Refusal;
use crate::ids::{CommandId, DisputeId, OrderId, PartyId, ID_PATTERN};
use crate::money::{Amount, Currency, Money, AMOUNT_MAX};
use crate::terms::{ProposalTerms, RulingTerms, Solution};

pub(super) fn judge(shape: Shape, limits: &Limits) -> Result<ParsedCommand, Refusal> {
    let command_id = id(CommandId::parse, "command_id", &shape.command_id)?;
    let dispute_id = id(DisputeId::parse, "dispute_id", &shape.dispute_id)?;
    let actor = Actor::new(shape.role, id(PartyId::parse, "actor.id", &shape.actor_id)?);
    let command = judge_data(shape.data, &actor, Texts { limits })?;
    let request = Request {
        actor,
        expected_version: shape.expected_version,
        command,
    };
    Ok(ParsedCommand {
        command_id,
        dispute_id,
        request,
    })
}

fn id<T>(parse: fn(&str) -> Result<T, Refusal>, field: &str, text: &str) -> Result<T, Refusal> {
    parse(text).map_err(|_| Refusal::invalid_value(format!("{field} must match {ID_PATTERN}")))
}

fn judge_data(data: RawData, actor: &Actor, texts: Texts) -> Result<Command, Refusal> {
    Ok(match data {
        RawData::Open(open) => Command::Open(judge_open_data(open, actor, texts)?),
        RawData::AcceptProposal => Command::AcceptProposal,
        RawData::CounterPropose { proposal } => Command::CounterPropose {
            proposal: proposal_terms(proposal)?,
        },
        RawData::RejectProposal { reason } => Command::RejectProposal {
            reason: texts.optional("data.reason", reason)?,
        },
        RawData::SubmitShippingProof {
            carrier,
            tracking_number,
        } => Command::SubmitShippingProof {
            carrier: texts.required("data.carrier", carrier)?,
            tracking_number: texts.required("data.tracking_number", tracking_number)?,
        },
        RawData::SubmitEvidence {
            description,
            attachments,
        } => Command::SubmitEvidence {
            description: texts.required("data.description", description)?,
            attachments: texts.attachments(attachments)?,
        },
        RawData::Rule {
            outcome,
            responsible_party,
            note,
        } => Command::Rule {
            outcome: ruling_terms(outcome)?,
            responsible_party,
            note: texts.optional("data.note", note)?,
        },
        RawData::ProvideReturnAddress { address } => Command::ProvideReturnAddress {
            address: texts.required("data.address", address)?,
        },
        RawData::ProvideReturnTracking {
            carrier,
            tracking_number,
        } => Command::ProvideReturnTracking {
            carrier: texts.required("data.carrier", carrier)?,
            tracking_number: texts.required("data.tracking_number", tracking_number)?,
        },
        RawData::ConfirmReturnReceived => Command::ConfirmReturnReceived,
        RawData::ReportReturnProblem { problem, note } => Command::ReportReturnProblem {
            problem,
            note: texts.optional("data.note", note)?,
        },
        RawData::Withdraw { reason } => Command::Withdraw {
            reason: texts.optional("data.reason", reason)?,
        },
        RawData::PostMessage { text, attachments } => Command::PostMessage {
            text: texts.required("data.text", text)?,
            attachments: texts.attachments(attachments)?,
        },
    })
}

/// An `open` is judged whole here: its proposal against its own order amount, too.
fn judge_open_data(open: RawOpen, actor: &Actor, texts: Texts) -> Result<Open, Refusal> {
    let open = Open {
        order_id: id(OrderId::parse, "data.order_id", &open.order_id)?,
        seller_id: id(PartyId::parse, "data.seller_id", &open.seller_id)?,
        reason: open.reason,
        order_amount: money(open.order_amount)?,
        proposal: proposal_terms(open.proposal)?,
        description: texts.optional("data.description", open.description)?,
    };
    judge_open(&open, actor)?;
    Ok(open)
}

fn money(raw: RawMoney) -> Result<Money, Refusal> {
    let amount = amount("data.order_amount.amount", raw.amount)?;
    let currency = Currency::parse(&raw.currency).map_err(|_| {
        Refusal::invalid_value(
            "data.order_amount.currency must be three upper-case letters (ISO 4217)",
        )
    })?;
    Ok(Money::new(amount, currency))
}

fn amount(field: &str, raw: i128) -> Result<Amount, Refusal> {
    u64::try_from(raw)
        .ok()
        .filter(|minor_units| *minor_units <= AMOUNT_MAX)
        .and_then(|minor_units| Amount::new(minor_units).ok())
        .ok_or_else(|| {
            Refusal::invalid_value(format!(
                "{field} must be an integer from 1 to {AMOUNT_MAX} (got {raw})"
            ))
        })
}

fn opt_amount(field: &str, raw: Option<i128>) -> Result<Option<Amount>, Refusal> {
    raw.map(|raw| amount(field, raw)).transpose()
}

/// A party may propose anything but `release_funds`.
fn proposal_terms(raw: RawTerms) -> Result<ProposalTerms, Refusal> {
    let field = "data.proposal.amount";
    Ok(match raw.solution {
        Solution::FullRefund => ProposalTerms::FullRefund,
        Solution::PartialRefund => ProposalTerms::PartialRefund(required_amount(field, raw.amount)?),
        Solution::ReturnAndRefund => ProposalTerms::ReturnAndRefund(opt_amount(field, raw.amount)?),
        Solution::ReleaseFunds => {
            return Err(Refusal::invalid_value(
                "release_funds may not be proposed: it comes only from a ruling, a timeout or a withdrawal",
            ))
        }
    })
}

fn ruling_terms(raw: RawTerms) -> Result<RulingTerms, Refusal> {
    let field = "data.amount";
    Ok(match raw.solution {
        Solution::FullRefund => RulingTerms::FullRefund,
        Solution::PartialRefund => RulingTerms::PartialRefund(required_amount(field, raw.amount)?),
        Solution::ReturnAndRefund => RulingTerms::ReturnAndRefund(opt_amount(field, raw.amount)?),
        Solution::ReleaseFunds => RulingTerms::ReleaseFunds,
    })
}

fn required_amount(field: &str, raw: Option<i128>) -> Result<Amount, Refusal> {
    amount(field, raw.expect("the shape pass requires this amount"))
}

/// Free-text checks under the configured limits.
#[derive(Clone, Copy)]
struct Texts<'a> {
    limits: &'a Limits,
}

impl Texts<'_> {
    /// At most `text_chars_max` characters, and not blank.
    fn required(self, field: &str, text: String) -> Result<String, Refusal> {
        if text.trim().is_empty() {
            return Err(Refusal::invalid_value(format!("{field} must not be blank")));
        }
        self.within(field, text, self.limits.text_chars_max)
    }

    /// At most `text_chars_max` characters; absent is fine.
    fn optional(self, field: &str, text: Option<String>) -> Result<Option<String>, Refusal> {
        text.map(|text| self.within(field, text, self.limits.text_chars_max))
            .transpose()
    }

    /// At most `attachments_max`, each non-blank and at most `attachment_chars_max` characters.
    fn attachments(self, attachments: Vec<String>) -> Result<Vec<String>, Refusal> {
        let max = self.limits.attachments_max;
        if attachments.len() > max {
            let n = attachments.len();
            return Err(Refusal::invalid_value(format!(
                "data.attachments holds {n}, more than {max}"
            )));
        }
        attachments
            .into_iter()
            .map(|attachment| {
                if attachment.trim().is_empty() {
                    return Err(Refusal::invalid_value(
                        "data.attachments must not hold a blank entry",
                    ));
                }
                self.within(
                    "data.attachments[]",
                    attachment,
                    self.limits.attachment_chars_max,
                )
            })
            .collect()
    }

    fn within(self, field: &str, text: String, chars_max: usize) -> Result<String, Refusal> {
        if text.chars().nth(chars_max).is_some() {
            return Err(Refusal::invalid_value(format!(
                "{field} is over {chars_max} characters"
            )));
        }
        Ok(text)
    }
}

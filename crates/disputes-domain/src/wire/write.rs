//! Writing a command request for the wire: the inverse of [`super::parse_command_value`], for
//! clients (`disputes-client`) that build commands from the domain's types. What this writes,
//! the parser reads back as the same request (a property test holds the two together).

use serde_json::{json, Map, Value};

use crate::command::{Command, Request};
use crate::ids::{CommandId, DisputeId};
use crate::terms::{ProposalTerms, RulingTerms};

impl Command {
    /// The command's `data` object, as `docs/protocol.md` lists it. Optional fields that are
    /// absent are left out. `expire_deadline` has no public form: its data is the scheduler's.
    pub fn data_json(&self) -> Value {
        let mut data = Map::new();
        let mut put = |key: &str, value: Value| {
            data.insert(key.to_owned(), value);
        };
        match self {
            Command::Open(open) => return open_json(open),
            Command::AcceptProposal | Command::ConfirmReturnReceived => {}
            Command::CounterPropose { proposal } => put("proposal", proposal_json(*proposal)),
            Command::RejectProposal { reason } | Command::Withdraw { reason } => {
                if let Some(reason) = reason {
                    put("reason", json!(reason));
                }
            }
            Command::SubmitShippingProof {
                carrier,
                tracking_number,
            }
            | Command::ProvideReturnTracking {
                carrier,
                tracking_number,
            } => {
                put("carrier", json!(carrier));
                put("tracking_number", json!(tracking_number));
            }
            Command::SubmitEvidence {
                description,
                attachments,
            } => {
                put("description", json!(description));
                put("attachments", json!(attachments));
            }
            Command::Rule {
                outcome,
                responsible_party,
                note,
            } => {
                let (outcome, amount) = ruling_parts(*outcome);
                put("outcome", json!(outcome));
                if let Some(amount) = amount {
                    put("amount", json!(amount));
                }
                put("responsible_party", json!(responsible_party));
                if let Some(note) = note {
                    put("note", json!(note));
                }
            }
            Command::ProvideReturnAddress { address } => put("address", json!(address)),
            Command::ReportReturnProblem { problem, note } => {
                put("problem", json!(problem));
                if let Some(note) = note {
                    put("note", json!(note));
                }
            }
            Command::PostMessage { text, attachments } => {
                put("text", json!(text));
                if !attachments.is_empty() {
                    put("attachments", json!(attachments));
                }
            }
            Command::ExpireDeadline { deadline, due_at } => {
                put("deadline", json!(deadline));
                put("due_at", json!(crate::time::format(*due_at)));
            }
        }
        Value::Object(data)
    }
}

impl Request {
    /// The whole request body sent on `disputes.cmd.<type>`: `command_id`, `dispute_id`, `actor`,
    /// `expected_version` when set, and `data`.
    pub fn body_json(&self, command_id: &CommandId, dispute_id: &DisputeId) -> Value {
        let mut body = json!({
            "command_id": command_id,
            "dispute_id": dispute_id,
            "actor": self.actor,
            "data": self.command.data_json(),
        });
        if let Some(version) = self.expected_version {
            body["expected_version"] = json!(version);
        }
        body
    }
}

fn open_json(open: &crate::command::Open) -> Value {
    let mut data = json!({
        "order_id": open.order_id,
        "seller_id": open.seller_id,
        "reason": open.reason,
        "order_amount": open.order_amount,
        "proposal": proposal_json(open.proposal),
    });
    if let Some(description) = &open.description {
        data["description"] = json!(description);
    }
    data
}

fn proposal_json(proposal: ProposalTerms) -> Value {
    match proposal {
        ProposalTerms::FullRefund => json!({"solution": "full_refund"}),
        ProposalTerms::PartialRefund(amount) => {
            json!({"solution": "partial_refund", "amount": amount})
        }
        ProposalTerms::ReturnAndRefund(None) => json!({"solution": "return_and_refund"}),
        ProposalTerms::ReturnAndRefund(Some(amount)) => {
            json!({"solution": "return_and_refund", "amount": amount})
        }
    }
}

fn ruling_parts(outcome: RulingTerms) -> (&'static str, Option<crate::money::Amount>) {
    match outcome {
        RulingTerms::FullRefund => ("full_refund", None),
        RulingTerms::PartialRefund(amount) => ("partial_refund", Some(amount)),
        RulingTerms::ReturnAndRefund(amount) => ("return_and_refund", amount),
        RulingTerms::ReleaseFunds => ("release_funds", None),
    }
}

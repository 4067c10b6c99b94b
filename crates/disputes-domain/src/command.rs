//! Commands: what an actor asks of a dispute, already parsed and checked for shape and range.

use chrono::{DateTime, Utc};

use crate::actor::Actor;
use crate::ids::{OrderId, PartyId};
use crate::macros::wire_enum;
use crate::money::Money;
use crate::status::DeadlineKind;
use crate::terms::{ProposalTerms, RulingTerms};
use crate::vocab::{Reason, ResponsibleParty, ReturnProblem};

wire_enum! {
    /// The command types: the 13 of `disputes.cmd.<type>` (in protocol.md's order), then the
    /// scheduler's `expire_deadline`, which has no subject of its own.
    pub enum CommandType {
        Open = "open",
        AcceptProposal = "accept_proposal",
        CounterPropose = "counter_propose",
        RejectProposal = "reject_proposal",
        SubmitShippingProof = "submit_shipping_proof",
        SubmitEvidence = "submit_evidence",
        Rule = "rule",
        ProvideReturnAddress = "provide_return_address",
        ProvideReturnTracking = "provide_return_tracking",
        ConfirmReturnReceived = "confirm_return_received",
        ReportReturnProblem = "report_return_problem",
        Withdraw = "withdraw",
        PostMessage = "post_message",
        ExpireDeadline = "expire_deadline",
    }
}

impl CommandType {
    /// Whether it may arrive on `disputes.cmd.<type>` (every type but `expire_deadline`).
    pub fn is_public(self) -> bool {
        self != CommandType::ExpireDeadline
    }
}

/// The data of `open`. The buyer is the actor who sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    pub order_id: OrderId,
    pub seller_id: PartyId,
    pub reason: Reason,
    pub order_amount: Money,
    pub proposal: ProposalTerms,
    pub description: Option<String>,
}

/// A command with its typed data (protocol.md's table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Open(Open),
    AcceptProposal,
    CounterPropose {
        proposal: ProposalTerms,
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
        outcome: RulingTerms,
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
    /// The scheduler's: the deadline `deadline` due at `due_at` has come due.
    ExpireDeadline {
        deadline: DeadlineKind,
        due_at: DateTime<Utc>,
    },
}

impl Command {
    pub fn command_type(&self) -> CommandType {
        match self {
            Command::Open(_) => CommandType::Open,
            Command::AcceptProposal => CommandType::AcceptProposal,
            Command::CounterPropose { .. } => CommandType::CounterPropose,
            Command::RejectProposal { .. } => CommandType::RejectProposal,
            Command::SubmitShippingProof { .. } => CommandType::SubmitShippingProof,
            Command::SubmitEvidence { .. } => CommandType::SubmitEvidence,
            Command::Rule { .. } => CommandType::Rule,
            Command::ProvideReturnAddress { .. } => CommandType::ProvideReturnAddress,
            Command::ProvideReturnTracking { .. } => CommandType::ProvideReturnTracking,
            Command::ConfirmReturnReceived => CommandType::ConfirmReturnReceived,
            Command::ReportReturnProblem { .. } => CommandType::ReportReturnProblem,
            Command::Withdraw { .. } => CommandType::Withdraw,
            Command::PostMessage { .. } => CommandType::PostMessage,
            Command::ExpireDeadline { .. } => CommandType::ExpireDeadline,
        }
    }
}

/// A command from an actor, optionally guarded by the version the actor saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub actor: Actor,
    pub expected_version: Option<u64>,
    pub command: Command,
}

impl Request {
    pub fn new(actor: Actor, command: Command) -> Request {
        Request {
            actor,
            expected_version: None,
            command,
        }
    }

    /// The scheduler's request to expire the deadline `deadline` due at `due_at`.
    pub fn expiry(deadline: DeadlineKind, due_at: DateTime<Utc>) -> Request {
        Request::new(
            Actor::scheduler(),
            Command::ExpireDeadline { deadline, due_at },
        )
    }

    pub fn command_type(&self) -> CommandType {
        self.command.command_type()
    }
}

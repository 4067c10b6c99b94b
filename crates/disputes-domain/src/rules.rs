//! Who may send what, when: the one copy of the role, status and deadline rules.
//! `decide` and `actions` both ask these functions; neither restates them.

use chrono::{DateTime, Utc};

use crate::actor::{Actor, Role};
use crate::command::{CommandType, Request};
use crate::error::{ErrorCode, Refusal};
use crate::state::Dispute;
use crate::status::Status;

/// The roles that may ever send `command_type` (rules.md, "Parties").
pub fn senders(command_type: CommandType) -> &'static [Role] {
    use CommandType as C;
    match command_type {
        C::Open
        | C::RejectProposal
        | C::SubmitEvidence
        | C::ProvideReturnTracking
        | C::Withdraw => &[Role::Buyer],
        C::AcceptProposal => &[Role::Buyer, Role::Seller],
        C::CounterPropose
        | C::SubmitShippingProof
        | C::ProvideReturnAddress
        | C::ConfirmReturnReceived
        | C::ReportReturnProblem => &[Role::Seller],
        C::Rule => &[Role::Mediator],
        C::PostMessage => &[Role::Buyer, Role::Seller, Role::Mediator],
        C::ExpireDeadline => &[Role::System],
    }
}

/// Whether `role` may send `command_type` while the dispute is in `status` (rules.md, "Transitions").
/// Only `accept_proposal` depends on the role: the seller accepts the buyer's proposal, the buyer
/// the seller's counter-proposal.
fn status_allows(status: Status, role: Role, command_type: CommandType) -> bool {
    use CommandType as C;
    use Status as S;
    match command_type {
        C::AcceptProposal => matches!(
            (role, status),
            (Role::Seller, S::AwaitingSellerResponse) | (Role::Buyer, S::AwaitingBuyerDecision)
        ),
        C::CounterPropose => status == S::AwaitingSellerResponse,
        C::RejectProposal => status == S::AwaitingBuyerDecision,
        C::SubmitShippingProof => status == S::AwaitingShippingProof,
        C::SubmitEvidence => status == S::AwaitingBuyerEvidence,
        C::Rule => status == S::UnderReview,
        C::ProvideReturnAddress => status == S::AwaitingReturnAddress,
        C::ProvideReturnTracking => status == S::AwaitingReturnShipment,
        C::ConfirmReturnReceived | C::ReportReturnProblem => status == S::AwaitingReturnReceipt,
        C::Withdraw | C::PostMessage => status != S::Resolved,
        C::Open | C::ExpireDeadline => false,
    }
}

/// Whether a deadline's due time blocks `command_type`: every party command but `post_message`.
fn blocked_by_deadline(command_type: CommandType) -> bool {
    command_type != CommandType::PostMessage
}

/// Whether the active deadline's due time has come and blocks `command_type`.
fn deadline_blocks(dispute: &Dispute, command_type: CommandType, now: DateTime<Utc>) -> bool {
    blocked_by_deadline(command_type) && dispute.deadline().is_some_and(|d| d.has_come(now))
}

/// Step 4, by role: `forbidden` unless `role` may ever send `command_type`.
pub(crate) fn check_role(role: Role, command_type: CommandType) -> Result<(), Refusal> {
    if senders(command_type).contains(&role) {
        return Ok(());
    }
    Err(Refusal::forbidden(format!(
        "a {role} may not send {command_type}"
    )))
}

/// Step 4, by id: a buyer or seller must be this dispute's own.
pub(crate) fn check_identity(dispute: &Dispute, actor: &Actor) -> Result<(), Refusal> {
    let own = match actor.role {
        Role::Buyer => dispute.buyer_id(),
        Role::Seller => dispute.seller_id(),
        Role::Mediator | Role::System => return Ok(()),
    };
    if *own == actor.id {
        return Ok(());
    }
    Err(Refusal::forbidden(format!(
        "{} is not this dispute's {}",
        actor.id, actor.role
    )))
}

/// Step 5a: `version_conflict` when an expected version is given and is not `version`.
pub(crate) fn check_version(version: u64, expected_version: Option<u64>) -> Result<(), Refusal> {
    match expected_version {
        Some(expected) if expected != version => Err(Refusal::new(
            ErrorCode::VersionConflict,
            format!("expected_version is {expected} but the dispute is at version {version}"),
        )),
        _ => Ok(()),
    }
}

/// Step 5b: `invalid_state` when the status does not take this command from this role.
pub(crate) fn check_status(
    dispute: &Dispute,
    role: Role,
    command_type: CommandType,
) -> Result<(), Refusal> {
    let status = dispute.status();
    if status_allows(status, role, command_type) {
        return Ok(());
    }
    Err(Refusal::new(
        ErrorCode::InvalidState,
        format!("a {role} may not send {command_type} while the dispute is {status}"),
    ))
}

/// Step 5c: `deadline_passed` when the active deadline's due time has come, even before the
/// expiry is applied (the expiry wins). `post_message` is never blocked.
pub(crate) fn check_deadline(
    dispute: &Dispute,
    command_type: CommandType,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    match dispute.deadline() {
        Some(deadline) if deadline_blocks(dispute, command_type, now) => Err(Refusal::new(
            ErrorCode::DeadlinePassed,
            format!(
                "the {} deadline was due at {}",
                deadline.kind(),
                crate::time::format(deadline.due_at())
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether `role` may send `command_type` on `dispute` at `now`: role, status and deadline.
/// What `actions` lists; `decide` checks the same, plus the actor's id and the expected version.
pub fn permits(
    dispute: &Dispute,
    role: Role,
    command_type: CommandType,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    check_role(role, command_type)?;
    check_status(dispute, role, command_type)?;
    check_deadline(dispute, command_type, now)
}

/// [`permits`] without the refusal: the same three checks, no message built. What `actions`
/// asks for every role and type of every dispute a dashboard lists.
pub fn allows(
    dispute: &Dispute,
    role: Role,
    command_type: CommandType,
    now: DateTime<Utc>,
) -> bool {
    senders(command_type).contains(&role)
        && status_allows(dispute.status(), role, command_type)
        && !deadline_blocks(dispute, command_type, now)
}

/// Steps 4 and 5 of "Which refusal wins" for a party's command on an opened dispute.
pub(crate) fn admit(
    dispute: &Dispute,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let command_type = request.command_type();
    check_role(request.actor.role, command_type)?;
    check_identity(dispute, &request.actor)?;
    check_version(dispute.version(), request.expected_version)?;
    check_status(dispute, request.actor.role, command_type)?;
    check_deadline(dispute, command_type, now)
}

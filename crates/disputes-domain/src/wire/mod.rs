//! Parsing a command request off the wire (protocol.md, "Commands"): pure, no IO.
//!
//! Step 2 of "Which refusal wins", in two passes: first the whole body's shape (`invalid_request`:
//! size, JSON, object, types, enum values, missing and unknown fields, amount present or absent
//! by solution), then what can be judged without the dispute (`invalid_value`: ids, amounts,
//! currency, text lengths, attachments, `release_funds` proposed by a party, an `open`'s proposal
//! against its own order amount). So a body wrong in both ways is always `invalid_request`.

mod fields;
mod json;
mod shape;
mod values;
mod write;

pub use json::read_json;

use crate::command::{CommandType, Request};
use crate::error::{ErrorCode, Refusal};
use crate::ids::{CommandId, DisputeId};

/// A request body is at most 64 KiB.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Free text is at most 4,000 characters (Unicode scalar values, not bytes).
pub const TEXT_CHARS_MAX: usize = 4_000;
/// At most 20 attachments per command.
pub const ATTACHMENTS_MAX: usize = 20;
/// Each attachment is at most 512 characters.
pub const ATTACHMENT_CHARS_MAX: usize = 512;

/// Caps on a request's size, configurable; defaults are the contract's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub body_bytes_max: usize,
    pub text_chars_max: usize,
    pub attachments_max: usize,
    pub attachment_chars_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body_bytes_max: BODY_BYTES_MAX,
            text_chars_max: TEXT_CHARS_MAX,
            attachments_max: ATTACHMENTS_MAX,
            attachment_chars_max: ATTACHMENT_CHARS_MAX,
        }
    }
}

/// A request that is well-formed and in range; what is left to judge needs the dispute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedCommand {
    pub command_id: CommandId,
    pub dispute_id: DisputeId,
    pub request: Request,
}

/// Parses the body of a request received on `disputes.cmd.<command_type>`.
/// `unknown_command` for a type with no subject (including `expire_deadline`), then
/// `invalid_request`, then `invalid_value`. The `system` role parses; `decide` forbids it.
pub fn parse_command(
    command_type: &str,
    body: &[u8],
    limits: &Limits,
) -> Result<ParsedCommand, Refusal> {
    let command_type = public_command_type(command_type)?;
    let value = read_body(body, limits)?;
    parse_command_value(command_type, value, limits)
}

/// A request body as JSON (queries' and commands' alike): `invalid_request` when it is over
/// `limits.body_bytes_max`, not JSON, or repeats a key in an object (see [`read_json`]).
pub fn read_body(body: &[u8], limits: &Limits) -> Result<serde_json::Value, Refusal> {
    if body.len() > limits.body_bytes_max {
        return Err(Refusal::invalid_request(format!(
            "the body is {} bytes, over the limit of {}",
            body.len(),
            limits.body_bytes_max
        )));
    }
    read_json(body)
}

/// [`parse_command`] of a body already read with [`read_body`].
pub fn parse_command_value(
    command_type: CommandType,
    value: serde_json::Value,
    limits: &Limits,
) -> Result<ParsedCommand, Refusal> {
    let shape = shape::read(command_type, value)?;
    values::judge(shape, limits)
}

/// The command type named by a `disputes.cmd.<type>` subject.
pub fn public_command_type(command_type: &str) -> Result<CommandType, Refusal> {
    CommandType::parse(command_type)
        .filter(|t| t.is_public())
        .ok_or_else(|| {
            let shown: String = command_type.chars().take(64).collect();
            Refusal::new(
                ErrorCode::UnknownCommand,
                format!("no command named {shown:?}"),
            )
        })
}

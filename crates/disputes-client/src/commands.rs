//! Commands: [`Outgoing`] (a command with the id it keeps across retries) and [`Accepted`].

use async_nats::HeaderMap;
use bytes::Bytes;
use disputes_domain::{Actor, Command, CommandId, CommandType, DisputeId, Request, Status};
use disputes_envelope::Envelope;
use serde::Deserialize;

use crate::client::{Client, RefusalBody};
use crate::error::Error;
use crate::events::check_own_hash;

/// The header that carries a caller's correlation id on a command; the events the command appends
/// are published with it (`docs/protocol.md`, "Extensions").
pub const CORRELATION_ID_HEADER: &str = "Disputes-Correlation-Id";
/// The W3C trace context header, kept the same way.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// One logical command on its way: the domain's [`Command`] from an [`Actor`] on a dispute, with
/// a `command_id` generated when it is made. Send the same `Outgoing` again to retry: the id, and
/// so the outcome, stay the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    command_id: CommandId,
    dispute_id: DisputeId,
    request: Request,
    headers: Vec<(&'static str, String)>,
}

impl Outgoing {
    /// `command` from `actor` on `dispute_id`, under a fresh `command_id` (`c-` and a UUIDv7).
    pub fn new(dispute_id: &DisputeId, actor: Actor, command: Command) -> Outgoing {
        let id = format!("c-{}", uuid::Uuid::now_v7().simple());
        let command_id = CommandId::parse(&id).expect("a UUID matches the id pattern");
        Outgoing::with_id(command_id, dispute_id, actor, command)
    }

    /// The same under a `command_id` of your own (one you derive from your own request id, so a
    /// restart of your service retries with it too).
    pub fn with_id(
        command_id: CommandId,
        dispute_id: &DisputeId,
        actor: Actor,
        command: Command,
    ) -> Outgoing {
        Outgoing {
            command_id,
            dispute_id: dispute_id.clone(),
            request: Request::new(actor, command),
            headers: Vec::new(),
        }
    }

    /// Refuse (`version_conflict`) unless the dispute is still at `version`.
    pub fn expecting_version(mut self, version: u64) -> Outgoing {
        self.request.expected_version = Some(version);
        self
    }

    /// A correlation id the events this command appends will carry when published.
    pub fn correlation_id(self, id: &str) -> Outgoing {
        self.header(CORRELATION_ID_HEADER, id)
    }

    /// A W3C `traceparent` the events this command appends will carry when published.
    pub fn traceparent(self, traceparent: &str) -> Outgoing {
        self.header(TRACEPARENT_HEADER, traceparent)
    }

    fn header(mut self, name: &'static str, value: &str) -> Outgoing {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn command_id(&self) -> &CommandId {
        &self.command_id
    }

    pub fn dispute_id(&self) -> &DisputeId {
        &self.dispute_id
    }

    pub fn command_type(&self) -> CommandType {
        self.request.command_type()
    }

    /// The request body, as sent.
    pub fn body(&self) -> serde_json::Value {
        self.request.body_json(&self.command_id, &self.dispute_id)
    }

    fn header_map(&self) -> Option<HeaderMap> {
        if self.headers.is_empty() {
            return None;
        }
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            map.insert(*name, value.as_str());
        }
        Some(map)
    }
}

/// An accepted command's reply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Accepted {
    pub dispute_id: String,
    /// The dispute's version after the command.
    pub version: u64,
    /// The global position of the command's last event: give it to [`Client::after`].
    pub seq: u64,
    pub status: Status,
    /// The events the command appended, each one's hash checked.
    pub events: Vec<Envelope>,
    /// Whether this is the first reply again (the command had been accepted before).
    #[serde(default)]
    pub replayed: bool,
}

impl Client {
    /// Sends `command` and waits for its reply, retrying a timeout, no responders and
    /// `unavailable` with the same `command_id` ([`crate::Options`]). A refusal is
    /// [`Error::Refused`]; nothing was appended.
    pub async fn send(&self, command: &Outgoing) -> Result<Accepted, Error> {
        let subject = format!("{}.cmd.{}", self.prefix, command.command_type());
        let body = serde_json::to_vec(&command.body()).expect("a command serializes");
        let headers = command.header_map();
        let accepted = self
            .request_with(
                subject,
                Bytes::from(body),
                headers.as_ref(),
                read_command_reply,
            )
            .await?;
        for event in &accepted.events {
            check_own_hash(event)?;
        }
        Ok(accepted)
    }
}

/// A command's reply read in one pass (no intermediate JSON tree): accepted, or its refusal.
fn read_command_reply(payload: &[u8]) -> Result<Accepted, Error> {
    #[derive(Deserialize)]
    struct Wire {
        ok: bool,
        error: Option<RefusalBody>,
        dispute_id: Option<String>,
        version: Option<u64>,
        seq: Option<u64>,
        status: Option<Status>,
        #[serde(default)]
        events: Vec<Envelope>,
        #[serde(default)]
        replayed: bool,
    }
    let wire: Wire = serde_json::from_slice(payload)
        .map_err(|e| Error::Protocol(format!("not a command reply: {e}")))?;
    let missing = |field: &str| Error::Protocol(format!("an accepted reply without {field}"));
    match (wire.ok, wire.error) {
        (false, Some(refusal)) => Err(refusal.into_error()),
        (false, None) => Err(Error::Protocol("a refusal without its error".into())),
        (true, _) => Ok(Accepted {
            dispute_id: wire.dispute_id.ok_or_else(|| missing("dispute_id"))?,
            version: wire.version.ok_or_else(|| missing("version"))?,
            seq: wire.seq.ok_or_else(|| missing("seq"))?,
            status: wire.status.ok_or_else(|| missing("status"))?,
            events: wire.events,
            replayed: wire.replayed,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_reply_reads_in_one_pass_accepted_or_refused() {
        let accepted =
            read_command_reply(br#"{"ok":true,"dispute_id":"d-1","version":2,"seq":9,"status":"awaiting_seller_response","events":[]}"#)
                .unwrap();
        assert_eq!(
            (accepted.version, accepted.seq, accepted.replayed),
            (2, 9, false)
        );
        let refused =
            read_command_reply(br#"{"ok":false,"error":{"code":"not_found","message":"no"}}"#);
        assert_eq!(
            refused.unwrap_err().code(),
            Some(disputes_domain::ErrorCode::NotFound)
        );
        assert!(matches!(
            read_command_reply(br#"{"ok":true}"#),
            Err(Error::Protocol(_))
        ));
    }
}

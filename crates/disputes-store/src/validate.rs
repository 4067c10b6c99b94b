//! The limits an append request must keep, checked in the caller's thread before it is queued.

use serde_json::Value;

use crate::api::AppendRequest;
use crate::error::StoreError;
use crate::limits::{
    COMMAND_META_BYTES_MAX, DATA_BYTES_MAX, DATA_DEPTH_MAX, EVENTS_PER_APPEND_MAX,
    FINGERPRINT_BYTES_MAX, ID_BYTES_MAX, STREAM_EVENTS_MAX,
};
use disputes_envelope::{Draft, NewEvent};

/// An id: non-empty, at most [`ID_BYTES_MAX`] bytes, no control characters.
pub(crate) fn id(what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > ID_BYTES_MAX || value.chars().any(char::is_control) {
        return Err(StoreError::invalid(format!(
            "{what} must be 1..={ID_BYTES_MAX} bytes without control characters"
        )));
    }
    Ok(())
}

/// Checks `req` against the store's limits, gives each event its id (a UUID v7) and drafts its
/// canonical bytes but for what only the log's writer knows (seq, version, hashes; see [`Draft`]).
/// Done in the appending caller's thread, off the single writer. Every backend appends through it.
pub fn draft_events(req: &AppendRequest) -> Result<Vec<(String, Draft)>, StoreError> {
    let data = append_request(req)?;
    let drafted = req
        .events
        .iter()
        .zip(&data)
        .map(|(event, data)| {
            let event_id = uuid::Uuid::now_v7().to_string();
            let draft = Draft::new(&req.dispute_id, &event_id, event, data);
            draft.assert_reads_back(&req.dispute_id, &event_id, event);
            (event_id, draft)
        })
        .collect();
    Ok(drafted)
}

/// Checks `req`; returns each event's `data` in canonical form (the writer needs it, and computing
/// it here keeps that work off the single writer thread).
pub(crate) fn append_request(req: &AppendRequest) -> Result<Vec<Vec<u8>>, StoreError> {
    id("dispute_id", &req.dispute_id)?;
    if req.expected_version > STREAM_EVENTS_MAX {
        return Err(StoreError::invalid(format!(
            "expected_version over {STREAM_EVENTS_MAX}"
        )));
    }
    if let Some(order_id) = &req.reserve_order {
        id("reserve_order", order_id)?;
    }
    if req.events.is_empty() || req.events.len() > EVENTS_PER_APPEND_MAX {
        return Err(StoreError::invalid(format!(
            "an append has 1..={EVENTS_PER_APPEND_MAX} events"
        )));
    }
    let command_id = match &req.command {
        None => None,
        Some(command) => {
            id("command_id", &command.command_id)?;
            if command.fingerprint.len() > FINGERPRINT_BYTES_MAX {
                return Err(StoreError::invalid(format!(
                    "fingerprint over {FINGERPRINT_BYTES_MAX} bytes"
                )));
            }
            json("command meta", &command.meta, COMMAND_META_BYTES_MAX)?;
            Some(command.command_id.as_str())
        }
    };
    req.events
        .iter()
        .map(|event| new_event(event, command_id))
        .collect()
}

fn new_event(event: &NewEvent, command_id: Option<&str>) -> Result<Vec<u8>, StoreError> {
    id("event type", &event.event_type)?;
    id("actor role", &event.actor.role)?;
    id("actor id", &event.actor.id)?;
    if event.command_id.as_deref() != command_id {
        return Err(StoreError::invalid(
            "every event's command_id must be the append's command id",
        ));
    }
    if disputes_envelope::json_has_float(&event.data) {
        return Err(StoreError::invalid(
            "event data holds a non-integer number (no canonical form)",
        ));
    }
    json("event data", &event.data, DATA_BYTES_MAX)
}

/// The canonical bytes of `value`, once its depth and size are within limits.
fn json(what: &str, value: &Value, bytes_max: usize) -> Result<Vec<u8>, StoreError> {
    if disputes_envelope::json_depth(value, DATA_DEPTH_MAX) > DATA_DEPTH_MAX {
        return Err(StoreError::invalid(format!(
            "{what} nested deeper than {DATA_DEPTH_MAX}"
        )));
    }
    let bytes = disputes_envelope::canonical_json(value);
    if bytes.len() > bytes_max {
        return Err(StoreError::invalid(format!(
            "{what} over {bytes_max} bytes"
        )));
    }
    Ok(bytes)
}

/// `Err(refusal)` unless a stream at version `actual` is at `expected` and has room for `events`
/// more: the check every store makes before an append.
pub fn check_stream_version(expected: u64, actual: u64, events: usize) -> Result<(), StoreError> {
    if actual != expected {
        return Err(StoreError::VersionConflict { expected, actual });
    }
    if actual + events as u64 > STREAM_EVENTS_MAX {
        return Err(StoreError::invalid(format!(
            "a stream holds at most {STREAM_EVENTS_MAX} events"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_is_refused_unless_the_stream_is_at_its_expected_version() {
        assert!(check_stream_version(3, 3, 2).is_ok());
        assert!(matches!(
            check_stream_version(2, 3, 1),
            Err(StoreError::VersionConflict {
                expected: 2,
                actual: 3
            })
        ));
    }

    #[test]
    fn a_stream_takes_no_event_past_its_limit() {
        let full = STREAM_EVENTS_MAX;
        assert!(check_stream_version(full - 2, full - 2, 2).is_ok());
        let refused = check_stream_version(full - 2, full - 2, 3).unwrap_err();
        assert!(matches!(refused, StoreError::Invalid(_)), "{refused:?}");
        assert!(check_stream_version(full, full, 1).is_err());
    }
}

//! Correlation on the NATS edge: a command's `Disputes-Correlation-Id` and W3C `traceparent`
//! headers in, the same headers on the events it appended out (`docs/protocol.md`, "Extensions").

use async_nats::HeaderMap;
use disputes_command::Trace;
use disputes_domain::{ErrorCode, Refusal};

pub(crate) const CORRELATION_ID: &str = "Disputes-Correlation-Id";
pub(crate) const TRACEPARENT: &str = "traceparent";
/// A correlation id is 1 to 128 visible ASCII characters (no space, no control).
const CORRELATION_ID_CHARS_MAX: usize = 128;

/// The trace a command request's headers carry. A malformed correlation id is `invalid_request`
/// (the caller chose it); a malformed `traceparent` is ignored, as W3C Trace Context requires.
pub(crate) fn read(headers: Option<&HeaderMap>) -> Result<Trace, Refusal> {
    let Some(headers) = headers else {
        return Ok(Trace::default());
    };
    let correlation_id = match headers.get(CORRELATION_ID).map(|v| v.as_str()) {
        None => None,
        Some(id)
            if (1..=CORRELATION_ID_CHARS_MAX).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(id.to_owned())
        }
        Some(_) => {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                format!("header {CORRELATION_ID} must be 1 to {CORRELATION_ID_CHARS_MAX} visible ASCII characters"),
            ))
        }
    };
    let traceparent = headers
        .get(TRACEPARENT)
        .map(|v| v.as_str())
        .filter(|t| is_traceparent(t))
        .map(str::to_owned);
    Ok(Trace {
        correlation_id,
        traceparent,
    })
}

/// Adds the trace's headers to an event's message.
pub(crate) fn add(headers: &mut HeaderMap, trace: &Trace) {
    if let Some(id) = &trace.correlation_id {
        headers.insert(CORRELATION_ID, id.as_str());
    }
    if let Some(traceparent) = &trace.traceparent {
        headers.insert(TRACEPARENT, traceparent.as_str());
    }
}

/// The trace's headers as name and value pairs (the JetStream log writes them itself).
pub(crate) fn pairs(trace: &Trace) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    if let Some(id) = &trace.correlation_id {
        pairs.push((CORRELATION_ID.to_owned(), id.clone()));
    }
    if let Some(traceparent) = &trace.traceparent {
        pairs.push((TRACEPARENT.to_owned(), traceparent.clone()));
    }
    pairs
}

/// `version-traceid-parentid-flags` of W3C Trace Context: lowercase hex of 2, 32, 16 and 2
/// digits, version not `ff`, neither id all zeros. (A later version may append fields after a
/// dash; version `00` may not.)
fn is_traceparent(text: &str) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let parts: Vec<&str> = text.splitn(5, '-').collect();
    let [version, trace_id, parent_id, flags, rest @ ..] = parts.as_slice() else {
        return false;
    };
    hex(version, 2)
        && *version != "ff"
        && (rest.is_empty() || *version != "00")
        && hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex(parent_id, 16)
        && parent_id.bytes().any(|b| b != b'0')
        && hex(flags, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, *v);
        }
        map
    }

    #[test]
    fn a_valid_traceparent_is_kept_and_a_malformed_one_ignored() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = read(Some(&headers(&[(TRACEPARENT, good)]))).unwrap();
        assert_eq!(trace.traceparent.as_deref(), Some(good));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "junk",
        ] {
            let trace = read(Some(&headers(&[(TRACEPARENT, bad)]))).unwrap();
            assert_eq!(trace.traceparent, None, "{bad}");
        }
    }

    #[test]
    fn a_correlation_id_is_visible_ascii_up_to_128_characters() {
        let trace = read(Some(&headers(&[(CORRELATION_ID, "req-42:a/b")]))).unwrap();
        assert_eq!(trace.correlation_id.as_deref(), Some("req-42:a/b"));
        assert!(read(Some(&headers(&[(CORRELATION_ID, &"x".repeat(129))]))).is_err());
        assert!(read(Some(&headers(&[(CORRELATION_ID, "two words")]))).is_err());
        assert_eq!(read(None).unwrap(), Trace::default());
    }
}

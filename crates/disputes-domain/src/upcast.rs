//! Event revisions and upcasters: how an event written in an older shape of its `data` is read.
//!
//! Each event type has a revision (the envelope's `revision`, absent meaning 1). An additive change
//! (a new optional field) keeps the revision; a change that would break a reader (a field renamed,
//! removed, retyped or given a new meaning) makes a new one, together with an [`Upcaster`] from the
//! revision before. Readers upcast *after* the hash is verified: the stored bytes never change, the
//! upcast copy is what the fold sees (`docs/protocol.md`, "Event revisions").
//!
//! This build writes and reads every type at revision 1, so [`Upcasters::shipped`] holds no step.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::event::{Event, EVENT_TYPES};

/// Turns an event's `data` of revision `r` into revision `r + 1`, in place.
pub type Upcaster = fn(&mut Map<String, Value>) -> Result<(), String>;

/// Why an event's data could not be brought to the current revision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("{0:?} is no event type of ours")]
    UnknownType(String),
    #[error("{event_type} revision {revision} is newer than this build reads ({current}): upgrade the reader")]
    Newer {
        event_type: String,
        revision: u32,
        current: u32,
    },
    #[error("{event_type} revision 0 does not exist: revisions count from 1")]
    Zero { event_type: String },
    #[error("{event_type} data is not an object")]
    NotAnObject { event_type: String },
    #[error("{event_type} revision {from} → {}: {reason}", from + 1)]
    Step {
        event_type: String,
        from: u32,
        reason: String,
    },
}

/// Every event type's current revision, and the steps from each older one.
#[derive(Debug, Clone)]
pub struct Upcasters {
    /// `(type, current revision)` for each of [`EVENT_TYPES`].
    current: Vec<(&'static str, u32)>,
    /// `(type, from revision, step to from + 1)`.
    steps: Vec<(&'static str, u32, Upcaster)>,
}

impl Upcasters {
    /// Every event type at revision 1, no step.
    pub fn at_revision_one() -> Upcasters {
        Upcasters {
            current: EVENT_TYPES.iter().map(|t| (*t, 1)).collect(),
            steps: Vec::new(),
        }
    }

    /// What this build writes and reads (every type at revision 1 today).
    pub fn shipped() -> &'static Upcasters {
        static SHIPPED: OnceLock<Upcasters> = OnceLock::new();
        SHIPPED.get_or_init(Upcasters::at_revision_one)
    }

    /// A new revision of `event_type`: the current one plus 1, reached from it by `step`.
    ///
    /// # Panics
    /// If `event_type` is not one of [`EVENT_TYPES`].
    pub fn with_step(mut self, event_type: &'static str, step: Upcaster) -> Upcasters {
        let entry = self
            .current
            .iter_mut()
            .find(|(t, _)| *t == event_type)
            .unwrap_or_else(|| panic!("{event_type} is no event type"));
        self.steps.push((event_type, entry.1, step));
        entry.1 += 1;
        self
    }

    /// The revision `event_type` is read (and written) at.
    pub fn current(&self, event_type: &str) -> Option<u32> {
        self.current
            .iter()
            .find(|(t, _)| *t == event_type)
            .map(|(_, r)| *r)
    }

    /// `data` of `event_type` at `revision`, brought to the current revision. Borrowed, untouched,
    /// when it is already current.
    pub fn upcast<'a>(
        &self,
        event_type: &str,
        revision: u32,
        data: &'a Value,
    ) -> Result<Cow<'a, Value>, UpcastError> {
        let current = self
            .current(event_type)
            .ok_or_else(|| UpcastError::UnknownType(event_type.to_owned()))?;
        let event_type_owned = || event_type.to_owned();
        if revision == 0 {
            return Err(UpcastError::Zero {
                event_type: event_type_owned(),
            });
        }
        if revision > current {
            return Err(UpcastError::Newer {
                event_type: event_type_owned(),
                revision,
                current,
            });
        }
        if revision == current {
            return Ok(Cow::Borrowed(data));
        }
        let Value::Object(object) = data else {
            return Err(UpcastError::NotAnObject {
                event_type: event_type_owned(),
            });
        };
        let mut object = object.clone();
        for from in revision..current {
            let (_, _, step) = self
                .steps
                .iter()
                .find(|(t, f, _)| *t == event_type && *f == from)
                .expect("with_step records a step for every revision it adds");
            step(&mut object).map_err(|reason| UpcastError::Step {
                event_type: event_type_owned(),
                from,
                reason,
            })?;
        }
        Ok(Cow::Owned(Value::Object(object)))
    }
}

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    #[error("{event_type} data: {error}")]
    Data {
        event_type: String,
        error: serde_json::Error,
    },
}

impl Event {
    /// The event of `event_type` whose `data` has `revision`, read at this build's revisions
    /// ([`Upcasters::shipped`]): call it after the envelope's hash is verified.
    pub fn decode_revision(
        event_type: &str,
        revision: u32,
        data: &Value,
    ) -> Result<Event, DecodeError> {
        let data = Upcasters::shipped().upcast(event_type, revision, data)?;
        Event::decode(event_type, &data).map_err(|error| DecodeError::Data {
            event_type: event_type.to_owned(),
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A revision 2 of `DisputeEscalated` for the test: `reason` renamed `buyer_reason`.
    fn rename_reason(data: &mut Map<String, Value>) -> Result<(), String> {
        let reason = data.remove("reason").ok_or("no reason field")?;
        data.insert("buyer_reason".into(), reason);
        Ok(())
    }

    #[test]
    fn an_older_revision_is_upcast_step_by_step_and_a_current_one_borrowed() {
        let upcasters = Upcasters::at_revision_one().with_step("DisputeEscalated", rename_reason);
        assert_eq!(upcasters.current("DisputeEscalated"), Some(2));
        assert_eq!(upcasters.current("DisputeOpened"), Some(1));
        let v1 = json!({"cause": "buyer_rejected", "reason": "broken"});
        let v2 = upcasters.upcast("DisputeEscalated", 1, &v1).unwrap();
        assert_eq!(
            *v2,
            json!({"cause": "buyer_rejected", "buyer_reason": "broken"})
        );
        let current = upcasters.upcast("DisputeEscalated", 2, &v2).unwrap();
        assert!(matches!(current, Cow::Borrowed(_)));
    }

    #[test]
    fn a_newer_revision_zero_or_an_unknown_type_is_refused() {
        let shipped = Upcasters::shipped();
        let data = json!({});
        assert!(matches!(
            shipped.upcast("ReturnReceived", 2, &data),
            Err(UpcastError::Newer { current: 1, .. })
        ));
        assert!(matches!(
            shipped.upcast("ReturnReceived", 0, &data),
            Err(UpcastError::Zero { .. })
        ));
        assert!(matches!(
            shipped.upcast("Nope", 1, &data),
            Err(UpcastError::UnknownType(_))
        ));
        let step = Upcasters::at_revision_one().with_step("DisputeEscalated", rename_reason);
        let no_reason = json!({"cause": "x"});
        let refused = step.upcast("DisputeEscalated", 1, &no_reason);
        assert!(refused.unwrap_err().to_string().contains("no reason field"));
    }

    #[test]
    fn this_build_reads_every_type_at_revision_one() {
        for event_type in EVENT_TYPES {
            assert_eq!(Upcasters::shipped().current(event_type), Some(1));
        }
        let data = json!({"reason": null});
        assert_eq!(
            Event::decode_revision("DisputeWithdrawn", 1, &data).unwrap(),
            Event::DisputeWithdrawn { reason: None }
        );
    }
}

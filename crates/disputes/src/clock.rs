//! The service's one clock. The domain never reads it: the edges pass `now` in.

use chrono::{DateTime, TimeZone, Utc};

/// The current time, to the millisecond: every timestamp we store has this precision.
pub(crate) fn now() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(Utc::now().timestamp_millis())
        .single()
        .expect("valid now")
}

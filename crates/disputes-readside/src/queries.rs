//! Queries on `<prefix>.query.<name>`, answered from the read models (and `history` from the log).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use disputes_domain::{self as domain, ErrorCode, Refusal};
use disputes_store::{EventStore, StoreError};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::projections::{view_bytes, ListFilter, ProjectionError, Projections};

/// Why a query got no answer: refused (bad input, no such dispute, `timeout`), or the storage
/// under it failed. The service maps each to its wire code.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Projections(#[from] ProjectionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refused(code: ErrorCode, message: impl Into<String>) -> QueryError {
    QueryError::Refused(Refusal::new(code, message))
}

/// How long a query with `min_seq` waits for the read models to catch up.
pub const MIN_SEQ_WAIT: Duration = Duration::from_secs(5);
const LIST_LIMIT_DEFAULT: usize = 50;
/// The queries of `<prefix>.query.<name>`, in the contract's order.
pub const QUERY_NAMES: [&str; 5] = ["get", "list", "history", "deadlines", "stats"];
/// `history` returns at most this many events per page (and by default this many).
pub const HISTORY_LIMIT_MAX: usize = 1000;

pub struct Queries<S> {
    pub store: Arc<S>,
    pub projections: Arc<Projections>,
    pub list_limit_max: usize,
    pub limits: domain::Limits,
    /// The longest reply a connection may send (its server's `max_payload`): longer pages are
    /// cut short, with `next` set.
    pub reply_bytes_max: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Get {
    dispute_id: String,
    min_seq: Option<i128>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct List {
    seller_id: Option<String>,
    buyer_id: Option<String>,
    status: Option<domain::Status>,
    stage: Option<domain::Stage>,
    limit: Option<i128>,
    after: Option<String>,
    min_seq: Option<i128>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct History {
    dispute_id: String,
    /// The version to list after (0: from the first event).
    after: Option<i128>,
    limit: Option<i128>,
    /// Checked, then not waited for: the log already holds every acknowledged seq.
    min_seq: Option<i128>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Deadlines {
    before: Option<String>,
    limit: Option<i128>,
    min_seq: Option<i128>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stats {
    seller_id: Option<String>,
    min_seq: Option<i128>,
}

/// A reply's bytes, or why not.
type Answer = Result<Vec<u8>, QueryError>;

impl<S: EventStore + 'static> Queries<S> {
    /// Answers one query on `<prefix>.query.<name>`: the reply's bytes, never longer than
    /// `reply_bytes_max`.
    pub async fn answer(&self, name: &str, body: &[u8], now: DateTime<Utc>) -> Answer {
        let reply = self.route(name, body, now).await?;
        // `list` and `history` cut their pages to fit; what else is too long cannot be cut.
        if reply.len() > self.reply_bytes_max {
            return Err(refused(
                ErrorCode::InvalidRequest,
                format!(
                    "the reply would be {} bytes, more than a reply on this connection may carry ({} bytes): ask for less (a smaller limit)",
                    reply.len(),
                    self.reply_bytes_max
                ),
            ));
        }
        Ok(reply)
    }

    async fn route(&self, name: &str, body: &[u8], now: DateTime<Utc>) -> Answer {
        let limits = &self.limits;
        match name {
            "get" => self.get(parse(body, limits)?, now).await,
            "list" => self.list(parse(body, limits)?, now).await,
            "history" => self.history(parse(body, limits)?).await,
            "deadlines" => self.deadlines(parse(body, limits)?).await,
            "stats" => self.stats(parse(body, limits)?).await,
            _ => Err(refused(
                ErrorCode::UnknownCommand,
                format!("no query named {name:?}"),
            )),
        }
    }

    async fn get(&self, q: Get, now: DateTime<Utc>) -> Answer {
        id(&q.dispute_id, "dispute_id")?;
        self.wait_for(q.min_seq).await?;
        match self.projections.record(&q.dispute_id)? {
            Some(record) => {
                let view = view_bytes(&record, now);
                let mut reply = Vec::with_capacity(view.len() + 24);
                reply.extend_from_slice(b"{\"ok\":true,\"dispute\":");
                reply.extend_from_slice(&view);
                reply.push(b'}');
                Ok(reply)
            }
            None => Err(refused(
                ErrorCode::NotFound,
                format!("no dispute {}", q.dispute_id),
            )),
        }
    }

    async fn list(&self, q: List, now: DateTime<Utc>) -> Answer {
        for (field, value) in [
            ("seller_id", &q.seller_id),
            ("buyer_id", &q.buyer_id),
            ("after", &q.after),
        ] {
            if let Some(value) = value {
                id(value, field)?;
            }
        }
        let limit = self.limit(q.limit, self.list_limit_max)?;
        self.wait_for(q.min_seq).await?;
        // A cursor is the last dispute of a page handed out: a dispute that exists.
        if let Some(after) = &q.after {
            if self.projections.record(after)?.is_none() {
                return Err(refused(
                    ErrorCode::InvalidValue,
                    format!("after {after:?} is not a cursor this service handed out"),
                ));
            }
        }
        let filter = ListFilter {
            seller_id: q.seller_id,
            buyer_id: q.buyer_id,
            status: q.status.map(|s| s.as_str().to_owned()),
            stage: q.stage.map(|s| s.as_str().to_owned()),
            after: q.after,
        };
        let (records, next) = self.projections.list(&filter, limit)?;
        let views: Vec<Vec<u8>> = records.iter().map(|r| view_bytes(r, now)).collect();
        let fit = self.fitting(&views, "disputes")?;
        let next = match fit < records.len() {
            true => Some(records[fit - 1].dispute_id.clone()),
            false => next,
        };
        Ok(page(&views[..fit], "disputes", next.map(Value::from)))
    }

    async fn history(&self, q: History) -> Answer {
        id(&q.dispute_id, "dispute_id")?;
        let after = non_negative(q.after, "after")?.unwrap_or(0);
        let limit = self.limit(
            Some(q.limit.unwrap_or(HISTORY_LIMIT_MAX as i128)),
            HISTORY_LIMIT_MAX,
        )?;
        non_negative(q.min_seq, "min_seq")?;
        // The log itself answers: anything acknowledged is already in it, whatever `min_seq` says.
        let store = self.store.clone();
        let events = tokio::task::spawn_blocking(move || store.read_stream(&q.dispute_id))
            .await
            .map_err(|e| QueryError::Store(StoreError::Unavailable(e.to_string())))?
            .map_err(QueryError::Store)?;
        let rest: Vec<_> = events.iter().filter(|e| e.version > after).collect();
        let shown = &rest[..rest.len().min(limit)];
        let bytes: Vec<Vec<u8>> = shown.iter().map(to_bytes).collect();
        let fit = self.fitting(&bytes, "events")?;
        let next = (fit < rest.len()).then(|| Value::from(shown[fit - 1].version));
        Ok(page(&bytes[..fit], "events", next))
    }

    /// How many of `items` (serialized, non-empty) fit in one reply `{"ok":true,"<key>":[…],"next":…}`.
    /// `invalid_request` when not even the first does.
    fn fitting(&self, items: &[Vec<u8>], key: &str) -> Result<usize, QueryError> {
        // The longest `next` a page can carry: a quoted id of 64 bytes.
        let frame = to_bytes(&json!({"ok": true, key: [], "next": "x".repeat(64)})).len();
        let mut size = frame;
        for (i, item) in items.iter().enumerate() {
            size += item.len() + usize::from(i > 0);
            if size > self.reply_bytes_max {
                return match i {
                    0 => Err(refused(ErrorCode::InvalidRequest, format!(
                            "one item alone is {} bytes, more than a reply on this connection may carry ({} bytes)",
                            item.len(),
                            self.reply_bytes_max
                        ),
                    )),
                    fit => Ok(fit),
                };
            }
        }
        Ok(items.len())
    }

    async fn deadlines(&self, q: Deadlines) -> Answer {
        let before = match &q.before {
            None => None,
            Some(text) => Some(domain::time::parse(text).ok_or_else(|| {
                refused(ErrorCode::InvalidValue, "before must be an RFC 3339 time")
            })?),
        };
        let limit = self.limit(q.limit, self.list_limit_max)?;
        self.wait_for(q.min_seq).await?;
        let entries = self.projections.deadlines(before, limit)?;
        let deadlines: Vec<Value> = entries
            .iter()
            .map(|e| json!({"dispute_id": e.dispute_id, "deadline": e.deadline, "due_at": domain::time::format(e.due_at)}))
            .collect();
        Ok(to_bytes(&json!({"ok": true, "deadlines": deadlines})))
    }

    async fn stats(&self, q: Stats) -> Answer {
        if let Some(seller) = &q.seller_id {
            id(seller, "seller_id")?;
        }
        self.wait_for(q.min_seq).await?;
        let stats = self.projections.stats(q.seller_id.as_deref())?;
        Ok(to_bytes(&json!({"ok": true, "stats": stats})))
    }

    /// A page size from 1 to `max`; the list default when absent.
    fn limit(&self, limit: Option<i128>, max: usize) -> Result<usize, QueryError> {
        match limit {
            None => Ok(LIST_LIMIT_DEFAULT.min(max)),
            Some(n) if n >= 1 && n <= max as i128 => Ok(n as usize),
            Some(n) => Err(refused(
                ErrorCode::InvalidValue,
                format!("limit {n} is not between 1 and {max}"),
            )),
        }
    }

    /// Read-your-writes: wait until the read models have applied `min_seq`.
    async fn wait_for(&self, min_seq: Option<i128>) -> Result<(), QueryError> {
        let Some(min_seq) = non_negative(min_seq, "min_seq")? else {
            return Ok(());
        };
        // A seq past the log's end was never acknowledged to anyone: waiting for it would only
        // hold an in-flight slot for MIN_SEQ_WAIT, which a client could do on purpose.
        let head = self.store.head();
        if min_seq > head {
            return Err(refused(
                ErrorCode::Timeout,
                format!("seq {min_seq} was never written (the log ends at {head})"),
            ));
        }
        let mut applied = self.projections.subscribe();
        self.projections.want(min_seq);
        let reached = tokio::time::timeout(MIN_SEQ_WAIT, applied.wait_for(|seq| *seq >= min_seq))
            .await
            .is_ok_and(|r| r.is_ok());
        match reached {
            true => Ok(()),
            false => Err(refused(
                ErrorCode::Timeout,
                format!(
                    "the read models did not reach seq {min_seq} within {}s",
                    MIN_SEQ_WAIT.as_secs()
                ),
            )),
        }
    }
}

/// A query body: strict JSON (no repeated key) of the query's own fields; an empty body is `{}`.
fn parse<T: DeserializeOwned>(body: &[u8], limits: &domain::Limits) -> Result<T, QueryError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let value = domain::read_body(body, limits).map_err(QueryError::Refused)?;
    serde_json::from_value(value).map_err(|e| refused(ErrorCode::InvalidRequest, e.to_string()))
}

/// An integer field that may not be negative (a seq, a version).
fn non_negative(value: Option<i128>, field: &str) -> Result<Option<u64>, QueryError> {
    value
        .map(|n| {
            u64::try_from(n).map_err(|_| {
                refused(
                    ErrorCode::InvalidValue,
                    format!("{field} must be an integer from 0 to {}", u64::MAX),
                )
            })
        })
        .transpose()
}

fn to_bytes(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("replies serialize")
}

/// `{"ok":true,"<key>":[items…],"next":next}` from items already serialized.
fn page(items: &[Vec<u8>], key: &str, next: Option<Value>) -> Vec<u8> {
    let size: usize = items.iter().map(|item| item.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 128);
    out.extend_from_slice(b"{\"ok\":true,");
    out.extend_from_slice(&to_bytes(&key));
    out.extend_from_slice(b":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"],\"next\":");
    out.extend_from_slice(&to_bytes(&next));
    out.push(b'}');
    out
}

fn id(value: &str, field: &str) -> Result<(), QueryError> {
    domain::DisputeId::parse(value).map(|_| ()).map_err(|_| {
        refused(
            ErrorCode::InvalidValue,
            format!("{field} must match ^[A-Za-z0-9_-]{{1,64}}$"),
        )
    })
}

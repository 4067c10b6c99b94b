//! Queries on `<prefix>.query.<name>`, answered from the read models (and `history` from the log).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use disputes_domain::{self as domain, ErrorCode};
use disputes_store::EventStore;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::handler::refusal_json;
use crate::projections::{view, ListFilter, Projections};

/// How long a query with `min_seq` waits for the read models to catch up.
pub const MIN_SEQ_WAIT: Duration = Duration::from_secs(5);
const LIST_LIMIT_DEFAULT: usize = 50;

pub struct Queries<S> {
    pub store: Arc<S>,
    pub projections: Arc<Projections>,
    pub list_limit_max: usize,
    pub body_bytes_max: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Get {
    dispute_id: String,
    min_seq: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct List {
    seller_id: Option<String>,
    buyer_id: Option<String>,
    status: Option<domain::Status>,
    stage: Option<domain::Stage>,
    limit: Option<u64>,
    after: Option<String>,
    min_seq: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct History {
    dispute_id: String,
    /// Accepted for symmetry; the log already holds every acknowledged seq.
    #[serde(rename = "min_seq")]
    _min_seq: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Deadlines {
    before: Option<String>,
    limit: Option<u64>,
    min_seq: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stats {
    seller_id: Option<String>,
    min_seq: Option<u64>,
}

type Answer = Result<Value, Value>;

impl<S: EventStore + 'static> Queries<S> {
    /// Answers one query; never fails (errors are replies).
    pub async fn answer(&self, name: &str, body: &[u8], now: DateTime<Utc>) -> Value {
        self.route(name, body, now)
            .await
            .unwrap_or_else(|refusal| refusal)
    }

    async fn route(&self, name: &str, body: &[u8], now: DateTime<Utc>) -> Answer {
        match name {
            "get" => self.get(parse(body, self.body_bytes_max)?, now).await,
            "list" => self.list(parse(body, self.body_bytes_max)?, now).await,
            "history" => self.history(parse(body, self.body_bytes_max)?).await,
            "deadlines" => self.deadlines(parse(body, self.body_bytes_max)?).await,
            "stats" => self.stats(parse(body, self.body_bytes_max)?).await,
            _ => Err(refusal_json(
                ErrorCode::UnknownCommand,
                &format!("no query named {name:?}"),
            )),
        }
    }

    async fn get(&self, q: Get, now: DateTime<Utc>) -> Answer {
        id(&q.dispute_id, "dispute_id")?;
        self.wait_for(q.min_seq).await?;
        match self.projections.record(&q.dispute_id).map_err(internal)? {
            Some(record) => Ok(json!({"ok": true, "dispute": view(&record, now)})),
            None => Err(refusal_json(
                ErrorCode::NotFound,
                &format!("no dispute {}", q.dispute_id),
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
        let limit = self.limit(q.limit)?;
        self.wait_for(q.min_seq).await?;
        let filter = ListFilter {
            seller_id: q.seller_id,
            buyer_id: q.buyer_id,
            status: q.status.map(|s| s.as_str().to_owned()),
            stage: q.stage.map(|s| s.as_str().to_owned()),
            after: q.after,
        };
        let (records, next) = self.projections.list(&filter, limit).map_err(internal)?;
        let disputes: Vec<Value> = records.iter().map(|r| view(r, now)).collect();
        Ok(json!({"ok": true, "disputes": disputes, "next": next}))
    }

    async fn history(&self, q: History) -> Answer {
        id(&q.dispute_id, "dispute_id")?;
        // The log itself answers: anything acknowledged is already in it, whatever `min_seq` says.
        let store = self.store.clone();
        let events = tokio::task::spawn_blocking(move || store.read_stream(&q.dispute_id))
            .await
            .map_err(|e| internal(e.to_string()))?
            .map_err(|e| refusal_json(ErrorCode::Unavailable, &e.to_string()))?;
        Ok(json!({"ok": true, "events": events}))
    }

    async fn deadlines(&self, q: Deadlines) -> Answer {
        let before = match &q.before {
            None => None,
            Some(text) => Some(domain::time::parse(text).ok_or_else(|| {
                refusal_json(ErrorCode::InvalidValue, "before must be an RFC 3339 time")
            })?),
        };
        let limit = self.limit(q.limit)?;
        self.wait_for(q.min_seq).await?;
        let entries = self
            .projections
            .deadlines(before, limit)
            .map_err(internal)?;
        let deadlines: Vec<Value> = entries
            .iter()
            .map(|e| json!({"dispute_id": e.dispute_id, "deadline": e.deadline, "due_at": domain::time::format(e.due_at)}))
            .collect();
        Ok(json!({"ok": true, "deadlines": deadlines}))
    }

    async fn stats(&self, q: Stats) -> Answer {
        if let Some(seller) = &q.seller_id {
            id(seller, "seller_id")?;
        }
        self.wait_for(q.min_seq).await?;
        let stats = self
            .projections
            .stats(q.seller_id.as_deref())
            .map_err(internal)?;
        Ok(json!({"ok": true, "stats": stats}))
    }

    fn limit(&self, limit: Option<u64>) -> Result<usize, Value> {
        match limit {
            None => Ok(LIST_LIMIT_DEFAULT.min(self.list_limit_max)),
            Some(n) if n >= 1 && n <= self.list_limit_max as u64 => Ok(n as usize),
            Some(n) => Err(refusal_json(
                ErrorCode::InvalidValue,
                &format!("limit {n} is not between 1 and {}", self.list_limit_max),
            )),
        }
    }

    /// Read-your-writes: wait until the read models have applied `min_seq`.
    async fn wait_for(&self, min_seq: Option<u64>) -> Result<(), Value> {
        let Some(min_seq) = min_seq else {
            return Ok(());
        };
        // A seq past the log's end was never acknowledged to anyone: waiting for it would only
        // hold an in-flight slot for MIN_SEQ_WAIT, which a client could do on purpose.
        let head = self.store.head();
        if min_seq > head {
            return Err(json!({"ok": false, "error": {"code": "timeout", "message":
                format!("seq {min_seq} was never written (the log ends at {head})")}}));
        }
        let mut applied = self.projections.subscribe();
        let reached = tokio::time::timeout(MIN_SEQ_WAIT, applied.wait_for(|seq| *seq >= min_seq))
            .await
            .is_ok_and(|r| r.is_ok());
        match reached {
            true => Ok(()),
            false => Err(json!({"ok": false, "error": {"code": "timeout", "message":
                format!("the read models did not reach seq {min_seq} within {}s", MIN_SEQ_WAIT.as_secs())}})),
        }
    }
}

fn parse<T: DeserializeOwned>(body: &[u8], body_bytes_max: usize) -> Result<T, Value> {
    if body.len() > body_bytes_max {
        return Err(refusal_json(
            ErrorCode::InvalidRequest,
            &format!("body over {body_bytes_max} bytes"),
        ));
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| refusal_json(ErrorCode::InvalidRequest, &e.to_string()))
}

fn id(value: &str, field: &str) -> Result<(), Value> {
    domain::DisputeId::parse(value).map(|_| ()).map_err(|_| {
        refusal_json(
            ErrorCode::InvalidValue,
            &format!("{field} must match ^[A-Za-z0-9_-]{{1,64}}$"),
        )
    })
}

fn internal(error: impl std::fmt::Display) -> Value {
    tracing::error!(%error, "query failed");
    refusal_json(ErrorCode::Unavailable, &error.to_string())
}

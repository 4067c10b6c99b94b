//! Queries (`disputes.query.<name>`), typed, with `min_seq` read-your-writes through [`Reads`].

use std::collections::BTreeMap;

use bytes::Bytes;
use disputes_domain::{
    Actions, DeadlineKind, DisputeId, ErrorCode, Money, OrderId, PartyId, Proposal, Reason,
    ResolutionBasis, Solution, Stage, Status,
};
use disputes_envelope::Envelope;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::{decode, Client};
use crate::error::Error;
use crate::events::check_own_hash;

/// The dispute view D of `docs/protocol.md`. Fields a newer service adds are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DisputeView {
    pub dispute_id: DisputeId,
    pub order_id: OrderId,
    pub buyer_id: PartyId,
    pub seller_id: PartyId,
    pub reason: Reason,
    pub stage: Stage,
    pub status: Status,
    pub order_amount: Money,
    /// The proposal on the table now.
    pub proposal: Proposal,
    pub deadline: Option<DeadlineView>,
    pub resolution: Option<ResolutionView>,
    /// The command types each role may send now.
    pub actions: Actions,
    pub version: u64,
    pub opened_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeadlineView {
    pub deadline: DeadlineKind,
    pub due_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResolutionView {
    pub solution: Solution,
    pub refund_amount: u64,
    pub release_amount: u64,
    pub basis: ResolutionBasis,
}

/// `list`'s filters; each one left `None` is not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub seller_id: Option<String>,
    pub buyer_id: Option<String>,
    pub status: Option<Status>,
    pub stage: Option<Stage>,
    /// At most 500 (default 50).
    pub limit: Option<u32>,
    /// The `next` of the page before.
    pub after: Option<String>,
}

/// One page of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Page {
    pub disputes: Vec<DisputeView>,
    /// Give it as [`ListFilter::after`] for the next page; `None` on the last.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeadlineEntry {
    pub dispute_id: DisputeId,
    pub deadline: DeadlineKind,
    pub due_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Stats {
    pub total: u64,
    pub open: u64,
    pub by_status: BTreeMap<String, u64>,
    pub resolved_by_basis: BTreeMap<String, u64>,
}

/// The queries, answered once the read models have applied `min_seq` (when set).
#[derive(Debug, Clone, Copy)]
pub struct Reads<'a> {
    client: &'a Client,
    min_seq: Option<u64>,
}

impl Client {
    /// Queries that see at least every event up to `seq` (an [`crate::Accepted`]'s `seq`): the
    /// service waits up to 5 s for its read models, else the query is refused `timeout`.
    pub fn after(&self, seq: u64) -> Reads<'_> {
        Reads {
            client: self,
            min_seq: Some(seq),
        }
    }

    /// Queries as the read models are now.
    pub fn reads(&self) -> Reads<'_> {
        Reads {
            client: self,
            min_seq: None,
        }
    }

    /// [`Reads::get`] as the read models are now.
    pub async fn get(&self, dispute_id: &DisputeId) -> Result<Option<DisputeView>, Error> {
        self.reads().get(dispute_id).await
    }

    /// [`Reads::history`]: a dispute's whole history (it comes from the log, never behind).
    pub async fn history(&self, dispute_id: &DisputeId) -> Result<Vec<Envelope>, Error> {
        self.reads().history(dispute_id).await
    }
}

impl Reads<'_> {
    async fn query(&self, name: &str, mut body: Value) -> Result<Value, Error> {
        if let Some(seq) = self.min_seq {
            body["min_seq"] = json!(seq);
        }
        let subject = format!("{}.query.{name}", self.client.prefix);
        let body = serde_json::to_vec(&body).expect("a query serializes");
        self.client.request(subject, Bytes::from(body), None).await
    }

    /// One dispute's view, `None` when there is no such dispute.
    pub async fn get(&self, dispute_id: &DisputeId) -> Result<Option<DisputeView>, Error> {
        #[derive(Deserialize)]
        struct Reply {
            dispute: DisputeView,
        }
        match self.query("get", json!({ "dispute_id": dispute_id })).await {
            Ok(reply) => Ok(Some(decode::<Reply>(reply)?.dispute)),
            Err(Error::Refused {
                code: ErrorCode::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of disputes matching `filter`.
    pub async fn list(&self, filter: &ListFilter) -> Result<Page, Error> {
        let mut body = json!({});
        let fields = [
            ("seller_id", filter.seller_id.as_ref().map(|v| json!(v))),
            ("buyer_id", filter.buyer_id.as_ref().map(|v| json!(v))),
            ("status", filter.status.map(|v| json!(v))),
            ("stage", filter.stage.map(|v| json!(v))),
            ("limit", filter.limit.map(|v| json!(v))),
            ("after", filter.after.as_ref().map(|v| json!(v))),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                body[key] = value;
            }
        }
        decode(self.query("list", body).await?)
    }

    /// A dispute's whole history in version order (every page), each event's hash checked.
    /// Empty when there is no such dispute.
    pub async fn history(&self, dispute_id: &DisputeId) -> Result<Vec<Envelope>, Error> {
        #[derive(Deserialize)]
        struct Reply {
            events: Vec<Envelope>,
            next: Option<u64>,
        }
        let mut events: Vec<Envelope> = Vec::new();
        let mut after = 0;
        loop {
            let body = json!({"dispute_id": dispute_id, "after": after});
            let page: Reply = match self.query("history", body).await {
                Ok(reply) => decode(reply)?,
                Err(Error::Refused {
                    code: ErrorCode::NotFound,
                    ..
                }) => return Ok(events),
                Err(e) => return Err(e),
            };
            for event in page.events {
                check_in_history(events.last(), &event)?;
                events.push(event);
            }
            match page.next {
                Some(next) if next > after => after = next,
                Some(next) => {
                    return Err(Error::Protocol(format!(
                        "history's next page {next} does not move past {after}"
                    )))
                }
                None => return Ok(events),
            }
        }
    }

    /// Active deadlines, soonest first, due before `before` (RFC 3339) when given.
    pub async fn deadlines(
        &self,
        before: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<DeadlineEntry>, Error> {
        #[derive(Deserialize)]
        struct Reply {
            deadlines: Vec<DeadlineEntry>,
        }
        let mut body = json!({});
        if let Some(before) = before {
            body["before"] = json!(before);
        }
        if let Some(limit) = limit {
            body["limit"] = json!(limit);
        }
        Ok(decode::<Reply>(self.query("deadlines", body).await?)?.deadlines)
    }

    /// Counts by status and by resolution basis, for one seller or all.
    pub async fn stats(&self, seller_id: Option<&str>) -> Result<Stats, Error> {
        #[derive(Deserialize)]
        struct Reply {
            stats: Stats,
        }
        let body = match seller_id {
            Some(seller) => json!({ "seller_id": seller }),
            None => json!({}),
        };
        Ok(decode::<Reply>(self.query("stats", body).await?)?.stats)
    }
}

/// A history event: its own hash recomputes, and it is the next version of the same dispute,
/// later in the log than the one before.
fn check_in_history(before: Option<&Envelope>, event: &Envelope) -> Result<(), Error> {
    check_own_hash(event)?;
    let fail = |reason: String| Error::Verification {
        seq: event.seq,
        reason,
    };
    if let Some(before) = before {
        if event.dispute_id != before.dispute_id
            || event.version != before.version + 1
            || event.seq <= before.seq
        {
            return Err(fail(format!(
                "version {} of {} after version {} (seq {}) of {}",
                event.version, event.dispute_id, before.version, before.seq, before.dispute_id
            )));
        }
    }
    Ok(())
}

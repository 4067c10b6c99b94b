//! The NATS services API ("micro", ADR-32) answered by the service itself: `$SRV.PING`, `$SRV.INFO`
//! and `$SRV.STATS` (bare, `.<name>` and `.<name>.<id>`), one endpoint per command type and per query
//! name, and a refusal counted as that endpoint's error.
//!
//! Written here rather than taken from async-nats's `service` module: its `respond(Err(..))` sends
//! the error headers with an empty body, while our refusals are a JSON body *and* the
//! `Nats-Service-Error` / `Nats-Service-Error-Code` headers, and its statistics cannot be counted
//! from outside it. The wire forms follow ADR-32 (`io.nats.micro.v1.*_response`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use disputes_domain::{CommandType, ErrorCode};
use futures::stream::{self, SelectAll};
use serde_json::{json, Value};

pub(crate) const NATS_SERVICE_ERROR: &str = "Nats-Service-Error";
pub(crate) const NATS_SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";

/// The query names of `docs/protocol.md`, each an endpoint of its own.
pub(crate) const QUERY_NAMES: [&str; 5] = ["get", "list", "history", "deadlines", "stats"];
/// The version of the contract (`docs/protocol.md`) the endpoints speak, in their metadata.
pub(crate) const CONTRACT_VERSION: &str = "1";

/// The endpoint a request on an unknown command type or query name is counted under.
const OTHER: &str = "other";

/// Which group an endpoint is in: `cmd` (subject `<prefix>.cmd.<name>`) or `query`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    Cmd,
    Query,
}

impl Group {
    fn as_str(self) -> &'static str {
        match self {
            Group::Cmd => "cmd",
            Group::Query => "query",
        }
    }
}

#[derive(Debug)]
struct Endpoint {
    /// Unique within the service: the command type or query name, or `cmd_other`/`query_other`.
    name: String,
    subject: String,
    metadata: HashMap<String, String>,
    stats: Counts,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    requests: u64,
    errors: u64,
    processing: Duration,
    last_error: Option<String>,
}

/// The service's identity, its endpoints and their statistics.
#[derive(Debug)]
pub(crate) struct Micro {
    name: String,
    id: String,
    version: String,
    description: String,
    queue_group: String,
    started: DateTime<Utc>,
    endpoints: Mutex<Vec<Endpoint>>,
}

/// A refusal as the services API reports it: an HTTP-like status and a one-line text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceError {
    pub(crate) status: u16,
    pub(crate) text: String,
}

impl ServiceError {
    /// `code: message`, on one line (a header value holds no line break).
    pub(crate) fn new(code: ErrorCode, message: &str) -> ServiceError {
        let text = format!("{}: {message}", code.as_str())
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        ServiceError {
            status: status_of(code),
            text,
        }
    }

    /// The two headers a refusal's reply carries beside its JSON body.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_SERVICE_ERROR, self.text.as_str());
        headers.insert(NATS_SERVICE_ERROR_CODE, self.status.to_string().as_str());
        headers
    }
}

/// The HTTP-like status of a code, as the services API and the HTTP query API report it.
pub(crate) fn status_of(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::InvalidRequest | ErrorCode::InvalidValue => 400,
        ErrorCode::Forbidden => 403,
        ErrorCode::NotFound | ErrorCode::UnknownCommand => 404,
        ErrorCode::AlreadyExists
        | ErrorCode::InvalidState
        | ErrorCode::DeadlinePassed
        | ErrorCode::VersionConflict => 409,
        ErrorCode::Unavailable => 503,
        ErrorCode::Timeout => 504,
    }
}

impl Micro {
    /// `name` version `version`, serving `<prefix>.cmd.<type>` and `<prefix>.query.<name>`.
    pub(crate) fn new(name: &str, version: &str, prefix: &str, queue_group: &str) -> Micro {
        let mut endpoints = Vec::new();
        let commands = CommandType::ALL.iter().filter(|t| t.is_public());
        for ty in commands {
            endpoints.push(endpoint(Group::Cmd, ty.as_str(), prefix));
        }
        for query in QUERY_NAMES {
            endpoints.push(endpoint(Group::Query, query, prefix));
        }
        for group in [Group::Cmd, Group::Query] {
            let mut other = endpoint(group, "*", prefix);
            other.name = format!("{}_{OTHER}", group.as_str());
            other.metadata.remove("schema");
            other.metadata.insert(
                "description".into(),
                "requests naming no known endpoint, answered unknown_command".into(),
            );
            endpoints.push(other);
        }
        Micro {
            name: name.to_owned(),
            id: uuid::Uuid::now_v7().simple().to_string(),
            version: version.to_owned(),
            description: "marketplace buyer/seller disputes: commands and queries".to_owned(),
            queue_group: queue_group.to_owned(),
            started: Utc::now(),
            endpoints: Mutex::new(endpoints),
        }
    }

    /// Counts one answered request on the endpoint `name` of `group` (an unknown name counts
    /// under the group's `other` endpoint).
    pub(crate) fn record(
        &self,
        group: Group,
        name: &str,
        took: Duration,
        error: Option<&ServiceError>,
    ) {
        let mut endpoints = self.endpoints.lock().expect("micro stats lock");
        let other = format!("{}_{OTHER}", group.as_str());
        let index = endpoints
            .iter()
            .position(|e| {
                e.name == name
                    && e.metadata.get("group").map(String::as_str) == Some(group.as_str())
            })
            .or_else(|| endpoints.iter().position(|e| e.name == other))
            .expect("every group has an `other` endpoint");
        let counts = &mut endpoints[index].stats;
        counts.requests += 1;
        counts.processing += took;
        if let Some(error) = error {
            counts.errors += 1;
            counts.last_error = Some(format!("{}:{}", error.status, error.text));
        }
    }

    fn ping(&self) -> Value {
        json!({
            "type": "io.nats.micro.v1.ping_response",
            "name": self.name, "id": self.id, "version": self.version, "metadata": self.metadata(),
        })
    }

    fn info(&self) -> Value {
        let endpoints = self.endpoints.lock().expect("micro stats lock");
        let endpoints: Vec<Value> = endpoints
            .iter()
            .map(|e| {
                json!({"name": e.name, "subject": e.subject, "queue_group": self.queue_group,
                       "metadata": e.metadata})
            })
            .collect();
        json!({
            "type": "io.nats.micro.v1.info_response",
            "name": self.name, "id": self.id, "version": self.version, "metadata": self.metadata(),
            "description": self.description, "endpoints": endpoints,
        })
    }

    fn stats(&self) -> Value {
        let endpoints = self.endpoints.lock().expect("micro stats lock");
        let endpoints: Vec<Value> = endpoints
            .iter()
            .map(|e| {
                let c = &e.stats;
                let average = if c.requests == 0 {
                    0
                } else {
                    c.processing.as_nanos() / u128::from(c.requests)
                };
                json!({
                    "name": e.name, "subject": e.subject, "queue_group": self.queue_group,
                    "num_requests": c.requests, "num_errors": c.errors,
                    "last_error": c.last_error.clone().unwrap_or_default(),
                    "processing_time": u64::try_from(c.processing.as_nanos()).unwrap_or(u64::MAX),
                    "average_processing_time": u64::try_from(average).unwrap_or(u64::MAX),
                })
            })
            .collect();
        json!({
            "type": "io.nats.micro.v1.stats_response",
            "name": self.name, "id": self.id, "version": self.version, "metadata": self.metadata(),
            "started": self.started.to_rfc3339_opts(SecondsFormat::Nanos, true),
            "endpoints": endpoints,
        })
    }

    fn metadata(&self) -> Value {
        json!({"contract": CONTRACT_VERSION, "asyncapi": "docs/asyncapi.yaml"})
    }

    /// Subscribes to the nine discovery subjects (`$SRV.<VERB>`, `.<name>`, `.<name>.<id>`).
    pub(crate) async fn subscribe(
        &self,
        client: &async_nats::Client,
    ) -> Result<Discovery, async_nats::SubscribeError> {
        let mut subs = stream::select_all(Vec::new());
        for verb in ["PING", "INFO", "STATS"] {
            for subject in [
                format!("$SRV.{verb}"),
                format!("$SRV.{verb}.{}", self.name),
                format!("$SRV.{verb}.{}.{}", self.name, self.id),
            ] {
                subs.push(client.subscribe(subject).await?);
            }
        }
        Ok(Discovery { subs })
    }

    /// The answer to a discovery request on `subject`, or `None` for a subject that is not one.
    pub(crate) fn answer(&self, subject: &str) -> Option<Bytes> {
        let verb = subject.strip_prefix("$SRV.")?.split('.').next()?;
        let answer = match verb {
            "PING" => self.ping(),
            "INFO" => self.info(),
            "STATS" => self.stats(),
            _ => return None,
        };
        Some(Bytes::from(
            serde_json::to_vec(&answer).expect("discovery answers serialize"),
        ))
    }
}

/// The discovery subscriptions, merged.
pub(crate) struct Discovery {
    pub(crate) subs: SelectAll<async_nats::Subscriber>,
}

fn endpoint(group: Group, name: &str, prefix: &str) -> Endpoint {
    let mut metadata = HashMap::new();
    metadata.insert("group".to_owned(), group.as_str().to_owned());
    metadata.insert("contract".to_owned(), CONTRACT_VERSION.to_owned());
    let schema = match group {
        Group::Cmd => format!("docs/schemas/command-{name}.json"),
        Group::Query => format!("docs/schemas/query-{name}.json"),
    };
    metadata.insert("schema".to_owned(), schema);
    Endpoint {
        name: name.to_owned(),
        subject: format!("{prefix}.{}.{name}", group.as_str()),
        metadata,
        stats: Counts::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micro() -> Micro {
        Micro::new("disputes", "0.1.0", "disputes", "disputes")
    }

    #[test]
    fn every_public_command_and_every_query_is_an_endpoint_of_its_own() {
        let info = micro().info();
        let names: Vec<&str> = info["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 13 + 5 + 2, "{names:?}");
        assert!(names.contains(&"open") && names.contains(&"post_message"));
        assert!(!names.contains(&"expire_deadline"));
        assert!(names.contains(&"cmd_other") && names.contains(&"query_other"));
    }

    #[test]
    fn a_refusal_counts_as_an_error_of_its_own_endpoint_only() {
        let micro = micro();
        let error = ServiceError::new(ErrorCode::InvalidState, "the dispute is\nresolved");
        assert_eq!(error.text, "invalid_state: the dispute is resolved");
        micro.record(
            Group::Cmd,
            "withdraw",
            Duration::from_millis(2),
            Some(&error),
        );
        micro.record(Group::Cmd, "withdraw", Duration::from_millis(4), None);
        micro.record(Group::Cmd, "nonsense", Duration::from_millis(1), None);
        micro.record(Group::Query, "get", Duration::from_millis(1), None);
        let stats = micro.stats();
        let by_name = |name: &str| {
            stats["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .cloned()
                .unwrap()
        };
        let withdraw = by_name("withdraw");
        assert_eq!(withdraw["num_requests"], 2);
        assert_eq!(withdraw["num_errors"], 1);
        assert_eq!(withdraw["average_processing_time"], 3_000_000);
        assert_eq!(
            withdraw["last_error"],
            "409:invalid_state: the dispute is resolved"
        );
        assert_eq!(by_name("cmd_other")["num_requests"], 1);
        assert_eq!(by_name("get")["num_requests"], 1);
        assert_eq!(by_name("open")["num_requests"], 0);
    }

    #[test]
    fn the_schema_each_endpoint_names_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let info = micro().info();
        for endpoint in info["endpoints"].as_array().unwrap() {
            if let Some(schema) = endpoint["metadata"]["schema"].as_str() {
                assert!(root.join(schema).is_file(), "{schema} is missing");
            }
        }
    }

    #[test]
    fn discovery_answers_only_its_three_verbs() {
        let micro = micro();
        let ping: Value =
            serde_json::from_slice(&micro.answer("$SRV.PING.disputes").unwrap()).unwrap();
        assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
        assert!(micro.answer("$SRV.SCHEMA").is_none());
    }
}

//! Each role of `deploy/nats/auth.conf` does its own work and is refused everything else.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use async_nats::{ConnectErrorKind, ConnectOptions, HeaderMap};
use futures::StreamExt as _;

use crate::probe::{Probe, Responder};
use crate::shipped;

/// The 13 command types of the protocol.
const COMMANDS: [&str; 13] = [
    "open",
    "accept_proposal",
    "counter_propose",
    "reject_proposal",
    "submit_shipping_proof",
    "submit_evidence",
    "rule",
    "provide_return_address",
    "provide_return_tracking",
    "confirm_return_received",
    "report_return_problem",
    "withdraw",
    "post_message",
];
/// Not commands, so nobody may send them: the scheduler's own, and an unknown one.
const NOT_COMMANDS: [&str; 2] = ["expire_deadline", "nonsense"];
const QUERIES: [&str; 5] = ["get", "list", "history", "deadlines", "stats"];
const NOT_QUERIES: [&str; 1] = ["search"];

/// No caller may publish on these: forging events, expiries, leases or replies, touching the
/// streams, or taking over the service's consumer.
const FORBIDDEN_TO_CALLERS: [&str; 12] = [
    "disputes.evt.d-1.DisputeOpened",
    "disputes.deadline.expired.d-1",
    "$KV.DISPUTES_LEASES.disputes",
    "$JS.API.STREAM.CREATE.ROGUE",
    "$JS.API.STREAM.DELETE.DISPUTE_EVENTS",
    "$JS.API.STREAM.PURGE.DISPUTE_EVENTS",
    "$JS.API.STREAM.INFO.DISPUTE_DEADLINES",
    "$JS.API.CONSUMER.CREATE.DISPUTE_DEADLINES.disputes-expiry",
    "$JS.API.CONSUMER.MSG.NEXT.DISPUTE_DEADLINES.disputes-expiry",
    "$JS.ACK.DISPUTE_DEADLINES.disputes-expiry.1.1.1.0.0",
    "_INBOX.spoofed-reply",
    "$SRV.PING",
];
/// No caller may listen here: other callers' commands and queries, the streams' subjects, all.
const UNLISTENABLE: [&str; 6] = [
    "disputes.cmd.>",
    "disputes.query.>",
    "disputes.evt.>",
    "disputes.deadline.>",
    "$KV.>",
    ">",
];

struct Role {
    user: &'static str,
    commands: &'static [&'static str],
    queries: &'static [&'static str],
}

const BUYER_GATEWAY: Role = Role {
    user: "buyer_gateway",
    commands: &[
        "open",
        "accept_proposal",
        "reject_proposal",
        "submit_evidence",
        "provide_return_tracking",
        "withdraw",
        "post_message",
    ],
    queries: &QUERIES,
};
const SELLER_GATEWAY: Role = Role {
    user: "seller_gateway",
    commands: &[
        "accept_proposal",
        "counter_propose",
        "submit_shipping_proof",
        "provide_return_address",
        "confirm_return_received",
        "report_return_problem",
        "post_message",
    ],
    queries: &QUERIES,
};
const MEDIATION: Role = Role {
    user: "mediation",
    commands: &["rule", "post_message"],
    queries: &QUERIES,
};
const AUDITOR: Role = Role {
    user: "auditor",
    commands: &[],
    queries: &["history"],
};
const DASHBOARD: Role = Role {
    user: "dashboard",
    commands: &[],
    queries: &QUERIES,
};

/// Every command and query subject: a request when `role` may send it (it must reach the service
/// and be answered), else a refused publish; then the subjects no caller may use.
async fn only_its_own_work(role: &Role) {
    let server = shipped::start_single_node();
    let mut service = Responder::start(&server.url()).await;
    let mut caller = Probe::connect(&server.url(), role.user).await;
    let mut allowed = Vec::new();
    let commands = COMMANDS
        .iter()
        .chain(&NOT_COMMANDS)
        .map(|c| (c, role.commands, "cmd"));
    let queries = QUERIES
        .iter()
        .chain(&NOT_QUERIES)
        .map(|q| (q, role.queries, "query"));
    for (name, mine, kind) in commands.chain(queries) {
        let subject = format!("disputes.{kind}.{name}");
        if mine.contains(name) {
            caller.request_ok(&subject).await;
            allowed.push(subject);
        } else {
            caller.expect_publish_denied(&subject).await;
        }
    }
    for subject in FORBIDDEN_TO_CALLERS {
        caller.expect_publish_denied(subject).await;
    }
    for subject in UNLISTENABLE {
        caller.expect_subscribe_denied(subject).await;
    }
    caller.expect_no_more_violations().await;
    service.probe.expect_no_more_violations().await;
    assert_eq!(
        service.seen(),
        allowed,
        "what reached the service from {}",
        role.user
    );
    assert_eq!(allowed.len(), role.commands.len() + role.queries.len());
}

#[tokio::test]
async fn buyer_gateway_sends_buyer_commands_and_queries_only() {
    only_its_own_work(&BUYER_GATEWAY).await;
}

#[tokio::test]
async fn seller_gateway_sends_seller_commands_and_queries_only() {
    only_its_own_work(&SELLER_GATEWAY).await;
}

#[tokio::test]
async fn mediation_sends_rulings_messages_and_queries_only() {
    only_its_own_work(&MEDIATION).await;
}

#[tokio::test]
async fn dashboard_only_queries() {
    only_its_own_work(&DASHBOARD).await;
}

#[tokio::test]
async fn auditor_sends_no_command_and_only_the_history_query() {
    only_its_own_work(&AUDITOR).await;
}

/// The stream the service creates, as it creates it.
fn events_stream_config() -> stream::Config {
    stream::Config {
        name: "DISPUTE_EVENTS".into(),
        subjects: vec!["disputes.evt.>".into()],
        storage: stream::StorageType::File,
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    }
}

/// The service user appends `count` events to a new DISPUTE_EVENTS, and the stream has them.
async fn append_events(js: &jetstream::Context, count: u64) -> stream::Stream {
    let stream = js
        .create_stream(events_stream_config())
        .await
        .expect("create DISPUTE_EVENTS");
    for seq in 1..=count {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("e-{seq}").as_str());
        let subject = format!("disputes.evt.d-{seq}.DisputeOpened");
        let body = serde_json::json!({"seq": seq}).to_string();
        js.publish_with_headers(subject, headers, body.into())
            .await
            .expect("publish an event")
            .await
            .expect("JetStream acknowledges the event");
    }
    stream
}

#[tokio::test]
async fn the_service_user_runs_its_streams_consumer_lease_and_services_api_and_no_more() {
    let server = shipped::start_single_node();
    let mut service = Probe::connect(&server.url(), "disputes").await;
    let js = jetstream::new(service.client.clone());

    let mut events = append_events(&js, 2).await;
    let lift = stream::Config {
        deny_delete: false,
        deny_purge: false,
        ..events_stream_config()
    };
    assert!(
        js.update_stream(lift).await.is_err(),
        "JetStream refuses to lift deny-delete/deny-purge"
    );
    the_service_takes_an_expiry_through_its_consumer(&js).await;
    the_service_takes_and_renews_its_lease(&js).await;
    the_service_starts_its_services_api(&service).await;

    for subject in [
        "disputes.cmd.rule",
        "disputes.query.get",
        "_INBOX.spoofed-reply",
        "$JS.API.STREAM.DELETE.DISPUTE_EVENTS",
        "$JS.API.STREAM.PURGE.DISPUTE_EVENTS",
        "$JS.API.STREAM.MSG.DELETE.DISPUTE_EVENTS",
    ] {
        service.expect_publish_denied(subject).await;
    }
    for subject in ["disputes.evt.>", ">"] {
        service.expect_subscribe_denied(subject).await;
    }
    service.expect_no_more_violations().await;
    assert_eq!(events.info().await.expect("stream info").state.messages, 2);
}

/// The service creates DISPUTE_DEADLINES, schedules a reminder and an expiry, and takes the
/// expiry through its durable `disputes-expiry` consumer.
async fn the_service_takes_an_expiry_through_its_consumer(js: &jetstream::Context) {
    let deadlines = js
        .create_stream(stream::Config {
            name: "DISPUTE_DEADLINES".into(),
            subjects: vec!["disputes.deadline.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("create DISPUTE_DEADLINES");
    for subject in [
        "disputes.deadline.reminder.d-1",
        "disputes.deadline.expired.d-1",
    ] {
        js.publish(subject, "{}".into())
            .await
            .expect("publish")
            .await
            .expect("acknowledged");
    }
    let expiry = deadlines
        .create_consumer(consumer::pull::Config {
            durable_name: Some("disputes-expiry".into()),
            filter_subject: "disputes.deadline.expired.>".into(),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("create the expiry consumer");
    let mut batch = expiry
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("fetch");
    let expired = batch
        .next()
        .await
        .expect("an expiry")
        .expect("an expiry message");
    assert_eq!(expired.subject.as_str(), "disputes.deadline.expired.d-1");
    expired.double_ack().await.expect("ack the expiry");
}

/// The service creates the DISPUTES_LEASES bucket, takes the lease, renews it and reads it.
async fn the_service_takes_and_renews_its_lease(js: &jetstream::Context) {
    let leases = js
        .create_key_value(kv::Config {
            bucket: "DISPUTES_LEASES".into(),
            history: 1,
            max_age: Duration::from_secs(15),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("create the lease bucket");
    let revision = leases
        .create("disputes", "holder".into())
        .await
        .expect("take the lease");
    leases
        .update("disputes", "holder".into(), revision)
        .await
        .expect("renew the lease");
    let holder = leases.get("disputes").await.expect("read the lease");
    assert_eq!(holder.as_deref(), Some(&b"holder"[..]));
}

/// The service answers on the `$SRV` services API under its own name.
async fn the_service_starts_its_services_api(service: &Probe) {
    use async_nats::service::ServiceExt as _;
    let _services_api = service
        .client
        .service_builder()
        .start("disputes", "0.1.0")
        .await
        .expect("$SRV");
    service.client.flush().await.expect("flush");
}

#[tokio::test]
async fn auditor_reads_dispute_events_through_its_own_consumer_and_touches_no_other() {
    let server = shipped::start_single_node();
    let service = Probe::connect(&server.url(), "disputes").await;
    let service_js = jetstream::new(service.client.clone());
    let events = append_events(&service_js, 3).await;
    // Another reader's consumer, say a payment service's, that the auditor must leave alone.
    let payments = consumer::pull::Config {
        durable_name: Some("payments".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    let mut payments = events
        .create_consumer(payments)
        .await
        .expect("payments consumer");

    let mut auditor = Probe::connect(&server.url(), "auditor").await;
    let stream = jetstream::new(auditor.client.clone())
        .get_stream("DISPUTE_EVENTS")
        .await
        .expect("stream info");
    the_auditor_reads_and_acks_every_event(&stream).await;
    let one = stream
        .get_raw_message(2)
        .await
        .expect("read one event by sequence");
    assert_eq!(one.subject.as_str(), "disputes.evt.d-2.DisputeOpened");
    the_auditor_replaces_its_consumer_with_a_filtered_one(&stream).await;

    for subject in [
        "$JS.API.CONSUMER.CREATE.DISPUTE_EVENTS",
        "$JS.API.CONSUMER.CREATE.DISPUTE_EVENTS.payments",
        "$JS.API.CONSUMER.DURABLE.CREATE.DISPUTE_EVENTS.payments",
        "$JS.API.CONSUMER.MSG.NEXT.DISPUTE_EVENTS.payments",
        "$JS.API.CONSUMER.DELETE.DISPUTE_EVENTS.payments",
        "$JS.ACK.DISPUTE_EVENTS.payments.1.1.1.0.0",
        "$JS.API.STREAM.UPDATE.DISPUTE_EVENTS",
        "$JS.API.STREAM.MSG.DELETE.DISPUTE_EVENTS",
        "$JS.API.STREAM.MSG.GET.DISPUTE_DEADLINES",
        "$JS.API.CONSUMER.CREATE.DISPUTE_DEADLINES.auditor",
        "$JS.API.STREAM.NAMES",
    ] {
        auditor.expect_publish_denied(subject).await;
    }
    auditor.expect_no_more_violations().await;
    let untouched = payments.info().await.expect("payments consumer info");
    assert_eq!(
        (untouched.delivered.stream_sequence, untouched.num_pending),
        (0, 3)
    );
}

/// The auditor creates its durable `auditor` consumer and reads and acks the three events in
/// order.
async fn the_auditor_reads_and_acks_every_event(stream: &stream::Stream) {
    let reader = consumer::pull::Config {
        durable_name: Some("auditor".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    let consumer = stream
        .create_consumer(reader)
        .await
        .expect("create the auditor consumer");
    let mut read = consumer
        .fetch()
        .max_messages(3)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("fetch");
    for seq in 1..=3 {
        let message = read
            .next()
            .await
            .expect("an event")
            .expect("an event message");
        assert_eq!(
            message.subject.as_str(),
            format!("disputes.evt.d-{seq}.DisputeOpened")
        );
        message.double_ack().await.expect("ack");
    }
}

/// The auditor deletes its own consumer and creates it again with a filter subject.
async fn the_auditor_replaces_its_consumer_with_a_filtered_one(stream: &stream::Stream) {
    stream
        .delete_consumer("auditor")
        .await
        .expect("delete its own consumer");
    let filtered = consumer::pull::Config {
        durable_name: Some("auditor".into()),
        filter_subject: "disputes.evt.d-3.>".into(),
        ..Default::default()
    };
    stream
        .create_consumer(filtered)
        .await
        .expect("a consumer with a filter subject");
}

#[tokio::test]
async fn anonymous_and_wrong_credentials_are_refused() {
    let server = shipped::start_single_node();
    let refused = |result: Result<async_nats::Client, async_nats::ConnectError>, what: &str| {
        let error = result.err().unwrap_or_else(|| panic!("{what}: connected"));
        assert_eq!(
            error.kind(),
            ConnectErrorKind::AuthorizationViolation,
            "{what}: {error}"
        );
    };
    refused(async_nats::connect(server.url()).await, "anonymous");
    let password = |user: &str, password: String| {
        ConnectOptions::with_user_and_password(user.into(), password).connect(server.url())
    };
    refused(
        password("buyer_gateway", "wrong".into()).await,
        "a wrong password",
    );
    refused(
        password("buyer_gateway", shipped::dev_password("mediation")).await,
        "another user's password",
    );
    refused(
        password("nobody", shipped::dev_password("disputes")).await,
        "an unknown user",
    );
    let token = ConnectOptions::with_token(shipped::dev_password("disputes"));
    refused(token.connect(server.url()).await, "a token");
    // And the right password gets in.
    Probe::connect(&server.url(), "buyer_gateway").await;
}

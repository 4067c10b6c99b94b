//! Clients that record what the server refuses, and a stand-in for the service that answers.
//!
//! A publish or subscribe the user's permissions do not allow is dropped by the server, which
//! sends `-ERR 'Permissions Violation for Publish to "<subject>"'` (or `... for Subscription to`).
//! async-nats hands that to the connection's event callback as
//! `Event::ServerError(ServerError::Other(..))`; a request on such a subject just times out, so a
//! timeout is never taken as proof. The server handles one connection's operations in order and
//! the callback sees its errors in order, so after each refused operation the *next* error must
//! name that very subject, and a final refused publish on a sentinel subject proves that no other
//! error came before it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{ConnectOptions, Event, ServerError};
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::shipped;

/// How long a server error or a reply may take to arrive.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(5);
/// No role may publish here; the last check of every probe.
const SENTINEL: &str = "deploy-test.sentinel";

/// A connection as one user, with the errors the server sent it.
pub(crate) struct Probe {
    pub client: async_nats::Client,
    user: String,
    errors: mpsc::UnboundedReceiver<String>,
}

/// The text of the server's refusal of a publish on `subject`.
fn publish_violation(subject: &str) -> String {
    format!("Permissions Violation for Publish to \"{subject}\"")
}

fn subscribe_violation(subject: &str) -> String {
    format!("Permissions Violation for Subscription to \"{subject}\"")
}

impl Probe {
    /// Connects as `user` with its shipped dev password.
    pub(crate) async fn connect(url: &str, user: &str) -> Probe {
        Probe::connect_with(url, user, ConnectOptions::new()).await
    }

    /// Like `connect`, on top of `options` (TLS settings, say).
    pub(crate) async fn connect_with(url: &str, user: &str, options: ConnectOptions) -> Probe {
        let (errors_tx, errors) = mpsc::unbounded_channel();
        let client = options
            .user_and_password(user.to_owned(), shipped::dev_password(user))
            .request_timeout(Some(ARRIVAL_TIMEOUT))
            .event_callback(move |event| {
                let errors_tx = errors_tx.clone();
                async move {
                    if let Event::ServerError(error) = event {
                        let text = match error {
                            ServerError::Other(text) => text,
                            other => other.to_string(),
                        };
                        let _ = errors_tx.send(text);
                    }
                }
            })
            .connect(url)
            .await
            .unwrap_or_else(|e| panic!("{user} connects to {url}: {e}"));
        Probe {
            client,
            user: user.to_owned(),
            errors,
        }
    }

    /// A request on `subject` reaches the responder and comes back.
    pub(crate) async fn request_ok(&self, subject: &str) {
        let reply = self
            .client
            .request(subject.to_owned(), Bytes::from_static(b"{}"))
            .await
            .unwrap_or_else(|e| panic!("{}: request on {subject}: {e}", self.user));
        let reply: serde_json::Value = serde_json::from_slice(&reply.payload).expect("JSON reply");
        assert_eq!(
            reply["subject"], subject,
            "{}: the reply to {subject}",
            self.user
        );
    }

    /// A publish on `subject` is refused with a permission violation for that subject.
    pub(crate) async fn expect_publish_denied(&mut self, subject: &str) {
        self.client
            .publish(subject.to_owned(), Bytes::from_static(b"{}"))
            .await
            .expect("publish is queued");
        self.client.flush().await.expect("flush");
        self.expect_error(&publish_violation(subject)).await;
    }

    /// A subscription on `subject` is refused with a permission violation for that subject.
    pub(crate) async fn expect_subscribe_denied(&mut self, subject: &str) {
        let _subscriber = self
            .client
            .subscribe(subject.to_owned())
            .await
            .expect("SUB is queued");
        self.client.flush().await.expect("flush");
        self.expect_error(&subscribe_violation(subject)).await;
    }

    /// No error arrived that was not expected: the next one is the sentinel's.
    pub(crate) async fn expect_no_more_violations(&mut self) {
        self.expect_publish_denied(SENTINEL).await;
    }

    /// The next error the server sent this connection is `expected`.
    pub(crate) async fn expect_error(&mut self, expected: &str) {
        let user = &self.user;
        let error = tokio::time::timeout(ARRIVAL_TIMEOUT, self.errors.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("{user}: no server error within {ARRIVAL_TIMEOUT:?}; expected {expected:?}")
            })
            .expect("the event callback lives as long as the client");
        assert_eq!(error, expected, "{user}: the next server error");
    }
}

/// Stands in for `disputes serve`: logged in as the shipped `disputes` user, it serves every
/// command and query subject in queue group `disputes` and answers each request with its subject,
/// replying through `allow_responses` (it has no publish permission on `_INBOX.>`).
pub(crate) struct Responder {
    pub probe: Probe,
    seen: Arc<Mutex<Vec<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Responder {
    pub(crate) async fn start(url: &str) -> Responder {
        Responder::start_with(url, ConnectOptions::new()).await
    }

    /// Like `start`, on top of `options` (TLS settings, say).
    pub(crate) async fn start_with(url: &str, options: ConnectOptions) -> Responder {
        let probe = Probe::connect_with(url, "disputes", options).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for filter in ["disputes.cmd.>", "disputes.query.>"] {
            let mut requests = probe
                .client
                .queue_subscribe(filter, "disputes".into())
                .await
                .expect("queue subscribe");
            let client = probe.client.clone();
            let seen = seen.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(request) = requests.next().await {
                    let subject = request.subject.to_string();
                    seen.lock().expect("seen lock").push(subject.clone());
                    if let Some(reply) = request.reply {
                        let body = serde_json::json!({"ok": true, "subject": subject});
                        let _ = client.publish(reply, body.to_string().into()).await;
                    }
                }
            }));
        }
        probe.client.flush().await.expect("flush the subscriptions");
        Responder { probe, seen, tasks }
    }

    /// The subjects of every request received, in order.
    pub(crate) fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen lock").clone()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

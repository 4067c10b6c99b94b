//! Shared fixtures: one nats-server and one service for the tests that need no faults.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::kit::{Client, NatsServer, Service};
use serde_json::{json, Value};

struct Shared {
    nats: NatsServer,
    _service: Service,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// A client of the shared service (started once per test process, with day-long default policy).
pub(crate) async fn shared_client() -> Client {
    let shared = SHARED.get_or_init(|| {
        let nats = NatsServer::start();
        let mut service = Service::start(&nats.url(), "");
        let url = nats.url();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = Client::connect(&url).await;
                service.wait_ready(&client).await;
                service
            })
        })
        .join()
        .map(|service| Shared {
            nats,
            _service: service,
        })
        .expect("shared service starts")
    });
    Client::connect(&shared.nats.url()).await
}

/// A name unique in this test process: `<prefix>-<n>`.
pub(crate) fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    format!("{prefix}-{pid}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The parties of one dispute, and a helper to send their commands.
pub(crate) struct Dispute {
    pub client: Client,
    pub id: String,
    pub order: String,
    pub buyer: String,
    pub seller: String,
}

impl Dispute {
    pub(crate) fn new(client: &Client) -> Dispute {
        Dispute {
            client: client.clone(),
            id: unique("d"),
            order: unique("o"),
            buyer: unique("b"),
            seller: unique("s"),
        }
    }

    pub(crate) fn body(&self, role: &str, data: Value) -> Value {
        let id = match role {
            "buyer" => self.buyer.clone(),
            "seller" => self.seller.clone(),
            _ => "m-1".to_owned(),
        };
        json!({
            "command_id": unique("c"),
            "dispute_id": self.id,
            "actor": {"role": role, "id": id},
            "data": data,
        })
    }

    /// Sends a command as `role`; returns the reply.
    pub(crate) async fn send(&self, command_type: &str, role: &str, data: Value) -> Value {
        self.client.cmd(command_type, self.body(role, data)).await
    }

    /// Sends a command that must be accepted; returns the reply.
    pub(crate) async fn ok(&self, command_type: &str, role: &str, data: Value) -> Value {
        let reply = self.send(command_type, role, data).await;
        assert_eq!(
            reply["ok"],
            json!(true),
            "{command_type} by {role} refused: {reply}"
        );
        reply
    }

    /// Sends a command that must be refused with `code`.
    pub(crate) async fn refused(
        &self,
        command_type: &str,
        role: &str,
        data: Value,
        code: &str,
    ) -> Value {
        let reply = self.send(command_type, role, data).await;
        assert_eq!(
            reply["ok"],
            json!(false),
            "{command_type} by {role} accepted: {reply}"
        );
        assert_eq!(
            reply["error"]["code"],
            json!(code),
            "{command_type} by {role}: {reply}"
        );
        reply
    }

    pub(crate) async fn open(&self, reason: &str, amount: u64, proposal: Value) -> Value {
        self.ok(
            "open",
            "buyer",
            json!({
                "order_id": self.order,
                "seller_id": self.seller,
                "reason": reason,
                "order_amount": {"amount": amount, "currency": "USD"},
                "proposal": proposal,
            }),
        )
        .await
    }

    pub(crate) async fn history(&self) -> Vec<Value> {
        self.client.history(&self.id).await
    }

    pub(crate) async fn view(&self, min_seq: &Value) -> Value {
        self.client
            .get(&self.id, min_seq.as_u64().expect("seq"))
            .await
    }

    /// The last `DisputeResolved` in the history (there must be exactly one).
    pub(crate) async fn resolution(&self) -> Value {
        let resolved: Vec<Value> = self
            .history()
            .await
            .into_iter()
            .filter(|e| e["type"] == "DisputeResolved")
            .collect();
        assert_eq!(resolved.len(), 1, "exactly one DisputeResolved");
        resolved[0]["data"].clone()
    }

    /// Opens the dispute (`reason`, an order of `amount`, the buyer proposing a full refund) and
    /// sends the commands that take it to `status` by the shortest path: a counter-proposal the
    /// buyer rejects, then the escalation's proof or evidence, then a ruled return of the whole
    /// amount, each step of that return as far as `status` asks. Returns the last reply.
    pub(crate) async fn drive_to(&self, reason: &str, amount: u64, status: &str) -> Value {
        let mut reply = self
            .open(reason, amount, json!({"solution": "full_refund"}))
            .await;
        for (command, role, data) in path_to(reason, status) {
            if reply["status"] == status {
                break;
            }
            reply = self.ok(command, role, data).await;
        }
        assert_eq!(reply["status"], status, "driven to {status}: {reply}");
        reply
    }

    /// Event types in version order.
    pub(crate) async fn types(&self) -> Vec<String> {
        self.history()
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The commands from `awaiting_seller_response` towards `status` (see [`Dispute::drive_to`]).
fn path_to(reason: &str, status: &str) -> Vec<(&'static str, &'static str, Value)> {
    if status == "resolved" {
        return vec![("accept_proposal", "seller", json!({}))];
    }
    let (command, role, data) = match reason {
        "not_received" => (
            "submit_shipping_proof",
            "seller",
            json!({"carrier": "DHL", "tracking_number": "JD0001"}),
        ),
        _ => (
            "submit_evidence",
            "buyer",
            json!({"description": "torn", "attachments": ["a.jpg"]}),
        ),
    };
    vec![
        (
            "counter_propose",
            "seller",
            json!({"proposal": {"solution": "partial_refund", "amount": 1}}),
        ),
        ("reject_proposal", "buyer", json!({})),
        (command, role, data),
        (
            "rule",
            "mediator",
            json!({"outcome": "return_and_refund", "responsible_party": "seller"}),
        ),
        (
            "provide_return_address",
            "seller",
            json!({"address": "2 Return St"}),
        ),
        (
            "provide_return_tracking",
            "buyer",
            json!({"carrier": "UPS", "tracking_number": "1Z2"}),
        ),
    ]
}

/// Checks the payout: solution, refund, release, basis, and refund + release = order amount.
pub(crate) fn assert_payout(
    resolved: &Value,
    solution: &str,
    refund: u64,
    release: u64,
    basis: &str,
) {
    assert_eq!(resolved["solution"], json!(solution), "{resolved}");
    assert_eq!(resolved["refund_amount"], json!(refund), "{resolved}");
    assert_eq!(resolved["release_amount"], json!(release), "{resolved}");
    assert_eq!(resolved["basis"], json!(basis), "{resolved}");
}

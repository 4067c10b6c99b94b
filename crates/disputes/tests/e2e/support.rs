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
pub async fn shared_client() -> Client {
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
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    format!("{prefix}-{pid}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The parties of one dispute, and a helper to send their commands.
pub struct Dispute {
    pub client: Client,
    pub id: String,
    pub order: String,
    pub buyer: String,
    pub seller: String,
}

impl Dispute {
    pub fn new(client: &Client) -> Dispute {
        Dispute {
            client: client.clone(),
            id: unique("d"),
            order: unique("o"),
            buyer: unique("b"),
            seller: unique("s"),
        }
    }

    pub fn body(&self, role: &str, data: Value) -> Value {
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
    pub async fn send(&self, command_type: &str, role: &str, data: Value) -> Value {
        self.client.cmd(command_type, self.body(role, data)).await
    }

    /// Sends a command that must be accepted; returns the reply.
    pub async fn ok(&self, command_type: &str, role: &str, data: Value) -> Value {
        let reply = self.send(command_type, role, data).await;
        assert_eq!(
            reply["ok"],
            json!(true),
            "{command_type} by {role} refused: {reply}"
        );
        reply
    }

    /// Sends a command that must be refused with `code`.
    pub async fn refused(&self, command_type: &str, role: &str, data: Value, code: &str) -> Value {
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

    pub async fn open(&self, reason: &str, amount: u64, proposal: Value) -> Value {
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

    pub async fn history(&self) -> Vec<Value> {
        self.client.history(&self.id).await
    }

    pub async fn view(&self, min_seq: &Value) -> Value {
        self.client
            .get(&self.id, min_seq.as_u64().expect("seq"))
            .await
    }

    /// The last `DisputeResolved` in the history (there must be exactly one).
    pub async fn resolution(&self) -> Value {
        let resolved: Vec<Value> = self
            .history()
            .await
            .into_iter()
            .filter(|e| e["type"] == "DisputeResolved")
            .collect();
        assert_eq!(resolved.len(), 1, "exactly one DisputeResolved");
        resolved[0]["data"].clone()
    }

    /// Event types in version order.
    pub async fn types(&self) -> Vec<String> {
        self.history()
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Checks the payout: solution, refund, release, basis, and refund + release = order amount.
pub fn assert_payout(resolved: &Value, solution: &str, refund: u64, release: u64, basis: &str) {
    assert_eq!(resolved["solution"], json!(solution), "{resolved}");
    assert_eq!(resolved["refund_amount"], json!(refund), "{resolved}");
    assert_eq!(resolved["release_amount"], json!(release), "{resolved}");
    assert_eq!(resolved["basis"], json!(basis), "{resolved}");
}

//! Issue 8's security over NATS: signed actors (here), the service over TLS (`auth/tls.rs`), and a
//! flood of malformed requests beside a normal client (`auth/flood.rs`).
//!
//! Signed actors: a service with `[auth] actor_tokens = "required"` and one gateway key. A valid
//! token works (for every role, `open` included) and a retry is answered from the first reply;
//! each bad token is refused `forbidden`, and the `history` query shows nothing was appended.

mod flood;
mod tls;

use std::process::Command;

use crate::kit::tokens::{claims, Gateway};
use crate::kit::{Client, NatsServer, Service};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::Dispute;

/// `[auth] token_ttl_max` of the services here.
const TTL_MAX_S: i64 = 60;

struct Secured {
    _nats: NatsServer,
    service: Service,
    client: Client,
    gateway: Gateway,
}

/// A nats-server and a service that requires tokens signed by `gateway`'s key.
async fn secured() -> Secured {
    let gateway = Gateway::from_seed(42);
    let (_nats, service, client) = start_requiring(&gateway.public_key_base64()).await;
    Secured {
        _nats,
        service,
        client,
        gateway,
    }
}

async fn start_requiring(public_key: &str) -> (NatsServer, Service, Client) {
    let nats = NatsServer::start();
    let auth = format!(
        "[auth]\nactor_tokens = \"required\"\npublic_keys = [{public_key:?}]\n\
         token_ttl_max = \"{TTL_MAX_S}s\"\n"
    );
    let mut service = Service::start(&nats.url(), &auth);
    let client = Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;
    (nats, service, client)
}

/// The id a `Dispute` body gives `role`.
fn actor_id<'a>(d: &'a Dispute, role: &str) -> &'a str {
    match role {
        "buyer" => &d.buyer,
        "seller" => &d.seller,
        _ => "m-1",
    }
}

fn open_data(d: &Dispute) -> Value {
    json!({
        "order_id": d.order,
        "seller_id": d.seller,
        "reason": "not_received",
        "order_amount": {"amount": 4000, "currency": "USD"},
        "proposal": {"solution": "full_refund"},
    })
}

impl Secured {
    /// `d`'s command body as `role`, with a fresh valid token.
    fn body(&self, d: &Dispute, role: &str, data: Value) -> Value {
        let token = self.gateway.token(role, actor_id(d, role), &d.id, 30);
        with_token(d.body(role, data), token)
    }

    async fn ok(&self, d: &Dispute, command_type: &str, role: &str, data: Value) -> Value {
        let reply = self
            .client
            .cmd(command_type, self.body(d, role, data))
            .await;
        assert_eq!(reply["ok"], true, "{command_type} by {role}: {reply}");
        reply
    }

    async fn opened(&self) -> Dispute {
        let d = Dispute::new(&self.client);
        self.ok(&d, "open", "buyer", open_data(&d)).await;
        d
    }
}

fn with_token(mut body: Value, token: impl Into<Value>) -> Value {
    body["actor_token"] = token.into();
    body
}

/// Sends `body` and expects `forbidden` with `why` in the message, and `d`'s history unchanged.
async fn forbidden(d: &Dispute, command_type: &str, body: Value, why: &str) {
    let before = d.history().await;
    let reply = d.client.cmd(command_type, body).await;
    assert_eq!(reply["ok"], false, "{why}: accepted: {reply}");
    assert_eq!(reply["error"]["code"], "forbidden", "{why}: {reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(why), "{why:?} not in {message:?}");
    assert_eq!(d.history().await, before, "{why}: nothing appended");
}

/// The token with the signature's first byte changed.
fn flip_signature(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 0x80;
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The claims segment of `token` replaced by `claims`, its signature kept.
fn swap_claims(token: &str, claims: &Value) -> String {
    let (_, signature) = token.rsplit_once('.').unwrap();
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("v1.{claims}.{signature}")
}

#[tokio::test]
async fn every_role_works_with_a_valid_token_and_a_retry_gets_the_first_reply() {
    let s = secured().await;
    let d = Dispute::new(&s.client);
    let open = s.body(&d, "buyer", open_data(&d));
    let first = s.client.cmd("open", open.clone()).await;
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(first["status"], "awaiting_seller_response");

    // Rule 1 of "which refusal wins": the same command, same token or a fresh one, is a retry.
    let again = s.client.cmd("open", open.clone()).await;
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(again["events"], first["events"]);
    let fresh = s.gateway.token("buyer", &d.buyer, &d.id, 30);
    let again = s.client.cmd("open", with_token(open, fresh)).await;
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(again["events"], first["events"]);

    let counter = json!({"proposal": {"solution": "partial_refund", "amount": 100}});
    s.ok(&d, "counter_propose", "seller", counter).await;
    s.ok(&d, "reject_proposal", "buyer", json!({"reason": "no"}))
        .await;
    s.ok(&d, "post_message", "mediator", json!({"text": "looking"}))
        .await;
    let shipped = json!({"carrier": "DHL", "tracking_number": "JD1"});
    s.ok(&d, "submit_shipping_proof", "seller", shipped).await;
    let ruling = json!({"outcome": "release_funds", "responsible_party": "buyer"});
    let r = s.ok(&d, "rule", "mediator", ruling).await;
    assert_eq!(r["status"], "resolved");
    assert_eq!(
        d.history().await.len() as u64,
        r["version"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn each_bad_token_is_forbidden_and_appends_nothing() {
    let s = secured().await;
    let d = s.opened().await;
    let msg = || d.body("buyer", json!({"text": "hello"}));
    let token = |claims: &Value| s.gateway.sign(claims);
    let valid = || claims("buyer", &d.buyer, &d.id, 30);
    let now = chrono::Utc::now().timestamp();

    forbidden(&d, "post_message", msg(), "requires an actor_token").await;
    forbidden(
        &d,
        "post_message",
        with_token(msg(), Value::Null),
        "requires",
    )
    .await;
    let forged = flip_signature(&token(&valid()));
    forbidden(&d, "post_message", with_token(msg(), forged), "signature").await;
    let mut other_buyer = valid();
    other_buyer["actor_id"] = json!("b-someone-else");
    let forged = swap_claims(&token(&other_buyer), &valid());
    forbidden(&d, "post_message", with_token(msg(), forged), "signature").await;
    let stranger = Gateway::from_seed(7).sign(&valid());
    forbidden(&d, "post_message", with_token(msg(), stranger), "signature").await;
    let garbage = "v1.not-a-token";
    forbidden(&d, "post_message", with_token(msg(), garbage), "malformed").await;

    let mut expired = valid();
    expired["iat"] = json!(now - 100);
    expired["exp"] = json!(now - 50);
    forbidden(
        &d,
        "post_message",
        with_token(msg(), token(&expired)),
        "expired",
    )
    .await;
    let mut too_long = valid();
    too_long["exp"] = json!(now + TTL_MAX_S + 1);
    let why = "exceeds token_ttl_max";
    forbidden(&d, "post_message", with_token(msg(), token(&too_long)), why).await;
    let elsewhere = claims("buyer", &d.buyer, "d-another-dispute", 30);
    let why = "for dispute d-another-dispute";
    forbidden(
        &d,
        "post_message",
        with_token(msg(), token(&elsewhere)),
        why,
    )
    .await;
    let someone = claims("buyer", "b-someone-else", &d.id, 30);
    let why = "for buyer b-someone-else";
    forbidden(&d, "post_message", with_token(msg(), token(&someone)), why).await;
    let other_role = claims("seller", &d.buyer, &d.id, 30);
    let why = "not the command's buyer";
    forbidden(
        &d,
        "post_message",
        with_token(msg(), token(&other_role)),
        why,
    )
    .await;
    let mediator = d.body("mediator", json!({"text": "no token"}));
    forbidden(&d, "post_message", mediator, "requires an actor_token").await;

    // A nonce is good for one command: the same token on another command is a replay.
    let used = token(&valid());
    let reply = d
        .client
        .cmd("post_message", with_token(msg(), used.clone()))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    forbidden(&d, "post_message", with_token(msg(), used), "already used").await;

    // A token that is not a string is a malformed request, whatever the mode.
    let reply = d.client.cmd("post_message", with_token(msg(), 42)).await;
    assert_eq!(reply["error"]["code"], "invalid_request", "{reply}");
}

/// With `actor_tokens = "off"` (the shared service), a token is accepted and ignored.
#[tokio::test]
async fn with_tokens_off_a_token_is_ignored() {
    let d = Dispute::new(&crate::support::shared_client().await);
    let body = with_token(d.body("buyer", open_data(&d)), "v1.anything.at-all");
    let reply = d.client.cmd("open", body).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let events = d.history().await;
    assert!(!serde_json::to_string(&events).unwrap().contains("anything"));
}

#[tokio::test]
async fn open_needs_a_token_for_its_own_dispute() {
    let s = secured().await;
    let d = Dispute::new(&s.client);
    let open = || d.body("buyer", open_data(&d));
    forbidden(&d, "open", open(), "requires an actor_token").await;
    let elsewhere = s.gateway.token("buyer", &d.buyer, "d-another-dispute", 30);
    forbidden(&d, "open", with_token(open(), elsewhere), "for dispute").await;
    let answer = s.client.query("get", json!({"dispute_id": d.id})).await;
    assert_eq!(answer["error"]["code"], "not_found", "{answer}");
    s.ok(&d, "open", "buyer", open_data(&d)).await;
}

#[tokio::test]
async fn a_used_nonce_stays_used_after_a_restart() {
    let mut s = secured().await;
    let d = s.opened().await;
    let token = s.gateway.token("buyer", &d.buyer, &d.id, TTL_MAX_S);
    let first = with_token(d.body("buyer", json!({"text": "one"})), token.clone());
    let reply = s.client.cmd("post_message", first.clone()).await;
    assert_eq!(reply["ok"], true, "{reply}");

    s.service.kill();
    s.service.spawn();
    s.service.wait_ready(&s.client).await;

    let second = with_token(d.body("buyer", json!({"text": "two"})), token);
    forbidden(&d, "post_message", second, "already used").await;
    let again = s.client.cmd("post_message", first).await;
    assert_eq!(
        again["replayed"], true,
        "the first command's retry: {again}"
    );
}

/// docs/actor-tokens.md's shell recipe, as written: openssl makes the gateway's key pair ...
const KEY_RECIPE: &str = r#"
set -eu
openssl genpkey -algorithm ed25519 -out gateway.pem
openssl pkey -in gateway.pem -pubout -outform DER | tail -c 32 | base64 > public_key.txt
"#;

/// ... and signs a token (the last line keeps what the doc prints).
const TOKEN_RECIPE: &str = r#"
set -eu
b64url() { base64 | tr '+/' '-_' | tr -d '=\n'; }
now=$(date +%s)
claims=$(printf '{"role":"%s","actor_id":"%s","dispute_id":"%s","iat":%d,"exp":%d,"nonce":"%s"}' \
  "$ROLE" "$ACTOR_ID" "$DISPUTE_ID" "$now" "$((now + 60))" "$(openssl rand -hex 16)")
signed="v1.$(printf '%s' "$claims" | b64url)"
printf '%s' "$signed" > signed.txt
signature=$(openssl pkeyutl -sign -inkey gateway.pem -rawin -in signed.txt | b64url)
echo "$signed.$signature" > token.txt
"#;

fn run_recipe(recipe: &str, dir: &std::path::Path, env: &[(&str, &str)]) {
    let doc = std::fs::read_to_string(crate::kit::workspace_root().join("docs/actor-tokens.md"))
        .expect("read docs/actor-tokens.md");
    let own = ["set -eu", "echo "];
    for line in recipe.lines().filter(|l| !l.is_empty()) {
        if !own.iter().any(|o| line.starts_with(o)) {
            assert!(doc.contains(line), "docs/actor-tokens.md shows {line:?}");
        }
    }
    let status = Command::new("sh")
        .args(["-c", recipe])
        .current_dir(dir)
        .envs(env.iter().copied())
        .status()
        .expect("run sh");
    assert!(status.success(), "the recipe ran: {recipe}");
}

#[tokio::test]
async fn a_token_made_with_openssl_as_documented_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    run_recipe(KEY_RECIPE, dir.path(), &[]);
    let (_nats, _service, client) = start_requiring(read("public_key.txt").trim()).await;
    let d = Dispute::new(&client);
    let env = [
        ("ROLE", "buyer"),
        ("ACTOR_ID", &d.buyer),
        ("DISPUTE_ID", &d.id),
    ];
    run_recipe(TOKEN_RECIPE, dir.path(), &env);
    let body = with_token(d.body("buyer", open_data(&d)), read("token.txt").trim());
    let reply = d.client.cmd("open", body).await;
    assert_eq!(reply["ok"], true, "{reply}");
}

//! `disputes serve` over TLS: a nats-server that verifies client certificates, the service
//! connecting with `[nats] tls_ca`, `tls_cert` and `tls_key`, and a client doing a command and a
//! query through it. Certificates are made here with openssl (`crate::kit::tls`).

use std::path::Path;

use crate::kit::tls::make_certificates;
use crate::kit::{Client, NatsServer, Service};
use async_nats::ConnectOptions;
use serde_json::json;

use crate::support::Dispute;

/// Only TLS with a client certificate signed by the test CA gets in.
const TLS_SERVER: &str = r#"
listen: "127.0.0.1:{{port}}"
tls {
  cert_file: "{{dir}}/tls/server.pem"
  key_file: "{{dir}}/tls/server-key.pem"
  ca_file: "{{dir}}/tls/ca.pem"
  verify: true
  timeout: 2
}
jetstream { store_dir: "{{store_dir}}", sync_interval: always }
"#;

fn start_tls_server() -> NatsServer {
    let dir = tempfile::tempdir().expect("temp dir");
    NatsServer::start_in(dir, TLS_SERVER, |dir| {
        make_certificates(dir);
    })
}

/// The `[nats]` keys of a service using the client certificate `name`.
fn tls_keys(tls: &Path, name: &str) -> String {
    let file = |f: String| tls.join(f).display().to_string();
    format!(
        "tls_ca = {:?}\ntls_cert = {:?}\ntls_key = {:?}\n",
        file("ca.pem".into()),
        file(format!("{name}.pem")),
        file(format!("{name}-key.pem")),
    )
}

fn client_options(tls: &Path) -> ConnectOptions {
    ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(tls.join("ca.pem"))
        .add_client_certificate(tls.join("client.pem"), tls.join("client-key.pem"))
}

#[tokio::test]
async fn the_service_serves_commands_and_queries_over_tls_with_client_certificates() {
    let nats = start_tls_server();
    let tls = nats.dir().join("tls");
    let url = format!("tls://127.0.0.1:{}", nats.port());
    let mut service = Service::start_with_nats(&url, &tls_keys(&tls, "client"), "");
    let client = Client::connect_with(&url, client_options(&tls)).await;
    service.wait_ready(&client).await;

    let d = Dispute::new(&client);
    let opened = d
        .open("not_received", 2500, json!({"solution": "full_refund"}))
        .await;
    let view = d.view(&opened["seq"]).await;
    assert_eq!(view["status"], "awaiting_seller_response", "{view}");
    assert_eq!(
        d.history().await,
        opened["events"].as_array().unwrap().clone()
    );
    let events = client.stream_events(&d.id).await;
    assert_eq!(events.len(), opened["events"].as_array().unwrap().len());
}

/// `nats://` with `tls_ca` set still requires TLS, as docs/operations.md says.
#[tokio::test]
async fn setting_tls_ca_requires_tls_whatever_the_scheme() {
    let nats = start_tls_server();
    let tls = nats.dir().join("tls");
    let mut service = Service::start_with_nats(&nats.url(), &tls_keys(&tls, "client"), "");
    let client = Client::connect_with(&nats.url(), client_options(&tls)).await;
    service.wait_ready(&client).await;
    let d = Dispute::new(&client);
    d.open("not_received", 2500, json!({"solution": "full_refund"}))
        .await;
}

/// A service whose client certificate comes from another CA never gets in (and says why).
#[tokio::test]
async fn a_service_with_a_certificate_of_another_ca_is_refused() {
    let nats = start_tls_server();
    let tls = nats.dir().join("tls");
    let url = format!("tls://127.0.0.1:{}", nats.port());
    let _service = Service::start_with_nats(&url, &tls_keys(&tls, "rogue-client"), "");
    let client = Client::connect_with(&url, client_options(&tls)).await;
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        client.nats().request("disputes.query.stats", "{}".into()),
    )
    .await;
    assert!(
        !matches!(answer, Ok(Ok(_))),
        "nobody should answer: {answer:?}"
    );
}

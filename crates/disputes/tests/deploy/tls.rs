//! The shipped server with the shipped `tls.conf` turned on, certificates made here with openssl:
//! a client with the CA and a client certificate gets in (and its permissions still apply); one
//! without a client certificate, or with one from another CA, is refused.

use crate::kit::nats::NatsServer;
use crate::kit::tls::make_certificates;
use async_nats::ConnectOptions;

use crate::probe::{Probe, Responder};
use crate::shipped;

/// Where tls.conf expects the certificates; the test puts them in the server's dir instead.
const SHIPPED_TLS_DIR: &str = "/etc/nats/tls/";

fn start_tls_server() -> NatsServer {
    let template = shipped::rewrite(
        "deploy/nats/nats.conf",
        &shipped::single_node_template(),
        &[("# include ./tls.conf", "include ./tls.conf")],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    NatsServer::start_in(dir, &template, |dir| {
        shipped::copy_verbatim("auth.conf", dir);
        let certs = format!("{}/tls/", dir.display());
        let tls = shipped::read("tls.conf").replace(SHIPPED_TLS_DIR, &certs);
        assert_eq!(
            tls.matches(&certs).count(),
            3,
            "tls.conf names cert, key and CA"
        );
        std::fs::write(dir.join("tls.conf"), tls).expect("write tls.conf");
        make_certificates(dir);
    })
}

/// TLS options trusting the test CA, with the client certificate `client` (if any).
fn tls_options(server: &NatsServer, client: Option<&str>) -> ConnectOptions {
    let tls = server.dir().join("tls");
    let options = ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(tls.join("ca.pem"));
    match client {
        Some(name) => options.add_client_certificate(
            tls.join(format!("{name}.pem")),
            tls.join(format!("{name}-key.pem")),
        ),
        None => options,
    }
}

async fn refused(options: ConnectOptions, server: &NatsServer, what: &str) {
    let options = options.user_and_password("disputes".into(), shipped::dev_password("disputes"));
    let result = options.connect(server.url()).await;
    assert!(result.is_err(), "{what}: connected");
}

#[tokio::test]
async fn clients_need_the_ca_and_a_client_certificate() {
    let server = start_tls_server();
    let options = || tls_options(&server, Some("client"));
    let mut service = Responder::start_with(&server.url(), options()).await;
    let mut buyer = Probe::connect_with(&server.url(), "buyer_gateway", options()).await;
    buyer.request_ok("disputes.cmd.open").await;
    buyer.expect_publish_denied("disputes.cmd.rule").await;
    buyer.expect_no_more_violations().await;
    service.probe.expect_no_more_violations().await;
    assert_eq!(service.seen(), ["disputes.cmd.open"]);

    refused(tls_options(&server, None), &server, "no client certificate").await;
    refused(
        tls_options(&server, Some("rogue-client")),
        &server,
        "a client cert of another CA",
    )
    .await;
    refused(
        ConnectOptions::new(),
        &server,
        "a client that does not trust the CA",
    )
    .await;
}

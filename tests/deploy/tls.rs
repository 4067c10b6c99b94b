//! The shipped server with the shipped `tls.conf` turned on, certificates made here with openssl:
//! a client with the CA and a client certificate gets in (and its permissions still apply); one
//! without a client certificate, or with one from another CA, is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use async_nats::ConnectOptions;
use disputes_tests::nats::NatsServer;

use crate::probe::{Probe, Responder};
use crate::shipped;

/// Where tls.conf expects the certificates; the test puts them in the server's dir instead.
const SHIPPED_TLS_DIR: &str = "/etc/nats/tls/";

fn openssl_bin() -> PathBuf {
    let path = PathBuf::from("/usr/bin/openssl");
    assert!(
        path.exists(),
        "openssl not found at {}: apt-get install openssl",
        path.display()
    );
    path
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new(openssl_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run openssl {args:?}: {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A P-256 key and a certificate for `cn`: self-signed (a CA) when `issuer` is `None`.
fn certificate(dir: &Path, name: &str, cn: &str, issuer: Option<&str>, extensions: &[&str]) {
    let key = format!("{name}-key.pem");
    let cert = format!("{name}.pem");
    let subject = format!("/CN={cn}");
    const NEW_KEY_AND_CERT: &str = "req -config openssl.cnf -x509 -days 1 -nodes \
                                    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1";
    let mut args: Vec<&str> = NEW_KEY_AND_CERT.split_whitespace().collect();
    args.extend(["-subj", &subject, "-keyout", &key, "-out", &cert]);
    let (issuer_cert, issuer_key) = issuer
        .map(|i| (format!("{i}.pem"), format!("{i}-key.pem")))
        .unzip();
    if let (Some(issuer_cert), Some(issuer_key)) = (&issuer_cert, &issuer_key) {
        args.extend(["-CA", issuer_cert, "-CAkey", issuer_key]);
    }
    for extension in extensions {
        args.extend(["-addext", extension]);
    }
    openssl(dir, &args);
}

/// A CA, the server's certificate (for 127.0.0.1), a client certificate, and a client
/// certificate from another CA, all in `dir/tls`.
fn make_certificates(dir: &Path) {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).expect("tls dir");
    // A config with no default extensions, so each certificate has exactly the ones given.
    let config = "[req]\ndistinguished_name = dn\n[dn]\n";
    std::fs::write(tls.join("openssl.cnf"), config).expect("write openssl.cnf");
    let ca = [
        "basicConstraints=critical,CA:TRUE",
        "keyUsage=critical,keyCertSign,cRLSign",
    ];
    certificate(&tls, "ca", "disputes test CA", None, &ca);
    certificate(&tls, "rogue-ca", "another CA", None, &ca);
    let leaf = |usage| {
        [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            usage,
        ]
    };
    let mut server = leaf("extendedKeyUsage=serverAuth").to_vec();
    server.push("subjectAltName=IP:127.0.0.1,DNS:localhost");
    certificate(&tls, "server", "localhost", Some("ca"), &server);
    let client = leaf("extendedKeyUsage=clientAuth");
    certificate(&tls, "client", "disputes", Some("ca"), &client);
    certificate(&tls, "rogue-client", "disputes", Some("rogue-ca"), &client);
}

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

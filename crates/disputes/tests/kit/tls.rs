//! Certificates made with openssl for the tests: a CA, a server certificate for 127.0.0.1, client
//! certificates, and a second CA whose certificates nobody trusts.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `/usr/bin/openssl`; panics with the fix when it is missing (tests never skip silently).
pub(crate) fn openssl_bin() -> PathBuf {
    let path = PathBuf::from("/usr/bin/openssl");
    assert!(
        path.exists(),
        "openssl not found at {}: apt-get install openssl",
        path.display()
    );
    path
}

/// Runs openssl in `dir`; panics with its stderr when it fails.
pub(crate) fn openssl(dir: &Path, args: &[&str]) {
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
/// Writes `<name>.pem` and `<name>-key.pem` in `dir`.
pub(crate) fn certificate(
    dir: &Path,
    name: &str,
    cn: &str,
    issuer: Option<&str>,
    extensions: &[&str],
) {
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

/// In `dir/tls`: `ca`, `server` (for 127.0.0.1 and localhost), `client` (CN `disputes`, signed by
/// `ca`), and `rogue-ca` with its `rogue-client`. Returns `dir/tls`.
pub(crate) fn make_certificates(dir: &Path) -> PathBuf {
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
    tls
}

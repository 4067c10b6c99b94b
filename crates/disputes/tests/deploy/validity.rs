//! Every shipped NATS config, exactly as shipped, passes `nats-server -t` (the pinned server's own
//! check: syntax, includes, unknown keys, permission maps).

use std::process::Command;

use crate::kit::nats::nats_server_bin;

use crate::shipped;

const SHIPPED_CONFIGS: [&str; 4] = [
    "nats.conf",
    "cluster/n1.conf",
    "cluster/n2.conf",
    "cluster/n3.conf",
];

#[test]
fn the_pinned_nats_server_accepts_every_shipped_config() {
    for config in SHIPPED_CONFIGS {
        let path = shipped::nats_dir().join(config);
        let output = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&path)
            .arg("-t")
            .output()
            .unwrap_or_else(|e| panic!("run nats-server -t: {e}"));
        assert!(
            output.status.success(),
            "nats-server -c {} -t: {}\n{}",
            path.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn settings(config: &str) -> Vec<String> {
    let text = shipped::read(config);
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Every shipped server fsyncs each JetStream write (the default syncs every two minutes), caps
/// messages at 256 KiB, and has no anonymous user.
#[test]
fn every_shipped_server_syncs_always_caps_payloads_and_has_no_anonymous_user() {
    for config in ["nats.conf", "cluster/common.conf"] {
        let settings = settings(config);
        assert!(
            settings.iter().any(|l| l == "sync_interval: always"),
            "{config}: sync_interval"
        );
        assert!(
            settings.iter().any(|l| l == "max_payload: 262144"),
            "{config}: max_payload"
        );
        assert!(settings
            .iter()
            .any(|l| l.starts_with("include ") && l.ends_with("auth.conf")));
    }
    for config in ["nats.conf", "cluster/common.conf", "auth.conf"] {
        let settings = settings(config);
        assert!(
            !settings.iter().any(|l| l.contains("no_auth_user")),
            "{config}: no_auth_user"
        );
    }
}

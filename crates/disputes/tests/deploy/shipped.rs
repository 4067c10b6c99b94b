//! The shipped `deploy/nats` files, with only what a test must change rewritten.
//!
//! Each rewrite names the exact text it replaces and panics when that text is not in the file
//! exactly once, so an edit to a shipped file cannot make these tests quietly test something else.

use std::path::{Path, PathBuf};

use crate::kit::nats::NatsServer;
use crate::kit::workspace_root;

/// `deploy/nats`.
pub(crate) fn nats_dir() -> PathBuf {
    workspace_root().join("deploy/nats")
}

pub(crate) fn read(relative: &str) -> String {
    let path = nats_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Replaces each `(from, to)`; `from` must occur exactly once in `text`.
pub(crate) fn rewrite(name: &str, text: &str, replacements: &[(&str, &str)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in replacements {
        let count = text.matches(from).count();
        assert_eq!(
            count, 1,
            "{name}: expected {from:?} exactly once, found it {count} times"
        );
        text = text.replace(from, to);
    }
    text
}

/// The dev-only password of `user`, from `deploy/nats/dev-passwords.txt`.
pub(crate) fn dev_password(user: &str) -> String {
    read("dev-passwords.txt")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(char::is_whitespace))
        .find(|(name, _)| *name == user)
        .map(|(_, password)| password.trim().to_owned())
        .unwrap_or_else(|| panic!("no dev password for {user} in deploy/nats/dev-passwords.txt"))
}

/// `deploy/nats/nats.conf` as a harness template: a free loopback port, a temporary store,
/// no monitoring port. Everything else, `include ./auth.conf` among it, is as shipped.
pub(crate) fn single_node_template() -> String {
    rewrite(
        "deploy/nats/nats.conf",
        &read("nats.conf"),
        &[
            ("listen: \"0.0.0.0:4222\"", "listen: \"127.0.0.1:{{port}}\""),
            (
                "http: \"127.0.0.1:8222\"",
                "# http: (no monitoring port in tests)",
            ),
            (
                "store_dir: \"/var/lib/nats/jetstream\"",
                "store_dir: \"{{store_dir}}\"",
            ),
        ],
    )
}

/// Copies a shipped file, unchanged, into a server's dir.
pub(crate) fn copy_verbatim(relative: &str, dir: &Path) {
    let to = dir.join(relative);
    std::fs::create_dir_all(to.parent().expect("a file has a parent")).expect("create dir");
    std::fs::write(&to, read(relative)).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
}

/// A single node started from the shipped `nats.conf` and `auth.conf`.
pub(crate) fn start_single_node() -> NatsServer {
    let dir = tempfile::tempdir().expect("temp dir");
    NatsServer::start_in(dir, &single_node_template(), |dir| {
        copy_verbatim("auth.conf", dir)
    })
}

//! The standard NATS context, as the `nats` CLI saves it (`nats context save`), so that
//! `disputes audit --context NAME` reaches the stream with the operator's usual server and
//! credentials: `$XDG_CONFIG_HOME/nats/context/NAME.json` (else `~/.config/nats/context/`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

use crate::config::NatsConfig;

/// The fields of a context this tool uses; the CLI's others (colour scheme, JetStream domain, …)
/// are ignored. An empty string means unset, as the CLI writes them.
#[derive(Debug, Default, Deserialize)]
pub struct NatsContext {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub creds: String,
    /// A file holding an nkey seed.
    #[serde(default)]
    pub nkey: String,
    #[serde(default)]
    pub cert: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub ca: String,
}

impl NatsContext {
    /// Reads the context `name` from the NATS CLI's config directory.
    pub fn load(name: &str) -> anyhow::Result<NatsContext> {
        anyhow::ensure!(
            !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..",
            "--context {name:?} is not a context name"
        );
        let dir = context_dir()
            .context("find the NATS contexts: neither XDG_CONFIG_HOME nor HOME is set")?;
        Self::read(&dir.join(format!("{name}.json")))
    }

    fn read(path: &Path) -> anyhow::Result<NatsContext> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "read the NATS context {} (`nats context ls` lists them)",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("parse the NATS context {}", path.display()))
    }

    /// Puts what the context sets over `nats` (a context's credentials replace the config's).
    pub fn apply(&self, nats: &mut NatsConfig) {
        let set = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        if let Some(url) = set(&self.url) {
            nats.url = url;
        }
        let has_credentials = [&self.user, &self.token, &self.creds, &self.nkey]
            .iter()
            .any(|s| !s.is_empty());
        if has_credentials {
            nats.user = set(&self.user);
            nats.password = set(&self.password);
            nats.password_file = None;
            nats.token = set(&self.token);
            nats.creds = path(&self.creds);
            nats.nkey_seed_file = path(&self.nkey);
        }
        if let Some(ca) = path(&self.ca) {
            nats.tls_ca = Some(ca);
        }
        if !self.cert.is_empty() || !self.key.is_empty() {
            nats.tls_cert = path(&self.cert);
            nats.tls_key = path(&self.key);
        }
    }
}

fn context_dir() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("nats").join("context"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_context_sets_the_url_and_replaces_the_configs_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("prod.json");
        std::fs::write(
            &file,
            r#"{"description":"","url":"tls://nats.internal:4222","user":"","password":"","creds":"/etc/auditor.creds","nkey":"","cert":"","key":"","ca":"/etc/ca.pem","color_scheme":"","inbox_prefix":""}"#,
        )
        .unwrap();
        let context = NatsContext::read(&file).unwrap();
        let mut nats = NatsConfig {
            user: Some("service".into()),
            password: Some("secret".into()),
            ..NatsConfig::default()
        };
        context.apply(&mut nats);
        assert_eq!(nats.url, "tls://nats.internal:4222");
        assert_eq!(nats.creds, Some(PathBuf::from("/etc/auditor.creds")));
        assert_eq!((nats.user, nats.password), (None, None));
        assert_eq!(nats.tls_ca, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn a_context_name_cannot_leave_the_context_directory() {
        for name in ["", "..", "../x", "a/b"] {
            assert!(NatsContext::load(name).is_err(), "{name:?}");
        }
    }
}

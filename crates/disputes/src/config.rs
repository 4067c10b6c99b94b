//! The service's configuration: a TOML file (every key has a default), then environment overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use disputes_domain::{Limits, Policy};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub nats: NatsConfig,
    pub store: StoreConfig,
    pub policy: PolicyConfig,
    pub http: HttpConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    pub url: String,
    pub subject_prefix: String,
    pub events_stream: String,
    pub deadlines_stream: String,
    /// Reply subjects the service answers on: a request whose reply subject starts with none of
    /// these (or that has none) is dropped, so that no requester can aim a reply at the service's
    /// own streams, lease or endpoints.
    pub reply_prefixes: Vec<String>,
    /// A `.creds` file (JWT + nkey seed).
    pub creds: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// A file holding the password (its first line), so the password need not live in the
    /// config: a systemd credential, a mounted secret. Not together with `password`.
    pub password_file: Option<PathBuf>,
    pub token: Option<String>,
    pub nkey_seed_file: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            subject_prefix: "disputes".into(),
            events_stream: "DISPUTE_EVENTS".into(),
            deadlines_stream: "DISPUTE_DEADLINES".into(),
            reply_prefixes: vec!["_INBOX.".into()],
            creds: None,
            user: None,
            password: None,
            password_file: None,
            token: None,
            nkey_seed_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl NatsConfig {
    /// The servers of `url`: one URL, or several separated by commas (the nodes of a cluster, as
    /// the NATS tools take them); the client tries them in turn and learns the others from them.
    pub fn servers(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect()
    }

    /// The password: `password`, or the first line of `password_file`, read now (when connecting,
    /// so that commands that do not connect, like `audit rebuild`, need no access to it).
    pub fn password(&self) -> anyhow::Result<Option<String>> {
        let Some(path) = &self.password_file else {
            return Ok(self.password.clone());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read [nats] password_file {}", path.display()))?;
        let password = text.lines().next().unwrap_or_default().to_owned();
        anyhow::ensure!(
            !password.is_empty(),
            "[nats] password_file {} is empty",
            path.display()
        );
        Ok(Some(password))
    }

    /// Whether the service answers requests whose reply subject is `reply`.
    pub fn answers_on(&self, reply: &str) -> bool {
        self.reply_prefixes
            .iter()
            .any(|prefix| reply.starts_with(prefix.as_str()))
    }

    /// Each prefix must be at least one whole subject token and no wildcard, and none may lead to
    /// a subject of the service's own (its prefix, JetStream's API and KV, the services API).
    fn check_reply_prefixes(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.reply_prefixes.is_empty(),
            "[nats] reply_prefixes must name at least one prefix (the default is [\"_INBOX.\"])"
        );
        let own = [
            format!("{}.", self.subject_prefix),
            "$JS.".into(),
            "$KV.".into(),
            "$SRV.".into(),
            "$O.".into(),
        ];
        for prefix in &self.reply_prefixes {
            let whole_tokens = prefix.ends_with('.')
                && prefix[..prefix.len() - 1]
                    .split('.')
                    .all(|t| !t.is_empty() && !t.contains(['*', '>', ' ']));
            anyhow::ensure!(
                whole_tokens,
                "[nats] reply_prefixes: {prefix:?} must be whole subject tokens ending with a dot, without wildcards (like \"_INBOX.\")"
            );
            let reaches_own = own
                .iter()
                .any(|own| own.starts_with(prefix.as_str()) || prefix.starts_with(own.as_str()));
            anyhow::ensure!(
                !reaches_own,
                "[nats] reply_prefixes: {prefix:?} would let a requester aim replies at the service's own subjects"
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// sled's page cache of the event log, in MiB.
    pub cache_mb: u64,
    /// sled's page cache of the read models, in MiB.
    pub read_models_cache_mb: u64,
    /// Where the event log lives: `sled` (embedded, this machine) or `jetstream` (the events
    /// stream on the NATS cluster; `docs/cluster.md`).
    pub backend: Backend,
    /// With `backend = "jetstream"`: the log stream's replicas (3 on a cluster; 1 for development).
    pub replicas: usize,
}

/// `[store] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Sled,
    Jetstream,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("./data"),
            cache_mb: CACHE_MB_DEFAULT,
            read_models_cache_mb: READ_MODELS_CACHE_MB_DEFAULT,
            backend: Backend::Sled,
            replicas: REPLICAS_DEFAULT,
        }
    }
}

/// `[store] replicas` by default.
pub const REPLICAS_DEFAULT: usize = 3;
/// The most replicas JetStream allows.
const REPLICAS_MAX: usize = 5;

/// `[store] cache_mb` by default.
pub const CACHE_MB_DEFAULT: u64 = 64;
/// `[store] read_models_cache_mb` by default.
pub const READ_MODELS_CACHE_MB_DEFAULT: u64 = 64;

impl StoreConfig {
    /// Each cache holds at least 1 MiB and at most 1 TiB.
    fn check(&self) -> anyhow::Result<()> {
        for (key, mb) in [
            ("cache_mb", self.cache_mb),
            ("read_models_cache_mb", self.read_models_cache_mb),
        ] {
            anyhow::ensure!(
                (1..=1024 * 1024).contains(&mb),
                "[store] {key} = {mb}: must be from 1 to 1048576 (MiB)"
            );
        }
        anyhow::ensure!(
            (1..=REPLICAS_MAX).contains(&self.replicas),
            "[store] replicas = {}: must be from 1 to {REPLICAS_MAX}",
            self.replicas
        );
        Ok(())
    }
}

/// `[policy]`: humantime durations ("5d", "24h", "2s").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    #[serde(with = "humantime_serde_compat")]
    pub seller_response: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub buyer_decision: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub shipping_proof: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub buyer_evidence: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub return_address: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub return_shipment: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub return_receipt: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub reminder_lead: Duration,
}

/// The domain's defaults (rules.md and protocol.md), as durations.
impl Default for PolicyConfig {
    fn default() -> Self {
        let policy = Policy::default();
        let std = |d: chrono::TimeDelta| d.to_std().expect("default durations are positive");
        PolicyConfig {
            seller_response: std(policy.seller_response),
            buyer_decision: std(policy.buyer_decision),
            shipping_proof: std(policy.shipping_proof),
            buyer_evidence: std(policy.buyer_evidence),
            return_address: std(policy.return_address),
            return_shipment: std(policy.return_shipment),
            return_receipt: std(policy.return_receipt),
            reminder_lead: std(policy.reminder_lead),
        }
    }
}

impl PolicyConfig {
    pub fn to_policy(&self) -> anyhow::Result<Policy> {
        let d = |name: &str, value: Duration| {
            anyhow::ensure!(!value.is_zero(), "[policy] {name} must be longer than zero");
            chrono::TimeDelta::from_std(value)
                .with_context(|| format!("[policy] {name} is too long"))
        };
        Ok(Policy {
            seller_response: d("seller_response", self.seller_response)?,
            buyer_decision: d("buyer_decision", self.buyer_decision)?,
            shipping_proof: d("shipping_proof", self.shipping_proof)?,
            buyer_evidence: d("buyer_evidence", self.buyer_evidence)?,
            return_address: d("return_address", self.return_address)?,
            return_shipment: d("return_shipment", self.return_shipment)?,
            return_receipt: d("return_receipt", self.return_receipt)?,
            reminder_lead: chrono::TimeDelta::from_std(self.reminder_lead)
                .context("[policy] reminder_lead is too long")?,
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Where `/metrics` and `/healthz` are served; empty to turn the endpoint off.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

impl HttpConfig {
    pub fn addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        let addr = self
            .listen
            .parse()
            .with_context(|| format!("[http] listen {:?}", self.listen))?;
        Ok(Some(addr))
    }
}

/// `[limits]`: caps against abuse. Defaults are the contract's.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub body_bytes_max: usize,
    pub text_chars_max: usize,
    pub attachments_max: usize,
    pub attachment_chars_max: usize,
    pub list_limit_max: usize,
    /// Commands and queries being worked on at once; more wait in NATS.
    pub inflight_max: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let domain = Limits::default();
        LimitsConfig {
            body_bytes_max: domain.body_bytes_max,
            text_chars_max: domain.text_chars_max,
            attachments_max: domain.attachments_max,
            attachment_chars_max: domain.attachment_chars_max,
            list_limit_max: 500,
            inflight_max: 256,
        }
    }
}

impl LimitsConfig {
    pub fn to_limits(&self) -> Limits {
        Limits {
            body_bytes_max: self.body_bytes_max,
            text_chars_max: self.text_chars_max,
            attachments_max: self.attachments_max,
            attachment_chars_max: self.attachment_chars_max,
        }
    }
}

/// `[auth]`: signed actors (docs/actor-tokens.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub actor_tokens: ActorTokens,
    /// The gateways' Ed25519 public keys, standard base64 of the 32 bytes; each may be bound to
    /// the roles it may sign for.
    pub public_keys: Vec<PublicKeyConfig>,
    /// The longest lifetime (`exp - iat`) a token may have.
    #[serde(with = "humantime_serde_compat")]
    pub token_ttl_max: Duration,
}

/// One gateway key: `"<base64>"` signs for any role, `{ key = "<base64>", roles = ["buyer"] }`
/// only for the roles listed (so a compromised buyer gateway cannot act as a seller).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum PublicKeyConfig {
    AnyRole(String),
    Bound {
        key: String,
        roles: Vec<disputes_domain::Role>,
    },
}

impl PublicKeyConfig {
    fn key(&self) -> &str {
        match self {
            PublicKeyConfig::AnyRole(key) | PublicKeyConfig::Bound { key, .. } => key,
        }
    }
}

/// Whether commands must carry an `actor_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorTokens {
    /// The actor is trusted as sent; an `actor_token` field is accepted and ignored.
    #[default]
    Off,
    /// Every command must carry a valid token for its actor and dispute, else `forbidden`.
    Required,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            actor_tokens: ActorTokens::Off,
            public_keys: Vec::new(),
            token_ttl_max: Duration::from_secs(5 * 60),
        }
    }
}

impl AuthConfig {
    /// The configured keys, each checked, with the roles each may sign for; with tokens required
    /// there must be at least one.
    pub fn gateway_keys(&self) -> anyhow::Result<Vec<disputes_command::tokens::GatewayKey>> {
        anyhow::ensure!(
            self.public_keys.len() <= disputes_command::tokens::PUBLIC_KEYS_MAX,
            "[auth] public_keys: at most {} keys",
            disputes_command::tokens::PUBLIC_KEYS_MAX
        );
        anyhow::ensure!(
            self.actor_tokens == ActorTokens::Off || !self.public_keys.is_empty(),
            "[auth] actor_tokens = \"required\" needs at least one key in public_keys"
        );
        self.public_keys
            .iter()
            .map(|entry| {
                let key =
                    disputes_command::tokens::parse_public_key(entry.key()).context("[auth] public_keys")?;
                let roles = match entry {
                    PublicKeyConfig::AnyRole(_) => None,
                    PublicKeyConfig::Bound { roles, .. } => {
                        anyhow::ensure!(
                            !roles.is_empty() && !roles.contains(&disputes_domain::Role::System),
                            "[auth] public_keys: the roles of key {:?} must name buyer, seller or mediator",
                            entry.key()
                        );
                        Some(roles.clone())
                    }
                };
                Ok(disputes_command::tokens::GatewayKey { key, roles })
            })
            .collect()
    }

    /// The token checker, when `actor_tokens = "required"`.
    pub fn verifier(
        &self,
        data_dir: &Path,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Option<disputes_command::tokens::Verifier>> {
        if self.actor_tokens == ActorTokens::Off {
            return Ok(None);
        }
        let keys = self.gateway_keys()?;
        let verifier =
            disputes_command::tokens::Verifier::open(keys, self.token_ttl_max, data_dir, now)?;
        Ok(Some(verifier))
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.token_ttl_max.is_zero()
                && self.token_ttl_max <= disputes_command::tokens::TOKEN_TTL_MAX_LIMIT,
            "[auth] token_ttl_max must be longer than zero and at most 24h"
        );
        self.gateway_keys().map(drop)
    }
}

impl Config {
    /// Reads the file (if given), then applies `DISPUTES_NATS_URL`, `DISPUTES_NATS_PASSWORD` and
    /// `DISPUTES_DATA_DIR`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("read config {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parse config {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Ok(url) = std::env::var("DISPUTES_NATS_URL") {
            config.nats.url = url;
        }
        if let Ok(dir) = std::env::var("DISPUTES_DATA_DIR") {
            config.store.path = PathBuf::from(dir);
        }
        if let Ok(password) = std::env::var("DISPUTES_NATS_PASSWORD") {
            config.nats.password = Some(password);
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let prefix = &self.nats.subject_prefix;
        anyhow::ensure!(
            !prefix.is_empty()
                && prefix
                    .split('.')
                    .all(|t| !t.is_empty() && !t.contains(['*', '>', ' '])),
            "[nats] subject_prefix {prefix:?} must be dot-separated tokens without wildcards"
        );
        self.nats.check_reply_prefixes()?;
        self.store.check()?;
        anyhow::ensure!(
            self.nats.password.is_none() || self.nats.password_file.is_none(),
            "[nats] password and password_file (or DISPUTES_NATS_PASSWORD and password_file) are both set: keep one"
        );
        self.policy.to_policy()?;
        self.http.addr()?;
        anyhow::ensure!(
            self.limits.list_limit_max >= 1,
            "[limits] list_limit_max must be at least 1"
        );
        anyhow::ensure!(
            self.limits.inflight_max >= 1,
            "[limits] inflight_max must be at least 1"
        );
        self.auth.validate()
    }
}

/// Durations as humantime strings ("5d", "1h 30m", "2s").
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_contract_defaults() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.nats.subject_prefix, "disputes");
        assert_eq!(config.nats.events_stream, "DISPUTE_EVENTS");
        assert_eq!(config.policy.to_policy().unwrap(), Policy::default());
        assert_eq!(config.http.listen, "127.0.0.1:9464");
    }

    #[test]
    fn policy_durations_are_humantime() {
        let config: Config =
            toml::from_str("[policy]\nseller_response = \"2s\"\nreturn_receipt = \"30d\"").unwrap();
        assert_eq!(config.policy.seller_response, Duration::from_secs(2));
        assert_eq!(
            config.policy.return_receipt,
            Duration::from_secs(30 * 24 * 3600)
        );
    }

    #[test]
    fn auth_defaults_to_off_with_a_five_minute_ttl() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.auth.actor_tokens, ActorTokens::Off);
        assert_eq!(config.auth.token_ttl_max, Duration::from_secs(300));
        config.validate().unwrap();
    }

    #[test]
    fn a_cache_size_of_zero_or_beyond_a_tebibyte_is_refused() {
        let parse = |text: &str| toml::from_str::<Config>(text).unwrap().validate();
        parse("[store]\ncache_mb = 64\nread_models_cache_mb = 64").unwrap();
        let zero = parse("[store]\ncache_mb = 0").unwrap_err();
        assert!(
            format!("{zero:#}").contains("[store] cache_mb = 0"),
            "{zero:#}"
        );
        assert!(parse("[store]\nread_models_cache_mb = 1048577").is_err());
    }

    #[test]
    fn the_backend_is_sled_or_jetstream_with_one_to_five_replicas() {
        let read = |text: &str| toml::from_str::<Config>(text);
        let cluster = read("[store]\nbackend = \"jetstream\"\nreplicas = 1").unwrap();
        cluster.validate().unwrap();
        assert_eq!(cluster.store.backend, Backend::Jetstream);
        assert_eq!(cluster.store.replicas, 1);
        let defaults = read("").unwrap();
        assert_eq!(
            (defaults.store.backend, defaults.store.replicas),
            (Backend::Sled, 3)
        );
        let unknown = read("[store]\nbackend = \"raft\"").unwrap_err();
        assert!(unknown.to_string().contains("backend"), "{unknown}");
        let zero = read("[store]\nreplicas = 0")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            format!("{zero:#}").contains("[store] replicas = 0"),
            "{zero:#}"
        );
        assert!(read("[store]\nreplicas = 6").unwrap().validate().is_err());
    }

    #[test]
    fn required_tokens_need_valid_keys() {
        use base64::Engine as _;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let key = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
        let parse = |text: &str| toml::from_str::<Config>(text).unwrap().validate();
        parse(&format!(
            "[auth]\nactor_tokens = \"required\"\npublic_keys = [{key:?}]\ntoken_ttl_max = \"2m\""
        ))
        .unwrap();
        let none = parse("[auth]\nactor_tokens = \"required\"").unwrap_err();
        assert!(format!("{none:#}").contains("at least one key"), "{none:#}");
        let bad = parse("[auth]\npublic_keys = [\"not-a-key\"]").unwrap_err();
        assert!(format!("{bad:#}").contains("public_keys"), "{bad:#}");
        assert!(parse("[auth]\ntoken_ttl_max = \"2d\"").is_err());
        assert!(toml::from_str::<Config>("[auth]\nactor_tokens = \"on\"").is_err());
    }

    /// deploy/config/disputes.toml parses; only its placeholder keys keep it from validating.
    #[test]
    fn the_shipped_config_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/config/disputes.toml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let config: Config = toml::from_str(&text).unwrap();
        assert_eq!(config.auth.actor_tokens, ActorTokens::Required);
        assert_eq!(config.auth.token_ttl_max, Duration::from_secs(300));
        let error = config.validate().unwrap_err();
        assert!(format!("{error:#}").contains("REPLACE"), "{error:#}");
    }

    /// The compose files' configs (single instance, and cluster mode) are valid as shipped.
    #[test]
    fn the_compose_configs_validate() {
        let read = |name: &str| {
            let path = format!("{}/../../deploy/docker/{name}", env!("CARGO_MANIFEST_DIR"));
            let config: Config = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            config.validate().unwrap();
            config
        };
        assert_eq!(read("disputes.compose.toml").store.backend, Backend::Sled);
        let cluster = read("disputes.cluster.toml");
        assert_eq!(
            (cluster.store.backend, cluster.store.replicas),
            (Backend::Jetstream, 3)
        );
        assert_eq!(cluster.nats.servers().len(), 3);
    }

    #[test]
    fn a_password_file_is_read_when_connecting_and_not_together_with_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nats-password");
        std::fs::write(&file, "s3cret\n").unwrap();
        let mut config: Config = toml::from_str(&format!(
            "[nats]\nuser = \"disputes\"\npassword_file = {file:?}\n"
        ))
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.nats.password().unwrap().as_deref(), Some("s3cret"));
        std::fs::write(&file, "").unwrap();
        assert!(config.nats.password().is_err(), "an empty file is refused");
        config.nats.password = Some("inline".into());
        assert!(config.validate().is_err(), "both set is refused");
        config.nats.password_file = Some(dir.path().join("missing"));
        config.nats.password = None;
        config.validate().unwrap(); // not read at load: `audit rebuild` needs no access to it
        assert!(config.nats.password().is_err());
    }

    #[test]
    fn reply_prefixes_default_to_inboxes_and_may_not_reach_the_services_own_subjects() {
        let config: Config = toml::from_str("").unwrap();
        assert!(config.nats.answers_on("_INBOX.abc.1"));
        for reply in [
            "$KV.DISPUTES_LEASES.disputes",
            "disputes.cmd.rule",
            "_INBOX",
            "x",
        ] {
            assert!(!config.nats.answers_on(reply), "{reply}");
        }
        let parse = |prefixes: &str| {
            toml::from_str::<Config>(&format!("[nats]\nreply_prefixes = {prefixes}"))
                .unwrap()
                .validate()
        };
        parse(r#"["_INBOX.", "replies.gateway-1."]"#).unwrap();
        for bad in [
            r#"[]"#,
            r#"["_INBOX"]"#,
            r#"["disputes."]"#,
            r#"["$KV."]"#,
            r#"["$"]"#,
            r#"["a.*."]"#,
            r#"["."]"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_gateway_key_may_be_bound_to_the_roles_it_signs_for() {
        use base64::Engine as _;
        let key = |seed: u8| {
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key();
            base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
        };
        let (a, b) = (key(1), key(2));
        let config: Config = toml::from_str(&format!(
            "[auth]\nactor_tokens = \"required\"\npublic_keys = [{a:?}, {{ key = {b:?}, roles = [\"buyer\"] }}]"
        ))
        .unwrap();
        let keys = config.auth.gateway_keys().unwrap();
        assert_eq!(keys[0].roles, None);
        assert_eq!(keys[1].roles, Some(vec![disputes_domain::Role::Buyer]));
        for roles in ["[]", "[\"system\"]"] {
            let config: Config = toml::from_str(&format!(
                "[auth]\npublic_keys = [{{ key = {b:?}, roles = {roles} }}]"
            ))
            .unwrap();
            assert!(config.validate().is_err(), "{roles}");
        }
        let unknown = format!("[auth]\npublic_keys = [{{ key = {b:?}, roles = [\"admin\"] }}]");
        assert!(toml::from_str::<Config>(&unknown).is_err());
    }

    #[test]
    fn an_unknown_key_is_refused() {
        assert!(toml::from_str::<Config>("[store]\npth = \"x\"").is_err());
    }
}

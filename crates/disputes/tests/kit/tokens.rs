//! Actor tokens made as a gateway makes them (docs/actor-tokens.md), written here from the doc
//! and not shared with the service's code, so the tests check the documented format.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{json, Value};

/// A gateway: an Ed25519 key pair from a fixed seed (the tests need no randomness).
pub(crate) struct Gateway {
    key: SigningKey,
}

impl Gateway {
    pub(crate) fn from_seed(seed: u8) -> Gateway {
        Gateway {
            key: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    /// What goes in `[auth] public_keys`: standard base64 of the 32-byte public key.
    pub(crate) fn public_key_base64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// `v1.<base64url(claims)>.<base64url(Ed25519 signature of "v1.<base64url(claims)>")>`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let signed = format!(
            "v1.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"))
        );
        let signature = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// A token for `role` `actor_id` on `dispute_id`, issued now, valid `ttl_s` seconds, fresh nonce.
    pub(crate) fn token(&self, role: &str, actor_id: &str, dispute_id: &str, ttl_s: i64) -> String {
        self.sign(&claims(role, actor_id, dispute_id, ttl_s))
    }
}

/// The claims of a fresh token issued now and valid `ttl_s` seconds.
pub(crate) fn claims(role: &str, actor_id: &str, dispute_id: &str, ttl_s: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "role": role,
        "actor_id": actor_id,
        "dispute_id": dispute_id,
        "iat": now,
        "exp": now + ttl_s,
        "nonce": nonce(),
    })
}

/// A nonce never given before by any test process: 16 to 64 of `[A-Za-z0-9_-]`.
pub(crate) fn nonce() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!(
        "n-{nanos:x}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

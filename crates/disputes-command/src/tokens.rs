//! Signed actors: the `actor_token` a gateway puts in a command (docs/actor-tokens.md).
//!
//! A token is `v1.<claims>.<signature>`: the claims are JSON (role, actor id, dispute id, issued
//! and expiry times, nonce) in base64url, and the signature is Ed25519 over the ASCII bytes of
//! `v1.<claims>`, by one of the configured gateway keys. `Verifier::verify` checks, in order: the
//! token is there and well-formed, the signature, the lifetime, the expiry, that the token names
//! the command's actor and dispute, and last that its nonce was never used for another command.
//! Nonces are kept in their own sled db (`<data>/nonces`) until their token has expired, so a
//! restart does not reopen replays; only tokens that passed every other check are stored.
//!
//! This module knows nothing of NATS or wire codes: the service maps `TokenError` to `forbidden`
//! (or `unavailable` when the nonce store cannot answer).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine as _};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH};
use serde::Deserialize;
use serde_json::Value;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional as _;

/// The name of the command body's optional field that carries the token.
pub const TOKEN_FIELD: &str = "actor_token";
/// The only token version: the first segment of every token.
pub const TOKEN_VERSION: &str = "v1";
/// A longer token is refused before any decoding (a real one is about 300 bytes).
pub const TOKEN_BYTES_MAX: usize = 2048;
/// At most this many gateway keys are configured (each forged token costs one check per key).
pub const PUBLIC_KEYS_MAX: usize = 16;
/// A nonce is 16 to 64 characters of `[A-Za-z0-9_-]` (e.g. 16 random bytes in base64url).
pub const NONCE_CHARS_MIN: usize = 16;
pub const NONCE_CHARS_MAX: usize = 64;
/// How far in the future a token's `iat` may be (the gateway's clock runs ahead of ours).
pub const CLOCK_SKEW_S: i64 = 30;
/// The longest `token_ttl_max` a config may set: it bounds how long nonces are kept.
pub const TOKEN_TTL_MAX_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// Unexpired nonces kept at most; past it, new tokens are refused `unavailable` until some expire.
/// (At the default 5-minute lifetime this is over 3,000 commands a second, sustained.)
pub const NONCES_MAX: usize = 1_000_000;
/// Expired nonces removed per verified token (amortised pruning keeps the store at its live size).
const PRUNE_BATCH: usize = 64;
/// A nonce is kept this long past its token's expiry, against a clock stepping back.
const RETAIN_AFTER_EXPIRY_MS: i64 = 60_000;

/// base64url for the token's segments: padding optional, as gateways' libraries differ.
const TOKEN_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// Standard base64 for the configured public keys: padding optional.
const KEY_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a token was not accepted. Every variant but `Unavailable` is `forbidden` on the wire.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("this service requires an actor_token on every command")]
    Missing,
    #[error("actor_token is malformed: {0}")]
    Malformed(String),
    #[error("actor_token signature does not verify with any configured key")]
    BadSignature,
    #[error("actor_token is signed by a key that may not sign for role {role}")]
    RoleNotAllowed { role: String },
    #[error("actor_token lifetime of {lifetime_s}s exceeds token_ttl_max of {ttl_max_s}s")]
    TooLong { lifetime_s: i64, ttl_max_s: i64 },
    #[error("actor_token was issued in the future (iat {iat})")]
    NotYetValid { iat: i64 },
    #[error("actor_token expired (exp {exp})")]
    Expired { exp: i64 },
    #[error("actor_token is for {claimed}, not the command's {actual}")]
    WrongActor { claimed: String, actual: String },
    #[error("actor_token is for dispute {claimed}, not {actual}")]
    WrongDispute { claimed: String, actual: String },
    #[error("actor_token nonce was already used by another command")]
    Replayed,
    #[error("cannot check actor_token nonces now: {0}")]
    Unavailable(String),
}

/// The claims a token carries (docs/actor-tokens.md). Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub role: String,
    pub actor_id: String,
    pub dispute_id: String,
    pub iat: i64,
    pub exp: i64,
    pub nonce: String,
}

/// What the command says, which the token must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub role: &'a str,
    pub actor_id: &'a str,
    pub dispute_id: &'a str,
}

/// Removes `actor_token` from a command body before the domain parses it (the domain refuses
/// unknown fields); its value, if it was there.
pub fn take_token(body: &mut Value) -> Option<Value> {
    body.as_object_mut()?.remove(TOKEN_FIELD)
}

/// Why the token checker could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{key:?} is not a gateway key: {why}")]
    Key { key: String, why: String },
    #[error("open the nonce store at {path}: {error}")]
    Nonces { path: String, error: sled::Error },
}

/// One configured gateway key: standard base64 of the 32-byte Ed25519 public key.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SetupError> {
    let bad = |why: String| SetupError::Key {
        key: text.to_owned(),
        why,
    };
    let bytes = KEY_B64
        .decode(text.trim())
        .map_err(|e| bad(format!("not base64 ({e})")))?;
    let bytes: [u8; PUBLIC_KEY_LENGTH] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(format!("{} bytes, not an Ed25519 public key's 32", b.len())))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| bad(format!("not an Ed25519 public key ({e})")))
}

/// A gateway's public key, and the roles it may sign for (`None`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayKey {
    pub key: VerifyingKey,
    pub roles: Option<Vec<disputes_domain::Role>>,
}

impl GatewayKey {
    fn may_sign_for(&self, role: &str) -> bool {
        match &self.roles {
            None => true,
            Some(roles) => roles.iter().any(|r| r.as_str() == role),
        }
    }
}

/// Checks actor tokens against the configured keys and the nonces already seen.
pub struct Verifier {
    keys: Vec<GatewayKey>,
    ttl_max_s: i64,
    nonces: NonceStore,
}

impl Verifier {
    /// Checks tokens against `keys`, keeping seen nonces in `<data_dir>/nonces`.
    pub fn open(
        keys: Vec<GatewayKey>,
        ttl_max: Duration,
        data_dir: &Path,
        now: DateTime<Utc>,
    ) -> Result<Verifier, SetupError> {
        let nonces = NonceStore::open(&data_dir.join("nonces"), now)?;
        let ttl_max_s = i64::try_from(ttl_max.as_secs()).expect("ttl is bounded");
        Ok(Verifier::new(keys, ttl_max_s, nonces))
    }

    pub fn new(keys: Vec<GatewayKey>, ttl_max_s: i64, nonces: NonceStore) -> Verifier {
        assert!(!keys.is_empty() && keys.len() <= PUBLIC_KEYS_MAX);
        assert!(ttl_max_s > 0);
        Verifier {
            keys,
            ttl_max_s,
            nonces,
        }
    }

    pub fn keys_count(&self) -> usize {
        self.keys.len()
    }

    /// Accepts `token` for the command `expected`, whose idempotency fingerprint is `fingerprint`.
    /// The same token may come again with the same command (a retry), never with another.
    pub fn verify(
        &self,
        token: Option<&str>,
        expected: Expected<'_>,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Claims, TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        let (claims, key) = self.authentic(token)?;
        if !key.may_sign_for(&claims.role) {
            return Err(TokenError::RoleNotAllowed {
                role: claims.role.clone(),
            });
        }
        self.judge(&claims, expected, now)?;
        self.nonces.claim(&claims, fingerprint, now)?;
        Ok(claims)
    }

    /// The claims of a token signed by one of our keys, and that key.
    fn authentic(&self, token: &str) -> Result<(Claims, &GatewayKey), TokenError> {
        let malformed = |why: &str| TokenError::Malformed(why.to_owned());
        if token.len() > TOKEN_BYTES_MAX {
            return Err(malformed("longer than 2048 bytes"));
        }
        let (signed, signature) = token
            .rsplit_once('.')
            .ok_or_else(|| malformed("not v1.<claims>.<signature>"))?;
        let (version, claims) = signed
            .split_once('.')
            .ok_or_else(|| malformed("not v1.<claims>.<signature>"))?;
        if version != TOKEN_VERSION {
            return Err(malformed("unknown version (not v1)"));
        }
        let signature: [u8; SIGNATURE_LENGTH] = TOKEN_B64
            .decode(signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| malformed("the signature is not 64 bytes of base64url"))?;
        let signature = Signature::from_bytes(&signature);
        let key = self
            .keys
            .iter()
            .find(|gateway| {
                gateway
                    .key
                    .verify_strict(signed.as_bytes(), &signature)
                    .is_ok()
            })
            .ok_or(TokenError::BadSignature)?;
        let claims = TOKEN_B64
            .decode(claims)
            .map_err(|_| malformed("the claims are not base64url"))?;
        let claims: Claims = serde_json::from_slice(&claims)
            .map_err(|e| TokenError::Malformed(format!("the claims: {e}")))?;
        if !is_nonce(&claims.nonce) {
            return Err(malformed("the nonce is not 16 to 64 of [A-Za-z0-9_-]"));
        }
        Ok((claims, key))
    }

    /// Lifetime, expiry, and that the token is for this actor and dispute.
    fn judge(
        &self,
        claims: &Claims,
        expected: Expected<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), TokenError> {
        let lifetime_s = claims.exp.saturating_sub(claims.iat);
        if lifetime_s <= 0 {
            return Err(TokenError::Malformed("exp is not after iat".into()));
        }
        if lifetime_s > self.ttl_max_s {
            return Err(TokenError::TooLong {
                lifetime_s,
                ttl_max_s: self.ttl_max_s,
            });
        }
        if claims.iat > now.timestamp().saturating_add(CLOCK_SKEW_S) {
            return Err(TokenError::NotYetValid { iat: claims.iat });
        }
        if now.timestamp_millis() >= claims.exp.saturating_mul(1000) {
            return Err(TokenError::Expired { exp: claims.exp });
        }
        if claims.role != expected.role || claims.actor_id != expected.actor_id {
            return Err(TokenError::WrongActor {
                claimed: format!("{} {}", claims.role, claims.actor_id),
                actual: format!("{} {}", expected.role, expected.actor_id),
            });
        }
        if claims.dispute_id != expected.dispute_id {
            return Err(TokenError::WrongDispute {
                claimed: claims.dispute_id.clone(),
                actual: expected.dispute_id.to_owned(),
            });
        }
        Ok(())
    }
}

fn is_nonce(text: &str) -> bool {
    (NONCE_CHARS_MIN..=NONCE_CHARS_MAX).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The nonces of accepted tokens, each with the command it was first used for, until it expires.
///
/// Two trees: `nonces` (nonce → expiry in ms, big-endian, then the command's fingerprint) and
/// `by_expiry` (expiry ‖ nonce → nothing), the second only to prune in expiry order. Both are
/// written in one transaction and flushed before the command goes on, so a nonce survives a crash.
pub struct NonceStore {
    db: sled::Db,
    nonces: sled::Tree,
    by_expiry: sled::Tree,
    live: AtomicUsize,
}

impl NonceStore {
    /// Opens the store and drops the nonces that expired while the service was down.
    pub fn open(path: &Path, now: DateTime<Utc>) -> Result<NonceStore, SetupError> {
        let failed = |error| SetupError::Nonces {
            path: path.display().to_string(),
            error,
        };
        let db = disputes_store::open_sled(&sled::Config::new().path(path)).map_err(failed)?;
        let nonces = db.open_tree("nonces").map_err(failed)?;
        let by_expiry = db.open_tree("by_expiry").map_err(failed)?;
        let store = NonceStore {
            live: AtomicUsize::new(nonces.len()),
            db,
            nonces,
            by_expiry,
        };
        store.prune(now, NONCES_MAX).map_err(failed)?;
        Ok(store)
    }

    /// Nonces kept now (unexpired, or expired and not yet pruned).
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records the token's nonce for the command `fingerprint`. The same command may claim it
    /// again (a retry, or a concurrent copy); another command may not.
    fn claim(
        &self,
        claims: &Claims,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<(), TokenError> {
        let unavailable = |e: &dyn std::fmt::Display| TokenError::Unavailable(e.to_string());
        self.prune(now, PRUNE_BATCH).map_err(|e| unavailable(&e))?;
        let keep_until_ms = claims
            .exp
            .saturating_mul(1000)
            .saturating_add(RETAIN_AFTER_EXPIRY_MS);
        let mut value = keep_until_ms.to_be_bytes().to_vec();
        value.extend_from_slice(fingerprint.as_bytes());
        let mut index = keep_until_ms.to_be_bytes().to_vec();
        index.extend_from_slice(claims.nonce.as_bytes());
        let nonce = claims.nonce.as_bytes();
        let full = self.len() >= NONCES_MAX;
        let result =
            (&self.nonces, &self.by_expiry).transaction(|(nonces, by_expiry)| {
                match nonces.get(nonce)? {
                    Some(seen) if seen.get(8..) == Some(fingerprint.as_bytes()) => Ok(false),
                    Some(_) => Err(ConflictableTransactionError::Abort(TokenError::Replayed)),
                    None if full => Err(ConflictableTransactionError::Abort(
                        TokenError::Unavailable(format!(
                            "{NONCES_MAX} unexpired nonces are kept already; retry later"
                        )),
                    )),
                    None => {
                        nonces.insert(nonce, value.as_slice())?;
                        by_expiry.insert(index.as_slice(), &[])?;
                        Ok(true)
                    }
                }
            });
        match result {
            Ok(true) => {
                self.live.fetch_add(1, Ordering::Relaxed);
                self.db.flush().map_err(|e| unavailable(&e))?;
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(TransactionError::Abort(error)) => Err(error),
            Err(TransactionError::Storage(e)) => Err(unavailable(&e)),
        }
    }

    /// Removes up to `max` nonces whose retention has passed, oldest first.
    fn prune(&self, now: DateTime<Utc>, max: usize) -> sled::Result<()> {
        let now_ms = now.timestamp_millis();
        let mut removed = 0;
        for entry in self.by_expiry.iter().take(max) {
            let (key, _) = entry?;
            let keep_until_ms = i64::from_be_bytes(key[..8].try_into().expect("8-byte prefix"));
            if keep_until_ms > now_ms {
                break;
            }
            let nonce = &key[8..];
            // Two callers may prune the same entry: only the one that removed it counts it.
            let was_there = (&self.nonces, &self.by_expiry)
                .transaction(|(nonces, by_expiry)| {
                    by_expiry.remove(key.as_ref())?;
                    Ok::<_, ConflictableTransactionError<()>>(nonces.remove(nonce)?.is_some())
                })
                .map_err(|e| match e {
                    TransactionError::Storage(e) => e,
                    TransactionError::Abort(()) => unreachable!("pruning never aborts"),
                })?;
            removed += usize::from(was_there);
        }
        if removed > 0 {
            self.live.fetch_sub(removed, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Makes a token (for tests and as the reference for gateways; the service only verifies).
pub fn sign(key: &ed25519_dalek::SigningKey, claims: &Claims) -> String {
    use ed25519_dalek::Signer as _;
    let claims = TOKEN_B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signed = format!("{TOKEN_VERSION}.{claims}");
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", TOKEN_B64.encode(signature.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use ed25519_dalek::SigningKey;

    const NOW_S: i64 = 1_790_000_000;
    const FP: &str = "fingerprint-of-the-command";

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(NOW_S, 0).unwrap()
    }

    fn gateway() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn claims(nonce: &str) -> Claims {
        Claims {
            role: "buyer".into(),
            actor_id: "b-1".into(),
            dispute_id: "d-1".into(),
            iat: NOW_S - 10,
            exp: NOW_S + 60,
            nonce: nonce.into(),
        }
    }

    const EXPECTED: Expected<'static> = Expected {
        role: "buyer",
        actor_id: "b-1",
        dispute_id: "d-1",
    };

    fn verifier(dir: &Path) -> Verifier {
        let nonces = NonceStore::open(&dir.join("nonces"), now()).unwrap();
        let key = GatewayKey {
            key: gateway().verifying_key(),
            roles: None,
        };
        Verifier::new(vec![key], 300, nonces)
    }

    fn verify(v: &Verifier, token: &str) -> Result<Claims, TokenError> {
        v.verify(Some(token), EXPECTED, FP, now())
    }

    #[test]
    fn a_valid_token_is_accepted_once_and_again_only_for_the_same_command() {
        let dir = tempfile::tempdir().unwrap();
        let v = verifier(dir.path());
        let token = sign(&gateway(), &claims("nonce-0000000000001"));
        assert_eq!(verify(&v, &token).unwrap(), claims("nonce-0000000000001"));
        assert!(verify(&v, &token).is_ok(), "a retry of the same command");
        let other = v.verify(Some(&token), EXPECTED, "another command", now());
        assert!(matches!(other, Err(TokenError::Replayed)), "{other:?}");
    }

    #[test]
    fn seen_nonces_survive_a_reopen_and_are_pruned_once_expired() {
        let dir = tempfile::tempdir().unwrap();
        let token = sign(&gateway(), &claims("nonce-0000000000002"));
        {
            let v = verifier(dir.path());
            verify(&v, &token).unwrap();
            assert_eq!(v.nonces.len(), 1);
        }
        let v = verifier(dir.path());
        assert_eq!(v.nonces.len(), 1);
        let again = v.verify(Some(&token), EXPECTED, "another command", now());
        assert!(matches!(again, Err(TokenError::Replayed)), "{again:?}");
        let later = now() + chrono::TimeDelta::seconds(60 + 61);
        v.nonces.prune(later, PRUNE_BATCH).unwrap();
        assert!(v.nonces.is_empty());
        assert!(v.nonces.by_expiry.is_empty());
    }

    /// Tokens wrong in their form or signature, each with the reason it must be refused for.
    fn malformed_or_forged(good: &Claims) -> Vec<(String, &'static str)> {
        let signed = |c: Claims| sign(&gateway(), &c);
        vec![
            ("".into(), "malformed"),
            ("v1.abc".into(), "malformed"),
            (signed(good.clone()).replacen("v1.", "v2.", 1), "malformed"),
            (
                sign(&SigningKey::from_bytes(&[8; 32]), good),
                "does not verify",
            ),
            (forge(&signed(good.clone())), "does not verify"),
            ("x".repeat(TOKEN_BYTES_MAX + 1), "malformed"),
            (
                signed(Claims {
                    nonce: "short".into(),
                    ..good.clone()
                }),
                "nonce",
            ),
        ]
    }

    /// Well-signed tokens whose claims do not hold, each with the reason.
    fn wrong_claims(good: &Claims) -> Vec<(String, &'static str)> {
        let signed = |c: Claims| sign(&gateway(), &c);
        let timing = [
            (NOW_S - 10, NOW_S - 1, "expired"),
            (NOW_S - 10, NOW_S + 301, "exceeds token_ttl_max"),
            (NOW_S + 60, NOW_S + 120, "in the future"),
        ];
        let mut cases: Vec<(String, &'static str)> = timing
            .into_iter()
            .map(|(iat, exp, why)| {
                let claims = Claims {
                    iat,
                    exp,
                    ..good.clone()
                };
                (signed(claims), why)
            })
            .collect();
        let other_dispute = Claims {
            dispute_id: "d-2".into(),
            ..good.clone()
        };
        let other_actor = Claims {
            actor_id: "b-2".into(),
            ..good.clone()
        };
        let other_role = Claims {
            role: "seller".into(),
            ..good.clone()
        };
        cases.push((signed(other_dispute), "for dispute d-2"));
        cases.push((signed(other_actor), "for buyer b-2"));
        cases.push((signed(other_role), "for seller b-1"));
        cases
    }

    #[test]
    fn each_bad_token_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let v = verifier(dir.path());
        let good = claims("nonce-0000000000003");
        let cases = malformed_or_forged(&good)
            .into_iter()
            .chain(wrong_claims(&good));
        for (token, why) in cases {
            let error = verify(&v, &token).expect_err(&token);
            assert!(error.to_string().contains(why), "{token}: {error}");
        }
        assert!(v.nonces.is_empty(), "no refused token took a nonce");
        let missing = v.verify(None, EXPECTED, FP, now()).unwrap_err();
        assert!(matches!(missing, TokenError::Missing));
    }

    /// The same token with one bit of its signature flipped.
    fn forge(token: &str) -> String {
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = TOKEN_B64.decode(signature).unwrap();
        bytes[10] ^= 1;
        format!("{signed}.{}", TOKEN_B64.encode(bytes))
    }

    #[test]
    fn unknown_claims_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v = verifier(dir.path());
        let mut value = serde_json::to_value(claims("nonce-0000000000004")).unwrap();
        value["admin"] = true.into();
        let payload = TOKEN_B64.encode(serde_json::to_vec(&value).unwrap());
        let signed = format!("v1.{payload}");
        use ed25519_dalek::Signer as _;
        let sig = TOKEN_B64.encode(gateway().sign(signed.as_bytes()).to_bytes());
        let error = verify(&v, &format!("{signed}.{sig}")).unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }

    #[test]
    fn a_key_bound_to_roles_signs_only_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let nonces = NonceStore::open(&dir.path().join("nonces"), now()).unwrap();
        let buyers_only = GatewayKey {
            key: gateway().verifying_key(),
            roles: Some(vec![disputes_domain::Role::Buyer]),
        };
        let v = Verifier::new(vec![buyers_only], 300, nonces);
        assert!(verify(&v, &sign(&gateway(), &claims("nonce-0000000000009"))).is_ok());
        let as_seller = Claims {
            role: "seller".into(),
            actor_id: "s-1".into(),
            ..claims("nonce-0000000000010")
        };
        let expected = Expected {
            role: "seller",
            actor_id: "s-1",
            dispute_id: "d-1",
        };
        let refused = v.verify(Some(&sign(&gateway(), &as_seller)), expected, FP, now());
        assert!(
            matches!(refused, Err(TokenError::RoleNotAllowed { ref role }) if role == "seller"),
            "{refused:?}"
        );
    }

    #[test]
    fn padded_segments_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let v = verifier(dir.path());
        let token = sign(&gateway(), &claims("nonce-0000000000005"));
        let (signed, signature) = token.rsplit_once('.').unwrap();
        assert!(verify(&v, &format!("{signed}.{signature}==")).is_ok());
    }

    #[test]
    fn the_token_field_is_taken_off_the_body() {
        let mut body =
            serde_json::json!({"command_id": "c-1", "actor_token": "v1.x.y", "data": {}});
        assert_eq!(take_token(&mut body), Some(Value::String("v1.x.y".into())));
        assert_eq!(body, serde_json::json!({"command_id": "c-1", "data": {}}));
        for mut unchanged in [
            serde_json::json!([1]),
            serde_json::json!({"command_id": "c-1"}),
        ] {
            let before = unchanged.clone();
            assert_eq!(take_token(&mut unchanged), None);
            assert_eq!(unchanged, before);
        }
    }

    #[test]
    fn public_keys_are_base64_of_32_bytes() {
        let key = gateway().verifying_key();
        let text = KEY_B64.encode(key.as_bytes());
        assert_eq!(parse_public_key(&text).unwrap(), key);
        assert_eq!(parse_public_key(text.trim_end_matches('=')).unwrap(), key);
        assert!(parse_public_key("REPLACE-with-a-key=").is_err());
        assert!(parse_public_key(&KEY_B64.encode([1u8; 31])).is_err());
    }
}

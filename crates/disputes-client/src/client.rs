//! [`Client`]: the connection, the subjects, and one request with its bounded retries.

use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::HeaderMap;
use bytes::Bytes;
use disputes_domain::ErrorCode;
use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// How requests are sent: each attempt's timeout, how many attempts, the pause between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How long one attempt waits for its reply (default 6 s: a `min_seq` query waits up to 5 s
    /// on the service's side, so keep it above that).
    pub timeout: Duration,
    /// Attempts in all, the first included (default 4). 1 means no retry.
    pub attempts: u32,
    /// The pause before the second attempt; it doubles for each one after (default 100 ms).
    pub backoff: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            timeout: Duration::from_secs(6),
            attempts: 4,
            backoff: Duration::from_millis(100),
        }
    }
}

/// A client of one disputes deployment: its NATS connection and subject prefix. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) nats: async_nats::Client,
    pub(crate) prefix: String,
    pub(crate) events_stream: String,
    pub(crate) options: Options,
}

impl Client {
    /// Connects to the NATS server at `url` (default prefix `disputes`, stream `DISPUTE_EVENTS`).
    pub async fn connect(url: &str) -> Result<Client, Error> {
        let nats = async_nats::connect(url).await.map_err(Error::nats)?;
        Ok(Client::new(nats))
    }

    /// A client on a connection of your own (credentials, TLS, a name for the server's monitoring).
    pub fn new(nats: async_nats::Client) -> Client {
        Client {
            nats,
            prefix: "disputes".to_owned(),
            events_stream: "DISPUTE_EVENTS".to_owned(),
            options: Options::default(),
        }
    }

    /// For a deployment with another `[nats] subject_prefix` and `events_stream`.
    pub fn with_names(mut self, subject_prefix: &str, events_stream: &str) -> Client {
        subject_prefix.clone_into(&mut self.prefix);
        events_stream.clone_into(&mut self.events_stream);
        self
    }

    pub fn with_options(mut self, options: Options) -> Client {
        self.options = options;
        self
    }

    /// The connection underneath.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// Sends `body` to `subject` and reads an `{"ok": true, …}` reply, retrying what is transient
    /// ([`Error::is_transient`]) up to [`Options::attempts`] times with the very same bytes.
    pub(crate) async fn request(
        &self,
        subject: String,
        body: Bytes,
        headers: Option<&HeaderMap>,
    ) -> Result<Value, Error> {
        self.request_with(subject, body, headers, read_reply).await
    }

    /// [`Client::request`] with the reply read by `read` (a typed, one-pass reader).
    pub(crate) async fn request_with<T>(
        &self,
        subject: String,
        body: Bytes,
        headers: Option<&HeaderMap>,
        read: fn(&[u8]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let attempts = self.options.attempts.max(1);
        let mut pause = self.options.backoff;
        let mut attempt = 1;
        loop {
            let result = self
                .attempt(&subject, body.clone(), headers, attempt)
                .await
                .and_then(|payload| read(&payload));
            match result {
                Err(e) if e.is_transient() && attempt < attempts => {
                    tracing::debug!(%subject, attempt, error = %e, "retrying");
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn attempt(
        &self,
        subject: &str,
        body: Bytes,
        headers: Option<&HeaderMap>,
        attempt: u32,
    ) -> Result<Bytes, Error> {
        let mut request = async_nats::Request::new()
            .payload(body)
            .timeout(Some(self.options.timeout));
        if let Some(headers) = headers {
            request = request.headers(headers.clone());
        }
        let reply = match self.nats.send_request(subject.to_owned(), request).await {
            Ok(reply) => reply,
            Err(e) => {
                let subject = subject.to_owned();
                return Err(match e.kind() {
                    RequestErrorKind::TimedOut => Error::TimedOut {
                        subject,
                        attempts: attempt,
                    },
                    RequestErrorKind::NoResponders => Error::NoResponders {
                        subject,
                        attempts: attempt,
                    },
                    RequestErrorKind::Other => Error::nats(e),
                });
            }
        };
        Ok(reply.payload)
    }
}

/// A refusal's `error`.
#[derive(Deserialize)]
pub(crate) struct RefusalBody {
    code: String,
    #[serde(default)]
    message: String,
}

impl RefusalBody {
    pub(crate) fn into_error(self) -> Error {
        match ErrorCode::parse(&self.code) {
            Some(code) => Error::Refused {
                code,
                message: self.message,
            },
            None => Error::Protocol(format!("a refusal with an unknown code {:?}", self.code)),
        }
    }
}

/// `{"ok": true, …}` as it is, or the refusal it carries.
pub(crate) fn read_reply(payload: &[u8]) -> Result<Value, Error> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| Error::Protocol(format!("a reply that is not JSON: {e}")))?;
    match value.get("ok") {
        Some(Value::Bool(true)) => Ok(value),
        Some(Value::Bool(false)) => {
            let refusal: RefusalBody = serde_json::from_value(value["error"].clone())
                .map_err(|e| Error::Protocol(format!("a refusal without its error: {e}")))?;
            Err(refusal.into_error())
        }
        _ => Err(Error::Protocol(format!("a reply without \"ok\": {value}"))),
    }
}

/// Reads `T` off an `{"ok": true, …}` reply.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::Protocol(format!("unexpected reply: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_typed_by_its_code() {
        let refused = read_reply(br#"{"ok":false,"error":{"code":"invalid_state","message":"m"}}"#);
        assert_eq!(
            refused,
            Err(Error::Refused {
                code: ErrorCode::InvalidState,
                message: "m".into()
            })
        );
        assert!(read_reply(br#"{"ok":true,"x":1}"#).is_ok());
        assert!(matches!(
            read_reply(br#"{"ok":false,"error":{"code":"bogus"}}"#),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(read_reply(b"[]"), Err(Error::Protocol(_))));
    }

    #[test]
    fn only_unavailable_timeouts_and_no_responders_are_retried() {
        let refused = |code| Error::Refused {
            code,
            message: String::new(),
        };
        assert!(refused(ErrorCode::Unavailable).is_transient());
        assert!(!refused(ErrorCode::VersionConflict).is_transient());
        assert!(Error::TimedOut {
            subject: "s".into(),
            attempts: 1
        }
        .is_transient());
        assert!(!Error::Protocol("x".into()).is_transient());
    }
}

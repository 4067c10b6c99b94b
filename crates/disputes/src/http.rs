//! The HTTP side, on `[http] listen`: `/metrics` (Prometheus text), `/healthz` and `/readyz`, the
//! console (a read-only page, `console/`), and the JSON query API it reads: the NATS queries over
//! HTTP (`/api/v1/query/<name>`, the same query code, so the same filters, `min_seq` and errors),
//! `/api/v1/events` (server-sent events as the read models advance) and `/api/v1/info`.
//!
//! The listener is bound before anything else starts, so a probe gets `503 starting: …` during
//! start-up instead of a refused connection. What the routes read comes through [`Site`],
//! implemented by the service, which fills it in as start-up proceeds.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::shutdown::Shutdown;
use crate::wire::refusal_json;
use disputes_domain::{ErrorCode, Refusal};

/// The longest query body accepted over HTTP (as over NATS: `[limits] body_bytes_max` is 64 KiB by default).
const QUERY_BODY_BYTES_MAX: usize = 64 * 1024;
/// Queries answered at once over HTTP; more wait their turn.
const QUERIES_MAX: usize = 32;
/// Open `/api/v1/events` streams; more get 503.
const EVENT_STREAMS_MAX: usize = 64;
/// The shortest gap between two `projected` events on one stream: the page re-reads on each.
const EVENTS_MIN_GAP: Duration = Duration::from_millis(250);
/// Integer parameters of the query API's GET form (the rest are strings); `after` is one only
/// for `history` (a version), in `list` it is a cursor.
const INTEGER_PARAMS: [&str; 2] = ["limit", "min_seq"];

/// What the routes read: the service implements it (`service.rs`).
pub(crate) trait Site: Send + Sync + 'static {
    /// The Prometheus text of `/metrics`.
    fn metrics(&self) -> String;
    /// `Err(why)` when the process is broken or not yet connected: `/healthz`.
    fn healthy(&self) -> Result<(), String>;
    /// `Err(why)` until start-up is done (store open, lease held, read models caught up) and
    /// whenever not healthy: `/readyz`.
    fn ready(&self) -> Result<(), String>;
    /// Answers one query: the reply's bytes (`{"ok": true, …}` or a refusal) and its wire code
    /// (`"ok"` or the refusal's).
    fn query(&self, name: String, body: Vec<u8>) -> impl Future<Output = (Vec<u8>, String)> + Send;
    /// The last seq the read models applied.
    fn projected(&self) -> watch::Receiver<u64>;
    /// `/api/v1/info`.
    fn info(&self) -> Value;
    /// Counts one answered HTTP request.
    fn count_request(&self, route: &'static str, status: u16);
}

pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

struct Shared<T> {
    site: Arc<T>,
    queries: Semaphore,
    streams: Arc<Semaphore>,
    shutdown: Shutdown,
}

/// Serves until `shutdown` trips (open event streams end with it).
pub(crate) async fn serve<T: Site>(listener: TcpListener, site: Arc<T>, shutdown: Shutdown) {
    let shared = Arc::new(Shared {
        site: site.clone(),
        queries: Semaphore::new(QUERIES_MAX),
        streams: Arc::new(Semaphore::new(EVENT_STREAMS_MAX)),
        shutdown: shutdown.clone(),
    });
    let app = router(shared);
    let stop = async move { shutdown.wait().await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "the HTTP endpoint failed");
    }
}

fn router<T: Site>(shared: Arc<Shared<T>>) -> Router {
    let counted = shared.site.clone();
    Router::new()
        .route("/metrics", get(metrics::<T>))
        .route("/healthz", get(healthz::<T>))
        .route("/readyz", get(readyz::<T>))
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        // Browsers ask for it on every page; the console has none.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/console/",
            get(|| async { asset("text/html; charset=utf-8", CONSOLE_HTML) }),
        )
        .route(
            "/console/console.js",
            get(|| async { asset(JS, CONSOLE_JS) }),
        )
        .route("/console/chain.js", get(|| async { asset(JS, CHAIN_JS) }))
        .route(
            "/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
        .route("/api/v1/info", get(info::<T>))
        .route("/api/v1/events", get(events::<T>))
        .route(
            "/api/v1/query/{name}",
            get(query_get::<T>).post(query_post::<T>),
        )
        .with_state(shared)
        .layer(axum::extract::DefaultBodyLimit::max(QUERY_BODY_BYTES_MAX))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let site = counted.clone();
            async move {
                let route = route_label(request.uri().path());
                let response = next.run(request).await;
                site.count_request(route, response.status().as_u16());
                response
            }
        }))
}

const JS: &str = "text/javascript; charset=utf-8";
const CONSOLE_HTML: &str = include_str!("../console/index.html");
const CONSOLE_JS: &str = include_str!("../console/console.js");
const CHAIN_JS: &str = include_str!("../console/chain.js");
const CONSOLE_CSS: &str = include_str!("../console/console.css");

/// A fixed label per route, so requests for arbitrary paths cannot create metric series.
fn route_label(path: &str) -> &'static str {
    match path {
        "/metrics" => "/metrics",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/api/v1/info" => "/api/v1/info",
        "/api/v1/events" => "/api/v1/events",
        p if p.starts_with("/api/v1/query/") => "/api/v1/query",
        p if p == "/" || p.starts_with("/console") => "/console",
        _ => "other",
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The page is tiny and versioned with the binary: no stale copy after an upgrade.
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn metrics<T: Site>(State(shared): State<Arc<Shared<T>>>) -> Response {
    let site = shared.site.clone();
    // Reading the read models' stats touches sled: off the async threads.
    let text = tokio::task::spawn_blocking(move || site.metrics())
        .await
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

async fn healthz<T: Site>(State(shared): State<Arc<Shared<T>>>) -> Response {
    probe(shared.site.healthy())
}

async fn readyz<T: Site>(State(shared): State<Arc<Shared<T>>>) -> Response {
    probe(shared.site.ready())
}

fn probe(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn info<T: Site>(State(shared): State<Arc<Shared<T>>>) -> Response {
    axum::Json(shared.site.info()).into_response()
}

async fn query_post<T: Site>(
    State(shared): State<Arc<Shared<T>>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    answer(&shared, name, body.to_vec()).await
}

async fn query_get<T: Site>(
    State(shared): State<Arc<Shared<T>>>,
    Path(name): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    match params_body(&name, params) {
        Ok(body) => answer(&shared, name, body).await,
        Err(message) => {
            let refusal = Refusal::new(ErrorCode::InvalidRequest, message);
            let body = serde_json::to_vec(&refusal_json(&refusal)).expect("refusals serialize");
            reply(body, ErrorCode::InvalidRequest.as_str())
        }
    }
}

/// The JSON body a GET's parameters stand for: strings, but for the integer parameters, which
/// pass as JSON integers when they are integer literals (anything else stays a string, which the
/// query refuses as it would over NATS). A repeated parameter is refused like a repeated key.
fn params_body(name: &str, params: Vec<(String, String)>) -> Result<Vec<u8>, String> {
    let mut body = Map::new();
    for (key, value) in params {
        let integer =
            INTEGER_PARAMS.contains(&key.as_str()) || (name == "history" && key == "after");
        let value = match value.parse::<i64>() {
            Ok(n) if integer => Value::from(n),
            _ => Value::String(value),
        };
        if body.insert(key.clone(), value).is_some() {
            return Err(format!("the parameter {key:?} is given twice"));
        }
    }
    Ok(serde_json::to_vec(&body).expect("a map serializes"))
}

async fn answer<T: Site>(shared: &Shared<T>, name: String, body: Vec<u8>) -> Response {
    let Ok(_permit) = shared.queries.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let (bytes, code) = shared.site.query(name, body).await;
    reply(bytes, &code)
}

fn reply(bytes: Vec<u8>, code: &str) -> Response {
    // The same status per code as the services API's `Nats-Service-Error-Code`.
    let status = match ErrorCode::parse(code) {
        None if code == "ok" => StatusCode::OK,
        None => StatusCode::INTERNAL_SERVER_ERROR,
        Some(code) => StatusCode::from_u16(crate::micro::status_of(code))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn events<T: Site>(State(shared): State<Arc<Shared<T>>>) -> Response {
    let Ok(permit) = shared.streams.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams open\n",
        )
            .into_response();
    };
    let stream = projected_events(shared.site.projected(), shared.shutdown.clone(), permit);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// `projected` events: one at once, then one per advance of the read models (at most one per
/// [`EVENTS_MIN_GAP`]), until shutdown.
fn projected_events(
    applied: watch::Receiver<u64>,
    shutdown: Shutdown,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = (applied, shutdown, permit, true);
    futures::stream::unfold(state, |(mut applied, shutdown, permit, first)| async move {
        if !first {
            if shutdown.sleep(EVENTS_MIN_GAP).await {
                return None;
            }
            tokio::select! {
                changed = applied.changed() => changed.ok()?,
                _ = shutdown.wait() => return None,
            }
        }
        let seq = *applied.borrow_and_update();
        let event = Event::default()
            .event("projected")
            .data(format!("{{\"seq\":{seq}}}"));
        Some((Ok(event), (applied, shutdown, permit, false)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_parameters_become_the_body_a_nats_query_carries() {
        let params = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let body = |name, pairs: &[(&str, &str)]| {
            let bytes = params_body(name, params(pairs)).unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        };
        assert_eq!(
            body(
                "list",
                &[("seller_id", "123"), ("limit", "5"), ("after", "42")]
            ),
            serde_json::json!({"seller_id": "123", "limit": 5, "after": "42"})
        );
        assert_eq!(
            body(
                "history",
                &[("dispute_id", "d-1"), ("after", "3"), ("min_seq", "x")]
            ),
            serde_json::json!({"dispute_id": "d-1", "after": 3, "min_seq": "x"})
        );
        assert!(params_body("get", params(&[("dispute_id", "a"), ("dispute_id", "b")])).is_err());
    }

    #[test]
    fn every_path_counts_under_a_fixed_route_label() {
        assert_eq!(route_label("/api/v1/query/anything"), "/api/v1/query");
        assert_eq!(route_label("/console/x.js"), "/console");
        assert_eq!(route_label("/random/path"), "other");
    }
}

//! `/metrics` (Prometheus text) and `/healthz` over a minimal HTTP/1.1 server.
//!
//! Two GET routes do not justify an HTTP framework: each connection reads one request head
//! (capped), answers, and closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::shutdown::Shutdown;

const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// The whole exchange of one connection: request head in, response out.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections answered at once (a scraper and a health check need a few).
const CONNECTIONS_MAX: usize = 16;

/// Renders a route's body, or `None` for 404; `healthy` decides /healthz's status.
pub(crate) trait Routes: Send + Sync + 'static {
    fn metrics(&self) -> String;
    fn healthy(&self) -> Result<(), String>;
}

pub(crate) async fn serve(listener: TcpListener, routes: Arc<dyn Routes>, shutdown: Shutdown) {
    let connections = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        // Beyond the cap, connections wait in the listen backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("never closed"),
            _ = shutdown.wait() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => return,
        };
        let Ok((socket, _)) = accepted else { continue };
        let routes = routes.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(READ_TIMEOUT, answer(socket, routes)).await;
            drop(permit);
        });
    }
}

pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn answer(mut socket: tokio::net::TcpStream, routes: Arc<dyn Routes>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await?;
        if n == 0 || head.len() + n > REQUEST_HEAD_BYTES_MAX {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", crate::metrics::CONTENT_TYPE, routes.metrics()),
        ("GET", "/healthz") => match routes.healthy() {
            Ok(()) => ("200 OK", "text/plain", "ok\n".to_owned()),
            Err(why) => ("503 Service Unavailable", "text/plain", format!("{why}\n")),
        },
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

//! `disputes healthcheck`: one `GET` to the service's own HTTP endpoint, for health checks in images
//! that have no HTTP client.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use anyhow::Context as _;

const TIMEOUT: Duration = Duration::from_secs(5);
/// A probe's answer is a line; anything longer is cut.
const BODY_BYTES_MAX: u64 = 64 * 1024;

/// `GET path` on `addr` (host:port): the status code and the body.
pub fn get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let socket = addr
        .to_socket_addrs()
        .with_context(|| format!("resolve {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&socket, TIMEOUT)
        .with_context(|| format!("connect to the service's HTTP endpoint at {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream
        .take(BODY_BYTES_MAX)
        .read_to_end(&mut response)
        .with_context(|| format!("read the answer of {addr}{path}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("{addr}{path} answered no HTTP response"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{addr}{path} answered no status: {head:?}"))?;
    Ok((status, body.to_owned()))
}

//! A bare HTTP/1.1 GET, for what the operator serves on its listeners (no client library: the
//! tests read the status line and the body as they came).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET `path` from the listener at `addr`: the status and the body.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header end")?;
    let status = std::str::from_utf8(answer.get(9..12).context("no status")?)?.parse()?;
    Ok((status, answer[split + 4..].to_vec()))
}

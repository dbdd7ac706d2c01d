//! An image server on loopback for the image-integrity tests: serves fixed bodies by path and
//! counts the GETs of each, so a test can tell how often the operator downloaded an image.
//! The simulated BMCs accept its URLs for InsertMedia (they fetch nothing).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Files = Arc<BTreeMap<String, Vec<u8>>>;
type Gets = Arc<Mutex<BTreeMap<String, usize>>>;

#[derive(Debug)]
pub struct ImageServer {
    addr: SocketAddr,
    gets: Gets,
    task: tokio::task::JoinHandle<()>,
}

impl ImageServer {
    /// Serves `files` (path, body); any other path is 404.
    pub async fn start(files: Vec<(&str, Vec<u8>)>) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the image server")?;
        let addr = listener.local_addr()?;
        let files: Files = Arc::new(files.into_iter().map(|(p, b)| (p.to_string(), b)).collect());
        let gets: Gets = Arc::default();
        let counted = gets.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, files.clone(), counted.clone()));
            }
        });
        Ok(Self { addr, gets, task })
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GETs of `path` so far (any query).
    pub fn gets(&self, path: &str) -> usize {
        self.gets
            .lock()
            .map(|g| g.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP/1.1 exchange, then close.
async fn serve(mut stream: TcpStream, files: Files, gets: Gets) {
    let mut request = Vec::new();
    let mut buf = [0u8; 2048];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.len() > 64 << 10 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&request);
    let mut words = text.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    if method == "GET"
        && let Ok(mut g) = gets.lock()
    {
        *g.entry(path.clone()).or_insert(0) += 1;
    }
    let _ = match files.get(&path) {
        Some(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            );
            match stream.write_all(head.as_bytes()).await {
                Ok(()) if method == "GET" => stream.write_all(body).await,
                other => other,
            }
        }
        None => {
            stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await
        }
    };
    let _ = stream.shutdown().await;
}

/// `sha256:<hex>` of `body`, as a user writes `spec.image.checksum`.
pub fn sha256_checksum(body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

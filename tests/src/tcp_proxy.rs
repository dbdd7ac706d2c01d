//! A TCP proxy a test controls, to play a network that fails: bytes pass through, or the
//! proxy black-holes them (connections stay open, nothing arrives either way, as when a
//! route or a firewall drops packets), or cuts every connection. Point a client at
//! [`TcpProxy::addr`] instead of the real server.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let proxy = labpods_tests::tcp_proxy::TcpProxy::start("127.0.0.1:6443".parse()?).await?;
//! // ... a client talks to proxy.addr() ...
//! proxy.black_hole(); // reads and writes hang, timeouts must fire
//! proxy.resume(); // bytes held back are delivered, as TCP retransmission would
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes flow both ways.
    PassThrough,
    /// Connections (old and new) stay open but no byte moves; what was read is held and
    /// delivered on resume, so a resumed stream is intact.
    BlackHole,
}

/// A running proxy; stops (closing every connection) on drop.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Bumped by [`TcpProxy::cut`]: connections opened before it close.
    generation: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    acceptor: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on an ephemeral 127.0.0.1 port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy")?;
        let addr = listener.local_addr().context("the proxy's address")?;
        let (mode, mode_rx) = watch::channel(Mode::PassThrough);
        let (generation, generation_rx) = watch::channel(0);
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&accepted);
        let acceptor = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                let connection = Connection {
                    mode: mode_rx.clone(),
                    generation: generation_rx.clone(),
                    born: *generation_rx.borrow(),
                };
                tokio::spawn(connection.run(client, upstream));
            }
        });
        Ok(Self {
            addr,
            mode,
            generation,
            accepted,
            acceptor,
        })
    }

    /// A proxy in front of the apiserver `kubeconfig` names, and a copy of that kubeconfig
    /// at `out` that goes through it (the apiserver's certificate names 127.0.0.1, so TLS
    /// still verifies).
    pub async fn for_kubeconfig(kubeconfig: &Path, out: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(kubeconfig)
            .with_context(|| format!("reading {}", kubeconfig.display()))?;
        let mut config: serde_yaml::Value = serde_yaml::from_str(&text)?;
        let server = config["clusters"][0]["cluster"]["server"]
            .as_str()
            .context("the kubeconfig names no server")?;
        let authority = server
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or_default();
        let upstream: SocketAddr = authority
            .parse()
            .with_context(|| format!("the server {server} is not an IP address and port"))?;
        let proxy = Self::start(upstream).await?;
        config["clusters"][0]["cluster"]["server"] = proxy.https_url().into();
        std::fs::write(out, serde_yaml::to_string(&config)?)
            .with_context(|| format!("writing {}", out.display()))?;
        Ok(proxy)
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`, for a kubeconfig's `server`.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Stops every byte, on open connections and on new ones.
    pub fn black_hole(&self) {
        self.mode.send_replace(Mode::BlackHole);
    }

    /// Lets bytes flow again, the held ones first.
    pub fn resume(&self) {
        self.mode.send_replace(Mode::PassThrough);
    }

    /// Closes every open connection (both sides see the stream end); new ones work as the
    /// mode says.
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}

/// One proxied connection's view of the controls.
#[derive(Clone)]
struct Connection {
    mode: watch::Receiver<Mode>,
    generation: watch::Receiver<u64>,
    born: u64,
}

impl Connection {
    async fn run(mut self, client: TcpStream, upstream: SocketAddr) {
        // A black hole swallows the handshake too: connect only once traffic flows.
        if !self.flowing().await {
            return;
        }
        let Ok(server) = TcpStream::connect(upstream).await else {
            return;
        };
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let mut cut = self.clone();
        tokio::select! {
            () = self.clone().pump(client_read, server_write) => {}
            () = self.pump(server_read, client_write) => {}
            () = cut.until_cut() => {}
        }
    }

    /// Copies one direction, holding each chunk while the mode is BlackHole.
    async fn pump(
        mut self,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
    ) {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            if !self.flowing().await {
                return;
            }
            let n = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if !self.flowing().await {
                return;
            }
            if to.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    }

    /// Waits until bytes may flow; false once the proxy is gone.
    async fn flowing(&mut self) -> bool {
        self.mode
            .wait_for(|mode| *mode == Mode::PassThrough)
            .await
            .is_ok()
    }

    async fn until_cut(&mut self) {
        let born = self.born;
        // An error means the proxy was dropped: close as well.
        let _ = self.generation.wait_for(|g| *g != born).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::time::Duration;

    use super::*;

    /// An echo server, the upstream.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, text: &[u8]) -> Vec<u8> {
        stream.write_all(text).await.unwrap();
        let mut back = vec![0u8; text.len()];
        stream.read_exact(&mut back).await.unwrap();
        back
    }

    #[tokio::test]
    async fn passes_bytes_through() {
        let proxy = TcpProxy::start(echo().await).await.unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"hello").await, b"hello");
        assert_eq!(proxy.connections_accepted(), 1);
    }

    #[tokio::test]
    async fn black_hole_holds_bytes_and_resume_delivers_them() {
        let proxy = TcpProxy::start(echo().await).await.unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"one").await, b"one");
        proxy.black_hole();
        stream.write_all(b"two").await.unwrap();
        let mut back = [0u8; 3];
        let read = tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut back));
        assert!(read.await.is_err(), "a black hole let bytes through");
        proxy.resume();
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"two");
    }

    #[tokio::test]
    async fn black_hole_stalls_new_connections_until_resumed() {
        let proxy = TcpProxy::start(echo().await).await.unwrap();
        proxy.black_hole();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        stream.write_all(b"late").await.unwrap();
        let mut back = [0u8; 4];
        let read = tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut back));
        assert!(
            read.await.is_err(),
            "a black hole let a new connection through"
        );
        proxy.resume();
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"late");
    }

    #[tokio::test]
    async fn cut_closes_open_connections_only() {
        let proxy = TcpProxy::start(echo().await).await.unwrap();
        let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut old, b"x").await, b"x");
        proxy.cut();
        let mut rest = Vec::new();
        old.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut new, b"y").await, b"y");
    }
}

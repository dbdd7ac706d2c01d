//! Per-BMC listeners for `axum::serve`: each tags its connections with the host index, so one
//! shared router serves the whole fleet (a router per host would cost memory at 10k hosts).

use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Which BMC a connection reached (1-based index).
#[derive(Clone, Copy, Debug)]
pub(crate) struct HostConn {
    pub index: usize,
}

impl Connected<IncomingStream<'_, PlainListener>> for HostConn {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Self {
        *stream.remote_addr()
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for HostConn {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        *stream.remote_addr()
    }
}

async fn accept_tcp(tcp: &TcpListener) -> TcpStream {
    loop {
        match tcp.accept().await {
            Ok((stream, _)) => return stream,
            // Out of fds or a reset before accept: back off briefly, as axum's own listener does.
            Err(err) => {
                tracing::debug!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Plain HTTP.
#[derive(Debug)]
pub(crate) struct PlainListener {
    pub tcp: TcpListener,
    pub index: usize,
}

impl Listener for PlainListener {
    type Io = TcpStream;
    type Addr = HostConn;

    async fn accept(&mut self) -> (TcpStream, HostConn) {
        (accept_tcp(&self.tcp).await, HostConn { index: self.index })
    }

    fn local_addr(&self) -> std::io::Result<HostConn> {
        Ok(HostConn { index: self.index })
    }
}

/// HTTPS; the handshake runs in the accept loop, bounded so a stalled client cannot block it.
pub(crate) struct TlsListener {
    pub tcp: TcpListener,
    pub index: usize,
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = HostConn;

    async fn accept(&mut self) -> (Self::Io, HostConn) {
        loop {
            let tcp = accept_tcp(&self.tcp).await;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => return (tls, HostConn { index: self.index }),
                Ok(Err(err)) => tracing::debug!(%err, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<HostConn> {
        Ok(HostConn { index: self.index })
    }
}

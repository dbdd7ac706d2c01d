//! Errors of starting and running a fleet.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("a fleet needs at least one host")]
    NoHosts,
    #[error("port base {port_base} + {hosts} hosts exceeds port 65535")]
    PortRange { port_base: u16, hosts: usize },
    #[error(
        "{hosts} hosts need about {needed} file descriptors but the soft limit is {soft}; raise it (`ulimit -n {needed}`)"
    )]
    FdLimit {
        hosts: usize,
        needed: u64,
        soft: u64,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot generate the TLS certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Tls(#[from] rustls::Error),
}

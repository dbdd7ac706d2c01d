//! The test-support library's one error type.

use std::path::PathBuf;

/// Where the build script lives, for the hint in [`Error::MissingBinary`].
pub const INSTALL_HINT: &str = "run `cargo xtask test` (it builds the control plane once), \
     or build it alone with `bash tests/support/build-control-plane.sh newest`";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{binary} not found (looked in {looked_in}): {INSTALL_HINT}")]
    MissingBinary {
        binary: &'static str,
        looked_in: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("generating the test PKI: {0}")]
    Pki(#[from] rcgen::Error),
    #[error("{component} exited ({status}); the end of {}:\n{tail}", log.display())]
    Exited {
        component: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{component} was not ready within {seconds} s; the end of {}:\n{tail}", log.display())]
    NotReady {
        component: String,
        seconds: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("CRD {name} was not Established within {seconds} s")]
    CrdNotEstablished { name: String, seconds: u64 },
    #[error("reading the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("watching for a condition: {0}")]
    Wait(#[from] kube::runtime::wait::Error),
    #[error("YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("kubectl {args} failed ({status}):\n{stderr}")]
    Kubectl {
        args: String,
        status: String,
        stderr: String,
    },
    /// A wait saw what must never happen (e.g. an unwiped host back in the pool).
    #[error("invariant broken: {0}")]
    Invariant(String),
    #[error("gave up after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
    #[error("the control plane failed to start earlier in this process: {0}")]
    StartFailedEarlier(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Errors a person can act on, and the exit code each one ends the process with.

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag's value makes no sense (exit 2, like clap's own usage errors).
    #[error("{0}")]
    Usage(String),
    #[error("no {kind} named {name} in namespace {namespace}")]
    NotFound {
        kind: &'static str,
        name: String,
        namespace: String,
    },
    #[error("labpods is not installed in this cluster: CRD {0} missing")]
    NotInstalled(&'static str),
    #[error("cannot load the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("cannot reach the cluster at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// The apiserver refused or failed a request.
    #[error("{0}")]
    Api(String),
    /// The operator refused (an extension), or the booking ended in Failed (exit 3).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Timeout(String),
    /// `kubectl lab ssh`: ssh ended with this status (passed on as the exit code).
    #[error("ssh exited with status {0}")]
    Remote(u8),
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// 0 is success; 2 bad usage; 3 the booking failed; 4 a wait timed out; 1 the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Failed(_) => 3,
            Error::Timeout(_) => 4,
            Error::Remote(code) => *code,
            _ => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The apiserver's own message for `what` ("listing LabHosts"), without kube's wrapping.
pub fn api(what: &str, server: &str, error: kube::Error) -> Error {
    match error {
        kube::Error::Api(status) if status.code == 403 => Error::Api(format!(
            "{what}: forbidden: {} (ask a lab admin for the labpods-user or labpods-viewer role)",
            status.message
        )),
        kube::Error::Api(status) if status.code == 401 => Error::Api(format!(
            "{what}: the cluster did not accept your credentials: {}",
            status.message
        )),
        kube::Error::Api(status) => Error::Api(format!("{what}: {}", status.message)),
        kube::Error::HyperError(e) => Error::Unreachable {
            server: server.to_string(),
            reason: e.to_string(),
        },
        kube::Error::Service(e) => Error::Unreachable {
            server: server.to_string(),
            reason: source_chain(e.as_ref()),
        },
        other => Error::Api(format!("{what}: {other}")),
    }
}

fn source_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

//! Errors of the controller layer. Each variant has a bounded metric label, and says whether
//! retrying later can help (`is_transient`): transient errors requeue with per-object
//! exponential backoff, permanent ones become a condition a user can act on.

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("BMC: {0}")]
    Bmc(#[from] labpods_redfish::Error),
    #[error("Secret {namespace}/{name}: {message}")]
    Secret {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("object cannot be read: {0}")]
    InvalidObject(String),
    #[error("not the leader any more; leaving writes to the new leader")]
    NotLeader,
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Bmc(e) => e.metric_label(),
            Self::Secret { .. } => "secret",
            Self::InvalidObject(_) => "invalid_object",
            Self::NotLeader => "not_leader",
            Self::Finalizer(_) => "finalizer",
        }
    }

    /// Whether retrying without anyone changing anything may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Kube(kube::Error::Api(status)) => {
                status.code >= 500 || status.code == 409 || status.code == 429
            }
            Self::Kube(_) | Self::NotLeader | Self::Finalizer(_) => true,
            Self::Bmc(e) => e.is_transient(),
            Self::Secret { .. } | Self::InvalidObject(_) => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

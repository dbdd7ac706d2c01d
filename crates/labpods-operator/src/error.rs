//! Errors of the controller layer. Each variant has a bounded metric label, and says whether
//! retrying later can help (`is_transient`): transient errors requeue with per-object
//! exponential backoff, permanent ones become a condition a user can act on.

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("BMC: {0}{hint}", hint = bmc_hint(.0))]
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

/// What a lab operator should look at, for BMC errors whose own text cannot name a LabHost
/// field (the Redfish client knows nothing of Kubernetes).
fn bmc_hint(error: &labpods_redfish::Error) -> &'static str {
    match error {
        labpods_redfish::Error::Unauthorized { .. } => {
            ": check the username and password in the Secret spec.bmc.credentialsSecretRef names"
        }
        labpods_redfish::Error::Connect { .. } | labpods_redfish::Error::Timeout { .. } => {
            ": check spec.bmc.address and that the BMC is reachable from the operator"
        }
        _ => "",
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmc_errors_a_lab_operator_fixes_name_the_labhost_field() {
        let refused = Error::Bmc(labpods_redfish::Error::Unauthorized {
            method: "POST".into(),
            path: "/redfish/v1/SessionService/Sessions".into(),
        });
        assert!(
            refused.to_string().ends_with(
                "check the username and password in the Secret spec.bmc.credentialsSecretRef names"
            ),
            "{refused}"
        );
        let timeout = Error::Bmc(labpods_redfish::Error::Timeout {
            method: "GET".into(),
            path: "/redfish/v1".into(),
        });
        assert!(
            timeout.to_string().contains("spec.bmc.address"),
            "{timeout}"
        );
        let other = Error::Bmc(labpods_redfish::Error::Unsupported("virtual media".into()));
        assert_eq!(other.to_string(), "BMC: BMC does not support virtual media");
    }
}

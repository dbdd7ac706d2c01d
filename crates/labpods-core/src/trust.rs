//! Why a Lease is not honoured: the operator seals every Lease it writes (its `signing`
//! module), and a Lease without a valid seal gets no claim, no provisioning, no extension.

/// Why a Lease is not honoured. The messages are for users: they say what happened and what
/// the operator does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error("it carries no signature: the labpods operator did not write it")]
    Unsigned,
    #[error(
        "its signature does not match its content: someone other than the labpods operator wrote or changed it"
    )]
    Mismatch,
}

impl Untrusted {
    /// For condition reasons and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsigned => "NotSignedByOperator",
            Self::Mismatch => "ChangedByOthers",
        }
    }
}

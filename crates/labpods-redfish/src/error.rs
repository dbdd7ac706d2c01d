//! The client's error type. Messages name the BMC path and status, never credentials or tokens.

use std::time::Duration;

/// Everything a Redfish call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint URL cannot be used (wrong scheme, embedded credentials, ...).
    #[error("invalid BMC endpoint: {0}")]
    InvalidEndpoint(String),
    /// An image URL the BMC cannot be given (unparseable, credentials in it).
    #[error("invalid image URL: {0}")]
    InvalidImageUrl(String),
    /// The TLS options cannot be turned into a client configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The BMC's TLS certificate was refused; the message says why and what to change.
    #[error("BMC certificate refused: {0}")]
    Certificate(String),
    /// No answer: connection refused, reset, DNS, TLS handshake.
    #[error("cannot reach BMC at {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The BMC did not answer within the per-call timeout.
    #[error("BMC call {method} {path} timed out")]
    Timeout { method: String, path: String },
    /// The BMC rejected the credentials.
    #[error("BMC rejected the credentials ({method} {path})")]
    Unauthorized { method: String, path: String },
    /// The BMC answered with an error status (after retries, for transient ones).
    #[error("BMC answered {status} to {method} {path}: {message}")]
    Status {
        status: u16,
        method: String,
        path: String,
        message: String,
    },
    /// The BMC answered something that is not the Redfish JSON we expect.
    #[error("cannot decode BMC response from {path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// The BMC's answer is larger than the client accepts (body bytes, collection members).
    #[error("BMC answer from {path} is too large: {what}")]
    Oversized { path: String, what: String },
    /// The BMC does not offer what was asked (no virtual media, reset type not allowed, ...).
    #[error("BMC does not support {0}")]
    Unsupported(String),
    /// The service has several systems and none or more than one match the requested id.
    #[error("system not found: {0}")]
    SystemNotFound(String),
    /// A long-running operation (Task) ended in a failed state.
    #[error("BMC task {path} ended {state}: {message}")]
    TaskFailed {
        path: String,
        state: String,
        message: String,
    },
    /// A long-running operation (Task) did not finish in time.
    #[error("BMC task {path} still running after {waited:?}")]
    TaskTimeout { path: String, waited: Duration },
}

impl Error {
    /// A bounded label for metrics (never object names or error text).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidEndpoint(_) => "invalid_endpoint",
            Error::InvalidImageUrl(_) => "invalid_image_url",
            Error::Tls(_) => "tls",
            Error::Certificate(_) => "certificate",
            Error::Connect { .. } => "connect",
            Error::Timeout { .. } => "timeout",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Status { .. } => "http_status",
            Error::Decode { .. } => "decode",
            Error::Oversized { .. } => "oversized",
            Error::Unsupported(_) => "unsupported",
            Error::SystemNotFound(_) => "system_not_found",
            Error::TaskFailed { .. } => "task_failed",
            Error::TaskTimeout { .. } => "task_timeout",
        }
    }

    /// Whether retrying later may succeed without anyone changing the configuration; the
    /// operator backs off on these and reports the others as a condition.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::TaskTimeout { .. } => true,
            Error::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

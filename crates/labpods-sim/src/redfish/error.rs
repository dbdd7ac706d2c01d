//! Redfish error responses (`{"error": {code, message, @Message.ExtendedInfo}}`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::model::Refusal;

#[derive(Debug)]
pub(crate) struct RfError {
    status: StatusCode,
    message_id: &'static str,
    message: String,
}

impl RfError {
    pub fn new(status: StatusCode, message_id: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message_id,
            message: message.into(),
        }
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "no such resource",
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "NoValidSession",
            "authentication required",
        )
    }

    pub fn malformed(err: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MalformedJSON",
            format!("malformed request body: {err}"),
        )
    }

    pub fn missing(param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ActionParameterMissing",
            format!("{param} is required"),
        )
    }
}

impl From<Refusal> for RfError {
    fn from(refusal: Refusal) -> Self {
        let (status, id) = match refusal {
            Refusal::NotAllowed { .. } => (StatusCode::BAD_REQUEST, "PropertyValueNotInList"),
            Refusal::MediaInserted => (StatusCode::CONFLICT, "ResourceInUse"),
            Refusal::SessionLimit(_) => (StatusCode::SERVICE_UNAVAILABLE, "SessionLimitExceeded"),
            // What BMCs answer when the image server does not (iDRAC, iLO: 400 or 500).
            Refusal::ImageUnreachable(_) => (StatusCode::BAD_REQUEST, "ActionParameterValueError"),
        };
        Self::new(status, id, refusal.to_string())
    }
}

impl IntoResponse for RfError {
    fn into_response(self) -> Response {
        let code = format!("Base.1.8.{}", self.message_id);
        let body = json!({
            "error": {
                "code": code,
                "message": self.message,
                "@Message.ExtendedInfo": [{
                    "@odata.type": "#Message.v1_1_1.Message",
                    "MessageId": code,
                    "Message": self.message,
                    "Severity": "Warning",
                }],
            }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"labpods-sim\""),
            );
        }
        response
    }
}

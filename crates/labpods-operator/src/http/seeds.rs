//! `GET /seeds/{host}/{token}/cidata.iso`: a host's NoCloud seed for its current run, served
//! on the phone-home listener (the BMC fetches it from the lab network). The token is the
//! run's seed token ([`super::PhoneHomeTokens::seed_url`]); anything else, an ended run
//! included, is 404, whatever the reason, so the URL tells nothing about other hosts.

use std::{future::Future, pin::Pin, sync::Arc};

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

/// Why no seed is served.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// No such host, no current run, a wrong or stale token.
    #[error("no seed here")]
    NotFound,
    /// The booking's input cannot make a seed; the message names the field.
    #[error("{0}")]
    Booking(String),
    #[error("cannot read the booking: {0}")]
    Kube(#[from] kube::Error),
}

impl From<crate::seed::SeedError> for SeedError {
    fn from(e: crate::seed::SeedError) -> Self {
        Self::Booking(e.to_string())
    }
}

impl From<labpods_cidata::Error> for SeedError {
    fn from(e: labpods_cidata::Error) -> Self {
        Self::Booking(format!("the seed image cannot be made: {e}"))
    }
}

/// Renders a host's seed image for the run a token belongs to; implemented by the LabHost
/// controller.
pub trait SeedSource: Send + Sync {
    fn seed<'a>(
        &'a self,
        host: &'a str,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, SeedError>> + Send + 'a>>;
}

pub fn router(source: Arc<dyn SeedSource>) -> Router {
    Router::new()
        .route("/seeds/{host}/{token}/cidata.iso", get(handler))
        .with_state(source)
}

async fn handler(
    State(source): State<Arc<dyn SeedSource>>,
    Path((host, token)): Path<(String, String)>,
) -> Response {
    match source.seed(&host, &token).await {
        Ok(image) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/x-iso9660-image"),
                // Per run and personal: never kept by a proxy.
                (header::CACHE_CONTROL, "no-store"),
            ],
            image,
        )
            .into_response(),
        Err(SeedError::NotFound) => StatusCode::NOT_FOUND.into_response(),
        Err(e @ SeedError::Booking(_)) => {
            // The message names the field and the Secret, never the user data.
            tracing::warn!(%host, error = %e, "cannot render the seed");
            StatusCode::NOT_FOUND.into_response()
        }
        Err(e) => {
            tracing::warn!(%host, error = %e, "cannot render the seed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

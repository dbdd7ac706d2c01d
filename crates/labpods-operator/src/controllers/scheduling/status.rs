//! The PodRequest status write: server-side apply on /status under the field manager
//! `labpods-podrequest`, skipped when nothing changed. What it writes is computed in
//! `labpods-core` ([`desired`]), deterministically, so an unchanged request writes nothing.

use kube::{Api, ResourceExt};
use labpods_api::v1alpha1::{PodRequest, PodRequestStatus};
use serde_json::json;

use crate::{context::Context, error::Result};

pub use labpods_core::request_status::*;

pub const FIELD_MANAGER: &str = "labpods-podrequest";

/// Applies `desired` unless it equals the current status. Returns the request as written,
/// when it wrote.
pub async fn apply(
    ctx: &Context,
    pr: &PodRequest,
    desired: &PodRequestStatus,
) -> Result<Option<PodRequest>> {
    if pr.status.as_ref() == Some(desired) {
        return Ok(None);
    }
    ctx.ensure_leader()?;
    let api: Api<PodRequest> =
        Api::namespaced(ctx.client.clone(), &pr.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "labpods.dev/v1alpha1",
        "kind": "PodRequest",
        "status": desired,
    });
    match crate::controllers::fenced_status::write(
        &ctx.metrics,
        &api,
        FIELD_MANAGER,
        pr,
        |r: &PodRequest| r.status.as_ref(),
        &patch,
    )
    .await
    {
        Ok(written) => Ok(Some(written)),
        // Deleted meanwhile: nothing left to report to.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

//! The claim protocol (DESIGN.md "Claiming"): a host is bound by writing
//! `LabHost.spec.claimRef` with a resourceVersion precondition, so two writers can never both
//! win; a 409 means our copy was stale, and the fresh copy decides.
//!
//! Used by the scheduler (binding a request) and the Lease controller (claiming a spare).

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use labpods_api::v1alpha1::{ClaimRef, LabHost};
pub use labpods_core::claim::{HostCheck, check};
use serde_json::json;

use crate::{
    context::Context,
    error::{Error, Result},
};

/// The result of claiming one host.
#[derive(Debug)]
pub enum Claimed {
    /// Bound now or before; the copy carries the resourceVersion to roll back with.
    Yes(Box<LabHost>),
    /// Someone else has it, or it is not claimable.
    No(String),
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Claims `cached` for `claim`. On a stale copy (409) re-reads the host once and decides
/// again from the fresh copy.
pub async fn claim(ctx: &Context, cached: &LabHost, claim: &ClaimRef) -> Result<Claimed> {
    let api: Api<LabHost> = Api::all(ctx.client.clone());
    let name = cached.name_any();
    let mut host = cached.clone();
    for _ in 0..2 {
        match check(&host, claim) {
            HostCheck::Ours => return Ok(Claimed::Yes(Box::new(host))),
            HostCheck::Taken(why) => return Ok(Claimed::No(why)),
            HostCheck::Free => {}
        }
        ctx.ensure_leader()?;
        let patch = json!({
            "metadata": { "resourceVersion": host.metadata.resource_version },
            "spec": { "claimRef": claim },
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) => return Ok(Claimed::Yes(Box::new(updated))),
            Err(e) if is_conflict(&e) => host = api.get(&name).await?,
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    Ok(Claimed::No(format!(
        "host {name} changed while claiming it"
    )))
}

/// Clears `claim` from `host` if it still holds it, with a resourceVersion precondition;
/// re-reads on a stale copy. Idempotent.
pub async fn unclaim(ctx: &Context, host: &LabHost, claim: &ClaimRef) -> Result<()> {
    let api: Api<LabHost> = Api::all(ctx.client.clone());
    let name = host.name_any();
    let mut host = host.clone();
    for _ in 0..3 {
        if host.spec.claim_ref.as_ref() != Some(claim) {
            return Ok(());
        }
        ctx.ensure_leader()?;
        let patch = json!({
            "metadata": { "resourceVersion": host.metadata.resource_version },
            "spec": { "claimRef": null },
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) => host = api.get(&name).await?,
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    // The claim's Lease is gone or lists other hosts: the LabHost controller drops it.
    tracing::warn!(host = %name, "could not clear a claim: the host keeps changing");
    Ok(())
}

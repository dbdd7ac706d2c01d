//! Healing: a host of a Lease in Error is replaced by a spare the scheduler finds for its
//! role in the rest of the window. The spare is swapped into `Lease.spec.hosts` on the
//! Lease's resourceVersion first, then claimed (claim protocol); the failed host, no longer
//! listed, is released by the LabHost controller. If the claim loses a race the swap is
//! undone and the next pass tries again.

use kube::ResourceExt;
use labpods_api::v1alpha1::{LabHost, Lease, LeaseHost, PodRequest};

use super::plan::claim_of;
use crate::{
    context::Context,
    controllers::{
        podrequest::claim::{Claimed, claim},
        sealed::{Changed, change_spec},
    },
    error::Result,
    scheduler::{PlanInput, RequestKey, SpareQuery, find_spare, from_api},
};

/// What happened to one failed host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healed {
    /// Replaced by this spare.
    Swapped(String),
    /// Not replaced, and why.
    NoSpare(String),
    /// The Lease changed while swapping (a stale copy): look again.
    Stale,
}

/// Tries to replace `failed` in `lease` (serving `request`) with a spare from `lab`;
/// `hosts` is every LabHost (the spare is claimed from its cached copy).
pub async fn heal(
    ctx: &Context,
    lease: &Lease,
    request: &PodRequest,
    failed: &str,
    lab: &PlanInput,
    hosts: &[&LabHost],
) -> Result<Healed> {
    let Some(role_name) = lease
        .spec
        .hosts
        .iter()
        .find(|h| h.host == failed)
        .map(|h| h.role.clone())
    else {
        return Ok(Healed::NoSpare("no longer in the lease".into()));
    };
    let role = from_api::request(request, 0)
        .ok()
        .and_then(|r| r.roles.into_iter().find(|r| r.name == role_name));
    let Some(role) = role else {
        return Ok(Healed::NoSpare(format!(
            "role {role_name} is not in the PodRequest any more"
        )));
    };
    let owner = RequestKey::new(
        lease.namespace().unwrap_or_default(),
        &lease.spec.request_ref.name,
    );
    let end = from_api::time(&lease.spec.end);
    let query = SpareQuery {
        owner: &owner,
        role: &role,
        failed_host: failed,
        end,
    };
    let Some(spare) = find_spare(&query, lab) else {
        return Ok(Healed::NoSpare(format!(
            "failed, and no spare host fits role {role_name} until the lease ends"
        )));
    };
    let Some(cached) = hosts.iter().find(|h| h.name_any() == spare) else {
        return Ok(Healed::NoSpare(format!("spare {spare} vanished")));
    };
    let ours = claim_of(lease);
    let swap = |from: &str, to: &str| -> Vec<LeaseHost> {
        let mut hosts: Vec<LeaseHost> = lease
            .spec
            .hosts
            .iter()
            .map(|h| LeaseHost {
                host: if h.host == from {
                    to.to_string()
                } else {
                    h.host.clone()
                },
                role: h.role.clone(),
                // The spare takes over the failed host's hostname: the pod keeps its names.
                hostname: h.hostname.clone(),
            })
            .collect();
        hosts.sort();
        hosts
    };
    // List the spare before claiming it: the LabHost controller releases a claim whose Lease
    // does not list the host, so claim-then-list races it. Signed in the same write.
    let mut swapped_spec = lease.spec.clone();
    swapped_spec.hosts = swap(failed, &spare);
    let swapped = match change_spec(ctx, lease, &swapped_spec).await? {
        Changed::Written(swapped) => swapped,
        Changed::Unchanged | Changed::Conflict => return Ok(Healed::Stale),
    };
    let result = match claim(ctx, cached, &ours).await {
        Ok(Claimed::Yes(_)) => return Ok(Healed::Swapped(spare)),
        Ok(Claimed::No(why)) => Ok(Healed::NoSpare(format!(
            "failed; the spare was taken meanwhile ({why})"
        ))),
        Err(e) => Err(e),
    };
    // Put the failed host back so the next pass can try another spare.
    change_spec(ctx, &swapped, &lease.spec).await?;
    result
}

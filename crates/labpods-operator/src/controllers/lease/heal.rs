//! Healing: a host of a Lease in Error is replaced by a spare the scheduler finds for its
//! role in the rest of the window. The spare is swapped into `Lease.spec.hosts` on the
//! Lease's resourceVersion first, then claimed (claim protocol); the failed host, no longer
//! listed, is released by the LabHost controller. Listed-then-claimed because the LabHost
//! controller releases a claim whose Lease does not list the host.
//!
//! Healing only moves forward, so a crash or a lost race between the two writes leaves
//! nothing to undo: the next reconcile finds the listed spare unheld
//! ([`unheld`](super::plan::unheld)) and claims
//! it if it is still free, or replaces it like a failed host if another booking took it.
//! (Putting the failed host back instead raced its release and could list it unclaimed.)

use kube::ResourceExt;
use labpods_api::v1alpha1::{LabHost, Lease, LeaseHost, PodRequest};

use super::plan::claim_of;
use crate::{
    context::Context,
    controllers::{
        claim::{Claimed, claim},
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
    /// The Lease changed while swapping (a stale copy), or the spare was taken between its
    /// listing and its claim: look again.
    Stale,
}

/// Claims a listed spare whose claim a crash or an error interrupted; `Stale` when it was
/// taken meanwhile (the next reconcile replaces it).
pub async fn resume(ctx: &Context, lease: &Lease, host: &LabHost) -> Result<Healed> {
    Ok(match claim(ctx, host, &claim_of(lease)).await? {
        Claimed::Yes(_) => Healed::Swapped(host.name_any()),
        Claimed::No(_) => Healed::Stale,
    })
}

/// Tries to replace `failed` in `lease` (serving `request`) with a spare from `lab`;
/// `trouble` says what happened to it ("failed"); `hosts` is every LabHost (the spare is
/// claimed from its cached copy).
pub async fn heal(
    ctx: &Context,
    lease: &Lease,
    request: &PodRequest,
    failed: &str,
    trouble: &str,
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
            "{trouble}, and no spare host fits role {role_name} until the lease ends"
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
    match change_spec(ctx, lease, &swapped_spec).await? {
        Changed::Written(_) => {}
        Changed::Unchanged | Changed::Conflict => return Ok(Healed::Stale),
    }
    // Taken meanwhile (a scheduler's stale cache): the spare is now listed but not ours, and
    // the next reconcile replaces it as `Unheld::Lost`. An error: `Unheld::Resume`.
    Ok(match claim(ctx, cached, &ours).await? {
        Claimed::Yes(_) => Healed::Swapped(spare),
        Claimed::No(_) => Healed::Stale,
    })
}

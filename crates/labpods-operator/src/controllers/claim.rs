//! The claim protocol (DESIGN.md "Claiming"): a host is bound by writing
//! `LabHost.spec.claimRef` with a resourceVersion precondition, so two writers can never both
//! win; a 409 means our copy was stale, and the fresh copy decides.
//!
//! Used by the scheduler (binding a request) and the Lease controller (claiming a spare).

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use labpods_api::v1alpha1::{ClaimRef, HostState, LabHost};
use serde_json::json;

use crate::{
    context::Context,
    error::{Error, Result},
};

/// What a copy of a host says about claiming it for `claim` (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCheck {
    /// Already bound to this claim (a retried or resumed bind).
    Ours,
    /// Unclaimed and Available: may be claimed.
    Free,
    /// Not claimable; why, for the request's message.
    Taken(String),
}

/// Never newly claim a host that is not Available, is in maintenance, is being deleted or is
/// claimed by another booking (the contract in `controllers/mod.rs`).
pub fn check(host: &LabHost, claim: &ClaimRef) -> HostCheck {
    let name = host.name_any();
    match &host.spec.claim_ref {
        Some(c) if c == claim => return HostCheck::Ours,
        Some(c) => {
            return HostCheck::Taken(format!(
                "host {name} is claimed by {}/{}",
                c.namespace, c.name
            ));
        }
        None => {}
    }
    if host.spec.maintenance {
        return HostCheck::Taken(format!("host {name} is in maintenance"));
    }
    if host.metadata.deletion_timestamp.is_some() {
        return HostCheck::Taken(format!("host {name} is being deleted"));
    }
    match host.status.as_ref().and_then(|s| s.state) {
        Some(HostState::Available) => HostCheck::Free,
        state => HostCheck::Taken(format!(
            "host {name} is {}",
            state.map_or_else(|| "not registered yet".to_owned(), |s| format!("{s:?}"))
        )),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    fn claim_ref(uid: &str) -> ClaimRef {
        ClaimRef {
            namespace: test_support::NAMESPACE.into(),
            name: "pod".into(),
            uid: uid.into(),
            lease: "pod".into(),
        }
    }

    fn host(state: Option<HostState>, maintenance: bool, claim: Option<ClaimRef>) -> LabHost {
        let mut h = test_support::labhost("h1", state);
        h.spec.maintenance = maintenance;
        h.spec.claim_ref = claim;
        h
    }

    #[test]
    fn only_available_unclaimed_hosts_are_free() {
        let ours = claim_ref("u1");
        assert_eq!(
            check(&host(Some(HostState::Available), false, None), &ours),
            HostCheck::Free
        );
        assert_eq!(
            check(
                &host(Some(HostState::Claimed), false, Some(ours.clone())),
                &ours
            ),
            HostCheck::Ours
        );
        let taken = |h: LabHost| matches!(check(&h, &ours), HostCheck::Taken(_));
        // A re-created request (new uid) with the same name does not inherit the claim.
        assert!(taken(host(
            Some(HostState::Claimed),
            false,
            Some(claim_ref("old"))
        )));
        assert!(taken(host(Some(HostState::Available), true, None)));
        assert!(taken(host(Some(HostState::Error), false, None)));
        assert!(taken(host(Some(HostState::Releasing), false, None)));
        assert!(taken(host(None, false, None)));
        assert_eq!(
            check(&host(Some(HostState::Maintenance), false, None), &ours),
            HostCheck::Taken("host h1 is Maintenance".into())
        );
    }
}

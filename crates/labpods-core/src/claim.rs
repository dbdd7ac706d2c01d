//! The claim protocol's check (DESIGN.md "Claiming"): whether a copy of a host may be claimed
//! for a booking. The operator's `controllers::claim` writes the claim with a
//! resourceVersion precondition and decides again from a fresh copy on a conflict.

use kube_core::ResourceExt;
use labpods_api::v1alpha1::{ClaimRef, HostState, LabHost};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn claim_ref(uid: &str) -> ClaimRef {
        ClaimRef {
            namespace: fixtures::NAMESPACE.into(),
            name: "pod".into(),
            uid: uid.into(),
            lease: "pod".into(),
        }
    }

    fn host(state: Option<HostState>, maintenance: bool, claim: Option<ClaimRef>) -> LabHost {
        let mut h = fixtures::labhost("h1", state);
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

//! Which Lease serves a request, from the Leases of its name (pure): only one the operator
//! sealed for this very request binds it ([`signing`](crate::signing)).

use kube::ResourceExt;
use labpods_api::v1alpha1::{Lease, PodRequest};

use crate::signing::{Seal, Untrusted};

/// The Lease of a request's name, as the scheduler must treat it.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseOf {
    /// None: the request is unbound.
    Nothing,
    /// Sealed by the operator for this request: its binding.
    Own(Lease),
    /// The operator's Lease of an earlier request of the same name (uid differs), not yet
    /// collected.
    Earlier,
    /// Created by the operator for this request, never sealed (a crash mid-bind): roll back.
    Unsealed(Lease),
    /// Not written by the operator, or changed by someone else: refused.
    Refused { lease: String, why: Untrusted },
}

/// `sealed` is the Lease of the request's name if the operator sealed it; `other` the Lease
/// of that name otherwise, with what verifying it said.
pub fn lease_of(
    pr: &PodRequest,
    sealed: Option<&Lease>,
    other: Option<&(Lease, Result<Seal, Untrusted>)>,
) -> LeaseOf {
    let for_this = |l: &Lease| Some(&l.spec.request_ref.uid) == pr.metadata.uid.as_ref();
    match (sealed, other) {
        (Some(l), _) if for_this(l) => LeaseOf::Own(l.clone()),
        (Some(_), _) => LeaseOf::Earlier,
        (None, Some((l, Ok(_)))) if for_this(l) => LeaseOf::Unsealed(l.clone()),
        (None, Some((_, Ok(_)))) => LeaseOf::Earlier,
        (None, Some((l, Err(why)))) => LeaseOf::Refused {
            lease: l.name_any(),
            why: why.clone(),
        },
        (None, None) => LeaseOf::Nothing,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

    use super::*;
    use labpods_core::fixtures;

    fn request(uid: &str) -> PodRequest {
        let mut pr = fixtures::podrequest("pod", 1);
        pr.metadata.uid = Some(uid.into());
        pr
    }

    fn lease(request_uid: &str) -> Lease {
        let t = Time(Timestamp::UNIX_EPOCH);
        fixtures::lease("pod", request_uid, &["h1"], t.clone(), t)
    }

    #[test]
    fn only_a_sealed_lease_for_this_request_binds_it() {
        let pr = request("u1");
        assert_eq!(lease_of(&pr, None, None), LeaseOf::Nothing);
        assert_eq!(
            lease_of(&pr, Some(&lease("u1")), None),
            LeaseOf::Own(lease("u1"))
        );
        assert_eq!(lease_of(&pr, Some(&lease("u0")), None), LeaseOf::Earlier);
        let provisional = (lease("u1"), Ok(Seal::Provisional));
        assert_eq!(
            lease_of(&pr, None, Some(&provisional)),
            LeaseOf::Unsealed(lease("u1"))
        );
        let earlier = (lease("u0"), Ok(Seal::Provisional));
        assert_eq!(lease_of(&pr, None, Some(&earlier)), LeaseOf::Earlier);
    }

    /// The attack: a Lease naming the request's own uid (and any hosts) that the operator
    /// did not seal binds nothing, whoever's uid it names.
    #[test]
    fn a_forged_lease_is_refused_even_with_the_requests_uid() {
        let pr = request("u1");
        for (uid, why) in [("u1", Untrusted::Unsigned), ("u9", Untrusted::Mismatch)] {
            let forged = (lease(uid), Err(why.clone()));
            assert_eq!(
                lease_of(&pr, None, Some(&forged)),
                LeaseOf::Refused {
                    lease: "pod".into(),
                    why
                }
            );
        }
    }
}

//! The lab as the scheduler sees it, built from the reflector caches (pure).
//!
//! The calendar is derived from the API objects alone, so a restarted operator rebuilds it
//! deterministically: claims from `LabHost.spec.claimRef` (busy until the claim's Lease
//! ends), reservations from the `status.scheduledStart/End` and `status.hosts` of Scheduled
//! PodRequests that have no Lease yet.

use std::{collections::HashMap, ops::Deref, sync::Arc};

use chrono::TimeDelta;
use kube::{ResourceExt, core::DeserializeGuard};
use labpods_api::v1alpha1::{LabHost, Lease, LeasePhase, PodRequest, PodRequestPhase};

use crate::{
    config::Config,
    scheduler::{self, Host, PlanInput, Policy, Reservation, Time, from_api},
};

/// An object of a watch cache that could be decoded, shared with the cache rather than
/// copied: a pass copied every cached request, host and Lease on every change.
#[derive(Debug)]
pub struct Cached<K>(Arc<DeserializeGuard<K>>);

impl<K> Cached<K> {
    /// None for an object that cannot be decoded (the others are still scheduled).
    pub fn new(guard: Arc<DeserializeGuard<K>>) -> Option<Self> {
        guard.0.is_ok().then_some(Self(guard))
    }
}

/// The decoded objects of a reflector's store.
pub fn decoded<K>(
    store: &kube::runtime::reflector::Store<DeserializeGuard<K>>,
) -> impl Iterator<Item = Cached<K>>
where
    K: kube::Resource + Clone,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().into_iter().filter_map(Cached::new)
}

impl<K> Clone for Cached<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K> From<K> for Cached<K> {
    fn from(object: K) -> Self {
        Self(Arc::new(DeserializeGuard(Ok(object))))
    }
}

impl<K> Deref for Cached<K> {
    type Target = K;

    fn deref(&self) -> &K {
        match &self.0.0 {
            Ok(object) => object,
            Err(_) => unreachable!("Cached::new admits decoded objects only"),
        }
    }
}

impl<K> AsRef<K> for Cached<K> {
    fn as_ref(&self) -> &K {
        self
    }
}

/// The cached LabHosts by name.
pub type LabHosts = HashMap<String, Cached<LabHost>>;

/// How long a claim whose Lease is not in the cache holds its host: never free a claimed
/// host on a guess.
const UNKNOWN_CLAIM: TimeDelta = TimeDelta::hours(1);

/// The scheduler's policy from the operator's configuration.
pub fn policy(config: &Config) -> Policy {
    let delta = |d: std::time::Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    Policy {
        default_quota: config.policy.namespace_host_quota,
        quota_overrides: config.policy.namespace_host_quotas.clone(),
        max_duration: Some(delta(config.policy.max_duration)),
        extension_budget: Some(delta(config.policy.extension_budget)),
        release_allowance: delta(config.leases.release_allowance),
        ..from_api::policy_defaults()
    }
}

pub use labpods_core::from_api::kube_time;

/// `namespace/name` of an object.
pub fn key_of(obj: &impl ResourceExt) -> (String, String) {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Every host, with claims that last until their Lease's end (at least until now: a host
/// whose lease ended is still busy until the LabHost controller clears the claim).
///
/// An unclaimed host that a Lease lists (a binding or a spare swap between its listing and
/// its claim) is busy for that Lease too: choosing it for someone else would list it in two
/// Leases, and one of the two claims would fail.
pub fn hosts(labhosts: &[&LabHost], leases: &[&Lease], now: Time) -> Vec<Host> {
    let ends: HashMap<(&str, &str), Time> = leases
        .iter()
        .map(|l| {
            let key = (
                l.metadata.namespace.as_deref().unwrap_or_default(),
                l.metadata.name.as_deref().unwrap_or_default(),
            );
            (key, from_api::time(&l.spec.end))
        })
        .collect();
    let listed: HashMap<&str, &Lease> = leases
        .iter()
        .filter(|l| l.status.as_ref().and_then(|s| s.phase) != Some(LeasePhase::Released))
        .flat_map(|l| l.spec.hosts.iter().map(move |h| (h.host.as_str(), *l)))
        .collect();
    labhosts
        .iter()
        .map(|h| {
            let end = h.spec.claim_ref.as_ref().and_then(|c| {
                ends.get(&(c.namespace.as_str(), c.lease.as_str()))
                    .map(|e| (*e).max(now))
            });
            let mut host = from_api::host(h, end, now, UNKNOWN_CLAIM);
            if let (None, Some(lease)) = (&host.claim, listed.get(host.name.as_str())) {
                let (namespace, _) = key_of(*lease);
                host.claim = Some(scheduler::Claim {
                    owner: scheduler::RequestKey::new(namespace, &lease.spec.request_ref.name),
                    until: from_api::time(&lease.spec.end).max(now),
                });
            }
            host
        })
        .collect()
}

/// The reservation a Scheduled request without a Lease holds, one entry per host.
pub fn reservations(pr: &PodRequest) -> Vec<Reservation> {
    let Some(status) = &pr.status else {
        return Vec::new();
    };
    let (Some(PodRequestPhase::Scheduled), Some(start), Some(end)) =
        (status.phase, &status.scheduled_start, &status.scheduled_end)
    else {
        return Vec::new();
    };
    let (namespace, name) = key_of(pr);
    status
        .hosts
        .iter()
        .map(|h| Reservation {
            host: h.host.clone(),
            role: h.role.clone(),
            owner: scheduler::RequestKey::new(&namespace, &name),
            start: from_api::time(start),
            end: from_api::time(end),
        })
        .collect()
}

/// The planning input: every host, the reservations of `unbound` requests (those without a
/// Lease), and `waiting` requests as the scheduler's requests.
pub fn plan_input(
    labhosts: &[&LabHost],
    leases: &[&Lease],
    unbound: &[&PodRequest],
    waiting: Vec<scheduler::Request>,
    policy: Policy,
    now: Time,
) -> PlanInput {
    PlanInput {
        now,
        hosts: hosts(labhosts, leases, now),
        reservations: unbound.iter().flat_map(|pr| reservations(pr)).collect(),
        requests: waiting,
        policy,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use labpods_api::v1alpha1::{AssignedHost, ClaimRef, HostState, PodRequestStatus};

    use super::*;
    use labpods_core::fixtures;

    fn at(s: &str) -> Time {
        s.parse().unwrap()
    }

    fn labhost(name: &str, claim: Option<&str>) -> LabHost {
        let mut h = fixtures::labhost(name, Some(HostState::Available));
        h.spec.claim_ref = claim.map(|l| ClaimRef {
            namespace: fixtures::NAMESPACE.into(),
            name: l.into(),
            uid: "u".into(),
            lease: l.into(),
        });
        h
    }

    fn lease(name: &str, end: &str) -> Lease {
        let start = kube_time(at("2026-11-24T00:00:00Z"));
        fixtures::lease(name, "u", &["h1"], start, kube_time(at(end)))
    }

    #[test]
    fn claims_last_until_their_lease_ends_and_never_in_the_past() {
        let now = at("2026-11-24T12:00:00Z");
        let (h1, h2, h3) = (
            labhost("h1", Some("a")),
            labhost("h2", Some("b")),
            labhost("h3", None),
        );
        let (a, b) = (
            lease("a", "2026-11-25T00:00:00Z"),
            lease("b", "2026-11-24T06:00:00Z"),
        );
        let hosts = hosts(&[&h1, &h2, &h3], &[&a, &b], now);
        let until: Vec<_> = hosts
            .iter()
            .map(|h| h.claim.as_ref().map(|c| c.until))
            .collect();
        assert_eq!(until, [Some(at("2026-11-25T00:00:00Z")), Some(now), None]);
    }

    #[test]
    fn a_host_a_lease_lists_before_claiming_it_is_busy_for_that_lease() {
        let now = at("2026-11-24T12:00:00Z");
        let (h1, h2) = (labhost("h1", None), labhost("h2", None));
        let mut swapping = lease("a", "2026-11-25T00:00:00Z");
        swapping.spec.hosts[0].host = "h2".into();
        let mut released = lease("b", "2026-11-24T06:00:00Z");
        released.status = Some(labpods_api::v1alpha1::LeaseStatus {
            phase: Some(LeasePhase::Released),
            ..Default::default()
        });
        let hosts = hosts(&[&h1, &h2], &[&swapping, &released], now);
        let claims: Vec<_> = hosts
            .iter()
            .map(|h| h.claim.as_ref().map(|c| (c.owner.to_string(), c.until)))
            .collect();
        assert_eq!(
            claims,
            [
                None,
                Some(("team/a".to_owned(), at("2026-11-25T00:00:00Z")))
            ]
        );
    }

    #[test]
    fn only_scheduled_requests_hold_reservations() {
        let mut pr = fixtures::podrequest("pod", 1);
        pr.status = Some(PodRequestStatus {
            phase: Some(PodRequestPhase::Scheduled),
            hosts: vec![AssignedHost {
                role: "node".into(),
                host: "h1".into(),
                ..AssignedHost::default()
            }],
            scheduled_start: Some(kube_time(at("2026-11-26T10:00:00Z"))),
            scheduled_end: Some(kube_time(at("2026-11-26T11:00:00Z"))),
            ..PodRequestStatus::default()
        });
        let r = reservations(&pr);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].host.as_str(), r[0].owner.to_string()),
            ("h1", "team/pod".to_owned())
        );
        assert_eq!(r[0].start, at("2026-11-26T10:00:00Z"));
        if let Some(s) = pr.status.as_mut() {
            s.phase = Some(PodRequestPhase::Pending);
        }
        assert!(reservations(&pr).is_empty());
    }
}

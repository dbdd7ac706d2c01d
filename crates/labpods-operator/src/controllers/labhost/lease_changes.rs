//! Which Lease events concern its hosts. The Lease's status follows its hosts' progress, so
//! without this filter every host's step rewrote the Lease and woke every host of it again
//! (N^2 reconciles, each with a BMC read, for an N-host Lease). A host reads of its Lease
//! only what [`plan::lease_view`](super::plan::lease_view) reads: the spec, the seal, the
//! deletion and the phase's stage, so only a change there is passed on.

use std::hash::{DefaultHasher, Hash, Hasher};

use futures::Stream;
use kube::{ResourceExt, core::DeserializeGuard, runtime::watcher};
use labpods_api::v1alpha1::{Lease, LeasePhase};

use crate::signing::LeaseSigner;

/// What of a Lease its hosts' reconciles depend on, hashed.
fn fingerprint(lease: &Lease, signer: &LeaseSigner) -> u64 {
    // Provisioning, Ready and Degraded all say "run the image"; Releasing and Released "release".
    let stage = match lease.status.as_ref().and_then(|s| s.phase) {
        None | Some(LeasePhase::Pending) => 0,
        Some(LeasePhase::Bound) => 1,
        Some(LeasePhase::Provisioning | LeasePhase::Ready | LeasePhase::Degraded) => 2,
        Some(LeasePhase::Releasing | LeasePhase::Released) => 3,
    };
    let mut hasher = DefaultHasher::new();
    (
        lease.uid(),
        lease.metadata.generation,
        lease.metadata.deletion_timestamp.is_some(),
        signer.is_sealed(lease),
        stage,
    )
        .hash(&mut hasher);
    hasher.finish()
}

/// The Leases of `events` whose change concerns their hosts: every deletion, every Lease
/// that cannot be read, and any other only when its [`fingerprint`] changed.
pub fn relevant<S>(
    events: S,
    signer: LeaseSigner,
) -> impl Stream<Item = Result<DeserializeGuard<Lease>, watcher::Error>>
where
    S: Stream<Item = Result<watcher::Event<DeserializeGuard<Lease>>, watcher::Error>>,
{
    crate::controllers::changes::relevant(events, move |lease| fingerprint(lease, &signer))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use futures::{StreamExt, stream};
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
    use labpods_api::v1alpha1::{ImageSpec, LeaseHost, LeaseSpec, LeaseStatus, RequestRef};

    use super::*;
    use crate::signing::SIGNATURE;

    /// A Lease of two hosts as the binder leaves it: created, then sealed.
    fn sealed(signer: &LeaseSigner) -> Lease {
        let host = |name: &str| LeaseHost {
            host: name.into(),
            role: "node".into(),
            hostname: None,
        };
        let at = Time(Timestamp::UNIX_EPOCH);
        let spec = LeaseSpec::new(
            RequestRef {
                name: "pod".into(),
                uid: "pr-uid".into(),
            },
            [host("h1"), host("h2")],
            at.clone(),
            at,
            ImageSpec::new("http://i.test/a.iso"),
        );
        let mut lease = Lease::new("pod", spec);
        lease.metadata.namespace = Some("team-a".into());
        lease.metadata.uid = Some("lease-uid".into());
        lease.metadata.generation = Some(1);
        let signature = signer.sealed(&lease, 1);
        lease.annotations_mut().insert(SIGNATURE.into(), signature);
        lease
    }

    fn event(lease: &Lease) -> Result<watcher::Event<DeserializeGuard<Lease>>, watcher::Error> {
        Ok(watcher::Event::Apply(DeserializeGuard(Ok(lease.clone()))))
    }

    fn with_phase(lease: &Lease, phase: LeasePhase) -> Lease {
        let mut lease = lease.clone();
        lease.status = Some(LeaseStatus {
            phase: Some(phase),
            ..LeaseStatus::default()
        });
        lease
    }

    #[tokio::test]
    async fn only_what_a_host_reads_wakes_the_hosts() {
        let signer = LeaseSigner::new(b"k");
        let lease = sealed(&signer);
        assert!(signer.is_sealed(&lease));
        let provisioning = with_phase(&lease, LeasePhase::Provisioning);
        let mut progress = provisioning.clone();
        progress.status.as_mut().unwrap().host_count = Some(1);
        let ready = with_phase(&lease, LeasePhase::Ready);
        let releasing = with_phase(&lease, LeasePhase::Releasing);
        let mut extended = releasing.clone();
        extended.metadata.generation = Some(2);
        let events = vec![
            event(&lease),
            event(&provisioning),
            event(&progress),
            event(&ready),
            event(&releasing),
            event(&extended),
            Ok(watcher::Event::Delete(DeserializeGuard(Ok(
                extended.clone()
            )))),
        ];
        let passed: Vec<Option<LeasePhase>> = relevant(stream::iter(events), signer)
            .map(|l| l.unwrap().0.unwrap().status.and_then(|s| s.phase))
            .collect()
            .await;
        // A count of hosts ready and Provisioning -> Ready are not passed on.
        assert_eq!(
            passed,
            vec![
                None,
                Some(LeasePhase::Provisioning),
                Some(LeasePhase::Releasing),
                Some(LeasePhase::Releasing),
                Some(LeasePhase::Releasing),
            ]
        );
    }
}

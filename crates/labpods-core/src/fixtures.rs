//! Fixtures shared by the unit tests of this crate and of the operator's adapters (feature
//! `fixtures`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use labpods_api::conditions::{BOOKING_FAILED, new_condition};
use labpods_api::v1alpha1::{
    HostState, ImageSpec, LabHost, LabHostSpec, LabHostStatus, Lease, LeaseHost, LeaseSpec,
    PodRequest, PodRequestSpec, RequestRef, RoleSpec, SecretReference,
};

/// Adds the condition a host's run reports when the booking's image was refused.
pub fn image_refused(conditions: &mut Vec<Condition>, why: &str, at: &Time) {
    conditions.push(new_condition(
        BOOKING_FAILED,
        true,
        "ImageRefused",
        why,
        None,
        at,
    ));
}

/// The namespace of the fixtures' bookings.
pub const NAMESPACE: &str = "team";
/// The image the fixtures' bookings boot.
pub const IMAGE: &str = "http://i.test/a.iso";

/// A PodRequest `name` in [`NAMESPACE`] for `count` hosts of role "node" for an hour,
/// booting [`IMAGE`]; no uid, no status (set what a test needs).
pub fn podrequest(name: &str, count: u32) -> PodRequest {
    let mut pr = PodRequest::new(
        name,
        PodRequestSpec::new([RoleSpec::new("node", count)], ImageSpec::new(IMAGE), "1h"),
    );
    pr.metadata.namespace = Some(NAMESPACE.into());
    pr
}

/// The Lease the operator writes for the PodRequest `name` (uid `uid`) in [`NAMESPACE`]:
/// `hosts`, each of role "node", from `start` to `end`, booting [`IMAGE`]; no status.
pub fn lease(name: &str, uid: &str, hosts: &[&str], start: Time, end: Time) -> Lease {
    let hosts = hosts.iter().map(|h| LeaseHost {
        host: (*h).into(),
        role: "node".into(),
        hostname: None,
    });
    let request = RequestRef {
        name: name.into(),
        uid: uid.into(),
    };
    let mut lease = Lease::new(
        name,
        LeaseSpec::new(request, hosts, start, end, ImageSpec::new(IMAGE)),
    );
    lease.metadata.namespace = Some(NAMESPACE.into());
    lease
}

/// A LabHost `name` of profile "x86" whose BMC nothing answers, unclaimed, in `state`.
pub fn labhost(name: &str, state: Option<HostState>) -> LabHost {
    let mut host = LabHost::new(
        name,
        LabHostSpec::new("http://127.0.0.1:1", "x86", SecretReference::default()),
    );
    host.status = Some(LabHostStatus {
        state,
        ..LabHostStatus::default()
    });
    host
}

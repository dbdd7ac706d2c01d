//! Fixtures shared by the unit tests of more than one module.

use std::{sync::Mutex, time::Duration};

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use labpods_api::conditions::{BOOKING_FAILED, new_condition};
use labpods_api::v1alpha1::{
    HostState, ImageSpec, LabHost, LabHostSpec, LabHostStatus, Lease, LeaseHost, LeaseSpec,
    PodRequest, PodRequestSpec, RequestRef, RoleSpec, SecretReference,
};

use crate::context::Clock;

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

/// A clock that moves only when told to, for tests that step time through a `Context`
/// (test-only: production always runs on `SystemClock`).
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.0.lock()
            && let Ok(next) = now.checked_add(by)
        {
            *now = next;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|p| *p.into_inner())
    }
}

#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = Timestamp::from_second(1_800_000_000).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now().as_second(), 1_800_000_090);
    }
}

//! A user changing the end of a bound booking (pure): which end the spec now asks for, and
//! the question to put to the scheduler's extension check.

use chrono::{DateTime, TimeDelta};
use kube::ResourceExt;
use labpods_api::{
    v1alpha1::{Lease, LeasePhase, PodRequest},
    validation::parse_duration,
};

use super::bind::ORIGINAL_END;
use crate::scheduler::{Extension, RequestKey, Time, from_api};

/// The end the spec asks for, measured like the scheduler does: `spec.end` as written, or
/// `spec.duration` from the Lease's actual start.
pub fn requested_end(pr: &PodRequest, lease: &Lease) -> Option<Time> {
    match (&pr.spec.end, &pr.spec.duration) {
        (Some(end), _) => Some(from_api::time(end)),
        (None, Some(text)) => {
            let d = parse_duration(text)?;
            Some(from_api::time(&lease.spec.start) + TimeDelta::seconds(d.as_secs()))
        }
        (None, None) => None,
    }
}

/// The extension (or shortening) asked of a running Lease, if the spec's end differs from
/// the Lease's. A Lease already ending is left alone.
pub fn asked(pr: &PodRequest, lease: &Lease) -> Option<Extension> {
    let phase = lease.status.as_ref().and_then(|s| s.phase);
    if matches!(phase, Some(LeasePhase::Releasing | LeasePhase::Released)) {
        return None;
    }
    let current_end = from_api::time(&lease.spec.end);
    let new_end = requested_end(pr, lease)?;
    if new_end == current_end {
        return None;
    }
    let original_end = lease
        .annotations()
        .get(ORIGINAL_END)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(current_end, |t| t.to_utc());
    Some(Extension {
        owner: RequestKey::new(pr.namespace().unwrap_or_default(), pr.name_any()),
        hosts: lease.spec.hosts.iter().map(|h| h.host.clone()).collect(),
        start: from_api::time(&lease.spec.start),
        original_end,
        current_end,
        new_end,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use labpods_api::v1alpha1::{
        ImageSpec, LeaseHost, LeaseSpec, LeaseStatus, PodRequestSpec, RequestRef, RoleSpec,
    };

    use super::*;
    use crate::controllers::snapshot::kube_time;

    fn at(s: &str) -> Time {
        s.parse().unwrap()
    }

    fn pair(duration: &str) -> (PodRequest, Lease) {
        let mut pr = PodRequest::new(
            "pod",
            PodRequestSpec::new(
                [RoleSpec::new("node", 1)],
                ImageSpec::new("http://i.test/a.iso"),
                duration,
            ),
        );
        pr.metadata.namespace = Some("team".into());
        let mut lease = Lease::new(
            "pod",
            LeaseSpec::new(
                RequestRef {
                    name: "pod".into(),
                    uid: "u".into(),
                },
                [LeaseHost {
                    host: "h1".into(),
                    role: "node".into(),
                    hostname: None,
                }],
                kube_time(at("2026-11-24T10:03:00Z")),
                kube_time(at("2026-11-24T12:03:00Z")),
                ImageSpec::new("http://i.test/a.iso"),
            ),
        );
        lease.metadata.annotations =
            Some([(ORIGINAL_END.to_owned(), "2026-11-24T11:03:00Z".to_owned())].into());
        (pr, lease)
    }

    #[test]
    fn duration_counts_from_the_actual_start() {
        let (pr, lease) = pair("2h");
        assert_eq!(
            asked(&pr, &lease),
            None,
            "the lease already ends at start + 2h"
        );
        let (pr, lease) = pair("3h");
        let ext = asked(&pr, &lease).unwrap();
        assert_eq!(ext.new_end, at("2026-11-24T13:03:00Z"));
        assert_eq!(ext.current_end, at("2026-11-24T12:03:00Z"));
        assert_eq!(ext.original_end, at("2026-11-24T11:03:00Z"));
        assert_eq!(ext.hosts, ["h1"]);
    }

    #[test]
    fn explicit_end_is_taken_as_written_and_ending_leases_are_left_alone() {
        let (mut pr, mut lease) = pair("2h");
        pr.spec.duration = None;
        pr.spec.end = Some(kube_time(at("2026-11-25T00:00:00Z")));
        assert_eq!(
            asked(&pr, &lease).unwrap().new_end,
            at("2026-11-25T00:00:00Z")
        );
        lease.status = Some(LeaseStatus {
            phase: Some(LeasePhase::Releasing),
            ..LeaseStatus::default()
        });
        assert_eq!(asked(&pr, &lease), None);
    }
}

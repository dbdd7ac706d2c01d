//! The PodRequest status the operator writes, from where the request stands after a
//! scheduling pass (the operator's `controllers::scheduling::status` writes it).
//!
//! Deterministic: hosts sorted, times from the plan or the Lease (never "now" except as the
//! transition time of a condition that flips), so an unchanged request writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time as KubeTime};
use kube_core::ResourceExt;
use labpods_api::{
    conditions::{
        self, BOOKING_FAILED, EXPIRING_SOON, EXTENSION_REJECTED, IMAGE_VERIFIED, INVALID, READY,
        SCHEDULED, find_condition, new_condition, remove_condition, set_condition,
    },
    v1alpha1::{
        AssignedHost, HostState, Lease, LeasePhase, PodRequest, PodRequestPhase, PodRequestStatus,
    },
};

use chrono::DateTime;
use labpods_scheduler::{Decision, Placement};

use crate::from_api::kube_time;

/// Where a request stands after this pass.
#[derive(Debug, Clone, Copy)]
pub enum Standing<'a> {
    /// The spec breaks a rule; the message names the field.
    Invalid(&'a str),
    /// Its image is being downloaded to verify `spec.image.checksum`.
    Verifying(&'a str),
    /// Its image was refused; the message names the field. The booking failed, no host held.
    ImageRefused(&'a str),
    /// No Lease yet: the scheduler's decision.
    Decided(&'a Decision),
    /// A Lease serves the request; `rejected` is why an extension was refused.
    Bound {
        lease: &'a Lease,
        rejected: Option<&'a str>,
        handed: &'a Handed,
    },
    /// The booking ran and its Lease is gone (collected after retention, or deleted).
    Finished,
    /// A Lease of the request's name that the operator did not write or that someone
    /// changed: not honoured. `releasing` while hosts are still claimed for the request.
    Refused {
        lease: &'a str,
        why: &'a str,
        releasing: bool,
    },
}

/// What a bound request hands its user: each host (the operator's `scheduling::hosts::assigned`) and the
/// children written for it (the access Secret, the descriptor ConfigMap), by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Handed {
    pub hosts: Vec<AssignedHost>,
    pub access_secret: Option<String>,
    pub descriptor: Option<String>,
}

/// The status for `standing`, keeping the transition times of unchanged conditions.
pub fn desired(pr: &PodRequest, standing: Standing<'_>, now: &KubeTime) -> PodRequestStatus {
    let current = pr.status.clone().unwrap_or_default();
    let generation = pr.metadata.generation;
    let mut conditions = current.conditions.clone();
    let set = |conditions: &mut Vec<Condition>,
               type_: &str,
               status: bool,
               reason: &str,
               message: &str| {
        let c = new_condition(type_, status, reason, message, generation, now);
        set_condition(conditions, c, now);
    };
    let mut status = PodRequestStatus {
        observed_generation: generation,
        ..PodRequestStatus::default()
    };
    match standing {
        Standing::Invalid(message) => {
            status.phase = Some(PodRequestPhase::Failed);
            status.message = Some(format!("invalid: {message}"));
            set(&mut conditions, INVALID, true, "InvalidSpec", message);
            set(
                &mut conditions,
                SCHEDULED,
                false,
                "InvalidSpec",
                "fix the spec to be scheduled",
            );
        }
        Standing::Verifying(message) => {
            status.phase = Some(PodRequestPhase::Pending);
            status.message = Some(message.to_owned());
            set(&mut conditions, SCHEDULED, false, "VerifyingImage", message);
        }
        Standing::ImageRefused(message) => {
            status.phase = Some(PodRequestPhase::Failed);
            status.message = Some(format!("failed: {message}"));
            set(
                &mut conditions,
                IMAGE_VERIFIED,
                false,
                IMAGE_REFUSED,
                message,
            );
            set(
                &mut conditions,
                SCHEDULED,
                false,
                IMAGE_REFUSED,
                "fix spec.image to be scheduled",
            );
        }
        Standing::Decided(decision) => match decision {
            Decision::Bind(p) => {
                // Binding happens in this pass; the Lease takes over on the next one.
                placed(&mut status, p);
                status.phase = Some(PodRequestPhase::Pending);
                status.message = Some(format!("binding {} hosts", p.assignments.len()));
                set(
                    &mut conditions,
                    SCHEDULED,
                    false,
                    "Binding",
                    "claiming the hosts",
                );
            }
            Decision::Reserve(p) => {
                placed(&mut status, p);
                status.phase = Some(PodRequestPhase::Scheduled);
                let message = format!(
                    "{} hosts reserved from {} to {}",
                    p.assignments.len(),
                    fmt(&kube_time(p.start)),
                    fmt(&kube_time(p.end))
                );
                set(&mut conditions, SCHEDULED, true, "Reserved", &message);
                status.message = Some(message);
            }
            Decision::Wait {
                message,
                earliest_start,
            } => {
                status.phase = Some(PodRequestPhase::Pending);
                status.message = Some(message.clone());
                // To the minute, like the message: the estimate moves with the lab, and this
                // way it changes only when the message does (no write of its own).
                status.estimated_start = earliest_start.map(|t| {
                    let minute = t.timestamp() - t.timestamp().rem_euclid(60);
                    kube_time(DateTime::from_timestamp(minute, 0).unwrap_or(t))
                });
                set(&mut conditions, SCHEDULED, false, "Waiting", message);
            }
            Decision::Unsatisfiable { message } => {
                // Pending, not Failed: the lab may add or repair hosts.
                status.phase = Some(PodRequestPhase::Pending);
                status.message = Some(message.clone());
                set(&mut conditions, SCHEDULED, false, "Unsatisfiable", message);
            }
        },
        Standing::Bound {
            lease,
            rejected,
            handed,
        } => {
            let phase = lease
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .unwrap_or(LeasePhase::Pending);
            status.lease = Some(lease.name_any());
            status.host_count = u32::try_from(handed.hosts.len()).ok();
            status.hosts = handed.hosts.clone();
            status.access_secret = handed.access_secret.clone();
            status.descriptor = handed.descriptor.clone();
            status.scheduled_start = Some(lease.spec.start.clone());
            status.scheduled_end = Some(lease.spec.end.clone());
            status.phase = Some(request_phase(phase));
            let failed = lease
                .status
                .as_ref()
                .and_then(|s| find_condition(&s.conditions, BOOKING_FAILED))
                .filter(|c| c.status == conditions::TRUE);
            let message = match failed {
                Some(c) => {
                    status.phase = Some(PodRequestPhase::Failed);
                    format!("failed: {}", c.message)
                }
                None => lease_message(lease, phase),
            };
            set(
                &mut conditions,
                SCHEDULED,
                phase != LeasePhase::Released,
                &format!("Lease{phase:?}"),
                &message,
            );
            status.message = Some(message);
            match rejected {
                Some(reason) => set(
                    &mut conditions,
                    EXTENSION_REJECTED,
                    true,
                    "Rejected",
                    reason,
                ),
                None => remove_condition(&mut conditions, EXTENSION_REJECTED),
            }
            let notice = lease
                .status
                .as_ref()
                .and_then(|s| find_condition(&s.conditions, EXPIRING_SOON));
            match notice {
                Some(c) => set(
                    &mut conditions,
                    EXPIRING_SOON,
                    c.status == conditions::TRUE,
                    &c.reason,
                    &c.message,
                ),
                None => remove_condition(&mut conditions, EXPIRING_SOON),
            }
        }
        Standing::Finished => {
            status = PodRequestStatus {
                observed_generation: generation,
                ..current.clone()
            };
            // A failed booking stays Failed, with its reason, after its Lease is collected.
            if current.phase != Some(PodRequestPhase::Failed) {
                status.phase = Some(PodRequestPhase::Released);
                status.message = Some("the booking is over; every host is back in the pool".into());
            }
            set(
                &mut conditions,
                SCHEDULED,
                false,
                "Released",
                "the booking is over",
            );
            remove_condition(&mut conditions, EXPIRING_SOON);
        }
        Standing::Refused {
            lease,
            why,
            releasing,
        } => {
            let message = refused_message(pr, lease, why, releasing);
            status.phase = Some(if releasing {
                PodRequestPhase::Releasing
            } else {
                PodRequestPhase::Pending
            });
            set(&mut conditions, SCHEDULED, false, LEASE_REFUSED, &message);
            remove_condition(&mut conditions, EXPIRING_SOON);
            remove_condition(&mut conditions, EXTENSION_REJECTED);
            status.message = Some(message);
        }
    }
    if !matches!(standing, Standing::Invalid(_)) {
        remove_condition(&mut conditions, INVALID);
    }
    if !matches!(standing, Standing::ImageRefused(_)) {
        remove_condition(&mut conditions, IMAGE_VERIFIED);
    }
    let ready = status.phase == Some(PodRequestPhase::Ready);
    let phase = status.phase.map(|p| format!("{p:?}")).unwrap_or_default();
    let ready_message = if ready {
        "every host runs the image"
    } else {
        "not every host runs the image"
    };
    set(&mut conditions, READY, ready, &phase, ready_message);
    status.conditions = conditions;
    status
}

/// The reason of the ImageVerified condition of a refused image.
pub const IMAGE_REFUSED: &str = "ImageRefused";

/// Why the request's image was refused for its current spec, if it was.
pub fn image_refused(pr: &PodRequest) -> Option<&str> {
    let status = pr.status.as_ref()?;
    let c = find_condition(&status.conditions, IMAGE_VERIFIED)?;
    (c.status == conditions::FALSE
        && c.observed_generation == pr.metadata.generation
        && status.phase == Some(PodRequestPhase::Failed))
    .then_some(c.message.as_str())
}

/// The reason of the Scheduled condition of a request whose Lease is refused.
pub const LEASE_REFUSED: &str = "LeaseRefused";

/// What a user reads when the Lease of their request is not the operator's.
fn refused_message(pr: &PodRequest, lease: &str, why: &str, releasing: bool) -> String {
    let now = if releasing {
        "its hosts are being released"
    } else {
        "no host is bound for it"
    };
    format!(
        "Lease {lease} is not honoured: {why}. Only the labpods operator writes Leases; {now}. Delete it (kubectl delete leases.labpods.dev {lease} -n {ns}) and this PodRequest is scheduled again; to change the booking, edit the PodRequest",
        ns = pr.namespace().unwrap_or_default(),
    )
}

fn placed(status: &mut PodRequestStatus, p: &Placement) {
    status.hosts = p
        .assignments
        .iter()
        .map(|a| AssignedHost {
            role: a.role.clone(),
            host: a.host.clone(),
            ..AssignedHost::default()
        })
        .collect();
    status.hosts.sort();
    status.host_count = u32::try_from(status.hosts.len()).ok();
    status.scheduled_start = Some(kube_time(p.start));
    status.scheduled_end = Some(kube_time(p.end));
}

/// The request's phase mirrors its Lease's.
pub fn request_phase(lease: LeasePhase) -> PodRequestPhase {
    match lease {
        LeasePhase::Pending | LeasePhase::Bound => PodRequestPhase::Scheduled,
        // A degraded lease is still being repaired or runs with fewer hosts: not Ready.
        LeasePhase::Provisioning | LeasePhase::Degraded => PodRequestPhase::Provisioning,
        LeasePhase::Ready => PodRequestPhase::Ready,
        LeasePhase::Releasing => PodRequestPhase::Releasing,
        LeasePhase::Released => PodRequestPhase::Released,
    }
}

fn lease_message(lease: &Lease, phase: LeasePhase) -> String {
    let total = lease.spec.hosts.len();
    let status = lease.status.as_ref();
    let provisioned = status.map_or(0, |s| {
        s.hosts
            .iter()
            .filter(|h| h.state == Some(HostState::Provisioned))
            .count()
    });
    let end = fmt(&lease.spec.end);
    match phase {
        LeasePhase::Pending => format!("binding {total} hosts"),
        LeasePhase::Bound => format!(
            "{total} hosts bound; starting at {}",
            fmt(&lease.spec.start)
        ),
        LeasePhase::Provisioning => format!("provisioning: {provisioned} of {total} hosts ready"),
        LeasePhase::Ready => format!("{total} hosts ready until {end}"),
        LeasePhase::Degraded => status
            .and_then(|s| find_condition(&s.conditions, conditions::DEGRADED))
            .map_or_else(
                || "degraded".to_owned(),
                |c| format!("degraded: {}", c.message),
            ),
        LeasePhase::Releasing => "releasing the hosts".to_owned(),
        LeasePhase::Released => "every host is back in the pool".to_owned(),
    }
}

/// Minute precision, like the scheduler's messages.
fn fmt(t: &KubeTime) -> String {
    t.0.strftime("%Y-%m-%dT%H:%MZ").to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use labpods_api::v1alpha1::{HostProgress, LeaseStatus};

    use super::*;
    use labpods_scheduler::{Assignment, Time};

    use crate::fixtures;

    fn at(s: &str) -> Time {
        s.parse().unwrap()
    }

    fn now(secs: i64) -> KubeTime {
        KubeTime(Timestamp::from_second(secs).unwrap())
    }

    fn request() -> PodRequest {
        let mut pr = fixtures::podrequest("pod", 2);
        pr.metadata.generation = Some(3);
        pr
    }

    fn lease(phase: LeasePhase, provisioned: usize) -> Lease {
        let mut l = fixtures::lease(
            "pod",
            "u",
            &["h2", "h1"],
            kube_time(at("2026-11-24T10:00:00Z")),
            kube_time(at("2026-11-24T11:00:00Z")),
        );
        l.status = Some(LeaseStatus {
            phase: Some(phase),
            hosts: ["h1", "h2"]
                .iter()
                .enumerate()
                .map(|(i, h)| HostProgress {
                    host: (*h).into(),
                    state: Some(if i < provisioned {
                        HostState::Provisioned
                    } else {
                        HostState::Provisioning
                    }),
                    ..HostProgress::default()
                })
                .collect(),
            ..LeaseStatus::default()
        });
        l
    }

    #[test]
    fn waiting_request_explains_why_and_is_stable_across_passes() {
        let mut pr = request();
        let wait = Decision::Wait {
            message: "waiting for 2 hosts; 1 free now; earliest start 2026-11-26T10:00Z".into(),
            earliest_start: Some(at("2026-11-26T10:00:42Z")),
        };
        let first = desired(&pr, Standing::Decided(&wait), &now(100));
        assert_eq!(first.phase, Some(PodRequestPhase::Pending));
        assert_eq!(
            first.estimated_start.as_ref().map(|t| t.0.to_string()),
            Some("2026-11-26T10:00:00Z".into()),
            "the message's estimate, to the minute"
        );
        assert_eq!(
            first.message.as_deref(),
            Some("waiting for 2 hosts; 1 free now; earliest start 2026-11-26T10:00Z")
        );
        let scheduled = find_condition(&first.conditions, SCHEDULED).unwrap();
        assert_eq!(
            (scheduled.status.as_str(), scheduled.reason.as_str()),
            ("False", "Waiting")
        );
        assert_eq!(scheduled.observed_generation, Some(3));
        pr.status = Some(first.clone());
        assert_eq!(
            desired(&pr, Standing::Decided(&wait), &now(500)),
            first,
            "a later pass writes nothing"
        );
        let moved = Decision::Wait {
            message: "waiting for 2 hosts; 1 free now; earliest start 2026-11-26T10:00Z".into(),
            earliest_start: Some(at("2026-11-26T10:00:07Z")),
        };
        assert_eq!(
            desired(&pr, Standing::Decided(&moved), &now(600)),
            first,
            "an estimate that moves within the minute writes nothing either"
        );
        let unknown = Decision::Wait {
            message: "waiting for 2 hosts in maintenance".into(),
            earliest_start: None,
        };
        assert_eq!(
            desired(&pr, Standing::Decided(&unknown), &now(700)).estimated_start,
            None
        );
    }

    #[test]
    fn invalid_request_fails_naming_the_field() {
        let pr = request();
        let s = desired(
            &pr,
            Standing::Invalid("spec.duration: \"0h\" is not a positive length"),
            &now(1),
        );
        assert_eq!(s.phase, Some(PodRequestPhase::Failed));
        let c = find_condition(&s.conditions, INVALID).unwrap();
        assert_eq!(c.status, "True");
        assert!(c.message.starts_with("spec.duration"));
    }

    #[test]
    fn a_refused_image_fails_the_request_until_its_spec_changes() {
        let mut pr = request();
        let why = "spec.image.checksum sha256:ab does not match the image";
        let verifying = desired(&pr, Standing::Verifying("downloading"), &now(1));
        assert_eq!(verifying.phase, Some(PodRequestPhase::Pending));
        assert!(find_condition(&verifying.conditions, IMAGE_VERIFIED).is_none());
        let s = desired(&pr, Standing::ImageRefused(why), &now(2));
        assert_eq!(s.phase, Some(PodRequestPhase::Failed));
        let c = find_condition(&s.conditions, IMAGE_VERIFIED).unwrap();
        assert_eq!((c.status.as_str(), c.message.as_str()), ("False", why));
        pr.status = Some(s);
        assert_eq!(image_refused(&pr), Some(why));
        // A second pass writes the same status.
        assert_eq!(
            desired(&pr, Standing::ImageRefused(why), &now(3)),
            pr.status.clone().unwrap()
        );
        // An edited spec (a new generation) is verified again; the old refusal goes.
        pr.metadata.generation = pr.metadata.generation.map(|g| g + 1);
        assert_eq!(image_refused(&pr), None);
        let again = desired(&pr, Standing::Verifying("downloading"), &now(4));
        assert!(find_condition(&again.conditions, IMAGE_VERIFIED).is_none());
    }

    #[test]
    fn reservation_lists_sorted_hosts_and_window() {
        let pr = request();
        let p = Placement {
            start: at("2026-11-26T10:00:00Z"),
            end: at("2026-11-26T11:00:00Z"),
            assignments: vec![
                Assignment {
                    role: "node".into(),
                    host: "h9".into(),
                },
                Assignment {
                    role: "node".into(),
                    host: "h1".into(),
                },
            ],
        };
        let s = desired(&pr, Standing::Decided(&Decision::Reserve(p)), &now(1));
        assert_eq!(s.phase, Some(PodRequestPhase::Scheduled));
        let hosts: Vec<_> = s.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(hosts, ["h1", "h9"]);
        assert_eq!(s.host_count, Some(2));
        assert_eq!(
            s.message.as_deref(),
            Some("2 hosts reserved from 2026-11-26T10:00Z to 2026-11-26T11:00Z")
        );
    }

    #[test]
    fn bound_request_mirrors_the_lease_and_reports_rejected_extensions() {
        let pr = request();
        let l = lease(LeasePhase::Provisioning, 1);
        let s = desired(
            &pr,
            Standing::Bound {
                lease: &l,
                rejected: None,
                handed: &Handed::default(),
            },
            &now(1),
        );
        assert_eq!(s.phase, Some(PodRequestPhase::Provisioning));
        assert_eq!(
            s.message.as_deref(),
            Some("provisioning: 1 of 2 hosts ready")
        );
        assert_eq!(s.lease.as_deref(), Some("pod"));
        let l = lease(LeasePhase::Ready, 2);
        let reason = "host h1 is reserved by team/next from 2026-11-24T12:00Z";
        let s = desired(
            &pr,
            Standing::Bound {
                lease: &l,
                rejected: Some(reason),
                handed: &Handed::default(),
            },
            &now(2),
        );
        assert_eq!(s.phase, Some(PodRequestPhase::Ready));
        assert!(conditions::is_true(&s.conditions, READY));
        assert_eq!(
            find_condition(&s.conditions, EXTENSION_REJECTED)
                .unwrap()
                .message,
            reason
        );
    }

    #[test]
    fn a_bound_request_shows_each_host_and_its_children_and_a_second_pass_writes_nothing() {
        let mut pr = request();
        let l = lease(LeasePhase::Ready, 2);
        let handed = Handed {
            hosts: vec![AssignedHost {
                role: "node".into(),
                host: "h1".into(),
                hostname: Some("node-1".into()),
                mac_addresses: vec!["52:54:00:00:00:01".into()],
                addresses: vec!["10.1.0.5".into()],
                host_keys: vec!["ssh-ed25519 AAAA".into()],
                ready_at: Some(now(5)),
            }],
            access_secret: Some("pod-access".into()),
            descriptor: None,
        };
        let bound = Standing::Bound {
            lease: &l,
            rejected: None,
            handed: &handed,
        };
        let s = desired(&pr, bound, &now(10));
        assert_eq!(s.hosts, handed.hosts);
        assert_eq!(s.host_count, Some(1));
        assert_eq!(s.access_secret.as_deref(), Some("pod-access"));
        pr.status = Some(s.clone());
        assert_eq!(desired(&pr, bound, &now(20)), s);
    }

    #[test]
    fn a_booking_whose_image_failed_is_failed_with_the_reason_after_its_lease_too() {
        let mut pr = request();
        let mut l = lease(LeasePhase::Releasing, 0);
        let why = "host h1: spec.image.url http://x.invalid/a.iso cannot be used";
        if let Some(s) = l.status.as_mut() {
            fixtures::image_refused(&mut s.conditions, why, &now(1));
        }
        let s = desired(
            &pr,
            Standing::Bound {
                lease: &l,
                rejected: None,
                handed: &Handed::default(),
            },
            &now(2),
        );
        assert_eq!(s.phase, Some(PodRequestPhase::Failed));
        assert_eq!(s.message, Some(format!("failed: {why}")));
        pr.status = Some(s.clone());
        let after = desired(&pr, Standing::Finished, &now(3));
        assert_eq!(
            (after.phase, after.message),
            (s.phase, s.message),
            "collecting the Lease keeps the failure"
        );
    }

    #[test]
    fn a_refused_lease_tells_the_user_what_happened_and_what_to_do() {
        let now = KubeTime(Timestamp::UNIX_EPOCH);
        let mut pr = fixtures::podrequest("ci-pod", 1);
        pr.metadata.namespace = Some("team-a".into());
        let why = "its signature does not match its content";
        let status = desired(
            &pr,
            Standing::Refused {
                lease: "ci-pod",
                why,
                releasing: true,
            },
            &now,
        );
        assert_eq!(status.phase, Some(PodRequestPhase::Releasing));
        assert!(status.hosts.is_empty());
        let message = status.message.clone().unwrap();
        for part in [
            "Lease ci-pod is not honoured",
            why,
            "Only the labpods operator writes Leases",
            "its hosts are being released",
            "kubectl delete leases.labpods.dev ci-pod -n team-a",
        ] {
            assert!(message.contains(part), "{part:?} missing from {message:?}");
        }
        let scheduled = find_condition(&status.conditions, SCHEDULED).unwrap();
        assert_eq!(
            (scheduled.status.as_str(), scheduled.reason.as_str()),
            ("False", LEASE_REFUSED)
        );
        let waiting = desired(
            &pr,
            Standing::Refused {
                lease: "ci-pod",
                why,
                releasing: false,
            },
            &now,
        );
        assert_eq!(waiting.phase, Some(PodRequestPhase::Pending));
        assert!(waiting.message.unwrap().contains("no host is bound for it"));
    }
}

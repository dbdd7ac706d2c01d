//! Adapters from the CRDs (`labpods_api::v1alpha1`) to the scheduler's own types.
//!
//! The caller (the PodRequest controller) builds one [`PlanInput`](labpods_scheduler::PlanInput) per pass
//! from its caches:
//! - hosts: every LabHost, with the end of the Lease its claimRef names;
//! - reservations: the hosts of Leases that exist for requests still waiting to start;
//! - requests: PodRequests that are valid and not yet running (Pending or Scheduled).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time as KubeTime};
use k8s_openapi::jiff::Timestamp;
use kube_core::{Resource, ResourceExt};
use labpods_api::v1alpha1::{HostState, LABEL_RACK, LabHost, Lease, PodRequest, RoleSpec};
use labpods_api::validation::parse_duration;

use chrono::{DateTime, TimeDelta};

use labpods_scheduler::{
    Claim, Host, Length, Operator, Policy, Request, RequestKey, Requirement, Reservation, Role,
    Selector, Time,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FromApiError {
    #[error("{0} has no creationTimestamp")]
    NotCreated(String),
    #[error("{object}: {field} is not a duration: {value}")]
    BadDuration {
        object: String,
        field: &'static str,
        value: String,
    },
    #[error("{object}: {field} operator {operator} is not In, NotIn, Exists or DoesNotExist")]
    BadOperator {
        object: String,
        field: String,
        operator: String,
    },
    #[error("{0}: set spec.duration or spec.end")]
    NoLength(String),
}

impl FromApiError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotCreated(_) => "not_created",
            Self::BadDuration { .. } => "bad_duration",
            Self::BadOperator { .. } => "bad_operator",
            Self::NoLength(_) => "no_length",
        }
    }
}

pub fn time(t: &KubeTime) -> Time {
    timestamp(t.0)
}

/// Converts a scheduler instant to the API's (second precision, as the apiserver stores).
pub fn kube_time(t: Time) -> KubeTime {
    KubeTime(Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn timestamp(t: Timestamp) -> Time {
    DateTime::from_timestamp(
        t.as_second(),
        u32::try_from(t.subsec_nanosecond()).unwrap_or(0),
    )
    .unwrap_or_default()
}

/// The scheduler's policy reads the rack from the API's rack label.
pub fn policy_defaults() -> Policy {
    Policy {
        rack_label: LABEL_RACK.to_owned(),
        ..Policy::default()
    }
}

/// `lease_end`: the end of the Lease named by the host's claimRef, if the caller knows it. A
/// claim whose Lease is unknown (not yet in the cache) holds the host for `unknown_claim`
/// from now: never free a claimed host on a guess.
pub fn host(
    labhost: &LabHost,
    lease_end: Option<Time>,
    now: Time,
    unknown_claim: TimeDelta,
) -> Host {
    let status = labhost.status.as_ref();
    let state = status.and_then(|s| s.state);
    let reachable = status.and_then(|s| s.bmc_reachable) != Some(false);
    // A host being deleted is leaving the lab (after its release).
    let schedulable = !labhost.spec.maintenance
        && labhost.metadata.deletion_timestamp.is_none()
        && reachable
        && !matches!(
            state,
            Some(HostState::Error | HostState::Maintenance | HostState::Registering) | None
        );
    let claim = labhost.spec.claim_ref.as_ref().map(|c| Claim {
        owner: RequestKey::new(&c.namespace, &c.name),
        until: lease_end.unwrap_or(now + unknown_claim),
    });
    Host {
        name: labhost.name_any(),
        labels: labhost.labels().clone(),
        profile: labhost.spec.profile.clone(),
        schedulable,
        claim,
    }
}

/// One reservation per host of a Lease that has not started.
pub fn reservations(lease: &Lease) -> Vec<Reservation> {
    let owner = RequestKey::new(
        lease.namespace().unwrap_or_default(),
        &lease.spec.request_ref.name,
    );
    lease
        .spec
        .hosts
        .iter()
        .map(|h| Reservation {
            host: h.host.clone(),
            role: h.role.clone(),
            owner: owner.clone(),
            start: time(&lease.spec.start),
            end: time(&lease.spec.end),
        })
        .collect()
}

/// `seq` breaks ties between requests created in the same second (e.g. the order in which
/// the controller first saw them).
pub fn request(pr: &PodRequest, seq: u64) -> Result<Request, FromApiError> {
    let object = format!("{}/{}", pr.namespace().unwrap_or_default(), pr.name_any());
    let created = pr
        .meta()
        .creation_timestamp
        .as_ref()
        .map(time)
        .ok_or_else(|| FromApiError::NotCreated(object.clone()))?;
    let length = match (&pr.spec.end, &pr.spec.duration) {
        (Some(end), _) => Length::Until(time(end)),
        (None, Some(text)) => {
            let d = parse_duration(text).ok_or_else(|| FromApiError::BadDuration {
                object: object.clone(),
                field: "spec.duration",
                value: text.clone(),
            })?;
            Length::For(TimeDelta::seconds(d.as_secs()))
        }
        (None, None) => return Err(FromApiError::NoLength(object)),
    };
    let roles = pr
        .spec
        .roles
        .iter()
        .enumerate()
        .map(|(i, r)| role(r, &object, i))
        .collect::<Result<_, _>>()?;
    Ok(Request {
        key: RequestKey::new(pr.namespace().unwrap_or_default(), pr.name_any()),
        uid: pr.uid().unwrap_or_default(),
        created,
        seq,
        roles,
        start: pr.spec.start.as_ref().map(time),
        length,
    })
}

fn role(r: &RoleSpec, object: &str, index: usize) -> Result<Role, FromApiError> {
    let selector = match &r.selector {
        Some(s) => selector(s, object, index)?,
        None => Selector::default(),
    };
    Ok(Role {
        name: r.name.clone(),
        count: r.count,
        selector,
        profile: r.profile.clone(),
    })
}

fn selector(s: &LabelSelector, object: &str, index: usize) -> Result<Selector, FromApiError> {
    let match_expressions = s
        .match_expressions
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, e)| {
            let values = || e.values.clone().unwrap_or_default();
            let operator = match e.operator.as_str() {
                "In" => Operator::In(values()),
                "NotIn" => Operator::NotIn(values()),
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(FromApiError::BadOperator {
                        object: object.to_owned(),
                        field: format!(
                            "spec.roles[{index}].selector.matchExpressions[{j}].operator"
                        ),
                        operator: other.to_owned(),
                    });
                }
            };
            Ok(Requirement {
                key: e.key.clone(),
                operator,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Selector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use labpods_api::v1alpha1::{ClaimRef, LabHostSpec, LabHostStatus, SecretReference};

    fn labhost(state: Option<HostState>, maintenance: bool) -> LabHost {
        let mut spec = LabHostSpec::new("http://127.0.0.1:9101", "x86", SecretReference::default());
        spec.maintenance = maintenance;
        let mut h = LabHost::new("h1", spec);
        h.status = Some(LabHostStatus {
            state,
            bmc_reachable: Some(true),
            ..Default::default()
        });
        h
    }

    #[test]
    fn only_available_or_claimed_hosts_in_service_are_schedulable() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let cases = [
            (Some(HostState::Available), false, true),
            (Some(HostState::Provisioned), false, true),
            (Some(HostState::Available), true, false),
            (Some(HostState::Error), false, false),
            (Some(HostState::Maintenance), false, false),
            (Some(HostState::Registering), false, false),
            (None, false, false),
        ];
        for (state, maintenance, want) in cases {
            assert_eq!(
                host(&labhost(state, maintenance), None, now, TimeDelta::hours(1)).schedulable,
                want,
                "{state:?} {maintenance}"
            );
        }
        let mut unreachable = labhost(Some(HostState::Available), false);
        if let Some(s) = unreachable.status.as_mut() {
            s.bmc_reachable = Some(false);
        }
        assert!(!host(&unreachable, None, now, TimeDelta::hours(1)).schedulable);

        let mut claimed = labhost(Some(HostState::Provisioned), false);
        claimed.spec.claim_ref = Some(ClaimRef {
            namespace: "team".into(),
            name: "pod".into(),
            uid: "u".into(),
            lease: "pod".into(),
        });
        let h = host(&claimed, None, now, TimeDelta::hours(1));
        assert_eq!(
            h.claim,
            Some(Claim {
                owner: RequestKey::new("team", "pod"),
                until: now + TimeDelta::hours(1)
            })
        );
    }

    #[test]
    fn podrequests_convert_with_their_selectors_and_length() {
        let yaml = r#"
apiVersion: labpods.dev/v1alpha1
kind: PodRequest
metadata: {name: pod, namespace: team, uid: u1, creationTimestamp: "2026-11-24T10:00:00Z"}
spec:
  image: {url: "http://images.lab.test/a.iso"}
  duration: 1d12h
  roles:
  - name: jump
    count: 1
    selector:
      matchLabels: {labpods.dev/rack: r1}
      matchExpressions: [{key: gpu, operator: DoesNotExist}]
  - {name: node, count: 3, profile: x86-large}
"#;
        let pr: PodRequest = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        let r = request(&pr, 7).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.key.to_string(), "team/pod");
        assert_eq!(r.length, Length::For(TimeDelta::hours(36)));
        assert_eq!(r.roles[0].selector.describe(), "labpods.dev/rack=r1,!gpu");
        assert_eq!(
            (r.roles[1].count, r.roles[1].profile.as_deref()),
            (3, Some("x86-large"))
        );

        let bad = yaml.replace("DoesNotExist", "Near");
        let pr: PodRequest = serde_yaml::from_str(&bad).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            request(&pr, 7).map_err(|e| e.to_string()),
            Err("team/pod: spec.roles[0].selector.matchExpressions[0].operator operator Near is not In, NotIn, Exists or DoesNotExist".to_owned())
        );
    }
}

//! Records a phone-home report in the LabHost's `status.reported`, from whichever replica the
//! host called. The token is checked against the host's current run (its claim's booking and
//! the run's start), so a report of an earlier booking or run is refused. The write is a
//! merge patch preconditioned on the resourceVersion the run was read at: it never lands on
//! a host whose run changed since, and the leader's status writes (preconditioned too) never
//! overwrite a report they were not computed with. The leader clears the report when the
//! host's next run starts or it leaves its booking ([`forget`]).

use std::{future::Future, pin::Pin, sync::Arc};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use labpods_api::v1alpha1::{
    BootReport, HostState, LabHost, LabHostStatus, Operation, ProvisioningProgress,
};
use serde_json::json;

use crate::{
    context::Clock,
    http::{PhoneHomeError, PhoneHomeSink, PhoneHomeTokens, Report, Run},
};

/// Field manager of the reports (a follower may write them: not the controller's).
pub const FIELD_MANAGER: &str = "labpods-phone-home";
/// Writes tried when the LabHost changes under one (each re-reads and re-checks the run).
const MAX_WRITES: usize = 3;

/// The run a phone-home token of `host` is bound to now, with its Lease (`ns/name`): the
/// provisioning run in progress, or the one that booted the current image, for the host's
/// claim. None when the host serves no booking's OS.
pub fn current_run(host: &LabHost) -> Option<(Run<'_>, String)> {
    let claim = host.spec.claim_ref.as_ref()?;
    let status = host.status.as_ref()?;
    let started = match &status.provisioning {
        Some(p) if p.operation == Operation::Provision => &p.started_at,
        Some(_) => return None,
        None if status.state == Some(HostState::Provisioned) => status.booted_run.as_ref()?,
        None => return None,
    };
    let run = Run {
        host: host.metadata.name.as_deref()?,
        booking: &claim.uid,
        started: started.0.as_second(),
    };
    Some((run, format!("{}/{}", claim.namespace, claim.lease)))
}

/// Whether the host phoned home during the current provisioning run.
pub fn received(host: &LabHost, progress: &ProvisioningProgress) -> bool {
    let reported = host.status.as_ref().and_then(|s| s.reported.as_ref());
    match (reported, current_run(host)) {
        (Some(r), Some((_, lease))) => r.lease == lease && r.at >= progress.started_at,
        _ => false,
    }
}

/// Drops what the booted OS reported and the run it booted in: at a new run, and when the
/// host leaves its booking.
pub fn forget(status: &mut LabHostStatus) {
    status.reported = None;
    status.booted_run = None;
}

/// The report as status holds it: the callback's source address first.
fn boot_report(lease: String, report: Report, now: Timestamp) -> BootReport {
    BootReport {
        lease,
        instance_id: report.instance_id,
        hostname: report.hostname,
        addresses: report.peer.map(|a| a.to_string()).into_iter().collect(),
        host_keys: report.host_keys,
        at: Time(Timestamp::from_second(now.as_second()).unwrap_or(now)),
    }
}

/// Writes reports through the API server.
#[derive(Clone)]
pub struct StatusSink {
    client: Client,
    tokens: PhoneHomeTokens,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StatusSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusSink")
    }
}

impl StatusSink {
    pub fn new(client: Client, tokens: PhoneHomeTokens, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            tokens,
            clock,
        }
    }
}

impl PhoneHomeSink for StatusSink {
    fn record<'a>(
        &'a self,
        host: &'a str,
        token: &'a str,
        report: Report,
    ) -> Pin<Box<dyn Future<Output = Result<(), PhoneHomeError>> + Send + 'a>> {
        Box::pin(async move {
            let api: Api<LabHost> = Api::all(self.client.clone());
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            let mut last = None;
            for _ in 0..MAX_WRITES {
                let lh = api
                    .get_opt(host)
                    .await?
                    .ok_or_else(|| PhoneHomeError::UnknownHost(host.to_string()))?;
                let Some((run, lease)) = current_run(&lh) else {
                    return Err(PhoneHomeError::NotWaiting(host.to_string()));
                };
                if !self.tokens.verify(&run, token) {
                    return Err(PhoneHomeError::InvalidToken);
                }
                let new = boot_report(lease, report.clone(), self.clock.now());
                let known = lh.status.as_ref().and_then(|s| s.reported.as_ref());
                // cloud-init retries: the same report again changes nothing.
                if known.is_some_and(|k| {
                    BootReport {
                        at: k.at.clone(),
                        ..new.clone()
                    } == *k
                }) {
                    return Ok(());
                }
                let patch = json!({
                    "metadata": { "resourceVersion": lh.metadata.resource_version },
                    "status": { "reported": new },
                });
                match api.patch_status(host, &params, &Patch::Merge(&patch)).await {
                    Ok(_) => return Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 409 => last = Some(kube::Error::Api(s)),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(last.map_or(PhoneHomeError::NotWaiting(host.to_string()), Into::into))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use labpods_api::v1alpha1::{ClaimRef, LabHostSpec, ProvisioningStep, SecretReference};

    use super::*;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn host(status: LabHostStatus) -> LabHost {
        let mut spec = LabHostSpec::new(
            "https://bmc",
            "small",
            SecretReference {
                namespace: "labpods-system".into(),
                name: "bmc".into(),
            },
        );
        spec.claim_ref = Some(ClaimRef {
            namespace: "team-a".into(),
            name: "ci-pod".into(),
            uid: "uid-1".into(),
            lease: "ci-pod-1".into(),
        });
        let mut h = LabHost::new("node-01", spec);
        h.status = Some(status);
        h
    }

    fn provisioning(started: i64) -> ProvisioningProgress {
        ProvisioningProgress {
            operation: Operation::Provision,
            step: ProvisioningStep::WaitBooted,
            image: None,
            attempts: 1,
            started_at: at(started),
            step_started_at: at(started),
            lease: "ci-pod-1".into(),
        }
    }

    #[test]
    fn the_run_is_the_one_in_progress_or_the_one_that_booted_the_os() {
        let running = host(LabHostStatus {
            provisioning: Some(provisioning(100)),
            ..LabHostStatus::default()
        });
        let (run, lease) = current_run(&running).unwrap();
        assert_eq!(
            (run.host, run.booking, run.started, lease.as_str()),
            ("node-01", "uid-1", 100, "team-a/ci-pod-1")
        );
        let booted = host(LabHostStatus {
            state: Some(HostState::Provisioned),
            booted_run: Some(at(100)),
            ..LabHostStatus::default()
        });
        assert_eq!(current_run(&booted).unwrap().0, run);

        let mut releasing = provisioning(200);
        releasing.operation = Operation::Release;
        let not_a_run = [
            LabHostStatus {
                provisioning: Some(releasing),
                booted_run: Some(at(100)),
                ..LabHostStatus::default()
            },
            LabHostStatus {
                state: Some(HostState::Available),
                booted_run: Some(at(100)),
                ..LabHostStatus::default()
            },
        ];
        for status in not_a_run {
            assert!(current_run(&host(status.clone())).is_none(), "{status:?}");
        }
        let mut unclaimed = booted.clone();
        unclaimed.spec.claim_ref = None;
        assert!(current_run(&unclaimed).is_none());
    }

    #[test]
    fn only_a_report_of_this_run_and_lease_counts() {
        let report = |lease: &str, secs| BootReport {
            lease: lease.into(),
            instance_id: None,
            hostname: None,
            addresses: vec![],
            host_keys: vec![],
            at: at(secs),
        };
        let with = |r| {
            host(LabHostStatus {
                provisioning: Some(provisioning(100)),
                reported: Some(r),
                ..LabHostStatus::default()
            })
        };
        let p = provisioning(100);
        assert!(received(&with(report("team-a/ci-pod-1", 130)), &p));
        assert!(!received(&with(report("team-a/ci-pod-1", 90)), &p));
        assert!(!received(&with(report("team-a/other", 130)), &p));

        let mut status = with(report("team-a/ci-pod-1", 130)).status.unwrap();
        status.booted_run = Some(at(100));
        forget(&mut status);
        assert_eq!((status.reported, status.booted_run), (None, None));
    }

    #[test]
    fn a_report_keeps_the_peer_address_first_and_whole_seconds() {
        let report = Report {
            hostname: Some("node-0".into()),
            peer: Some("127.0.0.7".parse().unwrap()),
            ..Report::default()
        };
        let now = Timestamp::from_second(100)
            .unwrap()
            .checked_add(k8s_openapi::jiff::SignedDuration::from_millis(600))
            .unwrap();
        let r = boot_report("team-a/l".into(), report, now);
        assert_eq!(r.addresses, vec!["127.0.0.7".to_string()]);
        assert_eq!((r.hostname.as_deref(), r.at), (Some("node-0"), at(100)));
    }
}

//! Records a phone-home report in the LabHost's `status.reported`, from whichever replica the
//! host called. The token is checked against the host's current run (its claim's booking and
//! the run's start), so a report of an earlier booking or run is refused. The write is a
//! merge patch preconditioned on the resourceVersion the run was read at: it never lands on
//! a host whose run changed since, and the leader's status writes (preconditioned too) never
//! overwrite a report they were not computed with. The leader clears the report when the
//! host's next run starts or it leaves its booking ([`forget`]).
//!
//! A release run that boots a wipe image hands the image a seed with that run's token: its
//! callback is the wipe's evidence (`status.lastWipe`), and the release completes only with
//! it. A host that merely powered off proves nothing about its disks.

use std::{future::Future, pin::Pin, sync::Arc};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use labpods_api::v1alpha1::{
    BootReport, HostState, LabHost, LabHostStatus, Operation, ProvisioningProgress, WipeReport,
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

/// What a run's phone-home stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// The booking's OS booted; its report names the Lease (`ns/name`).
    Boot { lease: String },
    /// The wipe image of a release run finished (the evidence a wipe needs).
    Wipe,
}

/// The run a phone-home token of `host` is bound to now, and what its callback means: the
/// provisioning or wipe run in progress (see [`run_of`]), or the one that booted the
/// current image, for the host's claim. None when nothing on the host may call.
pub fn current_run(host: &LabHost) -> Option<(Run<'_>, Purpose)> {
    let status = host.status.as_ref()?;
    if let Some(progress) = &status.provisioning {
        return run_of(host, progress);
    }
    if status.state != Some(HostState::Provisioned) {
        return None;
    }
    boot_run(host, status.booted_run.as_ref()?)
}

/// The token-bound run of `progress` on `host`: a provisioning run for the host's claim; a
/// release run that boots a wipe image, bound to the LabHost itself (an admin's release has
/// no booking, and the claim may go while it runs). None for a release without a wipe.
pub fn run_of<'a>(
    host: &'a LabHost,
    progress: &ProvisioningProgress,
) -> Option<(Run<'a>, Purpose)> {
    match progress.operation {
        Operation::Provision => boot_run(host, &progress.started_at),
        Operation::Release => {
            progress.image.as_ref()?;
            let run = Run {
                host: host.metadata.name.as_deref()?,
                booking: host.metadata.uid.as_deref().unwrap_or_default(),
                started: progress.started_at.0.as_second(),
            };
            Some((run, Purpose::Wipe))
        }
    }
}

fn boot_run<'a>(host: &'a LabHost, started: &Time) -> Option<(Run<'a>, Purpose)> {
    let claim = host.spec.claim_ref.as_ref()?;
    let run = Run {
        host: host.metadata.name.as_deref()?,
        booking: &claim.uid,
        started: started.0.as_second(),
    };
    let lease = format!("{}/{}", claim.namespace, claim.lease);
    Some((run, Purpose::Boot { lease }))
}

/// Whether the host phoned home during `progress`: its booted OS for a provisioning run,
/// its wipe image (the wipe's evidence) for a release run.
pub fn received(host: &LabHost, progress: &ProvisioningProgress) -> bool {
    let Some(status) = host.status.as_ref() else {
        return false;
    };
    match run_of(host, progress) {
        Some((_, Purpose::Boot { lease })) => status
            .reported
            .as_ref()
            .is_some_and(|r| r.lease == lease && r.at >= progress.started_at),
        Some((_, Purpose::Wipe)) => status
            .last_wipe
            .as_ref()
            .is_some_and(|w| w.run == progress.started_at),
        None => false,
    }
}

/// Drops what the booted OS reported and the run it booted in: at a new run, and when the
/// host leaves its booking. A wipe's evidence stays: it is the record of the host's last wipe.
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

/// The status fields a report sets (`reported` for a boot, `lastWipe` for a wipe), or None
/// when the host holds that report already.
fn new_status(
    lh: &LabHost,
    purpose: Purpose,
    report: Report,
    now: Timestamp,
) -> Option<serde_json::Value> {
    let status = lh.status.as_ref();
    match purpose {
        Purpose::Boot { lease } => {
            let new = boot_report(lease, report, now);
            let known = status.and_then(|s| s.reported.as_ref());
            let same = known.is_some_and(|k| {
                BootReport {
                    at: k.at.clone(),
                    ..new.clone()
                } == *k
            });
            (!same).then(|| json!({ "reported": new }))
        }
        Purpose::Wipe => {
            let progress = status.and_then(|s| s.provisioning.as_ref())?;
            let run = progress.started_at.clone();
            if status
                .and_then(|s| s.last_wipe.as_ref())
                .is_some_and(|w| w.run == run)
            {
                return None;
            }
            let wipe = WipeReport {
                run,
                lease: progress.lease.clone(),
                instance_id: report.instance_id,
                at: Time(Timestamp::from_second(now.as_second()).unwrap_or(now)),
            };
            Some(json!({ "lastWipe": wipe }))
        }
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
                let Some((run, purpose)) = current_run(&lh) else {
                    return Err(PhoneHomeError::NotWaiting(host.to_string()));
                };
                if !self.tokens.verify(&run, token) {
                    return Err(PhoneHomeError::InvalidToken);
                }
                let Some(status) = new_status(&lh, purpose, report.clone(), self.clock.now())
                else {
                    // cloud-init retries: the same report again changes nothing.
                    return Ok(());
                };
                let patch = json!({
                    "metadata": { "resourceVersion": lh.metadata.resource_version },
                    "status": status,
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
    use labpods_api::v1alpha1::{ClaimRef, ProvisioningStep};

    use super::*;
    use labpods_core::fixtures;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn host(status: LabHostStatus) -> LabHost {
        let mut h = fixtures::labhost("node-01", None);
        h.spec.claim_ref = Some(ClaimRef {
            namespace: "team-a".into(),
            name: "ci-pod".into(),
            uid: "uid-1".into(),
            lease: "ci-pod-1".into(),
        });
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
        let (run, purpose) = current_run(&running).unwrap();
        assert_eq!(
            (run.host, run.booking, run.started, purpose),
            (
                "node-01",
                "uid-1",
                100,
                Purpose::Boot {
                    lease: "team-a/ci-pod-1".into()
                }
            )
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

    fn wiping(started: i64) -> LabHost {
        let mut progress = provisioning(started);
        progress.operation = Operation::Release;
        progress.step = ProvisioningStep::WaitWiped;
        progress.image = Some("http://images/wipe.iso".into());
        let mut h = host(LabHostStatus {
            provisioning: Some(progress),
            ..LabHostStatus::default()
        });
        h.metadata.uid = Some("host-uid".into());
        h
    }

    #[test]
    fn a_release_with_a_wipe_image_is_a_wipe_run_bound_to_the_host_not_the_booking() {
        let h = wiping(300);
        let (run, purpose) = current_run(&h).unwrap();
        assert_eq!(
            (run.host, run.booking, run.started, purpose),
            ("node-01", "host-uid", 300, Purpose::Wipe)
        );
        // An admin's release has no claim: the same run.
        let mut unclaimed = h.clone();
        unclaimed.spec.claim_ref = None;
        assert_eq!(current_run(&unclaimed).unwrap().0, run);
    }

    #[test]
    fn only_a_wipe_report_of_this_release_run_is_evidence_and_it_outlives_the_release() {
        let mut h = wiping(300);
        let progress = h.status.as_ref().unwrap().provisioning.clone().unwrap();
        assert!(!received(&h, &progress));
        let report = Report {
            instance_id: Some("labpods-host-uid-node-01-300".into()),
            ..Report::default()
        };
        let now = Timestamp::from_second(400).unwrap();
        let set = new_status(&h, Purpose::Wipe, report.clone(), now).unwrap();
        let wipe: WipeReport = serde_json::from_value(set["lastWipe"].clone()).unwrap();
        assert_eq!(
            (wipe.run.clone(), wipe.lease.as_str(), wipe.at.clone()),
            (at(300), "ci-pod-1", at(400))
        );
        let status = h.status.as_mut().unwrap();
        status.last_wipe = Some(wipe.clone());
        assert!(received(&h, &progress));
        // cloud-init's retry changes nothing; a boot report is not a wipe's evidence.
        assert_eq!(new_status(&h, Purpose::Wipe, report, now), None);
        // A report of an earlier release run is no evidence for this one.
        let later = wiping(500);
        let mut stale = later.clone();
        stale.status.as_mut().unwrap().last_wipe = Some(wipe);
        let p = later.status.unwrap().provisioning.unwrap();
        assert!(!received(&stale, &p));
        let mut status = stale.status.unwrap();
        forget(&mut status);
        assert!(status.last_wipe.is_some(), "the wipe's record stays");
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

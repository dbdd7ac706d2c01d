//! End-to-end release safety: a host leaves a booking only through a completed release, and a
//! host whose release cannot complete is quarantined (out of the pool, powered off) until a
//! lab admin's maintenance round trip runs a full release. The operator runs as a process
//! against simulated BMCs; the checks read the API and what the BMC itself recorded.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use labpods_api::conditions::{QUARANTINED, is_true};
use labpods_api::v1alpha1::{
    HostState, ImageSpec, LabHost, LeasePhase, PodRequest, PodRequestPhase, PodRequestSpec,
};
use labpods_operator::history::store::KIND_LABEL;
use labpods_sim::{Event, PowerState};
use labpods_tests::Error;
use labpods_tests::e2e::{E2e, WIPE_IMAGE, WIPED_PROFILE};
use labpods_tests::sim::HostGroup;

const RELEASE_TIMEOUT: Duration = Duration::from_secs(90);

fn quarantined(host: &LabHost) -> bool {
    host.status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, QUARANTINED))
}

/// The Quarantined condition's message, empty without one.
fn quarantine_message(host: &LabHost) -> String {
    host.status
        .as_ref()
        .and_then(|s| labpods_api::conditions::find_condition(&s.conditions, QUARANTINED))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

fn state(host: &LabHost) -> Option<HostState> {
    host.status.as_ref().and_then(|s| s.state)
}

/// Waits until `done` holds for `name`, failing at once if the host is ever in `forbidden`
/// meanwhile.
async fn wait_host_never(
    e2e: &mut E2e,
    name: &str,
    forbidden: HostState,
    what: &str,
    done: impl Fn(&LabHost) -> bool,
) -> Result<LabHost> {
    let api: Api<LabHost> = Api::all(e2e.client());
    let done = &done;
    e2e.wait(what, RELEASE_TIMEOUT, || {
        let api = api.clone();
        async move {
            let host = api.get(name).await?;
            if state(&host) == Some(forbidden) {
                return Err(Error::Invariant(format!(
                    "{name} went {forbidden:?} while waiting for {what}: {:?}",
                    host.status
                )));
            }
            Ok(done(&host).then_some(host))
        }
    })
    .await
}

/// Until its wipe ran a host must never be back in the pool.
async fn wait_host_never_available(
    e2e: &mut E2e,
    name: &str,
    what: &str,
    done: impl Fn(&LabHost) -> bool,
) -> Result<LabHost> {
    wait_host_never(e2e, name, HostState::Available, what, done).await
}

/// The tenant's BMC stops answering while the booking runs (as a tenant with root can make
/// it, by resetting the BMC from inside). The host goes to Error still claimed; when the
/// booking ends its release cannot complete, so it is quarantined: the Lease and PodRequest
/// finish, the host stays out of the pool and is powered off as soon as the BMC answers
/// again, and only the admin's maintenance on/off runs the profile's wipe and returns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_host_failing_mid_run_is_quarantined_until_an_admin_release_wipes_it() -> Result<()> {
    let mut e2e = E2e::start_wiping("e2e-quarantine", &[HostGroup::new(WIPED_PROFILE, 1)]).await?;
    e2e.book("q", vec![e2e.role("node", 1, None)], "1h").await?;
    let hosts = e2e.check_ready("q", &[("node", 1)]).await?;
    let host = hosts.first().context("no host assigned")?.clone();
    let bmc = e2e.sim()?.bmc(&host)?;

    bmc.set_error_rate(1.0);
    let failed = wait_host_never_available(&mut e2e, &host, "the host to fail", |h| {
        state(h) == Some(HostState::Error)
    })
    .await?;
    let claim = failed
        .spec
        .claim_ref
        .context("the failed host lost its claim")?;
    assert_eq!(claim.lease, "q", "the failed host is still the booking's");

    // The booking ends; the release cannot reach the BMC.
    e2e.release("q").await?;
    let stuck = wait_host_never_available(
        &mut e2e,
        &host,
        "the host to be quarantined and its claim let go",
        |h| quarantined(h) && h.spec.claim_ref.is_none(),
    )
    .await?;
    assert_eq!(state(&stuck), Some(HostState::Error));
    let message = quarantine_message(&stuck);
    assert!(
        message.contains("lease q") && message.contains("spec.maintenance"),
        "the quarantine says which release failed and what the admin does: {message}"
    );
    // The booking is over for its user even so.
    let api = Api::<PodRequest>::namespaced(e2e.client(), e2e.namespace());
    e2e.wait("the PodRequest to be deleted", RELEASE_TIMEOUT, || {
        let api = api.clone();
        async move { Ok(api.get_opt("q").await?.is_none().then_some(())) }
    })
    .await?;
    if let Some(lease) = e2e.lease("q").await? {
        let phase = lease.status.and_then(|s| s.phase);
        if phase != Some(LeasePhase::Released) {
            bail!("the PodRequest is gone but its Lease is {phase:?}");
        }
    }

    // The BMC answers again: the host is forced off, and stays quarantined.
    bmc.set_error_rate(0.0);
    let probe = bmc.clone();
    wait_host_never_available(
        &mut e2e,
        &host,
        "the quarantined host to be powered off",
        |h| quarantined(h) && probe.state().power_state == PowerState::Off,
    )
    .await?;
    if bmc
        .boots()
        .iter()
        .any(|(_, image)| image.as_deref() == Some(WIPE_IMAGE))
    {
        bail!(
            "the wipe ran before the admin asked for it: {:?}",
            bmc.boots()
        );
    }

    // The admin's action: maintenance on, then off, runs a full release with the wipe (the
    // simulated wipe image reports with the run's token, then powers off).
    admin_release(&mut e2e, &host).await?;
    e2e.wait_hosts_free(&hosts, RELEASE_TIMEOUT).await?;
    let back = e2e.labhost(&host).await?;
    assert!(
        !quarantined(&back),
        "a completed release ends the quarantine"
    );
    let wipe = back.status.and_then(|s| s.last_wipe);
    assert!(
        wipe.as_ref().is_some_and(|w| w.lease.is_empty()),
        "the admin's release recorded its wipe: {wipe:?}"
    );

    // Back in the pool for the next booking.
    e2e.book("next", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    e2e.wait_phase("next", PodRequestPhase::Ready, RELEASE_TIMEOUT)
        .await?;
    e2e.shutdown().await?;
    Ok(())
}

/// Maintenance on, then off: the lab admin's full release of a host.
async fn admin_release(e2e: &mut E2e, host: &str) -> Result<()> {
    e2e.set_maintenance(host, true).await?;
    wait_host_never_available(e2e, host, "the host to be in Maintenance", |h| {
        state(h) == Some(HostState::Maintenance)
    })
    .await?;
    e2e.set_maintenance(host, false).await
}

/// How many times the host has booted the wipe image.
fn wipe_boots(bmc: &labpods_sim::HostHandle) -> usize {
    bmc.boots()
        .iter()
        .filter(|(_, image)| image.as_deref() == Some(WIPE_IMAGE))
        .count()
}

/// A wipe counts only on evidence. The wipe image powers the host off without reporting
/// (an image that cannot phone home: the simulator's OS runs no cloud-init): the release
/// fails at WaitWiped, is retried from the power-off, and gives up into quarantine; the
/// host is never Available. Once the image can report, the admin's release wipes it, and
/// the wipe's report is on the LabHost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_wipe_that_never_reports_is_not_taken_as_done() -> Result<()> {
    let mut e2e = E2e::start_wiping("e2e-silent-wipe", &[HostGroup::new(WIPED_PROFILE, 1)]).await?;
    e2e.book("w", vec![e2e.role("node", 1, None)], "1h").await?;
    let hosts = e2e.check_ready("w", &[("node", 1)]).await?;
    let host = hosts.first().context("no host assigned")?.clone();
    let bmc = e2e.sim()?.bmc(&host)?;
    bmc.set_no_cloud_init(true);
    e2e.release("w").await?;
    // maxAttempts is 2 in the tests: the wipe runs twice, silently each time.
    for run in 1..=2 {
        let probe = bmc.clone();
        wait_host_never_available(&mut e2e, &host, "the wipe image to run", |_| {
            wipe_boots(&probe) >= run && probe.state().power_state == PowerState::On
        })
        .await?;
        e2e.sim()?.power_off_from_os(&host).await?;
    }
    let stuck = wait_host_never_available(&mut e2e, &host, "the host to be quarantined", |h| {
        quarantined(h) && state(h) == Some(HostState::Error)
    })
    .await?;
    let message = quarantine_message(&stuck);
    assert!(
        message.contains("without reporting completion") && message.contains("lease w"),
        "the quarantine says the wipe never reported: {message}"
    );
    assert!(
        stuck
            .status
            .as_ref()
            .and_then(|s| s.last_wipe.as_ref())
            .is_none(),
        "no wipe was recorded"
    );

    // An image that reports: the admin's release completes and records the wipe.
    bmc.set_no_cloud_init(false);
    admin_release(&mut e2e, &host).await?;
    e2e.wait_hosts_free(&hosts, RELEASE_TIMEOUT).await?;
    let back = e2e.labhost(&host).await?;
    let wipe = back.status.as_ref().and_then(|s| s.last_wipe.clone());
    assert!(
        wipe.is_some() && !quarantined(&back),
        "a reported wipe ends the quarantine: {wipe:?}"
    );
    assert_eq!(wipe_boots(&bmc), 3, "two silent wipes and the reported one");
    e2e.shutdown().await?;
    Ok(())
}

/// A tenant's mistake never takes hardware out of the pool: an image URL the BMC cannot
/// fetch fails the booking after the bounded retry, with a reason naming the field, and the
/// host goes through a normal release (never Error) and serves the next booking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_unreachable_image_fails_the_booking_and_the_host_serves_the_next() -> Result<()> {
    const BAD_IMAGE: &str = "http://images.invalid/e2e-os.iso";
    let mut e2e = E2e::start("e2e-bad-image", &[HostGroup::new("small", 1)]).await?;
    let host = e2e.host_names().first().context("no host")?.clone();
    let spec = PodRequestSpec::new(
        vec![e2e.role("node", 1, None)],
        ImageSpec::new(BAD_IMAGE),
        "1h",
    );
    e2e.book_spec("bad", spec).await?;
    let api = Api::<PodRequest>::namespaced(e2e.client(), e2e.namespace());
    let labhosts: Api<LabHost> = Api::all(e2e.client());
    let failed = e2e
        .wait(
            "the booking to fail, its host never in Error",
            RELEASE_TIMEOUT,
            || {
                let (api, labhosts, host) = (api.clone(), labhosts.clone(), host.clone());
                async move {
                    let labhost = labhosts.get(&host).await?;
                    if state(&labhost) == Some(HostState::Error) {
                        return Err(Error::Invariant(format!(
                            "{host} went to Error for the booking's bad image: {:?}",
                            labhost.status
                        )));
                    }
                    let request = api.get("bad").await?;
                    let phase = request.status.as_ref().and_then(|s| s.phase);
                    Ok((phase == Some(PodRequestPhase::Failed)).then_some(request))
                }
            },
        )
        .await?;
    let message = failed.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains(&format!("spec.image.url {BAD_IMAGE}")),
        "the reason names the field and the URL: {message}"
    );
    e2e.wait_hosts_free(std::slice::from_ref(&host), RELEASE_TIMEOUT)
        .await?;
    // What the BMC saw: a bounded number of refused inserts (maxAttempts: 2), no boot of it.
    let history = e2e.sim()?.bmc(&host)?.history();
    let refused = history
        .iter()
        .filter(|e| matches!(e, Event::MediaRefused { image, .. } if image == BAD_IMAGE))
        .count();
    assert_eq!(refused, 2, "InsertMedia tries: {history:#?}");
    // The host serves the next booking.
    e2e.book("good", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    let hosts = e2e.check_ready("good", &[("node", 1)]).await?;
    assert_eq!(hosts, [host]);
    let bad = e2e
        .podrequest("bad")
        .await?
        .context("the failed PodRequest is gone")?;
    assert_eq!(
        bad.status.and_then(|s| s.phase),
        Some(PodRequestPhase::Failed),
        "a failed booking stays Failed"
    );
    e2e.shutdown().await?;
    Ok(())
}

/// History is never on the release path (DESIGN.md "History"): with a ResourceQuota refusing
/// every new ConfigMap in the operator's namespace, where the history lives, a booking still
/// ends, its request is deleted and its host returns to the pool; once the quota goes, the
/// background writer records the booking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_refused_history_write_keeps_no_booking_from_ending_and_is_retried() -> Result<()> {
    let mut e2e = E2e::start("e2e-history-full", &[HostGroup::new("small", 1)]).await?;
    let ns = e2e.operator_namespace().to_string();
    let configmaps: Api<ConfigMap> = Api::namespaced(e2e.client(), &ns);
    let quotas: Api<ResourceQuota> = Api::namespaced(e2e.client(), &ns);
    let existing = configmaps.list(&ListParams::default()).await?.items.len();
    let quota = ResourceQuota {
        metadata: ObjectMeta {
            name: Some("no-new-configmaps".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ResourceQuotaSpec {
            hard: Some(
                [(
                    "count/configmaps".to_string(),
                    Quantity(existing.to_string()),
                )]
                .into(),
            ),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    };
    quotas.create(&PostParams::default(), &quota).await?;
    // The quota controller has counted the ConfigMaps: from now on a new one is refused.
    let probe = ConfigMap {
        metadata: ObjectMeta {
            name: Some("quota-probe".into()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    let refusing = configmaps.clone();
    e2e.wait(
        "the quota to refuse new ConfigMaps",
        RELEASE_TIMEOUT,
        || {
            let api = refusing.clone();
            let probe = probe.clone();
            async move {
                match api.create(&PostParams::default(), &probe).await {
                    Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("quota") => {
                        Ok(Some(()))
                    }
                    Err(e) => Err(e.into()),
                    Ok(_) => {
                        api.delete("quota-probe", &DeleteParams::default()).await?;
                        Ok(None)
                    }
                }
            }
        },
    )
    .await?;

    e2e.book("h", vec![e2e.role("node", 1, None)], "1h").await?;
    let hosts = e2e.check_ready("h", &[("node", 1)]).await?;
    e2e.release("h").await?;
    let requests = Api::<PodRequest>::namespaced(e2e.client(), e2e.namespace());
    e2e.wait("the PodRequest to be deleted", RELEASE_TIMEOUT, || {
        let api = requests.clone();
        async move { Ok(api.get_opt("h").await?.is_none().then_some(())) }
    })
    .await?;
    e2e.wait_hosts_free(&hosts, RELEASE_TIMEOUT).await?;
    // The booking's record was offered, and its write refused.
    let log = e2e.operators()[0].log_path().to_path_buf();
    e2e.wait(
        "the operator to report the refused history write",
        RELEASE_TIMEOUT,
        || {
            let log = log.clone();
            async move {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                Ok(text
                    .contains("allocation history write failed")
                    .then_some(()))
            }
        },
    )
    .await?;
    let history = ListParams::default().labels(KIND_LABEL);
    let written = configmaps.list(&history).await?.items;
    assert!(
        written.is_empty(),
        "a history ConfigMap was written despite the quota: {:?}",
        written.iter().map(|c| &c.metadata.name).collect::<Vec<_>>()
    );

    quotas
        .delete("no-new-configmaps", &DeleteParams::default())
        .await?;
    let api = configmaps.clone();
    let history = &history;
    e2e.wait(
        "the booking's history to be written once the quota is gone",
        Duration::from_secs(180),
        || {
            let api = api.clone();
            async move { Ok((!api.list(history).await?.items.is_empty()).then_some(())) }
        },
    )
    .await?;
    e2e.shutdown().await?;
    Ok(())
}

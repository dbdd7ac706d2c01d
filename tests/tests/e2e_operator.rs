//! End-to-end: the operator (`labpods run`, a separate process) on a real control plane,
//! driving simulated BMCs. Each test asserts what a user sees through the API and what the
//! BMCs saw. They run one at a time (nextest test group `e2e`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use labpods_api::conditions::{EXTENSION_REJECTED, QUARANTINED, SCHEDULED, find_condition};
use labpods_api::v1alpha1::{
    HostState, ImageSpec, LabHost, Lease, LeaseHost, LeasePhase, LeaseSpec, Operation, PodRequest,
    PodRequestPhase, PodRequestSpec, ProvisioningStep, RequestRef,
};
use labpods_tests::bmc_log;
use labpods_tests::e2e::{
    E2e, PROVISION_TIMEOUT, WIPE_IMAGE, WIPED_PROFILE, earliest_start, from_now, to_minute,
};
use labpods_tests::sim::HostGroup;

const RELEASE_TIMEOUT: Duration = Duration::from_secs(90);
const SCHEDULE_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_book_jumphost_and_three_nodes_to_ready() -> Result<()> {
    let mut e2e = E2e::start(
        "e2e-book",
        &[HostGroup::new("small", 1), HostGroup::new("large", 3)],
    )
    .await?;
    let roles = vec![
        e2e.role("jumphost", 1, Some("small")),
        e2e.role("node", 3, Some("large")),
    ];
    e2e.book("ci-pod", roles, "1h").await?;
    let hosts = e2e
        .check_ready("ci-pod", &[("jumphost", 1), ("node", 3)])
        .await?;
    assert_eq!(hosts.len(), 4);
    e2e.check_no_double_binding().await?;
    // A lab operator looking at a host sees what the operator did to it: the Events of a
    // cluster-scoped LabHost are found by `kubectl describe`.
    let kubectl = labpods_tests::Kubectl::new(e2e.kubeconfig())?;
    let host = hosts.first().context("no host assigned")?.clone();
    e2e.wait(
        "kubectl describe labhost to list the Provisioned event",
        PROVISION_TIMEOUT,
        || {
            let kubectl = kubectl.clone();
            let host = host.clone();
            async move {
                let text = kubectl.run(["describe", "labhost", &host]).await?.ok()?;
                let events = text
                    .split_once("\nEvents:")
                    .map_or("", |(_, events)| events);
                let listed = events
                    .lines()
                    .any(|line| line.contains("Provisioned") && line.contains("booted "));
                Ok(listed.then_some(()))
            }
        },
    )
    .await?;
    e2e.shutdown().await?;
    Ok(())
}

/// At expiry each host powers off; the wiped profile's host boots its wipe image with a seed
/// of the release run, and is back in the pool only once the wipe reported with that run's
/// token (the simulator plays cloud-init: phone-home, then power-off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_expiry_powers_off_wipes_and_collects() -> Result<()> {
    let mut e2e = E2e::start_wiping(
        "e2e-expiry",
        &[HostGroup::new(WIPED_PROFILE, 1), HostGroup::new("plain", 1)],
    )
    .await?;
    // The API takes durations in minutes: a 40 s window is written as an end.
    let roles = vec![e2e.role("node", 2, None)];
    e2e.book_window("short", roles, None, from_now(40)?).await?;
    let hosts = e2e.check_ready("short", &[("node", 2)]).await?;
    let wiped = e2e
        .sim()?
        .hosts()
        .iter()
        .find(|h| h.profile == WIPED_PROFILE)
        .map(|h| h.name.clone())
        .context("no wiped host")?;
    let before = e2e.labhost(&wiped).await?;
    e2e.wait_hosts_free(&hosts, RELEASE_TIMEOUT).await?;

    // The wipe's evidence: its report, with the release run's instance, recorded on the host.
    let bmc = e2e.sim()?.bmc(&wiped)?;
    let state = bmc.state();
    let playback = state
        .playback
        .clone()
        .context("the wipe image read no seed")?;
    let seed = playback
        .seed
        .clone()
        .context("the wipe's seed was not read")?;
    let answered = playback.phone_home.as_ref().and_then(|p| p.status);
    ensure!(
        answered.is_some_and(|s| (200..300).contains(&s)) && playback.powered_off,
        "the wipe image reported, then powered off: {playback:?}"
    );
    ensure!(
        !seed.user_data.contains("ssh_authorized_keys") && !seed.user_data.contains("runcmd"),
        "a wipe's seed holds nothing of the booking: {}",
        seed.user_data
    );
    let after = e2e.labhost(&wiped).await?;
    let wipe = after
        .status
        .as_ref()
        .and_then(|s| s.last_wipe.clone())
        .context("no lastWipe on the wiped host")?;
    ensure!(
        wipe.lease == "short" && wipe.instance_id == seed.instance_id,
        "the recorded wipe is this release's: {wipe:?} vs seed {:?}",
        seed.instance_id
    );
    ensure!(
        before.status.and_then(|s| s.last_wipe).is_none(),
        "no wipe was recorded before the release"
    );
    ensure!(
        !state.usb_stick.inserted && !state.media.inserted,
        "the wipe's media are ejected: {state:?}"
    );
    let plain = hosts
        .iter()
        .find(|h| **h != wiped)
        .context("no plain host")?;
    let plain_boots = e2e.sim()?.bmc(plain)?.boots();
    if plain_boots
        .iter()
        .any(|(_, image)| image.as_deref() == Some(WIPE_IMAGE))
    {
        bail!("{plain} has no wipe image configured but booted one: {plain_boots:?}");
    }
    // The booking says it is over once every host is back.
    e2e.wait_phase("short", PodRequestPhase::Released, RELEASE_TIMEOUT)
        .await?;
    e2e.wait_lease_gone("short", RELEASE_TIMEOUT).await?;
    e2e.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_deleting_the_podrequest_releases_early() -> Result<()> {
    let mut e2e = E2e::start("e2e-early", &[HostGroup::new("small", 2)]).await?;
    let roles = vec![e2e.role("node", 2, None)];
    e2e.book("early", roles, "1h").await?;
    let hosts = e2e.check_ready("early", &[("node", 2)]).await?;
    e2e.release("early").await?;
    e2e.wait_hosts_free(&hosts, RELEASE_TIMEOUT).await?;
    e2e.wait_lease_gone("early", RELEASE_TIMEOUT).await?;
    let client = e2e.client();
    let namespace = e2e.namespace().to_string();
    e2e.wait("PodRequest early to be gone", RELEASE_TIMEOUT, || {
        let api: kube::Api<labpods_api::v1alpha1::PodRequest> =
            kube::Api::namespaced(client.clone(), &namespace);
        async move { Ok(api.get_opt("early").await?.is_none().then_some(())) }
    })
    .await?;
    e2e.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_insufficient_capacity_waits_then_binds() -> Result<()> {
    let mut e2e = E2e::start("e2e-capacity", &[HostGroup::new("large", 2)]).await?;
    e2e.book("first", vec![e2e.role("node", 2, Some("large"))], "1h")
        .await?;
    let first_hosts = e2e.check_ready("first", &[("node", 2)]).await?;
    e2e.book("second", vec![e2e.role("node", 2, Some("large"))], "1h")
        .await?;
    let message = e2e.wait_waiting("second", SCHEDULE_TIMEOUT).await?;
    // The shortfall is named: how many hosts, of which profile.
    assert!(
        message.contains('2') && message.contains("large"),
        "the waiting message should name the shortfall (2 large hosts): {message:?}"
    );
    e2e.release("first").await?;
    let second_hosts = e2e.check_ready("second", &[("node", 2)]).await?;
    let first: BTreeSet<_> = first_hosts.into_iter().collect();
    let second: BTreeSet<_> = second_hosts.into_iter().collect();
    assert_eq!(
        first, second,
        "the only two hosts go to the waiting booking"
    );
    e2e.check_no_double_binding().await?;
    e2e.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_maintenance_host_is_never_claimed() -> Result<()> {
    let mut e2e = E2e::start("e2e-maint", &[HostGroup::new("small", 3)]).await?;
    let down = e2e.host_names()[0].clone();
    e2e.set_maintenance(&down, true).await?;
    e2e.book("two", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    let hosts = e2e.check_ready("two", &[("node", 2)]).await?;
    assert!(
        !hosts.contains(&down),
        "{down} is in maintenance but was assigned: {hosts:?}"
    );
    e2e.book("one-more", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    // It waits for the booking's hosts, the maintenance host not counted as free.
    let message = e2e.wait_waiting("one-more", SCHEDULE_TIMEOUT).await?;
    let busy_until = e2e
        .lease("two")
        .await?
        .context("Lease two is missing")?
        .spec
        .end;
    let two_ends = to_minute(busy_until.0)?;
    assert!(
        message.contains("0 free now") && earliest_start(&message).is_some_and(|at| at >= two_ends),
        "one-more should wait for the end of two ({busy_until:?}) with no free host: {message:?}"
    );
    let labhost = e2e.labhost(&down).await?;
    assert_eq!(
        labhost.spec.claim_ref, None,
        "{down} in maintenance got a claim"
    );
    assert_eq!(
        labhost.status.and_then(|s| s.state),
        Some(HostState::Maintenance)
    );
    let boots = e2e.sim()?.bmc(&down)?.boots();
    assert!(
        boots.is_empty(),
        "{down} in maintenance was booted: {boots:?}"
    );
    e2e.shutdown().await?;
    Ok(())
}

/// The operator is SIGKILLed while it provisions, and a new replica finishes the job from
/// the step each host's run had stored, not from the start. A run started over would show
/// in the API (the run that booted the host would be a new one: LabHost status.bootedRun is
/// the startedAt of the run that booted it) and on the BMCs (after the restart they would
/// see the work of earlier steps again: a power-off, a second InsertMedia, ...; and the
/// image booted twice, which `check_ready` counts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_operator_killed_mid_provisioning_resumes() -> Result<()> {
    let mut e2e = E2e::start("e2e-crash", &[HostGroup::new("small", 3)]).await?;
    e2e.book("crash", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    let client = e2e.client();
    // Killed once a host has its image inserted: a restart would then redo BMC work a
    // resume does not (with the host still at its first step, both would power it off).
    e2e.wait(
        "a host to be provisioning past InsertMedia",
        PROVISION_TIMEOUT,
        || {
            let api: Api<LabHost> = Api::all(client.clone());
            async move {
                let hosts = api.list(&Default::default()).await?;
                let past_insert = hosts.items.iter().any(|h| {
                    h.status
                        .as_ref()
                        .and_then(|s| s.provisioning.as_ref())
                        .is_some_and(|p| {
                            p.operation == Operation::Provision
                                && p.step > ProvisioningStep::InsertMedia
                                && p.step < ProvisioningStep::Done
                        })
                });
                Ok(past_insert.then_some(()))
            }
        },
    )
    .await?;
    e2e.operator("a")?.kill()?;
    // What the next replica finds: each run's stored step and start, and how far each
    // BMC's history went before the kill (what comes after is the next replica's).
    let mut stored = Vec::new();
    for host in e2e.host_names() {
        let status = e2e.labhost(&host).await?.status.unwrap_or_default();
        if let Some(run) = status
            .provisioning
            .filter(|p| p.operation == Operation::Provision)
        {
            let seen = e2e.sim()?.bmc(&host)?.history().len();
            stored.push((host, run, seen));
        }
    }
    ensure!(
        !stored.is_empty(),
        "no host was being provisioned when the operator was killed"
    );
    e2e.check_no_double_binding().await?;
    e2e.start_operator("b")?;
    let hosts = e2e.check_ready("crash", &[("node", 2)]).await?;
    e2e.check_no_double_binding().await?;
    let mut redone = Vec::new();
    for (host, run, seen) in &stored {
        ensure!(
            hosts.contains(host),
            "{host} was provisioned for the booking, which now holds {hosts:?}"
        );
        let booted_run = e2e.labhost(host).await?.status.and_then(|s| s.booted_run);
        ensure!(
            booted_run.as_ref() == Some(&run.started_at),
            "{host} was booted by the run started at {booted_run:?}, not by the run started at {:?} that was at step {:?} when the operator died: provisioning started over",
            run.started_at,
            run.step
        );
        let history = e2e.sim()?.bmc(host)?.history();
        let since = history.get(*seen..).unwrap_or_default();
        redone.extend(bmc_log::steps_redone(host, run.step, since));
    }
    ensure!(
        redone.is_empty(),
        "after the restart the BMCs saw earlier steps again:\n{}",
        redone.join("\n")
    );
    e2e.shutdown().await?;
    Ok(())
}

/// Two replicas: one leads and acts, the other does nothing until the leader dies, then
/// takes over and serves the next booking. "Nothing" is looked for where a follower's work
/// would show: the BMCs' own call logs (the operator's User-Agent names its replica), the
/// Events it would publish (reportingInstance) and its own /metrics (reconciles, status
/// writes, Redfish requests, leadership). The same checks find the leader's work, so they
/// are not blind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_two_replicas_one_leader_acts() -> Result<()> {
    let mut e2e = E2e::start("e2e-replicas", &[HostGroup::new("small", 2)]).await?;
    e2e.start_operator("b")?;
    let leader = e2e.wait_leader(None, SCHEDULE_TIMEOUT).await?;
    let (leader_suffix, follower_suffix) = match leader.strip_prefix("e2e-replicas-") {
        Some("a") => ("a", "b"),
        Some("b") => ("b", "a"),
        _ => bail!("leader {leader:?} is neither replica"),
    };
    e2e.book("first", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    e2e.check_ready("first", &[("node", 1)]).await?;
    let acted = e2e.replica_activity(leader_suffix).await?;
    ensure!(
        acted.acted() && acted.leading,
        "the leader's work is not found: {acted:?}"
    );
    let follower = e2e.replica_activity(follower_suffix).await?;
    ensure!(
        follower.is_idle(),
        "the follower acted while {leader} led: {follower:?}"
    );
    // The leader dies: the follower takes over and serves the next booking.
    e2e.operator(leader_suffix)?.kill()?;
    e2e.book("second", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    e2e.check_ready("second", &[("node", 1)]).await?;
    let now = e2e.leader().await?;
    assert_eq!(
        now.as_deref(),
        Some(format!("e2e-replicas-{follower_suffix}").as_str())
    );
    let took_over = e2e.replica_activity(follower_suffix).await?;
    ensure!(
        took_over.acted() && took_over.leading,
        "the new leader's work is not found: {took_over:?}"
    );
    e2e.check_no_double_binding().await?;
    e2e.shutdown().await?;
    Ok(())
}

/// Twenty bookings of one or two hosts compete for a lab of twelve, and are served first
/// come, first served as the scheduler defines it (`scheduler/plan.rs` `order` with the
/// operator's defaults: no fairness window, so by creationTimestamp, then name; conservative
/// backfill, where a later request starts early only if that delays no earlier one). Every
/// booking asks for the same hour from now and the first eight created ask for exactly the
/// twelve hosts (1+2+1+2+1+2+1+2), so backfill has no gap to fill: exactly those eight are
/// bound, and no later one is, not even for a moment (looked for on every poll).
///
/// The twenty are created while no operator runs, so they compete in one scheduling pass
/// rather than being served one by one as they arrive, and named in reverse creation order,
/// so an operator that went by name (its caches' order) would bind the other twelve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_twenty_requests_compete_for_twelve_hosts() -> Result<()> {
    const HOSTS: u32 = 12;
    let mut e2e = E2e::start("e2e-contend", &[HostGroup::new("small", HOSTS as usize)]).await?;
    // The operator registers the hosts (Available and off), then steps aside.
    e2e.wait_hosts_free(&e2e.host_names(), PROVISION_TIMEOUT)
        .await?;
    e2e.operator("a")?.stop();

    // In creation order: (name, hosts).
    let queue: Vec<(String, u32)> = (0..20)
        .map(|i| (format!("req-{:02}", 20 - i), if i % 2 == 0 { 1 } else { 2 }))
        .collect();
    let (first, later) = queue.split_at(8);
    ensure!(first.iter().map(|(_, count)| count).sum::<u32>() == HOSTS);
    let created = |request: &PodRequest| {
        request
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .context("a PodRequest without a creationTimestamp")
    };
    let mut last_first = 0;
    for (name, count) in first {
        let request = e2e
            .book(name, vec![e2e.role("node", *count, None)], "1h")
            .await?;
        last_first = created(&request)?;
    }
    // The later twelve are created in a later second (creationTimestamps are to the
    // second), so the name, which sorts them first, never breaks a tie with the first eight.
    e2e.wait("the next second", SCHEDULE_TIMEOUT, || async move {
        Ok((Timestamp::now().as_second() > last_first).then_some(()))
    })
    .await?;
    for (name, count) in later {
        let request = e2e
            .book(name, vec![e2e.role("node", *count, None)], "1h")
            .await?;
        ensure!(
            created(&request)? > last_first,
            "{name} was created in the second of the first eight"
        );
    }
    e2e.start_operator("b")?;

    let first: BTreeSet<String> = first.iter().map(|(name, _)| name.clone()).collect();
    let requests: Api<PodRequest> = Api::namespaced(e2e.client(), e2e.namespace());
    let leases: Api<Lease> = Api::namespaced(e2e.client(), e2e.namespace());
    let settled = e2e
        .wait(
            "the first eight bound and the later twelve waiting with a reason",
            PROVISION_TIMEOUT,
            || {
                let (requests, leases, first) = (requests.clone(), leases.clone(), first.clone());
                async move {
                    let mut holders: BTreeMap<String, String> = BTreeMap::new();
                    let (mut bound, mut waiting) = (0usize, 0usize);
                    for request in requests.list(&Default::default()).await?.items {
                        let name = request.metadata.name.unwrap_or_default();
                        let status = request.status.unwrap_or_default();
                        let holds = !status.hosts.is_empty() || status.lease.is_some();
                        if holds && !first.contains(&name) {
                            return Ok(Some(Err(format!(
                                "{name}, created after the first eight, overtook them: {status:?}"
                            ))));
                        }
                        for host in &status.hosts {
                            if let Some(other) = holders.insert(host.host.clone(), name.clone()) {
                                return Ok(Some(Err(format!(
                                    "{} assigned to {other} and {name}",
                                    host.host
                                ))));
                            }
                        }
                        if status.lease.is_some() {
                            bound += 1;
                        } else if status.phase == Some(PodRequestPhase::Pending)
                            && status.message.is_some_and(|m| !m.is_empty())
                            && !first.contains(&name)
                        {
                            waiting += 1;
                        }
                    }
                    for lease in leases.list(&Default::default()).await?.items {
                        let name = lease.metadata.name.unwrap_or_default();
                        if !first.contains(&name) {
                            return Ok(Some(Err(format!(
                                "Lease {name}: a request created after the first eight was bound"
                            ))));
                        }
                    }
                    let settled =
                        bound == first.len() && waiting == 12 && holders.len() == HOSTS as usize;
                    Ok(settled.then_some(Ok(())))
                }
            },
        )
        .await?;
    if let Err(broken) = settled {
        bail!("{broken}\n{}", e2e.diagnostics().await);
    }
    e2e.check_no_double_binding().await?;
    e2e.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_future_booking_holds_its_host_and_binds_at_start() -> Result<()> {
    let mut e2e = E2e::start("e2e-future", &[HostGroup::new("small", 1)]).await?;
    let host = e2e.host_names()[0].clone();
    let start = from_now(40)?;
    let end = from_now(600)?;
    e2e.book_window(
        "later",
        vec![e2e.role("node", 1, None)],
        Some(start.clone()),
        end.clone(),
    )
    .await?;
    e2e.wait_phase("later", PodRequestPhase::Scheduled, SCHEDULE_TIMEOUT)
        .await?;
    // A booking from now that would overlap the reservation must wait for it.
    e2e.book("now", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    let message = e2e.wait_waiting("now", SCHEDULE_TIMEOUT).await?;
    let reserved_until = to_minute(end.0)?;
    assert!(
        earliest_start(&message).is_some_and(|at| at >= reserved_until),
        "now should start no sooner than the reservation's end {end:?}: {message:?}"
    );
    // Still before the start (40 s ahead): the host is held in the calendar, not provisioned.
    let boots = e2e.sim()?.bmc(&host)?.boots();
    assert!(
        boots.is_empty(),
        "{host} was booted before the booking starts: {boots:?}"
    );
    e2e.check_ready("later", &[("node", 1)]).await?;
    let lease = e2e
        .lease("later")
        .await?
        .context("Lease later is missing")?;
    assert!(
        lease.spec.start.0 >= start.0,
        "the Lease starts {:?}, before the booking's start {:?}",
        lease.spec.start,
        start
    );
    let now = e2e
        .podrequest("now")
        .await?
        .context("PodRequest now is gone")?;
    let hosts = now.status.map(|s| s.hosts).unwrap_or_default();
    assert!(
        hosts.is_empty(),
        "the overlapping booking got hosts: {hosts:?}"
    );
    e2e.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_extension_accepted_then_one_rejected() -> Result<()> {
    let mut e2e = E2e::start("e2e-extend", &[HostGroup::new("small", 1)]).await?;
    e2e.book_window(
        "mine",
        vec![e2e.role("node", 1, None)],
        None,
        from_now(180)?,
    )
    .await?;
    e2e.check_ready("mine", &[("node", 1)]).await?;
    // Someone else holds the host from +10 min.
    e2e.book_window(
        "theirs",
        vec![e2e.role("node", 1, None)],
        Some(from_now(600)?),
        from_now(1200)?,
    )
    .await?;
    e2e.wait_phase("theirs", PodRequestPhase::Scheduled, SCHEDULE_TIMEOUT)
        .await?;

    let accepted = from_now(300)?;
    e2e.set_end("mine", &accepted).await?;
    let client = e2e.client();
    let namespace = e2e.namespace().to_string();
    let leases =
        || kube::Api::<labpods_api::v1alpha1::Lease>::namespaced(client.clone(), &namespace);
    let wanted = accepted.clone();
    e2e.wait(
        "the Lease to take the extended end",
        SCHEDULE_TIMEOUT,
        || {
            let api = leases();
            let wanted = wanted.clone();
            async move { Ok((api.get("mine").await?.spec.end == wanted).then_some(())) }
        },
    )
    .await?;

    let refused = from_now(900)?;
    e2e.set_end("mine", &refused).await?;
    let requests =
        || kube::Api::<labpods_api::v1alpha1::PodRequest>::namespaced(client.clone(), &namespace);
    let message = e2e
        .wait(
            "the second extension to be rejected with a reason",
            SCHEDULE_TIMEOUT,
            || {
                let api = requests();
                async move {
                    let request = api.get("mine").await?;
                    let conditions = request.status.map(|s| s.conditions).unwrap_or_default();
                    Ok(find_condition(&conditions, EXTENSION_REJECTED)
                        .filter(|c| c.status == "True")
                        .map(|c| c.message.clone()))
                }
            },
        )
        .await?;
    assert!(!message.is_empty(), "the rejection says nothing");
    let lease = e2e.lease("mine").await?.context("Lease mine is gone")?;
    assert_eq!(
        lease.spec.end, accepted,
        "a rejected extension changed the Lease's end"
    );
    assert_eq!(lease.status.and_then(|s| s.phase), Some(LeasePhase::Ready));
    e2e.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bmc_failing_mid_provisioning_gets_a_spare() -> Result<()> {
    let mut e2e = E2e::start("e2e-spare", &[HostGroup::new("small", 3)]).await?;
    e2e.book("spare", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    let client = e2e.client();
    // The first host to start provisioning loses its BMC.
    let broken = e2e
        .wait("a host to start provisioning", PROVISION_TIMEOUT, || {
            let api: kube::Api<labpods_api::v1alpha1::LabHost> = kube::Api::all(client.clone());
            async move {
                Ok(api
                    .list(&Default::default())
                    .await?
                    .items
                    .into_iter()
                    .find_map(|h| {
                        let busy = h.status.as_ref().and_then(|s| s.state)
                            == Some(HostState::Provisioning);
                        busy.then(|| h.metadata.name.clone().unwrap_or_default())
                    }))
            }
        })
        .await?;
    e2e.sim()?.bmc(&broken)?.set_error_rate(1.0);
    let hosts = e2e.check_ready("spare", &[("node", 2)]).await?;
    assert!(
        !hosts.contains(&broken),
        "{broken} failed but is still in the booking: {hosts:?}"
    );
    // The Lease's status names the host swapped out, for the history and for users.
    let lease = e2e.lease("spare").await?.context("Lease spare is gone")?;
    let replaced: Vec<(String, String)> = lease
        .status
        .map(|s| s.replaced)
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.host, r.role))
        .collect();
    assert_eq!(replaced, [(broken.clone(), "node".to_owned())]);
    // Out of the booking, the host is released; its dead BMC makes that release give up,
    // and the host ends quarantined in Error (it may still hold the tenant's OS), with a
    // reason. It may still be Releasing when the pod turns Ready.
    let labhosts: Api<labpods_api::v1alpha1::LabHost> = Api::all(client.clone());
    let status = e2e
        .wait("the failed host to be quarantined", RELEASE_TIMEOUT, || {
            let (api, name) = (labhosts.clone(), broken.clone());
            async move {
                let status = api.get(&name).await?.status.unwrap_or_default();
                let quarantined = find_condition(&status.conditions, QUARANTINED)
                    .is_some_and(|c| c.status == "True");
                Ok((quarantined && status.state == Some(HostState::Error)).then_some(status))
            }
        })
        .await?;
    assert!(
        status.last_error.is_some_and(|e| !e.is_empty()),
        "Error without a reason"
    );
    e2e.check_no_double_binding().await?;
    e2e.shutdown().await?;
    Ok(())
}

/// A lab admin deletes a LabHost while it runs a booking: the host is released first (off,
/// wiped, media ejected) and only then does the LabHost go, and the booking gets a spare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_labhost_deleted_in_a_booking_is_wiped_before_it_goes_and_replaced() -> Result<()> {
    let mut e2e = E2e::start_wiping("e2e-delete-host", &[HostGroup::new(WIPED_PROFILE, 2)]).await?;
    e2e.book("pod", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    let hosts = e2e.check_ready("pod", &[("node", 1)]).await?;
    let deleted = hosts.first().context("no host")?.clone();
    let labhosts: Api<labpods_api::v1alpha1::LabHost> = Api::all(e2e.client());
    let bmc = e2e.sim()?.bmc(&deleted)?;
    // The wipe runs only when the test lets it: its OS reads its seed once this is cleared.
    bmc.set_no_cloud_init(true);
    labhosts.delete(&deleted, &DeleteParams::default()).await?;
    e2e.wait(
        "the wipe image to boot on the deleted host",
        RELEASE_TIMEOUT,
        || {
            let bmc = bmc.clone();
            async move {
                let booted = bmc
                    .boots()
                    .iter()
                    .any(|(_, image)| image.as_deref() == Some(WIPE_IMAGE));
                Ok(booted.then_some(()))
            }
        },
    )
    .await?;
    let held = labhosts
        .get_opt(&deleted)
        .await?
        .context("the LabHost went before its release completed")?;
    assert!(held.metadata.deletion_timestamp.is_some());
    bmc.set_no_cloud_init(false);
    e2e.wait("the deleted LabHost to be gone", RELEASE_TIMEOUT, || {
        let (api, name) = (labhosts.clone(), deleted.clone());
        async move { Ok(api.get_opt(&name).await?.is_none().then_some(())) }
    })
    .await?;
    let state = bmc.state();
    assert_eq!(state.power_state, labpods_sim::PowerState::Off);
    assert!(!state.media.inserted, "media left in the deleted host");
    let requests: Api<PodRequest> = Api::namespaced(e2e.client(), e2e.namespace());
    e2e.wait("the booking to list a spare", RELEASE_TIMEOUT, || {
        let (api, name) = (requests.clone(), deleted.clone());
        async move {
            let pr = api.get("pod").await?;
            let hosts = pr.status.map(|s| s.hosts).unwrap_or_default();
            Ok((!hosts.is_empty() && hosts.iter().all(|h| h.host != name)).then_some(()))
        }
    })
    .await?;
    let now = e2e.check_ready("pod", &[("node", 1)]).await?;
    assert!(
        !now.contains(&deleted),
        "{deleted} is still booked: {now:?}"
    );
    e2e.check_no_double_binding().await?;
    e2e.shutdown().await?;
    Ok(())
}

/// The same lifecycle against sushy-tools' fake systems (two systems behind one Redfish
/// endpoint, addressed by UUID): it reports no BootProgress, so completion comes from the
/// profile's boot fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_sushy_tools_systems_are_reimaged_and_released() -> Result<()> {
    let mut e2e = E2e::start_sushy("e2e-sushy", 2).await?;
    e2e.book("sushy", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    let hosts = e2e.check_ready("sushy", &[("node", 2)]).await?;
    e2e.release("sushy").await?;
    e2e.wait_hosts_free(&hosts, RELEASE_TIMEOUT).await?;
    e2e.wait_lease_gone("sushy", RELEASE_TIMEOUT).await?;
    e2e.shutdown().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Tenancy: the operator honours only the Leases it wrote (its own defence, with no admission
// policy installed), and the shipped policy and roles hold on a whole installed cluster.

/// The Lease a tenant would forge: `hosts` for the request `name` (uid), from now on.
fn forged_lease(e2e: &E2e, name: &str, uid: &str, hosts: &[String]) -> Result<Lease> {
    let mut lease = Lease::new(
        name,
        LeaseSpec::new(
            RequestRef {
                name: name.into(),
                uid: uid.into(),
            },
            hosts.iter().map(|h| LeaseHost {
                host: h.clone(),
                role: "node".into(),
                hostname: None,
            }),
            from_now(0)?,
            from_now(3600)?,
            ImageSpec::new(e2e.image()),
        ),
    );
    lease.metadata.namespace = Some(e2e.namespace().into());
    Ok(lease)
}

/// Waits for the Lease's Authentic condition to be False with `reason`.
async fn wait_refused(e2e: &mut E2e, name: &str, reason: &str) -> Result<String> {
    let api: Api<Lease> = Api::namespaced(e2e.client(), e2e.namespace());
    let what = format!("Lease {name} to be refused ({reason})");
    let reason = reason.to_string();
    e2e.wait(&what, SCHEDULE_TIMEOUT, || {
        let api = api.clone();
        let reason = reason.clone();
        async move {
            let lease = api.get(name).await?;
            let conditions = lease.status.map(|s| s.conditions).unwrap_or_default();
            Ok(find_condition(&conditions, "Authentic")
                .filter(|c| c.status == "False" && c.reason == reason)
                .map(|c| c.message.clone()))
        }
    })
    .await
}

/// Waits for the PodRequest to say its Lease is not honoured.
async fn wait_request_refused(e2e: &mut E2e, name: &str) -> Result<String> {
    let api: Api<PodRequest> = Api::namespaced(e2e.client(), e2e.namespace());
    let what = format!("PodRequest {name} to report its Lease refused");
    e2e.wait(&what, SCHEDULE_TIMEOUT, || {
        let api = api.clone();
        async move {
            let status = api.get(name).await?.status.unwrap_or_default();
            let refused = find_condition(&status.conditions, "Scheduled")
                .is_some_and(|c| c.reason == "LeaseRefused");
            Ok(status.message.filter(|_| refused))
        }
    })
    .await
}

/// Events with `reason` about `name` in the test's namespace.
async fn events_about(e2e: &E2e, name: &str, reason: &str) -> Result<usize> {
    let events: Api<Event> = Api::namespaced(e2e.client(), e2e.namespace());
    Ok(events
        .list(&Default::default())
        .await?
        .items
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .count())
}

/// The attack of issue 7 against the operator itself (no admission policy here; an admin
/// writes what a tenant would): a Lease naming every free host for a waiting request, with a
/// status saying it provisions, and one for no request at all. No host is claimed or booted;
/// the request and the Lease say why; the forged objects are left alone; the lab still
/// books normally around them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_forged_lease_claims_no_host() -> Result<()> {
    let mut e2e = E2e::start("e2e-forged", &[HostGroup::new("small", 3)]).await?;
    let hosts = e2e.host_names();
    // More hosts than the lab has: the request waits, with no Lease of its own.
    e2e.book("waiting", vec![e2e.role("node", 4, None)], "1h")
        .await?;
    e2e.wait_waiting("waiting", SCHEDULE_TIMEOUT).await?;
    let uid = e2e
        .podrequest("waiting")
        .await?
        .and_then(|pr| pr.metadata.uid)
        .context("PodRequest waiting has no uid")?;
    let leases: Api<Lease> = Api::namespaced(e2e.client(), e2e.namespace());
    for (name, uid) in [("waiting", uid.as_str()), ("ghost", "no-such-request")] {
        leases
            .create(
                &PostParams::default(),
                &forged_lease(&e2e, name, uid, &hosts)?,
            )
            .await
            .with_context(|| format!("forging Lease {name}"))?;
        let provisioning = serde_json::json!({ "status": { "phase": "Provisioning" } });
        leases
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&provisioning))
            .await?;
    }

    let message = wait_request_refused(&mut e2e, "waiting").await?;
    assert!(
        message.contains("Lease waiting is not honoured")
            && message.contains("the labpods operator did not write it")
            && message.contains("kubectl delete leases.labpods.dev waiting"),
        "the request should say what happened and what to do: {message}"
    );
    for name in ["waiting", "ghost"] {
        wait_refused(&mut e2e, name, "NotSignedByOperator").await?;
    }
    let events = events_about(&e2e, "waiting", "NotAuthentic").await?;
    assert!(events >= 1, "no NotAuthentic event on the forged Lease");

    for host in &hosts {
        let labhost = e2e.labhost(host).await?;
        assert_eq!(labhost.spec.claim_ref, None, "{host} was claimed");
        let boots = e2e.sim()?.bmc(host)?.boots();
        assert!(boots.is_empty(), "{host} was booted: {boots:?}");
    }
    // The forged Leases hold nothing in the calendar: a real booking gets a host now.
    e2e.book("legit", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    e2e.check_ready("legit", &[("node", 1)]).await?;
    e2e.check_no_double_binding().await?;
    // Never collected, although Released past the retention (5 s): they may be a tenant's.
    for name in ["waiting", "ghost"] {
        assert!(
            leases.get_opt(name).await?.is_some(),
            "the operator deleted the forged Lease {name}"
        );
    }
    let waiting = e2e
        .podrequest("waiting")
        .await?
        .context("PodRequest waiting is gone")?;
    assert!(
        waiting
            .status
            .map(|s| s.hosts)
            .unwrap_or_default()
            .is_empty(),
        "the forged Lease's request got hosts"
    );
    e2e.shutdown().await?;
    Ok(())
}

/// A running booking whose Lease someone stretches (an admin, bypassing the PodRequest and
/// the scheduler): the operator does not keep the hosts past an end it never granted; the
/// changed Lease is not honoured, its hosts are released (powered off, back in the pool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_stretched_lease_end_is_not_honoured() -> Result<()> {
    let mut e2e = E2e::start("e2e-stretch", &[HostGroup::new("small", 2)]).await?;
    e2e.book("mine", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    let hosts = e2e.check_ready("mine", &[("node", 1)]).await?;
    let leases: Api<Lease> = Api::namespaced(e2e.client(), e2e.namespace());
    let stretched = from_now(30 * 86400)?;
    let patch = serde_json::json!({ "spec": { "end": stretched } });
    leases
        .patch("mine", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;

    e2e.wait_hosts_free(&hosts, RELEASE_TIMEOUT).await?;
    let message = wait_request_refused(&mut e2e, "mine").await?;
    assert!(
        message.contains("someone other than the labpods operator wrote or changed it"),
        "the request should say the Lease was changed: {message}"
    );
    wait_refused(&mut e2e, "mine", "ChangedByOthers").await?;
    let request = e2e
        .podrequest("mine")
        .await?
        .context("PodRequest mine is gone")?;
    assert!(
        request
            .status
            .map(|s| s.hosts)
            .unwrap_or_default()
            .is_empty(),
        "the stretched booking still lists hosts"
    );
    for host in &hosts {
        assert_eq!(e2e.labhost(host).await?.spec.claim_ref, None, "{host}");
    }
    e2e.shutdown().await?;
    Ok(())
}

/// The whole cluster as a lab operator installs it (`kubectl apply -k deploy/`, the policy
/// bound for every namespace, the operator as its ServiceAccount with the shipped RBAC): a
/// lab user books to Ready through the policy; the forged Lease, the stretched end and a
/// claim are refused, to the user by RBAC and to a cluster-admin by the policy; the user's
/// release returns the hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_installed_lab_lets_only_the_operator_write_leases_and_claims() -> Result<()> {
    let mut e2e = E2e::start_installed("e2e-installed", &[HostGroup::new("small", 3)]).await?;
    let namespace = e2e.namespace().to_string();
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("alice-books".into()),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "labpods-user".into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: "alice".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(e2e.client(), &namespace)
        .create(&PostParams::default(), &binding)
        .await?;
    let alice = e2e.client_as("alice", &["lab-users"]).await?;
    let request = PodRequest::new(
        "ci-pod",
        PodRequestSpec::new(
            vec![e2e.role("node", 2, None)],
            ImageSpec::new(e2e.image()),
            "1h",
        ),
    );
    let as_alice: Api<PodRequest> = Api::namespaced(alice.clone(), &namespace);
    e2e.wait("RBAC to let alice book", SCHEDULE_TIMEOUT, || {
        let api = as_alice.clone();
        let request = request.clone();
        async move {
            match api.create(&PostParams::default(), &request).await {
                Ok(created) => Ok(Some(created)),
                Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await?;
    let hosts = e2e.check_ready("ci-pod", &[("node", 2)]).await?;
    let free = e2e
        .host_names()
        .into_iter()
        .find(|h| !hosts.contains(h))
        .context("no free host")?;
    let uid = e2e
        .podrequest("ci-pod")
        .await?
        .and_then(|pr| pr.metadata.uid)
        .context("no uid")?;
    let forged = forged_lease(&e2e, "forged", &uid, std::slice::from_ref(&free))?;
    let operator =
        "only the labpods operator (system:serviceaccount:labpods-system:labpods) may write";

    let refused = |result: kube::Result<Lease>| match result {
        Ok(l) => bail!("allowed: {l:?}"),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(s.message),
        Err(e) => Err(e.into()),
    };
    let alice_leases: Api<Lease> = Api::namespaced(alice.clone(), &namespace);
    let admin_leases: Api<Lease> = Api::namespaced(e2e.client(), &namespace);
    let by_rbac = refused(alice_leases.create(&PostParams::default(), &forged).await)?;
    assert!(!by_rbac.contains("ValidatingAdmissionPolicy"), "{by_rbac}");
    let by_policy = refused(admin_leases.create(&PostParams::default(), &forged).await)?;
    assert!(
        by_policy.contains(&format!("{operator} Leases"))
            && by_policy.contains("Create a PodRequest instead"),
        "{by_policy}"
    );
    let lease = admin_leases.get("ci-pod").await?;
    let stretch = serde_json::json!({ "spec": { "end": from_now(30 * 86400)? } });
    refused(
        alice_leases
            .patch("ci-pod", &PatchParams::default(), &Patch::Merge(&stretch))
            .await,
    )?;
    let by_policy = refused(
        admin_leases
            .patch("ci-pod", &PatchParams::default(), &Patch::Merge(&stretch))
            .await,
    )?;
    assert!(
        by_policy.contains(&format!("{operator} spec.end"))
            && by_policy.contains("change spec.end or spec.duration of PodRequest ci-pod"),
        "{by_policy}"
    );
    let claim = serde_json::json!({ "spec": { "claimRef": {
        "namespace": namespace, "name": "ci-pod", "uid": uid, "lease": "ci-pod" } } });
    let hosts_api: Api<labpods_api::v1alpha1::LabHost> = Api::all(e2e.client());
    match hosts_api
        .patch(&free, &PatchParams::default(), &Patch::Merge(&claim))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 403 => assert!(
            s.message.contains(&format!("{operator} spec.claimRef")),
            "{}",
            s.message
        ),
        other => bail!("an admin set a claim: {other:?}"),
    }
    assert_eq!(admin_leases.get("ci-pod").await?.spec.end, lease.spec.end);
    assert_eq!(e2e.labhost(&free).await?.spec.claim_ref, None);
    // Admins still run the lab: maintenance on the free host.
    e2e.set_maintenance(&free, true).await?;

    as_alice.delete("ci-pod", &Default::default()).await?;
    e2e.wait_hosts_free(&hosts, RELEASE_TIMEOUT).await?;
    e2e.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bmc_secret_outside_the_operator_namespace_is_not_read() -> Result<()> {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    let mut e2e = E2e::start("e2e-secret-ns", &[HostGroup::new("small", 1)]).await?;
    let host = e2e.host_names()[0].clone();
    let own = e2e.labhost(&host).await?.spec.bmc.credentials_secret_ref;
    // A tenant namespace holding a Secret with the very same keys (the test has its own
    // control plane: nothing to clean up).
    let tenant = "tenant-a".to_string();
    assert_ne!(tenant, own.namespace, "the test needs two namespaces");
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(tenant.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(e2e.client())
        .create(&PostParams::default(), &namespace)
        .await?;
    let mut copy = Api::<Secret>::namespaced(e2e.client(), &own.namespace)
        .get(&own.name)
        .await?;
    copy.metadata = ObjectMeta {
        name: Some(own.name.clone()),
        namespace: Some(tenant.clone()),
        ..ObjectMeta::default()
    };
    let password = copy
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .map(|p| String::from_utf8_lossy(&p.0).into_owned())
        .context("the sim Secret has a password")?;
    Api::<Secret>::namespaced(e2e.client(), &tenant)
        .create(&PostParams::default(), &copy)
        .await?;
    let patch = serde_json::json!({ "spec": { "bmc": { "credentialsSecretRef": {
        "name": own.name, "namespace": tenant } } } });
    let labhosts = Api::<labpods_api::v1alpha1::LabHost>::all(e2e.client());
    labhosts
        .patch(&host, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let error = e2e
        .wait(
            "lastError naming the Secret's namespace",
            SCHEDULE_TIMEOUT,
            || {
                let api = labhosts.clone();
                let host = host.clone();
                async move {
                    let error = api.get(&host).await?.status.and_then(|s| s.last_error);
                    Ok(error.filter(|e| e.contains("credentialsSecretRef.namespace")))
                }
            },
        )
        .await?;
    assert!(
        error.contains(&own.namespace),
        "the error should name the namespace to move the Secret to: {error}"
    );
    assert!(!error.contains(&password), "the error leaks the password");
    e2e.shutdown().await?;
    Ok(())
}

/// A lab admin rotates the BMC password: the BMC takes the new one (sessions opened before
/// stay valid, as on many BMCs), then the credentials Secret. The operator sees the Secret
/// change, reconnects with the new password and logs the old session out, without waiting
/// for a refusal; the host stays reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_rotated_bmc_credentials_log_the_old_session_out() -> Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    use labpods_sim::{Event as BmcEvent, HostHandle, SessionEnd};
    let mut e2e = E2e::start("e2e-rotation", &[HostGroup::new("small", 1)]).await?;
    let host = e2e.host_names()[0].clone();
    let bmc = e2e.sim()?.bmc(&host)?;
    let opened = |bmc: &HostHandle| -> Vec<u32> {
        bmc.history()
            .iter()
            .filter_map(|e| match e {
                BmcEvent::SessionOpened { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    };
    let first = e2e
        .wait("the operator's first session", SCHEDULE_TIMEOUT, || {
            let bmc = bmc.clone();
            async move { Ok(opened(&bmc).first().copied()) }
        })
        .await?;

    let rotated = labpods_tests::leaks::unique_password();
    let username = e2e.sim()?.username().to_string();
    e2e.keep_confidential(labpods_tests::leaks::Confidential::bmc_login(
        "the rotated BMC password",
        &username,
        &rotated,
    ));
    e2e.sim()?.rotate_password(&rotated);
    let reference = e2e.labhost(&host).await?.spec.bmc.credentials_secret_ref;
    let patch = serde_json::json!({ "stringData": { "password": rotated } });
    Api::<Secret>::namespaced(e2e.client(), &reference.namespace)
        .patch(
            &reference.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;

    e2e.wait(
        "the old session logged out and a new one opened",
        SCHEDULE_TIMEOUT,
        || {
            let bmc = bmc.clone();
            async move {
                let logged_out = bmc.history().iter().any(|e| {
                    matches!(e, BmcEvent::SessionClosed { id, reason: SessionEnd::LoggedOut, .. } if *id == first)
                });
                let renewed = opened(&bmc).iter().any(|id| *id > first);
                Ok((logged_out && renewed).then_some(()))
            }
        },
    )
    .await?;
    let refused = bmc.calls().iter().filter(|c| c.status == Some(401)).count();
    ensure!(refused == 0, "the operator waited for {refused} refusals");
    let status = e2e.labhost(&host).await?.status.unwrap_or_default();
    ensure!(
        status.bmc_reachable == Some(true) && status.state == Some(HostState::Available),
        "the host stays reachable: {status:?}"
    );
    e2e.shutdown().await?;
    Ok(())
}

/// A namespace past `policy.maxOpenRequestsPerNamespace` (2 here): its newest request waits
/// unscheduled with a condition naming the limit, while the older ones are served or wait
/// for hosts as usual; when one ends, it moves up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_requests_past_the_namespace_limit_wait_with_a_condition_naming_it() -> Result<()> {
    let mut e2e = E2e::start_lab("e2e-open-limit", &[HostGroup::new("small", 1)]).await?;
    e2e.settings_mut().max_open_requests = Some(2);
    e2e.start_operator("a")?;
    e2e.book("first", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    e2e.check_ready("first", &[("node", 1)]).await?;
    e2e.book("second", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    e2e.book("third", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    let requests = Api::<PodRequest>::namespaced(e2e.client(), e2e.namespace());
    let scheduled = |name: &'static str| {
        let api = requests.clone();
        move || {
            let api = api.clone();
            async move {
                let status = api.get(name).await?.status.unwrap_or_default();
                Ok(find_condition(&status.conditions, SCHEDULED)
                    .map(|c| (status.phase, c.reason.clone(), c.message.clone())))
            }
        }
    };
    let limit = "over the limit of 2 (policy.maxOpenRequestsPerNamespace)";
    let (phase, reason, message) = e2e
        .wait("third to be held back by the limit", SCHEDULE_TIMEOUT, {
            let check = scheduled("third");
            move || {
                let check = check.clone();
                async move { Ok(check().await?.filter(|(_, _, m)| m.contains(limit))) }
            }
        })
        .await?;
    assert_eq!(
        (phase, reason.as_str()),
        (Some(PodRequestPhase::Pending), "Waiting"),
        "{message}"
    );
    assert!(message.contains("3 open PodRequests"), "{message}");
    let (_, _, waiting) = e2e
        .wait(
            "second to wait for a host",
            SCHEDULE_TIMEOUT,
            scheduled("second"),
        )
        .await?;
    assert!(
        !waiting.contains(limit),
        "second is within the limit: {waiting}"
    );

    e2e.release("first").await?;
    e2e.wait_phase("second", PodRequestPhase::Ready, RELEASE_TIMEOUT)
        .await?;
    let (_, _, moved_up) = e2e
        .wait("third to move up", SCHEDULE_TIMEOUT, {
            let check = scheduled("third");
            move || {
                let check = check.clone();
                async move { Ok(check().await?.filter(|(_, _, m)| !m.contains(limit))) }
            }
        })
        .await?;
    assert!(moved_up.contains("hosts"), "{moved_up}");
    e2e.shutdown().await?;
    Ok(())
}

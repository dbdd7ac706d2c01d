//! The controllers and the runtime that runs them while this replica leads.
//!
//! # Contract between the Lease controller and the LabHost controller
//!
//! The Lease controller decides, the LabHost controller drives hardware. They talk only
//! through the API objects:
//!
//! 1. **Claim.** The PodRequest controller first creates the Lease with no phase (Pending:
//!    "binding, keep the hosts off"), then binds each host by writing
//!    `LabHost.spec.claimRef = {namespace, name, uid (of the PodRequest), lease}` with a
//!    resourceVersion precondition. The Lease must exist first because a claim whose Lease
//!    is gone is cleared (point 3). The Lease controller sets it Bound only once every listed
//!    host is claimed for it; a failed claim rolls back the claims made and deletes the Lease,
//!    so "Bound only after every host is bound" (DESIGN.md) still holds. While the
//!    Lease is `Pending` or `Bound` the LabHost reports `Claimed` and keeps the host off.
//! 2. **Provision.** When the Lease's phase is `Provisioning`, `Ready` or `Degraded` and it
//!    lists the host, the LabHost controller provisions `Lease.spec.image.url` once:
//!    `status.state` goes `Provisioning` (step by step in `status.provisioning`, resumable)
//!    then `Provisioned` (with `status.currentImage`), or `Error` with `status.lastError`.
//!    The Lease controller reads those to set the Lease's phase and per-host progress, and
//!    swaps a spare for a host in `Error` by removing it from `Lease.spec.hosts`.
//! 3. **Release.** When the Lease is `Releasing`/`Released`, deleted, belongs to another
//!    request (uid differs), or no longer lists the host, the LabHost controller releases the
//!    host (power off, optional wipe image of the profile, power off; state `Releasing`) and
//!    then clears `spec.claimRef` itself (merge patch with a resourceVersion precondition).
//!    Only a host never touched for the claim (`Claimed`) has its claim cleared at once; a
//!    host in `Error` is released like any other. A release that gives up quarantines the
//!    host (condition `Quarantined`, state `Error`, kept off) and only then drops the claim;
//!    a quarantined host returns only through a complete release, run when a lab admin
//!    turns `spec.maintenance` on and off again. The host then reports `Available` (or
//!    `Maintenance` when `spec.maintenance`). The Lease controller waits for every host's
//!    claimRef to be gone before `Released`.
//! 4. **Never newly claim** a LabHost whose state is not `Available` (that covers
//!    Maintenance, Error and Registering).
//!
//! Writes: the LabHost controller owns `LabHost.status` (field manager `labpods-labhost`,
//! server-side apply); the Lease controller owns `spec.claimRef` except the final clearing.
//! The phone-home endpoint, on any replica, writes only `LabHost.status.reported` (field
//! manager `labpods-phone-home`, a merge patch on the resourceVersion it checked the run's
//! token against); the LabHost controller removes it when the host's next run starts or the
//! host leaves its booking.
//!
//! # Trust: only the operator's own Leases count
//!
//! Leases live in tenants' namespaces. The admission policy (`deploy/admission/`) lets only
//! the operator's identity write them and `LabHost.spec.claimRef`; as defence in depth the
//! controllers honour only Leases the operator signed ([`crate::signing`]):
//!
//! 5. **Sealed.** A Lease is created with a provisional signature and sealed (signature bound
//!    to its uid) before the first claim; every later spec change (an extension, a spare) is
//!    signed in the same write ([`sealed`]). Claims (point 1), resumed bindings, healing,
//!    extensions, provisioning (point 2), the calendar and the history read sealed Leases
//!    only. A provisional Lease left by a crash is rolled back (deleted by uid), never
//!    resumed; no host was claimed for it.
//! 6. **Refused.** A Lease without a valid signature (forged, or changed by anyone else) binds
//!    nothing: the LabHost controller treats a claim on it as a claim whose Lease is gone and
//!    releases the host (point 3); the Lease controller reports it (`Authentic=False`, phase
//!    Releasing then Released, an Event on it and its PodRequest) and never deletes it; the
//!    PodRequest says why and that deleting the Lease books it again.
//!
//! Claims themselves are trusted: `LabHost` is cluster-scoped, and the policy reserves
//! `spec.claimRef` to the operator.
//!
//! # Runtime
//!
//! [`run`] waits for leadership, then runs every controller until leadership is lost or the
//! process shuts down; a new term starts with fresh caches and a fresh [`Context`]. The
//! LabHost, PodRequest (scheduler) and Lease controllers run side by side in [`run_term`],
//! on one watch of each kind ([`watches`]).

pub mod changes;
pub mod claim;
pub mod fenced_status;
pub mod index;
pub mod labhost;
pub mod lease;
pub mod scheduling;
pub mod sealed;
pub mod snapshot;
pub mod watches;
pub mod written;

use std::{collections::BTreeMap, sync::Arc};

use kube::{Api, Client, core::DeserializeGuard, runtime::reflector::Store};
use labpods_api::v1alpha1::{LabHost, Lease, PodRequest};
use tokio::sync::{Semaphore, watch};

use crate::{
    config::Config,
    context::{Backoffs, Clock, Context, Recorders},
    http::{Health, PhoneHomeTokens},
    leader::Leadership,
    metrics::{Metrics, ObjectCounts},
    signing::LeaseSigner,
};
use watches::Watch;

/// The error policy of the per-object controllers (LabHost, Lease): count the failure, then
/// retry after `key`'s own backoff, or wait for a change when only a change can help
/// ([`Backoffs::retry_after`]).
pub fn retry_or_wait(
    ctx: &Context,
    controller: &'static str,
    key: &str,
    error: &crate::error::Error,
) -> kube::runtime::controller::Action {
    use kube::runtime::controller::Action;
    ctx.metrics
        .reconcile_failed(controller, error.metric_label());
    match ctx.backoffs.retry_after(key, error, &ctx.config.polling) {
        None => Action::await_change(),
        Some(delay) => {
            tracing::warn!(object = %key, %error, retry_in = ?delay, "{controller} reconcile failed");
            Action::requeue(delay)
        }
    }
}

/// Waits until a cache has its first full list. Re-polls on a timer: kube-runtime 5's
/// `wait_until_ready` wakes only the last of several concurrent waiters, and the Controller's
/// own runner waits on the same host cache, so a single long wait here can hang forever.
pub async fn synced<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(
            std::time::Duration::from_millis(500),
            store.wait_until_ready(),
        )
        .await
        {
            Ok(result) => return result.is_ok(),
            Err(_elapsed) => continue,
        }
    }
}

/// What outlives leadership terms.
#[derive(Clone)]
pub struct Shared {
    pub client: Client,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub clock: Arc<dyn Clock>,
    pub bmc: Arc<dyn labpods_redfish::BmcConnector>,
    pub phone_home: PhoneHomeTokens,
    pub signer: LeaseSigner,
    /// Image checksums verified for the scheduler; its cache outlives terms.
    pub images: crate::images::Verifier,
    pub identity: String,
    /// The BMC client's minimum interval between power actions on one system.
    pub min_power_interval: std::time::Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Resolves when the shutdown flag is set (or its sender is gone).
pub async fn shutting_down(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Runs the controllers during every leadership term until shutdown. A shutdown drains the
/// controllers (in-flight reconciles finish); lost leadership drops them at once: in-flight
/// BMC calls, task polls and waits are abandoned, as the next leader may already act.
pub async fn run(shared: Shared, mut leadership: Leadership, shutdown: watch::Receiver<bool>) {
    loop {
        // A follower is ready: it serves /metrics and phone-home, and stands by.
        shared.health.set_ready(true);
        tokio::select! {
            () = leadership.gained() => {}
            () = shutting_down(shutdown.clone()) => return,
        }
        shared.metrics.set_leader(true);
        shared.health.set_ready(false);
        let mut lost = leadership.clone();
        let stop_rx = shutdown.clone();
        let drain = async move {
            shutting_down(stop_rx).await;
            tracing::info!("shutting down: draining controllers");
        };
        tokio::select! {
            () = run_term(&shared, leadership.clone(), drain) => {}
            () = lost.lost() => tracing::warn!("leadership lost: abandoning in-flight work"),
        }
        shared.metrics.set_counts_source(None);
        shared.metrics.set_leader(false);
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Reconciles of one controller in flight at once: each holds a cached object and a client
/// connection, so an unbounded controller woken for every object at start-up floods the
/// apiserver and grows without limit.
pub fn bounded(concurrency: usize) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .concurrency(u16::try_from(concurrency.max(1)).unwrap_or(u16::MAX))
}

/// Reconciles in flight for controllers whose work is API writes, not BMC calls.
pub const API_CONCURRENCY: usize = 16;

/// One leadership term: every controller, until `stop`.
async fn run_term(
    shared: &Shared,
    leadership: Leadership,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let ctx = Arc::new(Context {
        client: shared.client.clone(),
        recorders: Recorders::new(&shared.client, &shared.identity),
        metrics: shared.metrics.clone(),
        config: shared.config.clone(),
        clock: shared.clock.clone(),
        bmc: shared.bmc.clone(),
        bmc_limit: Semaphore::new(shared.config.bmc.global_concurrency),
        leadership,
        power_actions_from: tokio::time::Instant::now() + shared.min_power_interval,
        backoffs: Backoffs::default(),
        phone_home: shared.phone_home.clone(),
        signer: shared.signer.clone(),
        images: shared.images.clone(),
    });
    let metrics = shared.metrics.clone();
    let health = shared.health.clone();
    // One stop signal, fanned out to the three controllers.
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let stop_all = async move {
        stop.await;
        let _ = stopped_tx.send(true);
    };
    let client = &shared.client;
    let mut hosts = Watch::new(Api::<DeserializeGuard<LabHost>>::all(client.clone()));
    let mut leases = Watch::new(Api::<DeserializeGuard<Lease>>::all(client.clone()));
    let mut requests = Watch::new(Api::<DeserializeGuard<PodRequest>>::all(client.clone()));
    let claims = hosts.index(index::by_claimed_lease);
    let listings = leases.index(index::by_listed_host);
    let (caches_tx, caches_rx) = tokio::sync::oneshot::channel();
    let labhost_controller = labhost::run(
        ctx.clone(),
        hosts.subscribe(),
        leases.subscribe(),
        claims.clone(),
        shutting_down(stopped_rx.clone()),
        move |hosts| {
            let booking = caches_rx;
            tokio::spawn(async move {
                let booking: Option<scheduling::Caches> = booking.await.ok();
                metrics.set_counts_source(Some(Arc::new(move || counts(&hosts, booking.as_ref()))));
                health.set_ready(true);
                tracing::info!("caches synced; controllers running");
            });
        },
    );
    let scheduler = scheduling::run(
        ctx.clone(),
        scheduling::Watched {
            requests: requests.subscribe(),
            hosts: hosts.subscribe(),
            leases: leases.subscribe(),
        },
        shutting_down(stopped_rx.clone()),
        move |caches| {
            let _ = caches_tx.send(caches);
        },
    );
    let lease_controller = lease::run(
        ctx,
        leases.subscribe(),
        hosts.subscribe(),
        requests.subscribe(),
        (claims, listings),
        shutting_down(stopped_rx),
    );
    let controllers = async {
        tokio::join!(labhost_controller, scheduler, lease_controller);
    };
    // The watches end with the controllers (which stop polling their events as they drain).
    let watches = async {
        tokio::join!(hosts.run(), leases.run(), requests.run());
    };
    tokio::join!(stop_all, async {
        tokio::select! {
            () = controllers => {}
            () = watches => {}
        }
    });
}

/// Hosts by state and profile from the cache, for /metrics. Unreadable objects count as
/// "Invalid" (profile "") and hosts without a status yet as "Registering".
fn counts(
    hosts: &Store<DeserializeGuard<LabHost>>,
    booking: Option<&scheduling::Caches>,
) -> ObjectCounts {
    let mut by_state = BTreeMap::new();
    let mut hosts_quarantined = 0;
    for host in hosts.state() {
        if let Ok(h) = &host.0
            && h.status.as_ref().is_some_and(|s| {
                labpods_api::conditions::is_true(
                    &s.conditions,
                    labpods_api::conditions::QUARANTINED,
                )
            })
        {
            hosts_quarantined += 1;
        }
        let key = match &host.0 {
            Ok(h) => (
                h.status
                    .as_ref()
                    .and_then(|s| s.state)
                    .map_or_else(|| "Registering".to_string(), |s| format!("{s:?}")),
                h.spec.profile.clone(),
            ),
            Err(_) => ("Invalid".to_string(), String::new()),
        };
        *by_state.entry(key).or_insert(0) += 1;
    }
    ObjectCounts {
        hosts: by_state,
        hosts_quarantined,
        requests: booking
            .map(|c| scheduling::requests_by_phase(&c.requests))
            .unwrap_or_default(),
        leases: booking
            .map(|c| lease::leases_by_phase(&c.leases))
            .unwrap_or_default(),
    }
}

//! The LabHost controller: keeps each host's BMC checked and its power right, and drives the
//! provisioning and release state machines for the host's claim.
//!
//! Pipeline per reconcile (STYLE.md 2): fetch (host, its claim's Lease) -> plan (pure,
//! [`plan`]) -> act on the BMC (one idle check, or steps of the state machine) -> write status
//! (pure [`status`] + one server-side apply, skipped when unchanged).

pub mod bmc;
mod lease_changes;
pub mod phone_home;
pub use labpods_core::host_plan as plan;
pub mod seed;
pub mod status;
mod steps;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::PartialObjectMeta;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    core::DeserializeGuard,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Event as KubeEvent, EventType},
        finalizer::{Error as FinalizerError, Event, finalizer},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use labpods_api::{
    conditions::{self, BOOKING_FAILED, QUARANTINED},
    v1alpha1::{ClaimRef, HostState, LabHost, LabHostStatus, Lease, Operation},
};
use serde_json::json;

use self::{
    bmc::{BmcClients, SecretVersions, call, secret_names},
    plan::{HostFacts, LeaseView, Plan},
};
use super::{
    index::{self, Index},
    watches::Subscription,
    written::Written,
};
use crate::{
    context::Context,
    error::{Error, Result},
};

/// Name in metrics and logs.
pub const CONTROLLER: &str = "labhost";
/// Guards the BMC state (media, boot override, power) the operator set up.
pub const FINALIZER: &str = "labpods.dev/labhost-cleanup";

/// The controller's state for one leadership term.
pub struct LabHostController {
    ctx: Arc<Context>,
    leases: Store<DeserializeGuard<Lease>>,
    clients: BmcClients,
    written: Written,
}

impl std::fmt::Debug for LabHostController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabHostController").finish_non_exhaustive()
    }
}

/// Runs the controller on its LabHost and Lease events until `stop` resolves. `on_ready` is
/// called once both caches are synced, with the LabHost cache (e.g. for the metrics' counts).
pub async fn run(
    ctx: Arc<Context>,
    hosts: Subscription<DeserializeGuard<LabHost>>,
    leases: Subscription<DeserializeGuard<Lease>>,
    claims: Index<DeserializeGuard<LabHost>>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
    on_ready: impl FnOnce(Store<DeserializeGuard<LabHost>>) + Send + 'static,
) {
    let lease_store = leases.store;
    let lease_events = lease_changes::relevant(leases.events, ctx.signer.clone());
    let host_store = hosts.store.clone();
    let controller = Controller::for_stream(hosts.events.applied_objects(), hosts.store);
    // A Lease change concerns the hosts it lists and the hosts that claim it (a host a spare
    // replaced is no longer listed but still claims the Lease).
    // Only a sealed Lease's list counts: anyone's Lease listing every host must not make the
    // operator poll every BMC on each of its writes.
    let signer = ctx.signer.clone();
    let controller =
        controller.watches_stream(lease_events, move |lease: DeserializeGuard<Lease>| {
            let (ns, name) = (lease.namespace(), lease.name_any());
            let mut refs: Vec<ObjectRef<DeserializeGuard<LabHost>>> = lease
                .0
                .as_ref()
                .ok()
                .filter(|l| signer.is_sealed(l))
                .map(|l| {
                    l.spec
                        .hosts
                        .iter()
                        .map(|h| ObjectRef::new(&h.host))
                        .collect()
                })
                .unwrap_or_default();
            refs.extend(claims.get(&index::lease_key(&ns.unwrap_or_default(), &name)));
            refs
        });

    // A changed BMC Secret (rotated credentials, a new CA) reconnects the hosts that read
    // it, and logs their old session out. Metadata only: no credential is cached.
    let own = ctx.config.leader_election.lease_namespace.clone();
    let secrets: Api<PartialObjectMeta<Secret>> = Api::namespaced(ctx.client.clone(), &own);
    let secret_events = watcher(secrets, watcher::Config::default()).touched_objects();
    let versions = SecretVersions::default();
    let (recorder, mapper_store) = (versions.clone(), host_store.clone());
    let controller = controller.watches_stream(secret_events, move |secret| {
        let name = secret.name_any();
        recorder.record(&name, secret.resource_version().as_deref());
        mapper_store
            .state_filter(|h| {
                h.0.as_ref().ok().is_some_and(|h| {
                    h.spec.bmc.credentials_secret_ref.namespace == own
                        && secret_names(&h.spec.bmc).any(|n| n == name)
                })
            })
            .iter()
            .map(|h| ObjectRef::from_obj(h.as_ref()))
            .collect::<Vec<_>>()
    });

    let this = Arc::new(LabHostController {
        ctx: ctx.clone(),
        leases: lease_store.clone(),
        clients: BmcClients::new(versions),
        written: Written::default(),
    });
    let ready_hosts = host_store.clone();
    tokio::spawn(async move {
        if super::synced(&ready_hosts).await && super::synced(&lease_store).await {
            on_ready(ready_hosts);
        }
    });
    // A reconcile beyond the BMC limit would only wait for a permit, holding its host.
    let concurrency = ctx.config.bmc.global_concurrency;
    controller
        .with_config(super::bounded(concurrency))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, this)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "labhost reconcile loop");
            }
        })
        .await;
}

#[tracing::instrument(skip_all, fields(host = %obj.name_any()))]
async fn reconcile(
    obj: Arc<DeserializeGuard<LabHost>>,
    this: Arc<LabHostController>,
) -> Result<Action> {
    let host = match &obj.0 {
        Ok(host) => Arc::new(host.clone()),
        Err(invalid) => {
            tracing::warn!(error = %invalid.error, "LabHost cannot be read; fix it with kubectl edit");
            return Err(Error::InvalidObject(invalid.error.clone()));
        }
    };
    this.ctx.ensure_leader()?;
    let started = Instant::now();
    let name = host.name_any();
    let api: Api<LabHost> = Api::all(this.ctx.client.clone());
    // Deleted while it may hold a tenant's OS or data: released first, like a host whose
    // booking ends; the finalizer holds the LabHost until that release completes.
    let releasing = if host.metadata.deletion_timestamp.is_some() {
        this.apply(&host, true).await
    } else {
        Ok(None)
    };
    let result = match releasing {
        Ok(Some(action)) => Ok(action),
        Err(e) => Err(e),
        Ok(None) => finalizer(&api, FINALIZER, host, |event| async {
            match event {
                Event::Apply(host) => this
                    .apply(&host, false)
                    .await
                    .map(|a| a.unwrap_or_else(Action::await_change)),
                Event::Cleanup(host) => this.cleanup(&host).await,
            }
        })
        .await
        .map_err(|e| match e {
            FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
            FinalizerError::AddFinalizer(e) | FinalizerError::RemoveFinalizer(e) => Error::Kube(e),
            other => Error::Finalizer(other.to_string()),
        }),
    };
    this.ctx
        .metrics
        .observe_reconcile(CONTROLLER, started.elapsed());
    if result.is_ok() {
        this.ctx.backoffs.succeeded(&name);
    }
    result
}

fn error_policy(
    obj: Arc<DeserializeGuard<LabHost>>,
    error: &Error,
    this: Arc<LabHostController>,
) -> Action {
    super::retry_or_wait(&this.ctx, CONTROLLER, &obj.name_any(), error)
}

impl LabHostController {
    /// One pass over the host. `leaving`: its LabHost is being deleted, so whatever its
    /// claim says, it is released; None once nothing of a tenant's is left on it (or it is
    /// gone).
    async fn apply(&self, cached: &LabHost, leaving: bool) -> Result<Option<Action>> {
        let ctx = &self.ctx;
        let name = cached.name_any();
        // Never plan from a copy older than our own last write (see [`Written`]).
        let api: Api<LabHost> = Api::all(ctx.client.clone());
        let Some(host) = self.written.latest(&api, cached).await? else {
            return Ok(None);
        };
        let host = host.as_ref();
        let claim = host.spec.claim_ref.as_ref();
        let view = if leaving {
            LeaseView::Ending
        } else {
            self.view(&name, claim).await?
        };
        let current = host.status.clone();
        let mut status = current.clone().unwrap_or_default();
        let facts = HostFacts {
            state: status.state,
            progress: status.provisioning.as_ref(),
            maintenance: host.spec.maintenance,
            claimed: claim.is_some(),
            quarantined: conditions::is_true(&status.conditions, QUARANTINED),
            booking_failed: conditions::is_true(&status.conditions, BOOKING_FAILED),
        };
        if leaving && !plan::may_hold_tenant(&facts) {
            return Ok(None);
        }
        let decision = plan::plan(facts, &view, claim.map(|c| c.lease.as_str()));
        tracing::debug!(?view, ?decision, "planned");
        let now = Time(ctx.clock.now());
        let outcome = self.execute(host, decision, &view, &mut status, &now).await;
        if let Err(error) = &outcome {
            self.note_failure(host, &mut status, error).await;
        }
        status::finish(&mut status, host.metadata.generation, &now);
        let applied = status::apply(ctx, host, current.as_ref(), &status).await;
        match &applied {
            Ok(Some(written)) => self.written.record(host, Some(written)),
            Ok(None) => {}
            // It may have landed (a timeout): read the host next time.
            Err(_) => self.written.record(host, None),
        }
        if applied?.is_some() {
            self.publish_transition(host, current.as_ref(), &status)
                .await;
            self.publish_quarantine(host, current.as_ref(), &status)
                .await;
        }
        outcome.map(|after| Some(Action::requeue(after)))
    }

    /// What the host's claim asks of it.
    async fn view(&self, name: &str, claim: Option<&ClaimRef>) -> Result<LeaseView> {
        let lease = match claim {
            Some(c) => self.lease(&c.namespace, &c.lease).await?,
            None => None,
        };
        let view = plan::lease_view(name, claim, self.sealed(lease).as_ref());
        let (LeaseView::Ending, Some(c)) = (&view, claim) else {
            return Ok(view);
        };
        // Releasing is irreversible: confirm on the apiserver's copy of the Lease. The cache
        // can lag a write that just listed this host (a spare swapped in by healing) or sealed
        // a new Lease.
        let api: Api<Lease> = Api::namespaced(self.ctx.client.clone(), &c.namespace);
        let fresh = self.sealed(api.get_opt(&c.lease).await?);
        Ok(plan::lease_view(name, claim, fresh.as_ref()))
    }

    /// The Lease if the operator sealed it. A claim whose Lease does not verify is treated as
    /// a claim whose Lease is gone: the host is released (a Lease someone else wrote or
    /// changed is never provisioned for, nor kept past an end nobody granted).
    fn sealed(&self, lease: Option<Lease>) -> Option<Lease> {
        let lease = lease?;
        match self.ctx.signer.verify(&lease) {
            Ok(crate::signing::Seal::Sealed) => Some(lease),
            Ok(crate::signing::Seal::Provisional) => None,
            Err(why) => {
                tracing::debug!(lease = %lease.name_any(), namespace = %lease.namespace().unwrap_or_default(), %why, "the claim's Lease is not the operator's: releasing the host");
                None
            }
        }
    }

    /// The claim's Lease: from the cache, or from the apiserver when the cache has none yet
    /// (only the apiserver may say a Lease is gone: releasing on a stale miss would drop a
    /// fresh claim).
    async fn lease(&self, namespace: &str, name: &str) -> Result<Option<Lease>> {
        let cached = self
            .leases
            .get(&ObjectRef::new(name).within(namespace))
            .and_then(|g| g.0.as_ref().ok().cloned());
        if cached.is_some() {
            return Ok(cached);
        }
        let api: Api<Lease> = Api::namespaced(self.ctx.client.clone(), namespace);
        Ok(api.get_opt(name).await?)
    }

    async fn execute(
        &self,
        host: &LabHost,
        decision: Plan,
        view: &LeaseView,
        status: &mut LabHostStatus,
        now: &Time,
    ) -> Result<Duration> {
        match decision {
            Plan::Idle { state, keep_off } => self.idle(host, state, keep_off, status).await,
            Plan::StartProvision { image, lease } => {
                // A new run gets its own bounded retries (idle checks may have counted some).
                status.consecutive_failures = None;
                phone_home::forget(status);
                status.provisioning =
                    Some(steps::start(Operation::Provision, Some(image), lease, now));
                status.state = Some(HostState::Provisioning);
                self.advance(host, view, status).await
            }
            Plan::StartRelease { lease } => {
                status.consecutive_failures = None;
                phone_home::forget(status);
                status.provisioning = Some(steps::start_release(&self.ctx, host, lease, now));
                status.state = Some(HostState::Releasing);
                self.advance(host, view, status).await
            }
            Plan::Continue => self.advance(host, view, status).await,
            Plan::ClearClaim => {
                self.clear_claim(host, status).await?;
                phone_home::forget(status);
                if status.state != Some(HostState::Error) {
                    status.provisioning = None;
                    status.state = Some(if host.spec.maintenance {
                        HostState::Maintenance
                    } else {
                        HostState::Available
                    });
                }
                Ok(self.idle_interval())
            }
        }
    }

    /// The slow health check: power (and inventory until known); keeps a free host off.
    async fn idle(
        &self,
        host: &LabHost,
        state: HostState,
        keep_off: bool,
        status: &mut LabHostStatus,
    ) -> Result<Duration> {
        let ctx = &self.ctx;
        let bmc = self.clients.get(ctx, host).await?;
        let mut power = call(ctx, "power_state", bmc.power_state()).await?;
        if status.inventory.is_none() {
            let inventory = call(ctx, "inventory", bmc.inventory()).await?;
            status.inventory = Some(status::inventory(&inventory));
        }
        if keep_off
            && matches!(
                power,
                labpods_redfish::PowerState::On | labpods_redfish::PowerState::PoweringOn
            )
        {
            bmc::reset(ctx, bmc.as_ref(), labpods_redfish::ResetKind::ForceOff).await?;
            tracing::info!("powered off a free host that was on");
            self.publish(
                host,
                EventType::Normal,
                "PowerDriftCorrected",
                "PowerOff",
                "the host is free but was powered on; powered it off".into(),
            )
            .await;
            power = labpods_redfish::PowerState::PoweringOff;
        }
        status.power = Some(status::power(&power));
        status::record_success(status);
        if state != HostState::Error {
            status.provisioning = None;
        }
        status.state = Some(state);
        Ok(self.idle_interval())
    }

    /// Runs the stored step (and the steps it leads to at once) of the state machine.
    async fn advance(
        &self,
        host: &LabHost,
        view: &LeaseView,
        status: &mut LabHostStatus,
    ) -> Result<Duration> {
        let bmc = self.clients.get(&self.ctx, host).await?;
        match steps::advance(&self.ctx, host, bmc.as_ref(), status).await? {
            steps::Finished::Waiting(recheck) => Ok(recheck),
            steps::Finished::Provisioned => {
                self.publish(
                    host,
                    EventType::Normal,
                    "Provisioned",
                    "Provision",
                    format!(
                        "booted {}",
                        status.current_image.clone().unwrap_or_default()
                    ),
                )
                .await;
                Ok(self.idle_interval())
            }
            steps::Finished::Released => {
                // The hardware is safe: give the host back to the pool.
                if !matches!(view, LeaseView::Active { .. }) && host.spec.claim_ref.is_some() {
                    self.clear_claim(host, status).await?;
                }
                status.state = Some(if host.spec.maintenance {
                    HostState::Maintenance
                } else {
                    HostState::Available
                });
                Ok(self.idle_interval())
            }
            steps::Finished::Failed => Ok(self.idle_interval()),
        }
    }

    /// Drops `spec.claimRef`, on the resourceVersion we read: if the Lease controller changed
    /// the claim meanwhile, the apiserver refuses (409) and the next pass re-plans. A failed
    /// booking's mark goes with the claim (its Lease keeps the reason).
    async fn clear_claim(&self, host: &LabHost, status: &mut LabHostStatus) -> Result<()> {
        conditions::remove_condition(&mut status.conditions, BOOKING_FAILED);
        self.ctx.ensure_leader()?;
        let api: Api<LabHost> = Api::all(self.ctx.client.clone());
        let patch = json!({
            "metadata": { "resourceVersion": host.metadata.resource_version },
            "spec": { "claimRef": null },
        });
        let written = api
            .patch(
                &host.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await;
        self.written.record(host, written.as_ref().ok());
        written?;
        tracing::info!("released the claim");
        Ok(())
    }

    /// Counts a failed pass into the status; too many in a row put an idle host in Error.
    async fn note_failure(&self, host: &LabHost, status: &mut LabHostStatus, error: &Error) {
        let bmc_down = match error {
            Error::Bmc(e) => {
                if matches!(e, labpods_redfish::Error::Unauthorized { .. }) {
                    // Credentials may have rotated: re-read the Secret next time.
                    self.clients.refused(&host.name_any()).await;
                }
                true
            }
            Error::Secret { .. } => false,
            // Kubernetes-side or leadership problems say nothing about the host.
            _ => return,
        };
        if status.state == Some(HostState::Error) && status.provisioning.is_some() {
            // A failed run: keep its reason (what the lab operator must fix), only note
            // that the BMC is still down.
            status.bmc_reachable = Some(!bmc_down);
            return;
        }
        let max = self.ctx.config.provisioning.max_consecutive_failures;
        let exceeded = status::record_failure(status, error.to_string(), bmc_down, max);
        if exceeded && status.provisioning.is_none() {
            status.state = Some(HostState::Error);
        } else if status.state.is_none() {
            status.state = Some(HostState::Registering);
        }
    }

    /// Cleanup on delete, once nothing of a tenant's is left on the host (`apply` released
    /// it first): end the BMC session.
    async fn cleanup(&self, host: &LabHost) -> Result<Action> {
        let name = host.name_any();
        self.written.forget(host);
        if let Some(bmc) = self.clients.forget(&name).await
            && let Err(e) = bmc.logout().await
        {
            tracing::debug!(error = %e, "BMC logout on delete failed");
        }
        self.ctx.backoffs.succeeded(&name);
        Ok(Action::await_change())
    }

    fn idle_interval(&self) -> Duration {
        let polling = &self.ctx.config.polling;
        let jitter = rand::random::<f64>() * polling.idle_jitter;
        polling.idle_interval.mul_f64(1.0 + jitter)
    }

    /// An Event for a state change a user cares about.
    async fn publish_transition(
        &self,
        host: &LabHost,
        before: Option<&LabHostStatus>,
        after: &LabHostStatus,
    ) {
        let (old, new) = (before.and_then(|s| s.state), after.state);
        let Some(new) = new else { return };
        if old == Some(new) {
            return;
        }
        let (type_, note) = match new {
            HostState::Error => (
                EventType::Warning,
                after.last_error.clone().unwrap_or_else(|| "failed".into()),
            ),
            HostState::Provisioning => (
                EventType::Normal,
                format!(
                    "provisioning {} for lease {}",
                    after
                        .provisioning
                        .as_ref()
                        .and_then(|p| p.image.clone())
                        .unwrap_or_default(),
                    after
                        .provisioning
                        .as_ref()
                        .map(|p| p.lease.as_str())
                        .unwrap_or_default()
                ),
            ),
            other => (
                EventType::Normal,
                format!("{:?} -> {other:?}", old.unwrap_or(HostState::Registering)),
            ),
        };
        // Provisioned has its own event with the image.
        if new != HostState::Provisioned {
            self.publish(host, type_, &format!("{new:?}"), "StateChange", note)
                .await;
        }
    }

    /// A Warning when a release gives up and the host is quarantined (the alert's detail).
    async fn publish_quarantine(
        &self,
        host: &LabHost,
        before: Option<&LabHostStatus>,
        after: &LabHostStatus,
    ) {
        let was = before.is_some_and(|s| conditions::is_true(&s.conditions, QUARANTINED));
        let Some(c) = conditions::find_condition(&after.conditions, QUARANTINED)
            .filter(|c| c.status == conditions::TRUE && !was)
        else {
            return;
        };
        tracing::warn!(message = %c.message, "host quarantined");
        self.publish(
            host,
            EventType::Warning,
            QUARANTINED,
            "Release",
            c.message.clone(),
        )
        .await;
    }

    async fn publish(
        &self,
        host: &LabHost,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = KubeEvent {
            type_,
            reason: reason.into(),
            note: Some(status::bounded(note)),
            action: action.into(),
            secondary: None,
        };
        // LabHosts are cluster-scoped: the recorder files their Events under "default", and
        // `kubectl describe labhost` finds them by a regarding object without a namespace.
        let regarding = host.object_ref(&());
        if let Err(e) = self.ctx.recorders.labhost.publish(&event, &regarding).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
}

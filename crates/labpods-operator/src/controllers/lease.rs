//! The Lease controller: runs a bound booking through its window.
//!
//! Pipeline per reconcile: fetch (the Lease, its hosts and PodRequest from the caches) ->
//! heal (claim a spare for a host in Error, see [`heal`]) -> plan (pure, [`plan`]: phase,
//! per-host progress, expiry notice, next instant) -> write status (server-side apply, field
//! manager `labpods-lease`, skipped when unchanged) -> events -> delete a Released Lease past
//! its retention. It requeues at exactly the next instant that matters (start, notices, end,
//! retention); host changes arrive through the watch.

pub mod heal;
pub use labpods_core::lease_plan as plan;

use std::{collections::HashSet, future::Future, sync::Arc, time::Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as KubeTime;
use kube::{
    Api, Resource, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Event, EventType},
        reflector::{ObjectRef, Store},
    },
};
use labpods_api::v1alpha1::{LabHost, Lease, LeasePhase, LeaseStatus, PodRequest, PodRequestPhase};
use serde_json::json;

use self::{
    heal::{Healed, heal},
    plan::{Facts, Unheld, claim_of, failed_hosts, new_notice, unheld},
};
use super::snapshot;
use super::{
    index::{self, Index},
    watches::Subscription,
    written::Written,
};
use crate::{
    context::Context,
    error::{Error, Result},
    history,
    metrics::PhaseCounts,
    signing::{Seal, Untrusted},
};

/// Name in metrics and logs.
pub const CONTROLLER: &str = "lease";
pub const FIELD_MANAGER: &str = "labpods-lease";
/// After a write lost a race (stale cache), look again this soon.
const STALE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

struct LeaseController {
    ctx: Arc<Context>,
    hosts: Store<DeserializeGuard<LabHost>>,
    /// Hosts by the Lease their claim names.
    claims: Index<DeserializeGuard<LabHost>>,
    requests: Store<DeserializeGuard<PodRequest>>,
    leases: Store<DeserializeGuard<Lease>>,
    written: Written,
}

/// Runs the controller on its own Lease events and the LabHost and PodRequest events until
/// `stop` resolves. Returns when it has drained.
pub async fn run(
    ctx: Arc<Context>,
    leases: Subscription<DeserializeGuard<Lease>>,
    hosts: Subscription<DeserializeGuard<LabHost>>,
    requests: Subscription<DeserializeGuard<PodRequest>>,
    indexes: (
        Index<DeserializeGuard<LabHost>>,
        Index<DeserializeGuard<Lease>>,
    ),
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (claims, listings) = indexes;
    let controller = Controller::for_stream(leases.events.applied_objects(), leases.store);
    let (host_events, hosts) = (hosts.events.touched_objects(), hosts.store);
    let (request_events, requests) = (requests.events.touched_objects(), requests.store);
    let leases = controller.store();
    let this = Arc::new(LeaseController {
        ctx,
        hosts,
        claims,
        requests,
        leases,
        written: Written::default(),
    });
    // A host concerns the Lease its claim names and the Leases that list it (a cleared
    // claim names none); a request concerns its Lease (same name).
    controller
        .watches_stream(host_events, move |host: DeserializeGuard<LabHost>| {
            let Ok(host) = host.0 else { return Vec::new() };
            let mut refs = listings.get(&host.name_any());
            refs.extend(
                host.spec
                    .claim_ref
                    .map(|c| ObjectRef::new(&c.lease).within(&c.namespace)),
            );
            refs
        })
        .watches_stream(request_events, |pr: DeserializeGuard<PodRequest>| {
            Some(ObjectRef::new(&pr.name_any()).within(&pr.namespace().unwrap_or_default()))
        })
        .with_config(super::bounded(super::API_CONCURRENCY))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, this)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "lease reconcile loop");
            }
        })
        .await;
}

fn key(lease: &DeserializeGuard<Lease>) -> String {
    format!(
        "lease/{}/{}",
        lease.namespace().unwrap_or_default(),
        lease.name_any()
    )
}

#[tracing::instrument(skip_all, fields(namespace = %obj.namespace().unwrap_or_default(), lease = %obj.name_any()))]
async fn reconcile(
    obj: Arc<DeserializeGuard<Lease>>,
    this: Arc<LeaseController>,
) -> Result<Action> {
    let lease = match &obj.0 {
        Ok(lease) => lease,
        Err(invalid) => return Err(Error::InvalidObject(invalid.error.clone())),
    };
    this.ctx.ensure_leader()?;
    // Phases follow the hosts' claims: before the host cache's first full list (a new term
    // after a crash or failover) every Lease would look unclaimed and go Released while its
    // hosts still run the tenant's OS.
    if !super::synced(&this.hosts).await {
        return Ok(Action::requeue(STALE_RETRY));
    }
    let started = Instant::now();
    let api: Api<Lease> = Api::namespaced(
        this.ctx.client.clone(),
        &lease.namespace().unwrap_or_default(),
    );
    // Never plan from a copy older than our own last status write (see [`Written`]).
    let result = match this.written.latest(&api, lease).await {
        Ok(Some(lease)) => this.reconcile(&lease).await,
        Ok(None) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    };
    this.ctx
        .metrics
        .observe_reconcile(CONTROLLER, started.elapsed());
    if result.is_ok() {
        this.ctx.backoffs.succeeded(&key(&obj));
    }
    result
}

fn error_policy(
    obj: Arc<DeserializeGuard<Lease>>,
    error: &Error,
    this: Arc<LeaseController>,
) -> Action {
    super::retry_or_wait(&this.ctx, CONTROLLER, &key(&obj), error)
}

impl LeaseController {
    async fn reconcile(&self, lease: &Lease) -> Result<Action> {
        if lease.metadata.deletion_timestamp.is_some() {
            // The LabHost controller releases the hosts of a Lease that is gone.
            self.written.forget(lease);
            return Ok(Action::await_change());
        }
        match self.ctx.signer.verify(lease) {
            Ok(Seal::Sealed) => {}
            // Being bound: sealed in a moment (a watch event), or rolled back by the
            // PodRequest controller if a crash interrupted the binding.
            Ok(Seal::Provisional) => return Ok(Action::await_change()),
            Err(why) => return self.refuse(lease, &why).await,
        }
        let ns = lease.namespace().unwrap_or_default();
        let claim = claim_of(lease);
        // Its own hosts, listed or claiming it, looked up in the cache: a reconcile costs its
        // hosts, not the lab.
        let mine: HashSet<ObjectRef<DeserializeGuard<LabHost>>> = lease
            .spec
            .hosts
            .iter()
            .map(|h| ObjectRef::new(&h.host))
            .chain(self.claims.get(&index::lease_key(&ns, &lease.name_any())))
            .collect();
        let cached: Vec<_> = mine.iter().filter_map(|h| self.hosts.get(h)).collect();
        let unreadable: Vec<(String, String)> = cached
            .iter()
            .filter_map(|g| g.0.as_ref().err())
            .filter_map(|e| {
                let name = e.metadata.name.clone()?;
                let listed = lease.spec.hosts.iter().any(|l| l.host == name);
                // The decoder's text can be long: bounded like a BMC's.
                listed.then(|| (name, super::labhost::status::bounded(e.error.clone())))
            })
            .collect();
        let readable = || cached.iter().filter_map(|g| g.0.as_ref().ok());
        let hosts: Vec<&LabHost> = readable()
            .filter(|h| {
                h.spec.claim_ref.as_ref() == Some(&claim)
                    || lease.spec.hosts.iter().any(|l| l.host == h.name_any())
            })
            .collect();
        let request = self.request(&ns, &lease.spec.request_ref.name).await?;
        let request = request.filter(|pr| pr.uid().as_ref() == Some(&lease.spec.request_ref.uid));
        let request_gone = request
            .as_ref()
            .is_none_or(|pr| pr.metadata.deletion_timestamp.is_some());
        let request_told = request.as_ref().is_some_and(|pr| {
            matches!(
                pr.status.as_ref().and_then(|s| s.phase),
                Some(PodRequestPhase::Released | PodRequestPhase::Failed)
            )
        });

        let mut unhealed = Vec::new();
        if !request_gone && lease.spec.end.0 > self.ctx.clock.now() {
            // A listed host we do not hold (an interrupted or lost spare swap): decided on
            // fresh copies, never on a cache that may lag our own claim.
            let mut troubled: Vec<(String, String)> = Vec::new();
            if !unheld(lease, &hosts).is_empty() {
                let fresh = self.fresh(lease).await?;
                let fresh: Vec<&LabHost> = fresh.iter().collect();
                for slot in unheld(lease, &fresh) {
                    match slot {
                        Unheld::Resume(name) => {
                            let Some(host) = fresh.iter().find(|h| h.name_any() == name) else {
                                continue;
                            };
                            if heal::resume(&self.ctx, lease, host).await? == Healed::Stale {
                                return Ok(Action::requeue(STALE_RETRY));
                            }
                        }
                        // Not who took it: that is another tenant's booking.
                        Unheld::Lost(name) => troubled
                            .push((name, "could not be claimed after it was listed".to_owned())),
                    }
                }
            }
            troubled.extend(failed_hosts(lease, &hosts));
            for (failed, trouble) in troubled {
                let Some(pr) = &request else { break };
                // A spare is looked for in the whole lab, only when one is needed.
                let lab_hosts = self.hosts.state();
                let everyone: Vec<&LabHost> =
                    lab_hosts.iter().filter_map(|g| g.0.as_ref().ok()).collect();
                let lab = self.lab(&everyone);
                match heal(&self.ctx, lease, pr, &failed, &trouble, &lab, &everyone).await? {
                    Healed::Swapped(spare) => {
                        let note = format!("host {failed} {trouble}; replaced by spare {spare}");
                        tracing::info!(%failed, %spare, "swapped in a spare");
                        self.publish(lease, EventType::Normal, "HostReplaced", note)
                            .await;
                        // The Lease changed: the next reconcile sees the new host list.
                        return Ok(Action::await_change());
                    }
                    Healed::NoSpare(why) => unhealed.push((failed, why)),
                    Healed::Stale => return Ok(Action::requeue(STALE_RETRY)),
                }
            }
        }

        let config = &self.ctx.config.leases;
        let facts = Facts {
            lease,
            hosts: &hosts,
            request_gone,
            request_told,
            unhealed: &unhealed,
            unreadable: &unreadable,
            now: self.ctx.clock.now(),
            notices: &config.expiry_notices,
            retention: config.retention,
        };
        let plan = plan::plan(&facts);
        self.record_history(lease, request.as_ref(), &hosts, &plan.status)
            .await?;
        if self.apply(lease, &plan.status).await? {
            if let Some(took) = plan.ready_after {
                self.ctx.metrics.observe_provisioning(took);
            }
            self.announce(lease, request.as_ref(), &plan.status).await;
        }
        if plan.delete {
            self.collect(lease).await?;
            return Ok(Action::await_change());
        }
        Ok(plan.wake.map_or_else(Action::await_change, Action::requeue))
    }

    /// A Lease the operator did not write, or that someone changed: no healing, no history,
    /// never collected (it may be a tenant's object); its status says why, and so do Events
    /// on it and on the PodRequest of its name. The LabHost controller releases any host
    /// claimed for it; the phase follows those claims (Releasing, then Released).
    async fn refuse(&self, lease: &Lease, why: &Untrusted) -> Result<Action> {
        let ns = lease.namespace().unwrap_or_default();
        let name = lease.name_any();
        let claimed = self.hosts.state().iter().any(|g| {
            g.0.as_ref().is_ok_and(|h| {
                h.spec
                    .claim_ref
                    .as_ref()
                    .is_some_and(|c| c.namespace == ns && c.lease == name)
            })
        });
        let status = plan::refused(lease, why, claimed, self.ctx.clock.now());
        if self.apply(lease, &status).await? && plan::newly_refused(lease.status.as_ref()) {
            let note = format!(
                "Lease {name} is not honoured: {why}. The labpods operator claims and provisions hosts only for the Leases it writes; book with a PodRequest"
            );
            tracing::warn!(%why, "refusing a Lease the operator did not write");
            self.publish(lease, EventType::Warning, plan::NOT_AUTHENTIC, note.clone())
                .await;
            let request = self
                .requests
                .get(&ObjectRef::new(&name).within(&ns))
                .and_then(|g| g.0.as_ref().ok().cloned());
            if let Some(pr) = request {
                self.publish(&pr, EventType::Warning, plan::NOT_AUTHENTIC, note)
                    .await;
            }
        }
        Ok(Action::await_change())
    }

    /// The allocation history (owned by `history`): noted without IO and written in the
    /// background, so it never holds up a release.
    async fn record_history(
        &self,
        lease: &Lease,
        request: Option<&PodRequest>,
        hosts: &[&LabHost],
        after: &LeaseStatus,
    ) -> Result<()> {
        history::observe(&self.ctx, lease, request, hosts, after);
        Ok(())
    }

    /// Fresh copies of the LabHosts `lease` lists (those that exist).
    async fn fresh(&self, lease: &Lease) -> Result<Vec<LabHost>> {
        let api: Api<LabHost> = Api::all(self.ctx.client.clone());
        let mut fresh = Vec::new();
        for listed in &lease.spec.hosts {
            fresh.extend(api.get_opt(&listed.host).await?);
        }
        Ok(fresh)
    }

    /// The PodRequest from the cache; the apiserver decides when the cache has none.
    async fn request(&self, ns: &str, name: &str) -> Result<Option<PodRequest>> {
        let cached = self
            .requests
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|g| g.0.as_ref().ok().cloned());
        if cached.is_some() {
            return Ok(cached);
        }
        Ok(Api::<PodRequest>::namespaced(self.ctx.client.clone(), ns)
            .get_opt(name)
            .await?)
    }

    /// The lab for spare finding: every host (claims run until their Lease's end) and the
    /// reservations of requests waiting for a future start.
    fn lab(&self, hosts: &[&LabHost]) -> crate::scheduler::PlanInput {
        // Only sealed Leases hold hosts in the calendar.
        let leases: Vec<Lease> = self
            .leases
            .state()
            .iter()
            .filter_map(|g| g.0.as_ref().ok().cloned())
            .filter(|l| self.ctx.signer.is_sealed(l))
            .collect();
        let requests: Vec<PodRequest> = self
            .requests
            .state()
            .iter()
            .filter_map(|g| g.0.as_ref().ok().cloned())
            .collect();
        let leased: std::collections::HashSet<_> = leases.iter().map(snapshot::key_of).collect();
        let with_lease = |pr: &PodRequest| leased.contains(&snapshot::key_of(pr));
        let unbound: Vec<&PodRequest> = requests.iter().filter(|pr| !with_lease(pr)).collect();
        let leases: Vec<&Lease> = leases.iter().collect();
        let now = crate::scheduler::from_api::time(&KubeTime(self.ctx.clock.now()));
        snapshot::plan_input(
            hosts,
            &leases,
            &unbound,
            Vec::new(),
            snapshot::policy(&self.ctx.config),
            now,
        )
    }

    async fn apply(&self, lease: &Lease, desired: &LeaseStatus) -> Result<bool> {
        if lease.status.as_ref() == Some(desired) {
            return Ok(false);
        }
        self.ctx.ensure_leader()?;
        let api: Api<Lease> = Api::namespaced(
            self.ctx.client.clone(),
            &lease.namespace().unwrap_or_default(),
        );
        let patch =
            json!({ "apiVersion": "labpods.dev/v1alpha1", "kind": "Lease", "status": desired });
        let written = crate::controllers::fenced_status::write(
            &self.ctx.metrics,
            &api,
            FIELD_MANAGER,
            lease,
            |l: &Lease| l.status.as_ref(),
            &patch,
        )
        .await;
        match written {
            Ok(written) => {
                self.written.record(lease, Some(&written));
                Ok(true)
            }
            // Deleted meanwhile (a rolled-back binding): nothing to report to.
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.written.forget(lease);
                Ok(false)
            }
            // Refused: someone else wrote since (their event brings the next reconcile);
            // otherwise it may have landed (a timeout): read the Lease next time.
            Err(e) => {
                self.written.record(lease, None);
                Err(e.into())
            }
        }
    }

    /// Events for what a user cares about: phase changes and expiry notices (on the
    /// PodRequest too, where users look).
    async fn announce(&self, lease: &Lease, request: Option<&PodRequest>, after: &LeaseStatus) {
        let before = lease.status.as_ref();
        let (old, new) = (before.and_then(|s| s.phase), after.phase);
        if let Some(new) = new.filter(|n| old.unwrap_or(LeasePhase::Pending) != *n) {
            let (type_, note) = match new {
                LeasePhase::Degraded => (
                    EventType::Warning,
                    labpods_api::conditions::find_condition(
                        &after.conditions,
                        labpods_api::conditions::DEGRADED,
                    )
                    .map_or_else(|| "degraded".to_owned(), |c| c.message.clone()),
                ),
                other => (
                    EventType::Normal,
                    format!("{:?} -> {other:?}", old.unwrap_or(LeasePhase::Pending)),
                ),
            };
            self.publish(lease, type_, &format!("{new:?}"), note).await;
        }
        if let Some(reason) = new_notice(before, after) {
            let note = labpods_api::conditions::find_condition(
                &after.conditions,
                labpods_api::conditions::EXPIRING_SOON,
            )
            .map(|c| c.message.clone())
            .unwrap_or_default();
            self.publish(lease, EventType::Normal, &reason, note.clone())
                .await;
            if let Some(pr) = request {
                self.publish(pr, EventType::Normal, &reason, note).await;
            }
        }
    }

    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Lease".into(),
            secondary: None,
        };
        if let Err(e) = self
            .ctx
            .recorders
            .lease
            .publish(&event, &obj.object_ref(&()))
            .await
        {
            tracing::debug!(error = %e, "cannot publish event");
        }
    }

    /// Deletes a Released Lease after the retention period (by uid: never a newer one).
    async fn collect(&self, lease: &Lease) -> Result<()> {
        if super::sealed::delete(&self.ctx, lease).await? {
            tracing::info!("collected a released lease");
        }
        Ok(())
    }
}

/// Leases by phase, and since when the oldest of each is in it, for /metrics.
pub fn leases_by_phase(leases: &Store<DeserializeGuard<Lease>>) -> PhaseCounts {
    let mut counts = PhaseCounts::default();
    for lease in leases.state() {
        match &lease.0 {
            Ok(l) => {
                let status = l.status.as_ref();
                let phase = status.and_then(|s| s.phase).unwrap_or(LeasePhase::Pending);
                let since = status
                    .and_then(|s| s.last_phase_transition_time.as_ref())
                    .map(|t| t.0.as_second());
                counts.add(format!("{phase:?}"), since);
            }
            Err(_) => counts.add("Invalid".to_owned(), None),
        }
    }
    counts
}

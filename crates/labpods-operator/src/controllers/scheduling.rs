//! The scheduling loop: the PodRequest controller, the scheduler of the lab (one per
//! leader). The claim protocol ([`claim`](super::claim)) and the lab as a pass sees it
//! ([`snapshot`](super::snapshot)) are beside it, shared with the Lease controller.
//!
//! Scheduling is global (one request's hosts are another's wait), so instead of one reconcile
//! per object this controller runs *passes*: any change to a PodRequest or Lease, or to what
//! a pass reads of a LabHost ([`host_changes`]), debounced, or the next instant something is
//! due (a reserved start, an earliest start), triggers one pass over the caches:
//!
//! fetch (the caches) -> validate and classify each request (pure) -> plan (the pure
//! [`scheduler`](crate::scheduler), only when a request waits or a booking asks for a new
//! end) -> hand the writes to tasks: each binding (the claim protocol, then its status) to
//! a task of its own, up to 16 at once; the statuses of waiting requests and the follow-ups
//! of the bookings that changed ([`touched`]: children, extensions, finalizers, status) to
//! one follower at a time.
//!
//! A pass does not wait for its writes: it returns once it has decided, so the next pass
//! plans while the last one's bindings land. A request a task is handling is left alone
//! until the task ends, and a binding's Lease is planned around until the cache shows it
//! ([`inflight`]). A binding decided when all slots are taken is planned again by the pass
//! that a slot's release starts.
//!
//! Deleting a PodRequest is an early release: its finalizer keeps it until the Lease
//! controller has driven its Lease to Released (every host back in the pool), so hosts are
//! always released before the objects go away; a request that never got a Lease is let go
//! at once.
//!
//! Only Leases this operator sealed ([`signing`](crate::signing)) are read as bindings: the
//! calendar, the requests' Bound state, resumed bindings and extensions come from them
//! alone. A Lease that does not verify is refused (the request says why, its hosts are
//! released by the LabHost controller); a provisional one left by a crash is rolled back.

pub mod access;
pub mod bind;
pub mod binding;
pub mod children;
pub mod descriptor;
pub mod events;
pub mod extension;
pub mod host_changes;
pub mod hosts;
pub mod inflight;
pub mod limit;
pub mod status;
pub mod touched;

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{StreamExt, future, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as KubeTime;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    core::DeserializeGuard,
    runtime::{
        events::{Event as KubeEvent, EventType},
        reflector::Store,
    },
};
use labpods_api::{
    v1alpha1::{LabHost, Lease, LeasePhase, PodRequest, PodRequestPhase},
    validation::{summarize, validate_podrequest},
};
use serde_json::json;
use tokio::{
    sync::{Notify, Semaphore},
    task::JoinSet,
    time::Instant,
};

use self::{
    bind::{Bound, bind, lease_for},
    binding::LeaseOf,
    inflight::{InFlight, Seen},
    status::{Handed, Standing},
    touched::{Changes, HostClaims, Touched},
};
use super::sealed::{self, Changed};
use super::snapshot::{self, Cached, LabHosts};
use super::{watches::Subscription, written::Written};
use crate::{
    context::Context,
    error::{Error, Result},
    images::{self, Verdict},
    metrics::PhaseCounts,
    scheduler::{self, Decision, ExtensionDecision, check_extension, from_api},
    signing::{Seal, Untrusted, Verdicts},
};

/// Name in metrics and logs: the PodRequest controller's, which dashboards and alerts use.
pub const CONTROLLER: &str = "podrequest";
/// Keeps a deleted request until its hosts are back in the pool.
pub const FINALIZER: &str = "labpods.dev/podrequest-release";
/// Changes arriving within this long are handled by one pass.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// A pass at least this often, for what no watch reports (time passing for quotas).
const IDLE_PASS: Duration = Duration::from_secs(60);
/// After a lost race (stale cache), the next pass comes this soon.
const RETRY_SOON: Duration = Duration::from_millis(500);

/// The caches a pass reads.
#[derive(Clone)]
pub struct Caches {
    pub requests: Store<DeserializeGuard<PodRequest>>,
    pub hosts: Store<DeserializeGuard<LabHost>>,
    pub leases: Store<DeserializeGuard<Lease>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Caches")
    }
}

/// A spawned task that ends with its owner: the scheduler is dropped mid-pass when
/// leadership is lost, and its subscriptions must not outlive it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the scheduler keeps across passes.
#[derive(Debug)]
struct Kept {
    /// The children (access Secret, descriptor) this replica wrote.
    applied: children::Applied,
    written: Written,
    /// Requests a task is handling, and bindings the cache does not show yet.
    inflight: InFlight,
    /// Requests changed since the last pass.
    touched: Touched,
    /// The Leases' seals, verified once per version.
    verdicts: Mutex<Verdicts>,
    /// Bindings in flight at once (a pass binds no more than are free).
    binding: Arc<Semaphore>,
    /// The follower: one at a time.
    follower: Arc<Semaphore>,
    /// The next pass is due by then at the latest (passes and tasks bring it forward).
    due: Mutex<Instant>,
    /// Re-arms the loop's timer after a task brought `due` forward.
    rearm: Notify,
    /// Starts a pass: a change, or the end of a task a pass had to leave alone.
    changed: Arc<Notify>,
}

impl Kept {
    fn new(changed: Arc<Notify>) -> Self {
        Self {
            applied: children::Applied::default(),
            written: Written::default(),
            inflight: InFlight::default(),
            touched: Touched::new(IDLE_PASS),
            verdicts: Mutex::default(),
            binding: Arc::new(Semaphore::new(super::API_CONCURRENCY)),
            follower: Arc::new(Semaphore::new(1)),
            due: Mutex::new(Instant::now()),
            rearm: Notify::new(),
            changed,
        }
    }

    fn due(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.due
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wake_in(&self, delay: Duration) {
        let at = Instant::now() + delay;
        let mut due = self.due();
        if at < *due {
            *due = at;
            drop(due);
            self.rearm.notify_one();
        }
    }
}

/// The scheduler's subscriptions to the term's watches.
#[derive(Debug)]
pub struct Watched {
    pub requests: Subscription<DeserializeGuard<PodRequest>>,
    pub hosts: Subscription<DeserializeGuard<LabHost>>,
    pub leases: Subscription<DeserializeGuard<Lease>>,
}

/// Runs scheduling passes, one after changes of `watched` (debounced) or when one is due,
/// until `stop` resolves. `on_ready` gets the caches once synced.
pub async fn run(
    ctx: Arc<Context>,
    watched: Watched,
    stop: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(Caches) + Send + 'static,
) {
    let Watched {
        requests,
        hosts,
        leases,
    } = watched;
    let caches = Caches {
        requests: requests.store,
        hosts: hosts.store,
        leases: leases.store,
    };
    // Every event that can change a pass notes what it changed and wakes the loop below;
    // the events must be taken however long a pass runs.
    let notify = Arc::new(Notify::new());
    let kept = Arc::new(Kept::new(notify.clone()));
    let (on_request, on_lease, on_host) = (kept.clone(), kept.clone(), kept.clone());
    let mut claims = HostClaims::default();
    let wake = stream::select(
        requests.events.map(move |e| on_request.touched.object(&e)),
        stream::select(
            host_changes::relevant(hosts.events).map(move |e| claims.note(&on_host.touched, &e)),
            leases.events.map(move |e| on_lease.touched.object(&e)),
        ),
    )
    .for_each(move |()| {
        notify.notify_one();
        future::ready(())
    });
    let _wake = AbortOnDrop(tokio::spawn(wake));
    tokio::pin!(stop);
    let synced = async {
        caches.requests.wait_until_ready().await.is_ok()
            && caches.hosts.wait_until_ready().await.is_ok()
            && caches.leases.wait_until_ready().await.is_ok()
    };
    let ready = tokio::select! {
        ok = synced => ok,
        () = &mut stop => false,
    };
    if !ready {
        return;
    }
    on_ready(caches.clone());
    // The tasks passes hand their writes to; dropped (aborted) with the scheduler.
    let mut tasks = Tasks::default();
    let mut last = Duration::ZERO;
    loop {
        for set in [&mut tasks.binding, &mut tasks.following] {
            while let Some(ended) = set.try_join_next() {
                if let Err(e) = ended {
                    tracing::error!(error = %e, "a scheduling task ended abnormally");
                }
            }
        }
        let due = *kept.due();
        tokio::select! {
            () = &mut stop => break,
            () = kept.changed.notified() => {}
            () = ctx.images.settled() => {}
            () = tokio::time::sleep_until(due) => {}
            () = kept.rearm.notified() => continue,
        }
        // Passes take at most half the scheduler's core: in a lab whose hosts change all
        // the time, back-to-back passes would starve the writes they start.
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(DEBOUNCE.max(last)) => {}
        }
        last = pass(&ctx, &caches, &kept, &mut tasks);
    }
    // The bindings under way land (none is cut between its claims and its seal); the
    // follower stops (each of its writes stands alone): the next term looks again.
    tasks.following.abort_all();
    while tasks.binding.join_next().await.is_some() {}
}

/// The scheduler's tasks: bindings, and the follower.
#[derive(Default)]
struct Tasks {
    binding: JoinSet<()>,
    following: JoinSet<()>,
}

/// One scheduling pass: decides, and hands the writes to `tasks`; returns how long it took.
#[tracing::instrument(skip_all)]
fn pass(ctx: &Arc<Context>, caches: &Caches, kept: &Arc<Kept>, tasks: &mut Tasks) -> Duration {
    let started = std::time::Instant::now();
    let (pass, requests) = Pass::new(ctx.clone(), caches, kept.clone());
    Arc::new(pass).run(&requests, tasks);
    let took = started.elapsed();
    tracing::debug!(?took, "scheduling pass");
    ctx.metrics.observe_reconcile(CONTROLLER, took);
    took
}

/// Whether a child was written. A child that cannot be written (a quota, a policy in the
/// request's namespace) never holds up the booking's status: it is written again on a
/// later pass. Lost leadership still stops the pass.
fn child_written(pr: &PodRequest, what: &str, written: Result<()>) -> Result<bool> {
    match written {
        Ok(()) => Ok(true),
        Err(Error::NotLeader) => Err(Error::NotLeader),
        Err(error) => {
            tracing::warn!(request = %pr.name_any(), %error, "cannot write the {what}; retried on a later pass");
            Ok(false)
        }
    }
}

/// A request's key in the per-object backoff.
fn retry_key(pr: &PodRequest) -> String {
    format!(
        "podrequest/{}/{}",
        pr.namespace().unwrap_or_default(),
        pr.name_any()
    )
}

/// How a request is classified in a pass (pure, from the caches).
enum Class {
    Deleting(Option<Lease>),
    Invalid(String),
    /// Its image is being verified against `spec.image.checksum`; not planned meanwhile, so
    /// a slow or bad image holds no host.
    Verifying(String),
    /// Its image was refused (mismatch, or could not be downloaded): the booking failed.
    ImageRefused(String),
    /// A Lease of the same name belongs to an earlier request of that name.
    Blocked,
    /// Released, its Lease collected.
    Done,
    /// Had a Lease that the cache no longer shows.
    LeaseMissing,
    Bound(Lease),
    /// A Lease of its name that the operator created but never sealed (a crash mid-bind).
    Unsealed(Lease),
    /// A Lease of its name that the operator did not write, or that someone changed.
    Refused {
        lease: String,
        why: Untrusted,
    },
    Waiting(scheduler::Request),
    /// Waiting, but past its namespace's open-request limit: what it says.
    OverLimit(String),
}

/// What a pass hands a task for one request.
enum Action {
    /// A request without a Lease, and what the scheduler decided for it.
    Decide(scheduler::RequestKey, Decision),
    /// Any other request: bound, invalid, being deleted.
    Follow(Box<Class>),
}

/// One pass's view of the lab, shared with the tasks it starts.
struct Pass {
    ctx: Arc<Context>,
    kept: Arc<Kept>,
    hosts: LabHosts,
    /// Sealed Leases only: the bindings the operator made.
    leases: HashMap<(String, String), Cached<Lease>>,
    /// Every other Lease: provisional (Ok) or refused (Err), by namespace and name.
    unsealed: HashMap<(String, String), (Lease, Result<Seal, Untrusted>)>,
    /// The requests changed since the last pass: the bound ones it follows.
    changes: Changes,
    now: scheduler::Time,
    kube_now: KubeTime,
}

impl Pass {
    fn new(ctx: Arc<Context>, caches: &Caches, kept: Arc<Kept>) -> (Self, Vec<Cached<PodRequest>>) {
        let requests = snapshot::decoded(&caches.requests).collect();
        let hosts = snapshot::decoded(&caches.hosts)
            .map(|h| (h.name_any(), h))
            .collect();
        let mut leases = HashMap::new();
        let mut unsealed = HashMap::new();
        let cached: Vec<Cached<Lease>> = snapshot::decoded(&caches.leases).collect();
        let verdicts = kept
            .verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .of(&ctx.signer, cached.iter().map(|l| &**l));
        for (lease, verdict) in cached.into_iter().zip(verdicts) {
            match verdict {
                Ok(Seal::Sealed) => {
                    leases.insert(snapshot::key_of(&*lease), lease);
                }
                // Rare (a binding in flight, a forgery): copied.
                other => {
                    unsealed.insert(snapshot::key_of(&*lease), ((*lease).clone(), other));
                }
            }
        }
        let kube_now = KubeTime(ctx.clock.now());
        let started = Instant::now();
        *kept.due() = started + IDLE_PASS;
        let pass = Self {
            ctx,
            changes: kept.touched.take(started),
            kept,
            hosts,
            leases,
            unsealed,
            now: from_api::time(&kube_now),
            kube_now,
        };
        (pass, requests)
    }

    fn wake_at(&self, t: scheduler::Time) {
        self.wake_in((t - self.now).to_std().unwrap_or(Duration::ZERO));
    }

    fn wake_in(&self, delay: Duration) {
        self.kept.wake_in(delay);
    }

    fn classify(&self, pr: &PodRequest) -> Class {
        let key = snapshot::key_of(pr);
        let sealed = self.leases.get(&key).map(|l| &**l);
        let lease = binding::lease_of(pr, sealed, self.unsealed.get(&key));
        if pr.metadata.deletion_timestamp.is_some() {
            let own = match lease {
                LeaseOf::Own(l) => Some(l),
                _ => None,
            };
            return Class::Deleting(own);
        }
        match lease {
            LeaseOf::Own(l) => return Class::Bound(l),
            LeaseOf::Earlier => return Class::Blocked,
            LeaseOf::Unsealed(l) => return Class::Unsealed(l),
            LeaseOf::Refused { lease, why } => return Class::Refused { lease, why },
            LeaseOf::Nothing => {}
        }
        let status = pr.status.as_ref();
        let over = match status.and_then(|s| s.phase) {
            Some(PodRequestPhase::Released) => true,
            // Failed after its Lease ran (not an invalid spec, which never had one).
            Some(PodRequestPhase::Failed) => status.and_then(|s| s.lease.as_ref()).is_some(),
            _ => false,
        };
        if over {
            // Over, and its Lease collected: nothing more to do, not even a read.
            return Class::Done;
        }
        if status.and_then(|s| s.lease.as_ref()).is_some() {
            return Class::LeaseMissing;
        }
        let max = k8s_openapi::jiff::SignedDuration::try_from(self.ctx.config.policy.max_duration)
            .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX);
        let errors = validate_podrequest(&pr.spec, self.kube_now.0, max);
        if !errors.is_empty() {
            return Class::Invalid(summarize(&errors));
        }
        if let Err(message) = images::policy::check(&pr.spec.image, &self.ctx.config.images) {
            return Class::Invalid(message);
        }
        if let Some(class) = self.verify_image(pr) {
            return class;
        }
        match from_api::request(pr, 0) {
            Ok(r) => Class::Waiting(r),
            Err(e) => Class::Invalid(e.to_string()),
        }
    }

    /// None when the request may be planned: no checksum, or its image verified.
    fn verify_image(&self, pr: &PodRequest) -> Option<Class> {
        let checksum = pr.spec.image.checksum.as_deref()?;
        // Refused for this spec already (stored, so not downloaded again after the cache
        // forgot or the operator restarted; a tenant who writes that status only fails
        // their own booking).
        if let Some(refused) = status::image_refused(pr) {
            return Some(Class::ImageRefused(refused.to_owned()));
        }
        let uid = pr.uid().unwrap_or_default();
        match self.ctx.images.check(&pr.spec.image.url, checksum, &uid) {
            Verdict::Verified => None,
            Verdict::Pending { message, retry_in } => {
                // A finished download wakes the scheduler; a retry after a backoff does not.
                if let Some(delay) = retry_in {
                    self.wake_in(delay);
                }
                Some(Class::Verifying(message))
            }
            Verdict::Refused(message) => Some(Class::ImageRefused(message)),
        }
    }

    /// Decides for every request a task is not handling, and starts a task for each.
    fn run(self: Arc<Self>, requests: &[Cached<PodRequest>], tasks: &mut Tasks) {
        let now = Instant::now();
        let mut candidates = Vec::new();
        let mut later = Vec::new();
        // Requests a task is handling: open for the namespace limits; the Leases being
        // bound are planned around.
        let mut busy = Vec::new();
        let mut binding = Vec::new();
        for pr in requests {
            let key = snapshot::key_of(&**pr);
            let sealed = self.leases.contains_key(&key);
            if let Seen::Busy(lease) = self.kept.inflight.seen(&key, sealed, now) {
                binding.extend(lease.filter(|_| !sealed));
                busy.push(&**pr);
                continue;
            }
            match self.classify(pr) {
                Class::Waiting(r) => candidates.push((pr, r)),
                other => later.push((pr, other)),
            }
        }
        let mut waiting = Vec::new();
        let mut unbound = Vec::new();
        let held = self.over_limit(&candidates, &later, &busy);
        for (pr, r) in candidates {
            match held.get(&snapshot::key_of(&**pr)) {
                Some(message) => later.push((pr, Class::OverLimit(message.clone()))),
                None => {
                    waiting.push(r);
                    unbound.push(pr);
                }
            }
        }
        // Followed: the requests with a Lease (or without a future) that changed.
        let mut follow = Vec::new();
        for (pr, class) in later {
            let key = snapshot::key_of(&**pr);
            let followed = match class {
                Class::Waiting(_) | Class::Done => false,
                // Rare, and waiting on what no event of theirs may report (a download, a
                // release, a crash's leftovers): followed on every pass.
                Class::Deleting(_) | Class::Unsealed(_) | Class::Verifying(_) => true,
                _ => self.changes.includes(&key),
            };
            if followed {
                follow.push((pr.clone(), Action::Follow(Box::new(class))));
            }
        }
        // The plan costs a pass over the lab: only when a request waits for hosts or a
        // followed booking asks for a new end.
        let extending = follow.iter().any(|(pr, action)| {
            matches!(action, Action::Follow(class) if matches!(&**class, Class::Bound(l) if extension::asked(pr, l).is_some()))
        });
        let input = (!waiting.is_empty() || extending).then(|| {
            let hosts: Vec<&LabHost> = self.hosts.values().map(|h| &**h).collect();
            let mut leases: Vec<&Lease> = self.leases.values().map(|l| &**l).collect();
            leases.extend(binding.iter().map(|l| &**l));
            let unbound_refs: Vec<&PodRequest> = unbound.iter().map(|pr| &***pr).collect();
            Arc::new(snapshot::plan_input(
                &hosts,
                &leases,
                &unbound_refs,
                waiting,
                snapshot::policy(&self.ctx.config),
                self.now,
            ))
        });
        let mut decisions: HashMap<scheduler::RequestKey, Decision> = input
            .as_deref()
            .map(scheduler::plan)
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.key, p.decision))
            .collect();

        // Bindings go to tasks of their own, as many as there are free slots: each lands as
        // soon as its own writes do, and its status names the Lease right after. A binding
        // without a slot is planned again by the pass the next slot's release starts.
        // Everything else (statuses of waiting requests, follow-ups of the changed ones)
        // goes to one follower at a time; while it runs, the changed requests wait for the
        // pass after it. A task holds its pass's snapshot: bounded slots bound the memory.
        for pr in unbound {
            let key = scheduler::RequestKey::new(pr.namespace().unwrap_or_default(), pr.name_any());
            let Some(decision) = decisions.remove(&key) else {
                continue;
            };
            let Decision::Bind(placement) = &decision else {
                follow.push((pr.clone(), Action::Decide(key, decision)));
                continue;
            };
            let Ok(slot) = self.kept.binding.clone().try_acquire_owned() else {
                continue;
            };
            let lease = Arc::new(lease_for(pr, placement));
            self.kept
                .inflight
                .start(snapshot::key_of(&**pr), Some(lease.clone()));
            let task = self
                .clone()
                .decide_and_settle(pr.clone(), Some(lease), key, decision);
            let kept = self.kept.clone();
            tasks.binding.spawn(async move {
                task.await;
                drop(slot);
                // A binding left without a slot is planned again now.
                kept.changed.notify_one();
            });
        }
        self.hand_to_follower(follow, input, tasks);
    }

    /// Starts the follower on `batch`, or, while one runs, leaves the batch to a later pass.
    fn hand_to_follower(
        self: &Arc<Self>,
        batch: Vec<(Cached<PodRequest>, Action)>,
        input: Option<Arc<scheduler::PlanInput>>,
        tasks: &mut Tasks,
    ) {
        if batch.is_empty() {
            return;
        }
        let Ok(slot) = self.kept.follower.clone().try_acquire_owned() else {
            for (pr, action) in batch {
                if let Action::Follow(_) = action {
                    self.kept.touched.request(snapshot::key_of(&*pr));
                }
            }
            return;
        };
        for (pr, _) in &batch {
            self.kept.inflight.start(snapshot::key_of(&**pr), None);
        }
        let this = self.clone();
        tasks.following.spawn(async move {
            let this = &this;
            let input = input.as_deref();
            stream::iter(batch)
                .for_each_concurrent(super::API_CONCURRENCY, |(pr, action)| async move {
                    this.handle_followed(pr, action, input).await;
                })
                .await;
            drop(slot);
            // What changed meanwhile waits for the next pass.
            this.kept.changed.notify_one();
        });
    }

    /// The follower's part for one request: a waiting request's decision, or a follow-up.
    async fn handle_followed(
        self: &Arc<Self>,
        pr: Cached<PodRequest>,
        action: Action,
        input: Option<&scheduler::PlanInput>,
    ) {
        match action {
            Action::Decide(key, decision) => {
                self.clone()
                    .decide_and_settle(pr, None, key, decision)
                    .await
            }
            Action::Follow(class) => {
                let acted = self.follow(&pr, *class, input).await;
                self.finish(&pr, false, acted, "cannot follow the request")
                    .await;
            }
        }
    }

    /// Acts on the pass's decision for one request (binding `lease`, if any) and writes
    /// its status.
    async fn decide_and_settle(
        self: Arc<Self>,
        pr: Cached<PodRequest>,
        lease: Option<Arc<Lease>>,
        key: scheduler::RequestKey,
        decision: Decision,
    ) {
        let acted = self.decide(&pr, &key, &decision, lease.as_deref()).await;
        let acted = acted.map(|s| s.map(|s| (None, s)));
        self.finish(&pr, lease.is_some(), acted, "cannot act on the decision")
            .await;
    }

    /// Writes the status a request's handling came to, and lets the next pass at it.
    async fn finish(
        &self,
        pr: &Cached<PodRequest>,
        binding: bool,
        acted: Result<Option<(Option<Arc<Lease>>, StandingOwned)>>,
        what: &str,
    ) {
        let kept = &self.kept;
        let bound = binding && matches!(acted, Ok(Some(_)));
        if bound && let Some(since) = waiting_since(pr) {
            let waited = self.ctx.clock.now().duration_since(since);
            let waited = Duration::try_from(waited).unwrap_or_default();
            self.ctx.metrics.observe_booking_wait(waited);
        }
        let key = snapshot::key_of(&**pr);
        if self.settle(pr, acted, what).await {
            self.ctx.backoffs.succeeded(&retry_key(pr));
        } else {
            // Looked at again when its backoff ends.
            kept.touched.request(key.clone());
        }
        if kept.inflight.finish(&key, bound, Instant::now()) {
            // A pass left it alone meanwhile: one must look now.
            kept.touched.request(key);
            kept.changed.notify_one();
        }
    }

    /// Writes the status a request's handling came to; false when either failed.
    async fn settle(
        &self,
        pr: &PodRequest,
        acted: Result<Option<(Option<Arc<Lease>>, StandingOwned)>>,
        what: &str,
    ) -> bool {
        let (lease, standing) = match acted {
            Ok(Some(outcome)) => outcome,
            Ok(None) => return true,
            Err(e) => {
                self.failed(pr, &e, what);
                return false;
            }
        };
        let standing = match (&standing, &lease) {
            (StandingOwned::Invalid(m), _) => Standing::Invalid(m),
            (StandingOwned::Verifying(m), _) => Standing::Verifying(m),
            (StandingOwned::ImageRefused(m), _) => Standing::ImageRefused(m),
            (
                StandingOwned::Refused {
                    lease,
                    why,
                    releasing,
                },
                _,
            ) => Standing::Refused {
                lease,
                why,
                releasing: *releasing,
            },
            (StandingOwned::Decided(d), _) => Standing::Decided(d),
            (StandingOwned::Bound { rejected, handed }, Some(l)) => Standing::Bound {
                lease: l,
                rejected: rejected.as_deref(),
                handed,
            },
            (StandingOwned::Bound { .. }, None) | (StandingOwned::Finished, _) => {
                Standing::Finished
            }
        };
        // Never write over a copy older than our own last write: its status would be
        // refused (the write is fenced on it), and the request retried after a backoff.
        let api: Api<PodRequest> =
            Api::namespaced(self.ctx.client.clone(), &pr.namespace().unwrap_or_default());
        let latest = match self.kept.written.latest(&api, pr).await {
            Ok(Some(latest)) => latest,
            Ok(None) => return true,
            Err(e) => {
                self.failed(pr, &e.into(), "cannot read the request");
                return false;
            }
        };
        let pr = &*latest;
        let desired = status::desired(pr, standing, &self.kube_now);
        match status::apply(&self.ctx, pr, &desired).await {
            Ok(written) => {
                if let Some(written) = &written {
                    self.kept.written.record(pr, Some(written));
                    for notice in events::changed(pr.status.as_ref(), &desired) {
                        self.publish(pr, notice).await;
                    }
                }
                true
            }
            Err(e) => {
                // Refused, or it may have landed (a timeout): read the request next time.
                self.kept.written.record(pr, None);
                self.failed(pr, &e, "cannot write the request's status");
                false
            }
        }
    }

    /// An Event on the request (best effort: a lost Event must not fail the pass).
    async fn publish(&self, pr: &PodRequest, notice: events::Notice) {
        let event = KubeEvent {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason,
            note: Some(notice.note),
            action: "Scheduling".into(),
            secondary: None,
        };
        let regarding = pr.object_ref(&());
        if let Err(e) = self
            .ctx
            .recorders
            .podrequest
            .publish(&event, &regarding)
            .await
        {
            tracing::debug!(error = %e, "cannot publish event");
        }
    }

    /// The waiting requests past their namespace's open-request limit, with what they say.
    fn over_limit(
        &self,
        waiting: &[(&Cached<PodRequest>, scheduler::Request)],
        others: &[(&Cached<PodRequest>, Class)],
        busy: &[&PodRequest],
    ) -> HashMap<(String, String), String> {
        let mut all: Vec<limit::Open<'_>> = waiting
            .iter()
            .map(|(pr, _)| limit::Open::of(pr, false))
            .collect();
        all.extend(
            others
                .iter()
                .filter(|(_, c)| matches!(c, Class::Bound(_) | Class::Unsealed(_)))
                .map(|(pr, _)| limit::Open::of(pr, true)),
        );
        // Handled by a task: counted, never held back (a binding may be landing).
        all.extend(busy.iter().map(|pr| limit::Open::of(pr, true)));
        let max = self.ctx.config.policy.max_open_requests_per_namespace;
        let held = limit::over_limit(&all, max);
        let count = |ns: &str| all.iter().filter(|o| o.namespace == ns).count();
        held.into_iter()
            .map(|(ns, name)| {
                let message = limit::message(ns, count(ns), max);
                ((ns.to_owned(), name.to_owned()), message)
            })
            .collect()
    }

    /// Counts and logs a request's failure and wakes the pass when its own backoff ends.
    fn failed(&self, pr: &PodRequest, error: &Error, what: &str) {
        self.ctx
            .metrics
            .reconcile_failed(CONTROLLER, error.metric_label());
        let retry = self
            .ctx
            .backoffs
            .retry_after(&retry_key(pr), error, &self.ctx.config.polling);
        tracing::warn!(request = %retry_key(pr), %error, retry_in = ?retry, "{what}");
        if let Some(delay) = retry {
            self.wake_in(delay);
        }
    }

    /// Acts on the scheduler's decision for a request without a Lease; returns the status
    /// to write (None: leave it for the next pass).
    async fn decide(
        &self,
        pr: &PodRequest,
        key: &scheduler::RequestKey,
        decision: &Decision,
        lease: Option<&Lease>,
    ) -> Result<Option<StandingOwned>> {
        if !self.ensure_finalizer(pr).await? {
            return Ok(None);
        }
        match decision {
            Decision::Bind(p) => {
                let planned;
                let lease = match lease {
                    Some(lease) => lease,
                    None => {
                        planned = lease_for(pr, p);
                        &planned
                    }
                };
                match bind(&self.ctx, pr, lease, true, &self.hosts).await? {
                    Bound::Done => {
                        tracing::info!(request = %key, hosts = p.assignments.len(), "bound");
                        return Ok(Some(StandingOwned::Decided(decision.clone())));
                    }
                    Bound::Conflict(why) => {
                        tracing::info!(request = %key, %why, "lost a race for a host; re-planning");
                        self.wake_in(RETRY_SOON);
                        return Ok(None);
                    }
                    Bound::Exists => {
                        self.wake_in(RETRY_SOON);
                        return Ok(None);
                    }
                }
            }
            Decision::Reserve(p) => self.wake_at(p.start),
            Decision::Wait {
                earliest_start: Some(t),
                ..
            } => self.wake_at(*t),
            Decision::Wait { .. } | Decision::Unsatisfiable { .. } => {}
        }
        Ok(Some(StandingOwned::Decided(decision.clone())))
    }

    /// Follows a request that is not waiting for hosts: invalid, bound, being deleted.
    async fn follow(
        &self,
        pr: &PodRequest,
        class: Class,
        input: Option<&scheduler::PlanInput>,
    ) -> Result<Option<(Option<Arc<Lease>>, StandingOwned)>> {
        Ok(match class {
            Class::Invalid(message) => Some((None, StandingOwned::Invalid(message))),
            Class::Verifying(message) => Some((None, StandingOwned::Verifying(message))),
            Class::ImageRefused(message) => Some((None, StandingOwned::ImageRefused(message))),
            Class::Blocked => {
                let wait = Decision::Wait {
                    message: "waiting for the Lease of an earlier request of the same name to be collected".into(),
                    earliest_start: None,
                };
                Some((None, StandingOwned::Decided(wait)))
            }
            Class::OverLimit(message) => {
                let wait = Decision::Wait {
                    message,
                    earliest_start: None,
                };
                Some((None, StandingOwned::Decided(wait)))
            }
            Class::LeaseMissing => {
                // Only the apiserver may say the Lease is gone (the cache can lag).
                let api: Api<Lease> =
                    Api::namespaced(self.ctx.client.clone(), &pr.namespace().unwrap_or_default());
                api.get_opt(&pr.name_any())
                    .await?
                    .is_none()
                    .then_some((None, StandingOwned::Finished))
            }
            Class::Bound(lease) => {
                let lease = Arc::new(lease);
                self.resume_binding(pr, &lease).await?;
                let rejected = self.extend(pr, &lease, input).await?;
                let handed = self.hand_over(pr, &lease).await?;
                Some((Some(lease), StandingOwned::Bound { rejected, handed }))
            }
            Class::Deleting(lease) => {
                let let_go = self.release(pr, lease.as_ref()).await?;
                // A request let go is gone: nothing to write.
                lease.filter(|_| !let_go).map(|l| {
                    // Going away: the children go with it (garbage collected), unchanged.
                    let bound = StandingOwned::Bound {
                        rejected: None,
                        handed: self.handed(pr, &l),
                    };
                    (Some(Arc::new(l)), bound)
                })
            }
            Class::Unsealed(lease) => {
                self.roll_back_unsealed(&lease).await?;
                None
            }
            Class::Refused { lease, why } => {
                tracing::debug!(request = %pr.name_any(), %lease, %why, "refusing a Lease the operator did not write");
                let releasing = self.claims_of(pr) > 0;
                Some((
                    None,
                    StandingOwned::Refused {
                        lease,
                        why: why.to_string(),
                        releasing,
                    },
                ))
            }
            Class::Waiting(_) | Class::Done => None,
        })
    }

    /// What the user of a bound request has: each host as the caches show it, and the
    /// children its status already names.
    fn handed(&self, pr: &PodRequest, lease: &Lease) -> Handed {
        let current = pr.status.as_ref();
        Handed {
            hosts: hosts::assigned(lease, &self.hosts),
            access_secret: current.and_then(|s| s.access_secret.clone()),
            descriptor: current.and_then(|s| s.descriptor.clone()),
        }
    }

    /// [`Self::handed`], after writing the children for what the hosts reported: the
    /// descriptor ConfigMap from the binding on (rewritten as hosts report), the access
    /// Secret once a host reported its address and keys.
    async fn hand_over(&self, pr: &PodRequest, lease: &Lease) -> Result<Handed> {
        let mut handed = self.handed(pr, lease);
        let (namespace, name) = snapshot::key_of(pr);
        let booking = descriptor::Booking {
            namespace: &namespace,
            image: &pr.spec.image.url,
            hosts: &handed.hosts,
            labhosts: &self.hosts,
            lab: &self.ctx.config.descriptor,
        };
        let files = descriptor::files(&booking);
        let config_map = descriptor::config_map_name(&name);
        let written = children::apply::<ConfigMap>(
            &self.ctx,
            &self.kept.applied,
            &children::config_map_body(pr, &config_map, &files),
        )
        .await;
        if child_written(pr, "descriptor ConfigMap", written)? {
            handed.descriptor = Some(config_map);
        }
        if let Some(files) = access::files(&namespace, &name, &handed.hosts) {
            let secret = access::secret_name(&name);
            let written = children::apply::<Secret>(
                &self.ctx,
                &self.kept.applied,
                &children::secret_body(pr, &secret, &files),
            )
            .await;
            if child_written(pr, "access Secret", written)? {
                handed.access_secret = Some(secret);
            }
        }
        Ok(handed)
    }

    /// Adds the finalizer before anything is bound; false when the write lost a race.
    async fn ensure_finalizer(&self, pr: &PodRequest) -> Result<bool> {
        if pr.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(true);
        }
        let mut finalizers = pr.finalizers().to_vec();
        finalizers.push(FINALIZER.to_owned());
        self.patch_finalizers(pr, finalizers).await
    }

    /// Merge patch of the finalizer list on the resourceVersion we read.
    async fn patch_finalizers(&self, pr: &PodRequest, finalizers: Vec<String>) -> Result<bool> {
        self.ctx.ensure_leader()?;
        let api: Api<PodRequest> =
            Api::namespaced(self.ctx.client.clone(), &pr.namespace().unwrap_or_default());
        let patch = json!({
            "metadata": { "finalizers": finalizers, "resourceVersion": pr.metadata.resource_version },
        });
        match api
            .patch(
                &pr.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Hosts claimed for `pr` (claims are the operator's own writes on cluster-scoped
    /// objects: trusted whatever any Lease says).
    fn claims_of(&self, pr: &PodRequest) -> usize {
        let uid = pr.uid().unwrap_or_default();
        self.hosts
            .values()
            .filter(|h| h.spec.claim_ref.as_ref().is_some_and(|c| c.uid == uid))
            .count()
    }

    /// A provisional Lease in the cache: the binder seals it within the pass that created it,
    /// so unless the apiserver's copy is sealed by now (the cache lags), a crash interrupted
    /// that pass. No host was claimed for it: delete it and re-plan.
    async fn roll_back_unsealed(&self, cached: &Lease) -> Result<()> {
        let api: Api<Lease> = Api::namespaced(
            self.ctx.client.clone(),
            &cached.namespace().unwrap_or_default(),
        );
        self.wake_in(RETRY_SOON);
        let Some(fresh) = api.get_opt(&cached.name_any()).await? else {
            return Ok(());
        };
        if fresh.uid() == cached.uid() && self.ctx.signer.verify(&fresh) == Ok(Seal::Provisional) {
            tracing::info!(lease = %fresh.name_any(), "rolling back a binding a crash left unsealed");
            bind::roll_back_unsealed(&self.ctx, &fresh).await?;
        }
        Ok(())
    }

    /// A Lease still binding (after a crash, or a cache that had not seen the claims yet):
    /// finish or roll back the claims.
    async fn resume_binding(&self, pr: &PodRequest, lease: &Lease) -> Result<()> {
        let phase = lease
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(LeasePhase::Pending);
        if phase != LeasePhase::Pending {
            return Ok(());
        }
        if let Bound::Conflict(why) = bind(&self.ctx, pr, lease, false, &self.hosts).await? {
            tracing::info!(request = %pr.name_any(), %why, "rolled back an unfinished binding");
            self.wake_in(RETRY_SOON);
        }
        Ok(())
    }

    /// A changed end on a bound request: patch the Lease when the scheduler accepts, else
    /// return why not (the Lease keeps its end).
    async fn extend(
        &self,
        pr: &PodRequest,
        lease: &Lease,
        input: Option<&scheduler::PlanInput>,
    ) -> Result<Option<String>> {
        // A pass plans whenever a followed booking asks (`input` is there then).
        let (Some(asked), Some(input)) = (extension::asked(pr, lease), input) else {
            return Ok(None);
        };
        match check_extension(&asked, input) {
            ExtensionDecision::Rejected { reason } => Ok(Some(reason)),
            ExtensionDecision::Accepted => {
                let mut spec = lease.spec.clone();
                spec.end = snapshot::kube_time(asked.new_end);
                // Signed with the new end in the same write (a tenant's end never verifies).
                if let Changed::Written(_) = sealed::change_spec(&self.ctx, lease, &spec).await? {
                    tracing::info!(request = %pr.name_any(), end = %asked.new_end, "lease end changed");
                }
                Ok(None)
            }
        }
    }

    /// Early release: the Lease controller drives a deleted request's Lease to Released; the
    /// finalizer goes once no host is claimed for the request any more. Tolerates a request
    /// that was never bound (nothing to wait for). True once the request is let go.
    async fn release(&self, pr: &PodRequest, lease: Option<&Lease>) -> Result<bool> {
        if !pr.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(true);
        }
        let released = lease
            .is_none_or(|l| l.status.as_ref().and_then(|s| s.phase) == Some(LeasePhase::Released));
        if released && self.claims_of(pr) == 0 {
            let rest: Vec<String> = pr
                .finalizers()
                .iter()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect();
            self.patch_finalizers(pr, rest).await?;
            tracing::info!(request = %pr.name_any(), "released; letting the request go");
            return Ok(true);
        }
        Ok(false)
    }
}

/// [`Standing`] without borrows, collected during the pass.
enum StandingOwned {
    Invalid(String),
    Verifying(String),
    ImageRefused(String),
    Refused {
        lease: String,
        why: String,
        releasing: bool,
    },
    Decided(Decision),
    Bound {
        rejected: Option<String>,
        handed: Handed,
    },
    Finished,
}

/// PodRequests by phase, and since when the longest-waiting Pending one could have started,
/// for /metrics.
pub fn requests_by_phase(requests: &Store<DeserializeGuard<PodRequest>>) -> PhaseCounts {
    let mut counts = PhaseCounts::default();
    for pr in requests.state() {
        let (phase, since) = match &pr.0 {
            Ok(pr) => {
                let phase = pr
                    .status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .unwrap_or(PodRequestPhase::Pending);
                let waiting = (phase == PodRequestPhase::Pending).then(|| waiting_since(pr));
                (phase, waiting.flatten().map(|t| t.as_second()))
            }
            Err(_) => (PodRequestPhase::Failed, None),
        };
        counts.add(format!("{phase:?}"), since);
    }
    counts
}

/// When a booking could have started: its creation, or its requested start if later. Its
/// wait for hosts runs from then.
pub fn waiting_since(pr: &PodRequest) -> Option<Timestamp> {
    let created = pr.metadata.creation_timestamp.as_ref()?.0;
    Some(pr.spec.start.as_ref().map_or(created, |s| s.0.max(created)))
}

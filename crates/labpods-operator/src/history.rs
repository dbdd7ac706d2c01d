//! The allocation history (DESIGN.md "History"): a record of every host's part in every
//! booking, kept after the Leases are collected, read by `kubectl lab report` and
//! `forecast`.
//!
//! **Where it lives, and why.** ConfigMaps in the operator's namespace, labelled
//! `labpods.dev/history=raw|usage` and `labpods.dev/history-period=<day>`, each holding one
//! gzip'd JSON-lines blob ([`store`]). The cluster is the only store every install has, and
//! the operator already reads and writes there; a custom resource per period would add a
//! CRD and an API surface for what is an internal log. etcd is no database, so the layout
//! keeps the footprint and the write load small and bounded ([`shards`]): each writer flush
//! *creates* a small segment (no read-modify-write of a big object, so a write costs what it
//! carries), each hour a day's segments are merged into parts under 900 KiB, days past the admin's
//! retention are compacted into daily usage rows per (lab, profile, namespace), and usage
//! past its own retention is dropped. `cargo xtask bench history` measures it at 10,000
//! hosts for 400 days (BENCHMARKS.md).
//!
//! **Off the release path.** The Lease controller calls [`observe`] on every reconcile: it
//! is synchronous and does no IO. It queues a host a spare replaced (ending `Healed`) when the
//! status lists it in `status.replaced`, and on Released one [`Allocation`] per host (ending
//! `Failed` for a host with `status.hosts[].failedAt`). Those facts and the provisioning time
//! (`status.readyAt`) are in the Lease's status, written by the Lease plan without a write
//! of their own, so a restarted operator records them too; at Released it also queues the
//! replaced hosts it did not see leave. A background task flushes the queue every
//! [`FLUSH_INTERVAL`] while this replica leads, retrying failed writes with exponential
//! backoff; a release never waits for it. A Released Lease is offered again on every
//! reconcile until it is collected (a restarted operator re-offers it), and readers drop
//! duplicates by id, so a crash before a flush loses a record only when the Lease was
//! collected too.

pub mod record;
pub mod shards;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use labpods_api::v1alpha1::{
    HostState, LABEL_LAB, LabHost, Lease, LeaseHost, LeasePhase, LeaseStatus, PodRequest,
};

pub use record::{Allocation, Ending, Usage};
pub use shards::Settings;
pub use store::{ConfigMapStore, MemoryStore, ShardStore, StoreError};

use crate::context::Context;
use crate::controllers::scheduling::bind::ORIGINAL_END;

/// How often the writer stores what is queued.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(15);
/// How often finished days are merged and old ones compacted.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(3_600);
/// Records held while the store is unreachable; past this the oldest are dropped (logged).
pub const MAX_QUEUED: usize = 200_000;
/// Most records in one segment.
const MAX_BATCH: usize = 5_000;
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Leases remembered after their records were queued (so a reconcile loop does not queue
/// them again); beyond this the oldest memories go and a re-offer is deduplicated by id.
const MAX_TRACKED: usize = 50_000;

/// What the history remembers of a live Lease between reconciles: only what it queued, so
/// a reconcile loop does not queue it again (a restarted operator re-offers, readers dedupe).
#[derive(Debug, Clone, Default)]
struct Tracked {
    /// Replaced hosts whose `Healed` record was queued.
    healed: BTreeSet<String>,
    recorded: bool,
    seen: u64,
}

/// The pure part of [`observe`]: per Lease uid, what was seen; returns the records to queue.
#[derive(Debug, Default)]
pub struct Tracker {
    leases: BTreeMap<String, Tracked>,
    tick: u64,
}

/// One host's record; `ending` and `released_at` say how and when its part ended.
fn allocation(
    lease: &Lease,
    request: Option<&PodRequest>,
    labhosts: &[&LabHost],
    host: &LeaseHost,
    released_at: Timestamp,
    ending: Ending,
    ready_at: Option<Timestamp>,
) -> Allocation {
    let labhost = labhosts.iter().find(|l| l.name_any() == host.host);
    let requested_start = request.and_then(|pr| {
        pr.spec
            .start
            .as_ref()
            .or(pr.metadata.creation_timestamp.as_ref())
            .map(|t| t.0)
    });
    let start = lease.spec.start.0;
    let end = lease.spec.end.0;
    let original_end = lease
        .annotations()
        .get(ORIGINAL_END)
        .and_then(|s| s.parse::<Timestamp>().ok());
    Allocation {
        id: format!(
            "{}/{}",
            lease.uid().unwrap_or_else(|| lease.name_any()),
            host.host
        ),
        host: host.host.clone(),
        profile: labhost.map(|l| l.spec.profile.clone()).unwrap_or_default(),
        lab: labhost
            .and_then(|l| l.labels().get(LABEL_LAB).cloned())
            .unwrap_or_default(),
        namespace: lease.namespace().unwrap_or_default(),
        request: lease.spec.request_ref.name.clone(),
        role: host.role.clone(),
        requested_start,
        start,
        end,
        released_at,
        ending,
        wait_seconds: requested_start.map_or(0, |r| record::secs_between(r, start)),
        provisioning_seconds: ready_at.map(|r| record::secs_between(start, r)),
        extension_seconds: original_end.map_or(0, |o| record::secs_between(o, end)),
    }
}

impl Tracker {
    /// Notes what `after` (the status about to be written) says of `lease`.
    pub fn observe(
        &mut self,
        lease: &Lease,
        request: Option<&PodRequest>,
        labhosts: &[&LabHost],
        after: &LeaseStatus,
    ) -> Vec<Allocation> {
        self.tick += 1;
        let uid = lease.uid().unwrap_or_else(|| lease.name_any());
        // Durable, unlike this memory: a restarted operator reads them back from the status.
        let ready_at = after
            .ready_at
            .as_ref()
            .or(lease.status.as_ref().and_then(|s| s.ready_at.as_ref()))
            .map(|t| t.0);
        let t = self.leases.entry(uid).or_default();
        t.seen = self.tick;
        let before = lease.status.as_ref();
        let released = match (after.phase, &after.released_at) {
            (Some(LeasePhase::Released), Some(at)) if !t.recorded => Some(at.0),
            _ => None,
        };
        let mut out = Vec::new();
        // A host a spare replaced, from the durable list: queued in the status write that
        // first lists it, or at Released by a restarted operator that did not see that write.
        for r in &after.replaced {
            let new = before.is_none_or(|s| !s.replaced.iter().any(|b| b.host == r.host));
            if (new || released.is_some()) && t.healed.insert(r.host.clone()) {
                let gone = LeaseHost {
                    host: r.host.clone(),
                    role: r.role.clone(),
                    hostname: None,
                };
                out.push(allocation(
                    lease,
                    request,
                    labhosts,
                    &gone,
                    r.at.0,
                    Ending::Healed,
                    ready_at,
                ));
            }
        }
        if let Some(released_at) = released {
            t.recorded = true;
            // `failedAt` is sticky in the status; a status written before it existed shows
            // the state only.
            let failed = |host: &str| {
                before
                    .into_iter()
                    .flat_map(|s| &s.hosts)
                    .chain(&after.hosts)
                    .any(|p| {
                        p.host == host
                            && (p.failed_at.is_some() || p.state == Some(HostState::Error))
                    })
            };
            for h in &lease.spec.hosts {
                let ending = if failed(&h.host) {
                    Ending::Failed
                } else if released_at >= lease.spec.end.0 {
                    Ending::Expired
                } else {
                    Ending::ReleasedEarly
                };
                out.push(allocation(
                    lease,
                    request,
                    labhosts,
                    h,
                    released_at,
                    ending,
                    ready_at,
                ));
            }
        }
        if self.leases.len() > MAX_TRACKED {
            // Forget the longest-unseen recorded Leases.
            let mut recorded: Vec<(u64, String)> = self
                .leases
                .iter()
                .filter(|(_, t)| t.recorded)
                .map(|(k, t)| (t.seen, k.clone()))
                .collect();
            recorded.sort();
            for (_, k) in recorded.iter().take(MAX_TRACKED / 10) {
                self.leases.remove(k);
            }
        }
        out
    }
}

/// Records waiting for the store, oldest first.
#[derive(Debug, Default)]
pub struct Queue {
    records: Mutex<VecDeque<Allocation>>,
}

impl Queue {
    /// Adds `records` without waiting; drops the oldest beyond [`MAX_QUEUED`].
    pub fn push(&self, records: Vec<Allocation>) {
        let Ok(mut q) = self.records.lock() else {
            return;
        };
        q.extend(records);
        if q.len() > MAX_QUEUED {
            let dropped = q.len() - MAX_QUEUED;
            q.drain(..dropped);
            tracing::error!(
                dropped,
                "allocation history: the store has been unwritable too long; dropped the oldest records"
            );
        }
    }

    pub fn len(&self) -> usize {
        self.records.lock().map_or(0, |q| q.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores up to one batch; on failure the batch goes back to the front. True when
    /// something was written.
    pub async fn flush<S: ShardStore>(
        &self,
        store: &S,
        now: Timestamp,
    ) -> Result<bool, store::StoreError> {
        let batch: Vec<Allocation> = match self.records.lock() {
            Ok(mut q) => {
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect()
            }
            Err(_) => return Ok(false),
        };
        if batch.is_empty() {
            return Ok(false);
        }
        match shards::append(store, &batch, now).await {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut q) = self.records.lock() {
                    for r in batch.into_iter().rev() {
                        q.push_front(r);
                    }
                }
                Err(e)
            }
        }
    }
}

#[derive(Debug, Default)]
struct Writer {
    tracker: Mutex<Tracker>,
    queue: Queue,
}

static WRITER: OnceLock<Writer> = OnceLock::new();

/// Called by the Lease controller with the status it is about to write; never blocks and
/// never fails (the first call starts the background writer).
pub fn observe(
    ctx: &Arc<Context>,
    lease: &Lease,
    request: Option<&PodRequest>,
    labhosts: &[&LabHost],
    after: &LeaseStatus,
) {
    let mut started = false;
    let writer = WRITER.get_or_init(|| {
        started = true;
        Writer::default()
    });
    if started {
        tokio::spawn(run(ctx.clone(), writer));
    }
    let records = match writer.tracker.lock() {
        Ok(mut t) => t.observe(lease, request, labhosts, after),
        Err(_) => return,
    };
    if !records.is_empty() {
        writer.queue.push(records);
    }
}

/// The ConfigMap (in the operator's namespace) where an admin sets the retentions:
/// `retentionDays` (raw allocations, default 90) and `usageRetentionDays` (daily usage rows,
/// default 800). Read before each housekeeping pass.
pub const SETTINGS_CONFIGMAP: &str = "labpods-history-settings";

/// The settings in `data`, the defaults for what is absent; a value that is not a whole
/// number of days of at least 1 is ignored (and logged).
pub fn settings_from(data: Option<&BTreeMap<String, String>>) -> Settings {
    let mut settings = Settings::default();
    let Some(data) = data else {
        return settings;
    };
    for (key, field) in [
        ("retentionDays", &mut settings.retention_days),
        ("usageRetentionDays", &mut settings.usage_retention_days),
    ] {
        if let Some(text) = data.get(key) {
            match text.trim().parse::<i64>() {
                Ok(days) if days >= 1 => *field = days,
                _ => {
                    tracing::warn!(key, value = %text, "{SETTINGS_CONFIGMAP}: not a number of days >= 1; ignored")
                }
            }
        }
    }
    settings
}

/// One housekeeping pass of the history in `namespace`, as the operator runs it: with the
/// retentions an admin set in [`SETTINGS_CONFIGMAP`] (the chart's `history` values), the
/// defaults when it is missing or unreadable.
pub async fn housekeep(
    client: &kube::Client,
    namespace: &str,
    now: Timestamp,
) -> Result<shards::Housekeeping, StoreError> {
    let settings_api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), namespace);
    let settings = match settings_api.get_opt(SETTINGS_CONFIGMAP).await {
        Ok(cm) => settings_from(cm.as_ref().and_then(|c| c.data.as_ref())),
        Err(error) => {
            tracing::warn!(%error, "reading {SETTINGS_CONFIGMAP}; using the defaults");
            Settings::default()
        }
    };
    let store = ConfigMapStore::new(client.clone(), namespace);
    shards::housekeeping(&store, &settings, now).await
}

/// The background writer: flushes while this replica leads, backs off on failure, and
/// runs the housekeeping every [`HOUSEKEEPING_INTERVAL`].
async fn run(ctx: Arc<Context>, writer: &'static Writer) {
    let namespace = &ctx.config.leader_election.lease_namespace;
    let store = ConfigMapStore::new(ctx.client.clone(), namespace);
    let mut backoff = FLUSH_INTERVAL;
    let mut next_housekeeping = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(backoff).await;
        if ctx.ensure_leader().is_err() {
            continue;
        }
        let now = ctx.clock.now();
        let mut failed = false;
        while !writer.queue.is_empty() {
            match writer.queue.flush(&store, now).await {
                Ok(_) => {}
                Err(error) => {
                    failed = true;
                    tracing::warn!(%error, queued = writer.queue.len(), "allocation history write failed; retrying");
                    break;
                }
            }
        }
        if !failed && tokio::time::Instant::now() >= next_housekeeping {
            match housekeep(&ctx.client, namespace, now).await {
                Ok(done) => tracing::debug!(?done, "allocation history housekeeping"),
                Err(error) => tracing::warn!(%error, "allocation history housekeeping failed"),
            }
            next_housekeeping = tokio::time::Instant::now() + HOUSEKEEPING_INTERVAL;
        }
        backoff = if failed {
            (backoff * 2).min(BACKOFF_MAX)
        } else {
            FLUSH_INTERVAL
        };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

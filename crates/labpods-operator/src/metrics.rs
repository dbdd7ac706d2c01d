//! Prometheus metrics. Every label is bounded: controller names, phases and states from the
//! API enums, error kinds from `metric_label()`, Redfish operation names. Never object names
//! or error text.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationErrorLabels {
    operation: &'static str,
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    state: String,
    profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Counts of objects by state/phase, taken from the controllers' caches at scrape time.
/// Keys come from the API's enums (and the lab admins' host profiles), so the label sets
/// stay bounded.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ObjectCounts {
    /// LabHosts by (state, profile).
    pub hosts: BTreeMap<(String, String), i64>,
    /// LabHosts whose release could not complete (condition Quarantined).
    pub hosts_quarantined: i64,
    pub requests: PhaseCounts,
    pub leases: PhaseCounts,
}

/// Objects by phase, and per phase the earliest time one of them got there: an age an alert
/// can bound, where a count alone only says that some object has been there.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PhaseCounts {
    pub count: BTreeMap<String, i64>,
    /// Unix seconds, for the phases whose objects say since when.
    pub oldest_since: BTreeMap<String, i64>,
}

impl PhaseCounts {
    pub fn add(&mut self, phase: String, since: Option<i64>) {
        if let Some(since) = since {
            self.oldest_since
                .entry(phase.clone())
                .and_modify(|t| *t = (*t).min(since))
                .or_insert(since);
        }
        *self.count.entry(phase).or_insert(0) += 1;
    }
}

/// Computes [`ObjectCounts`] on demand; registered by the controllers while they run.
pub type CountsSource = Arc<dyn Fn() -> ObjectCounts + Send + Sync>;

fn set_phases(
    count: &Family<PhaseLabels, Gauge>,
    since: &Family<PhaseLabels, Gauge>,
    phases: PhaseCounts,
) {
    count.clear();
    for (phase, n) in phases.count {
        count.get_or_create(&PhaseLabels { phase }).set(n);
    }
    since.clear();
    for (phase, t) in phases.oldest_since {
        since.get_or_create(&PhaseLabels { phase }).set(t);
    }
}

/// All operator metrics, registered once.
pub struct Metrics {
    registry: Registry,
    reconcile_duration: HistogramFamily<ControllerLabels>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    redfish_duration: HistogramFamily<OperationLabels>,
    redfish_errors: Family<OperationErrorLabels, Counter>,
    booking_wait: Histogram,
    provisioning: Histogram,
    hosts: Family<HostLabels, Gauge>,
    hosts_quarantined: Gauge,
    requests: Family<PhaseLabels, Gauge>,
    requests_since: Family<PhaseLabels, Gauge>,
    leases: Family<PhaseLabels, Gauge>,
    leases_since: Family<PhaseLabels, Gauge>,
    is_leader: Gauge,
    image_downloads: Family<OutcomeLabels, Counter>,
    image_bytes: Counter,
    image_verification_failures: Family<ReasonLabels, Counter>,
    image_cache_hits: Counter,
    status_writes: Family<WriteLabels, Counter>,
    counts_source: Mutex<Option<CountsSource>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn reconcile_histogram() -> Histogram {
    // 1 ms .. ~33 s: a reconcile that talks to a slow BMC takes seconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn redfish_histogram() -> Histogram {
    // 5 ms .. ~82 s: real BMCs answer power actions in seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// 1 s .. ~36 h: a free lab binds at once, a crowded one makes bookings wait for days.
fn wait_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 18))
}

/// 10 s .. ~5.7 h: a simulated host boots in seconds, a real one's reimage takes minutes.
fn provisioning_histogram() -> Histogram {
    Histogram::new(exponential_buckets(10.0, 2.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("labpods");
        let reconcile_duration =
            HistogramFamily::<ControllerLabels>::new_with_constructor(reconcile_histogram);
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let redfish_duration =
            HistogramFamily::<OperationLabels>::new_with_constructor(redfish_histogram);
        let redfish_errors = Family::<OperationErrorLabels, Counter>::default();
        let booking_wait = wait_histogram();
        let provisioning = provisioning_histogram();
        let hosts = Family::<HostLabels, Gauge>::default();
        let hosts_quarantined = Gauge::default();
        let requests = Family::<PhaseLabels, Gauge>::default();
        let requests_since = Family::<PhaseLabels, Gauge>::default();
        let leases = Family::<PhaseLabels, Gauge>::default();
        let leases_since = Family::<PhaseLabels, Gauge>::default();
        let is_leader = Gauge::default();
        let image_downloads = Family::<OutcomeLabels, Counter>::default();
        let image_bytes = Counter::default();
        let image_verification_failures = Family::<ReasonLabels, Counter>::default();
        let image_cache_hits = Counter::default();
        let status_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "status_writes",
            "Status writes, by kind and outcome (written, refused: changed since read, gone, timeout, error)",
            status_writes.clone(),
        );
        registry.register(
            "image_downloads",
            "Image downloads to verify a checksum, by outcome (downloaded or the failure kind)",
            image_downloads.clone(),
        );
        registry.register(
            "image_download_bytes",
            "Bytes of images downloaded and hashed",
            image_bytes.clone(),
        );
        registry.register(
            "image_verification_failures",
            "Bookings whose image was refused, by reason (mismatch or the download failure)",
            image_verification_failures.clone(),
        );
        registry.register(
            "image_cache_hits",
            "Bookings whose image verdict came from a download another booking caused",
            image_cache_hits.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile, by controller",
            reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by controller and error kind",
            reconcile_errors.clone(),
        );
        registry.register(
            "redfish_request_duration_seconds",
            "Latency of Redfish operations, by operation",
            redfish_duration.clone(),
        );
        registry.register(
            "redfish_errors",
            "Failed Redfish operations, by operation and error kind",
            redfish_errors.clone(),
        );
        registry.register(
            "booking_wait_seconds",
            "How long bookings waited for hosts: from when they could start (creation, or the requested start if later) to their binding",
            booking_wait.clone(),
        );
        registry.register(
            "provisioning_duration_seconds",
            "How long bookings took to become Ready: from their start (or binding, if later) to every host running the image",
            provisioning.clone(),
        );
        registry.register("hosts", "LabHosts by state and profile", hosts.clone());
        registry.register(
            "hosts_quarantined",
            "LabHosts out of the pool because their release could not complete",
            hosts_quarantined.clone(),
        );
        registry.register("podrequests", "PodRequests by phase", requests.clone());
        registry.register_with_unit(
            "podrequests_oldest_since_timestamp",
            "Pending: the earliest time a waiting PodRequest could have started (its creation, or its requested start if later)",
            Unit::Seconds,
            requests_since.clone(),
        );
        registry.register("leases", "Leases by phase", leases.clone());
        registry.register_with_unit(
            "leases_oldest_since_timestamp",
            "Per phase, when the Lease longest in it entered it (status.lastPhaseTransitionTime)",
            Unit::Seconds,
            leases_since.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            is_leader.clone(),
        );
        Self {
            registry,
            reconcile_duration,
            reconcile_errors,
            redfish_duration,
            redfish_errors,
            booking_wait,
            provisioning,
            hosts,
            hosts_quarantined,
            requests,
            requests_since,
            leases,
            leases_since,
            is_leader,
            image_downloads,
            image_bytes,
            image_verification_failures,
            image_cache_hits,
            status_writes,
            counts_source: Mutex::new(None),
        }
    }

    pub fn observe_reconcile(&self, controller: &'static str, took: Duration) {
        self.reconcile_duration
            .get_or_create(&ControllerLabels { controller })
            .observe(took.as_secs_f64());
    }

    pub fn reconcile_failed(&self, controller: &'static str, error: &'static str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels { controller, error })
            .inc();
    }

    pub fn observe_redfish(&self, operation: &'static str, took: Duration) {
        self.redfish_duration
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
    }

    pub fn redfish_failed(&self, operation: &'static str, error: &'static str) {
        self.redfish_errors
            .get_or_create(&OperationErrorLabels { operation, error })
            .inc();
    }

    pub fn observe_booking_wait(&self, waited: Duration) {
        self.booking_wait.observe(waited.as_secs_f64());
    }

    pub fn observe_provisioning(&self, took: Duration) {
        self.provisioning.observe(took.as_secs_f64());
    }

    /// A status write of a `kind` object and how it ended (written, refused, gone, timeout,
    /// error).
    pub fn status_written(&self, kind: &str, outcome: &'static str) {
        self.status_writes
            .get_or_create(&WriteLabels {
                kind: kind.to_owned(),
                outcome,
            })
            .inc();
    }

    pub fn image_downloaded(&self, outcome: &'static str) {
        self.image_downloads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn image_bytes(&self, bytes: u64) {
        self.image_bytes.inc_by(bytes);
    }

    pub fn image_verification_failed(&self, reason: &'static str) {
        self.image_verification_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn image_cache_hit(&self) {
        self.image_cache_hits.inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.is_leader.set(i64::from(leader));
    }

    /// Installs (or, with `None`, removes) the source of object counts. A replica that is not
    /// leading has no caches and reports no counts, so sums over replicas stay right.
    pub fn set_counts_source(&self, source: Option<CountsSource>) {
        if let Ok(mut slot) = self.counts_source.lock() {
            *slot = source;
        }
    }

    fn refresh_counts(&self) {
        let source = self.counts_source.lock().ok().and_then(|s| s.clone());
        let counts = source.map(|f| f()).unwrap_or_default();
        // Clear first so that a state no object is in any more disappears instead of
        // keeping its last count.
        self.hosts.clear();
        for ((state, profile), n) in counts.hosts {
            self.hosts
                .get_or_create(&HostLabels { state, profile })
                .set(n);
        }
        self.hosts_quarantined.set(counts.hosts_quarantined);
        set_phases(&self.requests, &self.requests_since, counts.requests);
        set_phases(&self.leases, &self.leases_since, counts.leases);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        self.refresh_counts();
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn exposition_has_bounded_labels_and_counts() {
        let metrics = Metrics::new();
        metrics.observe_reconcile("labhost", Duration::from_millis(3));
        metrics.reconcile_failed("labhost", "bmc_unreachable");
        metrics.observe_redfish("power_state", Duration::from_millis(20));
        metrics.redfish_failed("reset", "timeout");
        metrics.observe_booking_wait(Duration::from_secs(90));
        metrics.observe_provisioning(Duration::from_secs(300));
        metrics.set_leader(true);
        metrics.set_counts_source(Some(Arc::new(|| {
            let mut leases = PhaseCounts::default();
            leases.add("Provisioning".into(), Some(1_800_000_300));
            leases.add("Provisioning".into(), Some(1_800_000_100));
            leases.add("Ready".into(), None);
            let mut requests = PhaseCounts::default();
            requests.add("Pending".into(), Some(1_800_000_000));
            requests.add("Ready".into(), None);
            ObjectCounts {
                hosts: BTreeMap::from([
                    (("Available".into(), "small".into()), 6),
                    (("Provisioning".into(), "gpu".into()), 2),
                ]),
                hosts_quarantined: 0,
                requests,
                leases,
            }
        })));
        let text = metrics.encode().unwrap();
        for line in [
            r#"labpods_reconcile_duration_seconds_count{controller="labhost"} 1"#,
            r#"labpods_reconcile_errors_total{controller="labhost",error="bmc_unreachable"} 1"#,
            r#"labpods_redfish_request_duration_seconds_count{operation="power_state"} 1"#,
            r#"labpods_redfish_errors_total{operation="reset",error="timeout"} 1"#,
            r#"labpods_booking_wait_seconds_bucket{le="128.0"} 1"#,
            r#"labpods_booking_wait_seconds_bucket{le="64.0"} 0"#,
            "labpods_provisioning_duration_seconds_sum 300.0",
            r#"labpods_hosts{state="Available",profile="small"} 6"#,
            r#"labpods_hosts{state="Provisioning",profile="gpu"} 2"#,
            r#"labpods_podrequests{phase="Ready"} 1"#,
            r#"labpods_podrequests_oldest_since_timestamp_seconds{phase="Pending"} 1800000000"#,
            r#"labpods_leases{phase="Provisioning"} 2"#,
            r#"labpods_leases_oldest_since_timestamp_seconds{phase="Provisioning"} 1800000100"#,
            "labpods_leader 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(
            !text.contains(r#"since_timestamp_seconds{phase="Ready"}"#),
            "{text}"
        );
    }

    #[test]
    fn counts_disappear_when_the_source_goes() {
        let metrics = Metrics::new();
        metrics.set_counts_source(Some(Arc::new(|| ObjectCounts {
            hosts: BTreeMap::from([(("Error".into(), "small".into()), 1)]),
            hosts_quarantined: 1,
            ..ObjectCounts::default()
        })));
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(r#"labpods_hosts{state="Error",profile="small"} 1"#),
            "{text}"
        );
        assert!(text.contains("labpods_hosts_quarantined 1"), "{text}");
        metrics.set_counts_source(None);
        let text = metrics.encode().unwrap();
        assert!(!text.contains(r#"state="Error""#), "{text}");
        assert!(text.contains("labpods_hosts_quarantined 0"), "{text}");
    }
}

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
    registry::Registry,
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
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Counts of objects by state/phase, taken from the controllers' caches at scrape time.
/// Keys come from the API's enums, so the label sets stay bounded.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ObjectCounts {
    pub hosts_by_state: BTreeMap<String, i64>,
    /// LabHosts whose release could not complete (condition Quarantined).
    pub hosts_quarantined: i64,
    pub requests_by_phase: BTreeMap<String, i64>,
    pub leases_by_phase: BTreeMap<String, i64>,
}

/// Computes [`ObjectCounts`] on demand; registered by the controllers while they run.
pub type CountsSource = Arc<dyn Fn() -> ObjectCounts + Send + Sync>;

/// All operator metrics, registered once.
pub struct Metrics {
    registry: Registry,
    reconcile_duration: HistogramFamily<ControllerLabels>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    redfish_duration: HistogramFamily<OperationLabels>,
    redfish_errors: Family<OperationErrorLabels, Counter>,
    hosts: Family<StateLabels, Gauge>,
    hosts_quarantined: Gauge,
    requests: Family<PhaseLabels, Gauge>,
    leases: Family<PhaseLabels, Gauge>,
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
        let hosts = Family::<StateLabels, Gauge>::default();
        let hosts_quarantined = Gauge::default();
        let requests = Family::<PhaseLabels, Gauge>::default();
        let leases = Family::<PhaseLabels, Gauge>::default();
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
        registry.register("hosts", "LabHosts by state", hosts.clone());
        registry.register(
            "hosts_quarantined",
            "LabHosts out of the pool because their release could not complete",
            hosts_quarantined.clone(),
        );
        registry.register("podrequests", "PodRequests by phase", requests.clone());
        registry.register("leases", "Leases by phase", leases.clone());
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
            hosts,
            hosts_quarantined,
            requests,
            leases,
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
        for (state, n) in counts.hosts_by_state {
            self.hosts.get_or_create(&StateLabels { state }).set(n);
        }
        self.hosts_quarantined.set(counts.hosts_quarantined);
        self.requests.clear();
        for (phase, n) in counts.requests_by_phase {
            self.requests.get_or_create(&PhaseLabels { phase }).set(n);
        }
        self.leases.clear();
        for (phase, n) in counts.leases_by_phase {
            self.leases.get_or_create(&PhaseLabels { phase }).set(n);
        }
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
        metrics.set_leader(true);
        metrics.set_counts_source(Some(Arc::new(|| ObjectCounts {
            hosts_by_state: BTreeMap::from([("Available".into(), 6), ("Provisioning".into(), 2)]),
            hosts_quarantined: 0,
            requests_by_phase: BTreeMap::from([("Ready".into(), 1)]),
            leases_by_phase: BTreeMap::from([("Ready".into(), 1)]),
        })));
        let text = metrics.encode().unwrap();
        for line in [
            r#"labpods_reconcile_duration_seconds_count{controller="labhost"} 1"#,
            r#"labpods_reconcile_errors_total{controller="labhost",error="bmc_unreachable"} 1"#,
            r#"labpods_redfish_request_duration_seconds_count{operation="power_state"} 1"#,
            r#"labpods_redfish_errors_total{operation="reset",error="timeout"} 1"#,
            r#"labpods_hosts{state="Available"} 6"#,
            r#"labpods_hosts{state="Provisioning"} 2"#,
            r#"labpods_podrequests{phase="Ready"} 1"#,
            r#"labpods_leases{phase="Ready"} 1"#,
            "labpods_leader 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn counts_disappear_when_the_source_goes() {
        let metrics = Metrics::new();
        metrics.set_counts_source(Some(Arc::new(|| ObjectCounts {
            hosts_by_state: BTreeMap::from([("Error".into(), 1)]),
            hosts_quarantined: 1,
            ..ObjectCounts::default()
        })));
        let text = metrics.encode().unwrap();
        assert!(text.contains(r#"labpods_hosts{state="Error"} 1"#), "{text}");
        assert!(text.contains("labpods_hosts_quarantined 1"), "{text}");
        metrics.set_counts_source(None);
        let text = metrics.encode().unwrap();
        assert!(!text.contains(r#"state="Error""#), "{text}");
        assert!(text.contains("labpods_hosts_quarantined 0"), "{text}");
    }
}

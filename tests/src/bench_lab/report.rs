//! What one size of the lab benchmark measured, its targets (issue 12), and the tables:
//! one per size, and each figure across sizes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::sim::SimHost;

use super::measure::{Quantile, counter_delta, quantile, seconds};
use super::{Bench, IDLE_INTERVAL, Limits, Snapshot, Tracked, Workload};

/// Target: created -> bound, p99.
pub const BIND_P99_TARGET: Duration = Duration::from_secs(1);
/// Target: the operator's peak resident memory.
pub const RSS_TARGET_MIB: f64 = 256.0;
/// Target: Redfish calls per idle host per `polling.idleInterval`.
pub const IDLE_CALLS_TARGET: f64 = 1.0;
/// Target: the operator's API writes per booked host from creation to Ready, Events
/// included. A host needs its claim (1) and at most one status write per provisioning step
/// (9 steps, each persisted so that a restart resumes it) plus `Claimed` (1): 11; its
/// Events (Claimed, Provisioning, Provisioned): 3. The booking's own writes (its Lease
/// created, sealed and its status at each phase and host count, its PodRequest's finalizer
/// and status at each phase, the descriptor ConfigMap, about 7 phase Events on both) are
/// shared by its hosts: about 6 per host for the 2.9-host average booking. 20 in all.
pub const WRITES_PER_HOST_TARGET: f64 = 20.0;

/// apiserver_request_total verbs that write (APPLY: server-side apply).
const WRITE_VERBS: [&str; 4] = ["POST", "PUT", "PATCH", "APPLY"];
/// Writes that are not the operator's booking work: the bench's own PodRequest creates, and
/// leader election (the operator's renewals).
fn not_booking_work(resource: &str, verb: &str) -> bool {
    (resource == "podrequests.labpods.dev" && verb == "POST")
        || resource.contains(".coordination.k8s.io")
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub hosts: usize,
    pub requests: usize,
    pub arrival: Duration,
    pub boot: Duration,
    pub latency: Duration,
    pub limits: Limits,
    pub workload: Workload,
    /// Benchmark 2: created -> Ready of the first booking, made alone.
    pub alone: Option<Duration>,
    /// The apiserver's git version.
    pub kubernetes: String,
    pub control_plane_start: Duration,
    pub registration: Duration,
    /// Operator start -> every LabHost Available.
    pub settle: Option<Duration>,
    /// The phase that ran out of time, and what it reached.
    pub failure: Option<String>,
    /// VmHWM of the operator, the largest seen.
    pub peak_rss_kib: u64,
    /// The operator's CPU seconds by the end of the settle phase.
    pub cpu_settle: f64,
    pub idle: Option<Idle>,
    pub bookings: Option<Bookings>,
    /// The 1-minute load average before and after (the machine is shared).
    pub load_before: String,
    pub load_after: String,
    /// The operator's log.
    pub logs: PathBuf,
    /// BMC request counts that could not be read as bookings bound or got Ready (their hosts
    /// are left out of the calls per booking).
    pub counters_unread: usize,
}

/// The idle window: nothing asked, every host Available.
#[derive(Debug, Clone, Default)]
pub struct Idle {
    pub seconds: f64,
    pub calls_per_host: f64,
    /// The operator's API writes (elections aside), and by (resource, verb).
    pub writes: f64,
    pub writes_by: BTreeMap<(String, String), f64>,
    pub cpu: f64,
}

/// The bookings window: the first create to the end.
#[derive(Debug, Clone, Default)]
pub struct Bookings {
    pub seconds: f64,
    pub cpu: f64,
    pub created: usize,
    pub bound: usize,
    pub ready: usize,
    pub failed: usize,
    /// Created -> status names a Lease, per created booking (None: never seen).
    pub bind: Vec<Option<Duration>>,
    /// Created -> phase Ready.
    pub ready_latency: Vec<Option<Duration>>,
    /// Hosts of the Ready bookings.
    pub ready_hosts: usize,
    /// The first create -> the last Ready, when every booking got Ready.
    pub all_ready: Option<Duration>,
    /// apiserver_request_total in the window by (resource, verb).
    pub requests: BTreeMap<(String, String), f64>,
    /// The operator's reconciles in the window by controller.
    pub reconciles: BTreeMap<String, f64>,
    pub reconcile_errors: BTreeMap<String, f64>,
    /// Seconds spent reconciling by controller (the scheduler's: its passes).
    pub reconcile_seconds: BTreeMap<String, f64>,
    /// Seconds the operator's Redfish operations held a `bmc.globalConcurrency` slot.
    pub redfish_seconds: f64,
    /// Hosts that showed in a booking's status.
    pub booked_hosts: usize,
    /// Redfish requests per host of a Ready booking, from its binding to Ready.
    pub calls_to_ready: Option<f64>,
    /// Hosts never booked, and their Redfish requests per host over the window, per hour.
    pub idle_hosts: usize,
    pub idle_calls_per_hour: Option<f64>,
}

impl Report {
    pub fn new(bench: &Bench) -> Self {
        Self {
            hosts: bench.hosts,
            requests: bench.requests,
            arrival: bench.arrival,
            boot: bench.boot,
            latency: bench.latency,
            limits: bench.limits,
            workload: bench.workload,
            ..Self::default()
        }
    }

    pub(super) fn idle(&mut self, before: &Snapshot, after: &Snapshot, hosts: usize) {
        let requests = api_requests(before, after);
        self.idle = Some(Idle {
            seconds: after.at.duration_since(before.at).as_secs_f64(),
            calls_per_host: calls_between(before, after, None) as f64 / hosts.max(1) as f64,
            writes: booking_writes(&requests),
            writes_by: requests
                .into_iter()
                .filter(|((resource, verb), _)| is_booking_write(resource, verb))
                .collect(),
            cpu: after.cpu_seconds - before.cpu_seconds,
        });
    }

    pub(super) fn bookings(
        &mut self,
        baseline: &Snapshot,
        end: &Snapshot,
        tracked: &BTreeMap<String, Tracked>,
        hosts: &[SimHost],
    ) {
        let seconds = end.at.duration_since(baseline.at).as_secs_f64();
        let booked: BTreeSet<&String> = tracked.values().flat_map(|t| &t.hosts).collect();
        let mut to_ready = (0u64, 0usize);
        for t in tracked.values().filter(|t| t.ready.is_some()) {
            for (host, at_bound) in &t.calls_at_bound {
                if let Some(at_ready) = t.calls_at_ready.get(host) {
                    to_ready.0 += at_ready.saturating_sub(*at_bound);
                    to_ready.1 += 1;
                }
            }
        }
        let idle_hosts: BTreeSet<&String> = hosts
            .iter()
            .map(|h| &h.name)
            .filter(|h| !booked.contains(h))
            .collect();
        let idle_calls = calls_between(baseline, end, Some(&idle_hosts));
        let count = |f: fn(&Tracked) -> bool| tracked.values().filter(|t| f(t)).count();
        let ready: Vec<&Tracked> = tracked.values().filter(|t| t.ready.is_some()).collect();
        let first_sent = tracked.values().map(|t| t.sent).min();
        let all_ready = (ready.len() == tracked.len())
            .then(|| Some(ready.iter().filter_map(|t| t.ready).max()? - first_sent?))
            .flatten();
        let metric = "labpods_reconcile_duration_seconds_count";
        self.bookings = Some(Bookings {
            seconds,
            cpu: end.cpu_seconds - baseline.cpu_seconds,
            created: tracked.len(),
            bound: count(|t| t.bound.is_some()),
            ready: count(|t| t.ready.is_some()),
            failed: count(|t| t.failed),
            bind: tracked
                .values()
                .map(|t| t.bound.map(|b| b.duration_since(t.sent)))
                .collect(),
            ready_latency: tracked
                .values()
                .map(|t| t.ready.map(|r| r.duration_since(t.sent)))
                .collect(),
            ready_hosts: ready.iter().map(|t| t.hosts.len()).sum(),
            all_ready,
            requests: api_requests(baseline, end),
            reconciles: counter_delta(&baseline.operator, &end.operator, metric, |l| {
                l.get("controller").cloned()
            }),
            reconcile_seconds: counter_delta(
                &baseline.operator,
                &end.operator,
                "labpods_reconcile_duration_seconds_sum",
                |l| l.get("controller").cloned(),
            ),
            redfish_seconds: counter_delta(
                &baseline.operator,
                &end.operator,
                "labpods_redfish_request_duration_seconds_sum",
                |_| Some(()),
            )
            .values()
            .sum(),
            reconcile_errors: counter_delta(
                &baseline.operator,
                &end.operator,
                "labpods_reconcile_errors_total",
                |l| l.get("controller").cloned(),
            ),
            booked_hosts: booked.len(),
            calls_to_ready: (to_ready.1 > 0).then(|| to_ready.0 as f64 / to_ready.1 as f64),
            idle_hosts: idle_hosts.len(),
            idle_calls_per_hour: (!idle_hosts.is_empty() && seconds > 0.0)
                .then(|| idle_calls as f64 / idle_hosts.len() as f64 / seconds * 3600.0),
        });
    }

    fn bind_quantile(&self, q: f64) -> Option<Quantile> {
        quantile(&self.bookings.as_ref()?.bind, q)
    }

    fn ready_quantile(&self, q: f64) -> Option<Quantile> {
        quantile(&self.bookings.as_ref()?.ready_latency, q)
    }

    /// The operator's booking writes per booked host (creation to Ready).
    pub fn writes_per_booked_host(&self) -> Option<f64> {
        let b = self.bookings.as_ref()?;
        (b.booked_hosts > 0).then(|| booking_writes(&b.requests) / b.booked_hosts as f64)
    }

    fn writes_per_booking(&self) -> Option<f64> {
        let b = self.bookings.as_ref()?;
        (b.bound > 0).then(|| booking_writes(&b.requests) / b.bound as f64)
    }

    /// Redfish calls per never-booked host per `polling.idleInterval`.
    pub fn idle_calls_per_interval(&self) -> Option<f64> {
        let per_hour = self.bookings.as_ref()?.idle_calls_per_hour?;
        Some(per_hour / 3600.0 * IDLE_INTERVAL.as_secs_f64())
    }

    fn reconciles_per(&self, controller: &str, objects: usize) -> Option<f64> {
        let b = self.bookings.as_ref()?;
        let n = b.reconciles.get(controller).copied().unwrap_or(0.0);
        (objects > 0).then(|| n / objects as f64)
    }

    fn api_total(&self, resource: &str, verb: &str) -> Option<f64> {
        let b = self.bookings.as_ref()?;
        Some(
            b.requests
                .get(&(resource.to_string(), verb.to_string()))
                .copied()
                .unwrap_or(0.0),
        )
    }

    fn peak_rss_mib(&self) -> Option<f64> {
        (self.peak_rss_kib > 0).then(|| self.peak_rss_kib as f64 / 1024.0)
    }

    /// One size: setup, the figures against their targets, the API requests.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let bookings = match self.workload {
            Workload::Mixed => format!(
                "{} bookings of 1-8 hosts over {} s",
                self.requests,
                self.arrival.as_secs()
            ),
            Workload::Reimage => format!(
                "{} bookings of {} hosts, one alone then the rest at once, BMCs answering in {} ms, limits {}",
                self.requests,
                super::REIMAGE_SIZE,
                self.latency.as_millis(),
                self.limits
            ),
        };
        let _ = writeln!(
            out,
            "## {} hosts, {bookings}, {} s boots (Kubernetes {})\n",
            self.hosts,
            self.boot.as_secs(),
            self.kubernetes
        );
        let _ = writeln!(
            out,
            "setup: control plane up in {:.1} s; {} LabHosts registered in {:.1} s; operator start -> every host Available: {}",
            self.control_plane_start.as_secs_f64(),
            self.hosts,
            self.registration.as_secs_f64(),
            self.settle
                .map_or("not reached".to_string(), |d| seconds(d.as_secs_f64()))
        );
        if let Some(failure) = &self.failure {
            let _ = writeln!(out, "FAILED: {failure}");
        }
        let _ = writeln!(out, "\n| figure | value | target |\n|---|---|---|");
        let mut row = |figure: &str, value: String, target: String| {
            let _ = writeln!(out, "| {figure} | {value} | {target} |");
        };
        let quantiles = |f: &dyn Fn(f64) -> Option<Quantile>| {
            [0.5, 0.95, 0.99]
                .map(|q| f(q).map_or("-".to_string(), |v| v.to_string()))
                .join(" / ")
        };
        if let Some(b) = &self.bookings {
            row(
                "bookings created / bound / Ready / Failed",
                format!(
                    "{} / {} / {} / {} (of {})",
                    b.created, b.bound, b.ready, b.failed, self.requests
                ),
                String::new(),
            );
        }
        row(
            "created -> bound (status.lease) p50 / p95 / p99",
            quantiles(&|q| self.bind_quantile(q)),
            target_below(
                "p99",
                self.bind_quantile(0.99).map(|q| q.seconds()),
                BIND_P99_TARGET.as_secs_f64(),
                " s",
            ),
        );
        row(
            "created -> Ready p50 / p95 / p99",
            quantiles(&|q| self.ready_quantile(q)),
            String::new(),
        );
        row(
            "operator peak RSS (VmHWM)",
            self.peak_rss_mib()
                .map_or("-".to_string(), |m| format!("{m:.0} MiB")),
            target_below("", self.peak_rss_mib().map(Some), RSS_TARGET_MIB, " MiB"),
        );
        let idle = self.idle.clone().unwrap_or_default();
        let b = self.bookings.clone().unwrap_or_default();
        row(
            "operator CPU: settle / idle window / bookings window",
            format!(
                "{:.1} s / {:.1} s ({:.0} s) / {:.1} s ({:.0} s)",
                self.cpu_settle, idle.cpu, idle.seconds, b.cpu, b.seconds
            ),
            String::new(),
        );
        row(
            &format!(
                "Redfish calls per never-booked host per hour ({} hosts, bookings window)",
                b.idle_hosts
            ),
            match (b.idle_calls_per_hour, self.idle_calls_per_interval()) {
                (Some(h), Some(i)) => {
                    format!("{h:.1} = {i:.2} per {} s interval", IDLE_INTERVAL.as_secs())
                }
                _ => "-".to_string(),
            },
            target_below(
                "",
                self.idle_calls_per_interval().map(Some),
                IDLE_CALLS_TARGET,
                " per interval",
            ),
        );
        row(
            "Redfish calls per host in the idle window",
            format!("{:.2} in {:.0} s", idle.calls_per_host, idle.seconds),
            String::new(),
        );
        row(
            "Redfish calls per booked host, bound -> Ready",
            b.calls_to_ready
                .map_or("-".to_string(), |c| format!("{c:.1}")),
            String::new(),
        );
        row(
            "operator API writes per booked host, creation -> Ready (per booking)",
            match (self.writes_per_booked_host(), self.writes_per_booking()) {
                (Some(h), Some(b)) => format!("{h:.1} ({b:.1})"),
                _ => "-".to_string(),
            },
            target_below(
                "",
                self.writes_per_booked_host().map(Some),
                WRITES_PER_HOST_TARGET,
                "",
            ),
        );
        let idle_writes: Vec<String> = idle
            .writes_by
            .iter()
            .map(|((resource, verb), n)| format!("{verb} {resource} {n:.0}"))
            .collect();
        row(
            "operator API writes in the idle window",
            if idle_writes.is_empty() {
                format!("{:.0}", idle.writes)
            } else {
                format!("{:.0}: {}", idle.writes, idle_writes.join(", "))
            },
            String::new(),
        );
        let reconciles = b
            .reconciles
            .iter()
            .map(|(controller, n)| {
                let per = match controller.as_str() {
                    "labhost" => format!(" = {:.1} per LabHost", n / self.hosts.max(1) as f64),
                    "lease" => format!(" = {:.1} per Lease", n / b.bound.max(1) as f64),
                    "podrequest" => format!(
                        " scheduling passes of {:.0} ms on average",
                        b.reconcile_seconds.get(controller).copied().unwrap_or(0.0) / n.max(1.0)
                            * 1000.0
                    ),
                    _ => String::new(),
                };
                format!("{controller} {n:.0}{per}")
            })
            .collect::<Vec<_>>()
            .join("; ");
        row(
            "reconciles in the bookings window",
            reconciles,
            String::new(),
        );
        // An empty sum is -0.0, which prints as "-0".
        let errors: f64 = b.reconcile_errors.values().sum::<f64>() + 0.0;
        row(
            "failed reconciles in the bookings window",
            format!("{errors:.0}"),
            String::new(),
        );
        row(
            "load average (1 min) before / after",
            format!("{} / {}", self.load_before, self.load_after),
            String::new(),
        );
        if !b.requests.is_empty() {
            let _ = writeln!(
                out,
                "\napiserver requests in the bookings window (apiserver_request_total), per bound booking:\n\n| resource | verb | requests | per booking |\n|---|---|---|---|"
            );
            let bookings = b.bound.max(1) as f64;
            let mut rows: Vec<_> = b.requests.iter().collect();
            rows.sort_by(|a, b| b.1.total_cmp(a.1));
            // Under one per hundred bookings: watches ending (the controller-manager's
            // among them), one-off reads; summed in one row.
            let (rows, rare): (Vec<_>, Vec<_>) =
                rows.into_iter().partition(|(_, n)| **n / bookings >= 0.01);
            for ((resource, verb), n) in rows {
                let _ = writeln!(
                    out,
                    "| {resource} | {verb} | {n:.0} | {:.2} |",
                    n / bookings
                );
            }
            if !rare.is_empty() {
                let n: f64 = rare.iter().map(|(_, n)| **n).sum();
                let _ = writeln!(
                    out,
                    "| {} others, each under 0.01 per booking | | {n:.0} | {:.2} |",
                    rare.len(),
                    n / bookings
                );
            }
        }
        if self.counters_unread > 0 {
            let _ = writeln!(
                out,
                "\n{} BMC request counts could not be read (hosts left out of the calls per booking)",
                self.counters_unread
            );
        }
        let _ = writeln!(out, "\noperator log: {}", self.logs.display());
        out
    }
}

/// `resource[.group][/subresource]` and verb of each apiserver request between two
/// snapshots; requests for no resource (/metrics, /healthz) are left out.
fn api_requests(before: &Snapshot, after: &Snapshot) -> BTreeMap<(String, String), f64> {
    counter_delta(
        &before.apiserver,
        &after.apiserver,
        "apiserver_request_total",
        |l| {
            let resource = l.get("resource").filter(|r| !r.is_empty())?;
            let mut name = resource.clone();
            if let Some(group) = l.get("group").filter(|g| !g.is_empty()) {
                name = format!("{name}.{group}");
            }
            if let Some(sub) = l.get("subresource").filter(|s| !s.is_empty()) {
                name = format!("{name}/{sub}");
            }
            Some((name, l.get("verb")?.clone()))
        },
    )
}

fn is_booking_write(resource: &str, verb: &str) -> bool {
    WRITE_VERBS.contains(&verb) && !not_booking_work(resource, verb)
}

/// The operator's writes among `requests`.
fn booking_writes(requests: &BTreeMap<(String, String), f64>) -> f64 {
    requests
        .iter()
        .filter(|((resource, verb), _)| is_booking_write(resource, verb))
        .map(|(_, n)| n)
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0, which prints as "-0"
}

/// Redfish requests the BMCs of `hosts` (None: all) received between two snapshots.
fn calls_between(before: &Snapshot, after: &Snapshot, hosts: Option<&BTreeSet<&String>>) -> u64 {
    after
        .calls
        .iter()
        .filter(|(host, _)| hosts.is_none_or(|h| h.contains(host)))
        .map(|(host, n)| n.saturating_sub(before.calls.get(host).copied().unwrap_or(0)))
        .sum()
}

/// "met" or "missed by" for a figure that must stay below `limit`. `value`: None when not
/// measured, Some(None) when never reached (a quantile beyond the run).
fn target_below(what: &str, value: Option<Option<f64>>, limit: f64, unit: &str) -> String {
    let what = if what.is_empty() {
        String::new()
    } else {
        format!("{what} ")
    };
    let goal = format!("{what}< {}{unit}", trim(limit));
    match value {
        None => format!("{goal}: not measured"),
        Some(None) => format!("{goal}: missed (not reached in the run)"),
        Some(Some(v)) if v <= limit => format!("{goal}: met"),
        Some(Some(v)) => format!(
            "{goal}: missed by {}{unit} ({:.1}x)",
            trim(v - limit),
            v / limit
        ),
    }
}

fn trim(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

type Figure = (&'static str, fn(&Report) -> Option<f64>);

/// The figures the scaling table follows across sizes.
const FIGURES: &[Figure] = &[
    ("operator start -> every host Available (s)", |r| {
        r.settle.map(|d| d.as_secs_f64())
    }),
    ("bind p50 (s)", |r| r.bind_quantile(0.5)?.seconds()),
    ("bind p95 (s)", |r| r.bind_quantile(0.95)?.seconds()),
    ("bind p99 (s)", |r| r.bind_quantile(0.99)?.seconds()),
    ("Ready p50 (s)", |r| r.ready_quantile(0.5)?.seconds()),
    ("Ready p99 (s)", |r| r.ready_quantile(0.99)?.seconds()),
    ("operator peak RSS (MiB)", Report::peak_rss_mib),
    ("operator CPU, settle (s)", |r| Some(r.cpu_settle)),
    ("operator CPU, bookings window (s)", |r| {
        Some(r.bookings.as_ref()?.cpu)
    }),
    ("Redfish calls per idle host per interval", |r| {
        r.idle_calls_per_interval()
    }),
    ("Redfish calls per booked host to Ready", |r| {
        r.bookings.as_ref()?.calls_to_ready
    }),
    ("API writes per booked host", Report::writes_per_booked_host),
    ("API writes in the idle window", |r| {
        Some(r.idle.as_ref()?.writes)
    }),
    ("GET labhosts in the bookings window", |r| {
        r.api_total("labhosts.labpods.dev", "GET")
    }),
    ("APPLY leases/status in the bookings window", |r| {
        r.api_total("leases.labpods.dev/status", "APPLY")
    }),
    ("apiserver requests in the bookings window", |r| {
        Some(r.bookings.as_ref()?.requests.values().sum())
    }),
    ("labhost reconciles per LabHost", |r| {
        r.reconciles_per("labhost", r.hosts)
    }),
    ("lease reconciles per Lease", |r| {
        r.reconciles_per("lease", r.bookings.as_ref()?.bound)
    }),
    ("scheduling passes", |r| {
        r.bookings.as_ref()?.reconciles.get("podrequest").copied()
    }),
];

/// Each figure at each size, and its growth from the smallest size to the largest beside
/// the growth of the lab.
pub fn scaling_table(reports: &[Report]) -> String {
    let mut sorted: Vec<&Report> = reports.iter().collect();
    sorted.sort_by_key(|r| r.hosts);
    let mut out = String::new();
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        return out;
    };
    let sizes: Vec<String> = sorted
        .iter()
        .map(|r| format!("{} hosts", r.hosts))
        .collect();
    let growth = format!(
        "growth {} -> {} (hosts x{:.1})",
        first.hosts,
        last.hosts,
        last.hosts as f64 / first.hosts.max(1) as f64
    );
    let _ = writeln!(
        out,
        "| figure | {} | {growth} |\n|---|{}---|",
        sizes.join(" | "),
        "---|".repeat(sizes.len())
    );
    for (name, figure) in FIGURES {
        let values: Vec<Option<f64>> = sorted.iter().map(|r| figure(r)).collect();
        let cells: Vec<String> = values
            .iter()
            .map(|v| v.map_or("-".to_string(), trim))
            .collect();
        let ratio = match (
            values.first().copied().flatten(),
            values.last().copied().flatten(),
        ) {
            (Some(a), Some(b)) if a > 0.0 && sorted.len() > 1 => format!("x{:.1}", b / a),
            _ => "-".to_string(),
        };
        let _ = writeln!(out, "| {name} | {} | {ratio} |", cells.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_say_met_or_by_how_much_they_are_missed() {
        assert_eq!(
            target_below("p99", Some(Some(0.4)), 1.0, " s"),
            "p99 < 1 s: met"
        );
        assert_eq!(
            target_below("p99", Some(Some(501.0)), 1.0, " s"),
            "p99 < 1 s: missed by 500 s (501.0x)"
        );
        assert_eq!(
            target_below("", Some(None), 256.0, " MiB"),
            "< 256 MiB: missed (not reached in the run)"
        );
        assert_eq!(target_below("", None, 16.0, ""), "< 16: not measured");
    }

    #[test]
    fn booking_writes_leave_out_the_bench_and_elections() {
        let requests = BTreeMap::from([
            (
                ("podrequests.labpods.dev".to_string(), "POST".to_string()),
                200.0,
            ),
            (
                ("leases.labpods.dev".to_string(), "POST".to_string()),
                200.0,
            ),
            (
                ("leases.labpods.dev/status".to_string(), "APPLY".to_string()),
                400.0,
            ),
            (
                ("labhosts.labpods.dev".to_string(), "GET".to_string()),
                9000.0,
            ),
            (
                ("leases.coordination.k8s.io".to_string(), "PUT".to_string()),
                60.0,
            ),
        ]);
        assert_eq!(booking_writes(&requests), 600.0);
    }

    #[test]
    fn the_scaling_table_has_a_column_per_size() {
        let report = |hosts, cpu| Report {
            hosts,
            cpu_settle: cpu,
            ..Report::default()
        };
        let table = scaling_table(&[report(3000, 30.0), report(1000, 10.0)]);
        assert!(table.contains("| 1000 hosts | 3000 hosts | growth 1000 -> 3000 (hosts x3.0) |"));
        assert!(
            table.contains("| operator CPU, settle (s) | 10 | 30 | x3.0 |"),
            "{table}"
        );
    }
}

//! The whole operator at a lab's size (issue 12, benchmark 1), run by `cargo xtask bench lab`:
//! a real control plane (the newest minor), a simulated lab of LabHosts in two labs and four
//! profiles, one operator process (a release build, the defaults of
//! examples/operator-config.yaml), then PodRequests of 1 to 8 hosts arriving over a few
//! minutes, each booked for a day so that none ends during the run.
//!
//! Everything is measured from outside the operator: latencies from a client-side watch on
//! PodRequests, memory and CPU time from /proc, API requests from the apiserver's own
//! /metrics, Redfish calls from the simulated BMCs' request counters, reconciles from the
//! operator's /metrics. The BMCs are `labpods-sim` processes of at most 5,000 each
//! ([`ProcessLab`]): 10,000 of them in this process would need more open files than a
//! process may have here. The phases:
//!
//! 1. setup: control plane, namespaces, fleet and LabHosts, the operator;
//! 2. settle: until every LabHost reports `Available` (the operator's start-up);
//! 3. idle: [`IDLE_WINDOW`] with nothing asked (idle polling's cost, calls and writes);
//! 4. bookings: the PodRequests, created evenly over `arrival`, until every one is Ready
//!    (or Failed), or `timeout` after the first.
//!
//! Benchmark 2 (`cargo xtask bench reimage`, [`Workload::Reimage`]) is the same run with
//! slow BMCs and the bookings of phase 4 replaced: one booking of [`REIMAGE_SIZE`] hosts
//! alone (how long one reimage takes), then the rest of the lab in bookings of that size all
//! at once, with no idle window.
//!
//! An error is a run that could not be carried out; a phase that ran out of time is in the
//! report ([`Report::failure`]) with what was reached.

mod measure;
mod reimage;
mod report;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{Stream, StreamExt as _};
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use labpods_api::v1alpha1::{
    HostState, ImageSpec, LABEL_LAB, LabHost, PodRequest, PodRequestPhase, PodRequestSpec, RoleSpec,
};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::task::JoinSet;

use crate::control_plane::{ControlPlane, ControlPlaneConfig};
use crate::crds::labpods_crds;
// The image the e2e tests book: one the simulated BMCs accept (they fetch nothing).
use crate::binaries::beside_this_executable;
use crate::e2e::IMAGE;
use crate::kubeconfig::client_for;
use crate::namespace::create_namespace;
use crate::operator::{Operator, sibling_operator_binary};
use crate::sim::HostGroup;
use crate::sim_processes::{ProcessLab, Timing};
use crate::workspace_root;

pub use measure::Quantile;
pub use reimage::reimage_table;
pub use report::{Report, scaling_table};

/// The labs (`labpods.dev/lab`) and their share of the hosts, in percent.
const LABS: [(&str, usize); 2] = [("lab-a", 60), ("lab-b", 40)];
/// The profiles and their share of each lab's hosts, in percent.
const PROFILES: [(&str, usize); 4] = [
    ("x86-small", 40),
    ("x86-large", 30),
    ("arm64", 20),
    ("gpu", 10),
];
/// Where the operator runs: its election Lease, signing key, and the BMC credentials.
const OPERATOR_NAMESPACE: &str = "labpods-system";
/// Bookings per tenant namespace: under `policy.maxOpenRequestsPerNamespace` (50), which
/// would otherwise hold requests back.
const REQUESTS_PER_NAMESPACE: usize = 40;
/// Long enough that no booking ends during a run.
const BOOKING_LENGTH: &str = "24h";
/// `polling.idleInterval`, the default, written out because the idle target is per interval.
pub const IDLE_INTERVAL: Duration = Duration::from_secs(60);
/// The default `polling.idleJitter`: up to this fraction of the interval is added.
const IDLE_JITTER: f64 = 0.2;
/// Phase 3: one idle interval with its whole jitter, so every host's poll falls in it about
/// once.
pub const IDLE_WINDOW: Duration = Duration::from_secs(72);
/// The simulated hosts' PoweringOn / PoweringOff.
const POWER_DELAY: Duration = Duration::from_millis(500);
/// Hosts per booking of the reimage benchmark (the largest booking of benchmark 1).
pub const REIMAGE_SIZE: u32 = 8;
/// Progress lines at least this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// /proc is read this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// One run's size and pace.
#[derive(Debug, Clone)]
pub struct Bench {
    pub hosts: usize,
    pub requests: usize,
    /// Bookings are created evenly over this long.
    pub arrival: Duration,
    /// Simulated time from power-on to BootProgress `OSRunning`.
    pub boot: Duration,
    /// Bound on the settle phase, and on the bookings phase from its first request.
    pub timeout: Duration,
    /// Of the random sizes and pools of the bookings (the same seed, the same bookings).
    pub seed: u64,
    /// Added by the simulated BMCs to every Redfish response.
    pub latency: Duration,
    /// The operator's Redfish concurrency limits.
    pub limits: Limits,
    pub workload: Workload,
}

/// The operator's `bmc.globalConcurrency` and `bmc.perBmcConcurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub global: usize,
    pub per_bmc: usize,
}

impl Limits {
    /// The documented defaults (examples/operator-config.yaml).
    pub const DEFAULT: Self = Self {
        global: 64,
        per_bmc: 2,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.global, self.per_bmc)
    }
}

/// What phase 4 books.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workload {
    /// Benchmark 1: `requests` bookings of 1 to 8 hosts arriving evenly over `arrival`,
    /// after an idle window.
    #[default]
    Mixed,
    /// Benchmark 2: one booking of [`REIMAGE_SIZE`] hosts alone, then every host left in
    /// bookings of that size at once.
    Reimage,
}

impl Bench {
    /// `hosts` hosts and `hosts / 5` bookings (about 60% of the lab booked: sizes 1 to 8
    /// weighted 1/n average 2.9 hosts) over 3 minutes, 30 s boots, 20 minutes per phase.
    pub fn new(hosts: usize) -> Self {
        Self {
            hosts,
            requests: (hosts / 5).max(1),
            arrival: Duration::from_secs(180),
            boot: Duration::from_secs(30),
            timeout: Duration::from_secs(1200),
            seed: 12,
            latency: Duration::ZERO,
            limits: Limits::DEFAULT,
            workload: Workload::Mixed,
        }
    }

    /// Benchmark 2 on `hosts` hosts under `limits`: BMCs answering in `latency`, hosts
    /// booting in `boot`, the whole lab in bookings of [`REIMAGE_SIZE`] (the pools' remainders
    /// left free).
    pub fn reimage(hosts: usize, limits: Limits, latency: Duration, boot: Duration) -> Self {
        let mut bench = Self {
            arrival: Duration::ZERO,
            boot,
            latency,
            limits,
            workload: Workload::Reimage,
            ..Self::new(hosts)
        };
        bench.requests = bench
            .groups()
            .iter()
            .map(|g| g.count / REIMAGE_SIZE as usize)
            .sum();
        bench
    }

    /// The host groups: every lab x profile, by their shares; rounding goes to the first.
    fn groups(&self) -> Vec<HostGroup> {
        let mut groups: Vec<HostGroup> = LABS
            .iter()
            .flat_map(|(lab, lab_share)| {
                PROFILES.iter().map(move |(profile, share)| {
                    HostGroup::new(profile, self.hosts * lab_share * share / 10_000).in_lab(lab)
                })
            })
            .collect();
        let placed: usize = groups.iter().map(|g| g.count).sum();
        if let Some(first) = groups.first_mut() {
            first.count += self.hosts - placed;
        }
        groups.retain(|g| g.count > 0);
        groups
    }
}

/// One booking the run makes: in which namespace, of which pool, how many hosts.
#[derive(Debug, Clone)]
struct Planned {
    namespace: String,
    name: String,
    lab: &'static str,
    profile: &'static str,
    size: u32,
}

/// The bookings of `bench.workload`.
fn plan(bench: &Bench, groups: &[HostGroup]) -> Result<Vec<Planned>> {
    match bench.workload {
        Workload::Mixed => plan_mixed(bench, groups),
        Workload::Reimage => Ok(plan_reimage(groups)),
    }
}

/// Every pool in bookings of [`REIMAGE_SIZE`], the largest pool's first.
fn plan_reimage(groups: &[HostGroup]) -> Vec<Planned> {
    let mut pools: Vec<&HostGroup> = groups.iter().collect();
    pools.sort_by_key(|g| std::cmp::Reverse(g.count));
    pools
        .iter()
        .flat_map(|g| std::iter::repeat_n(g, g.count / REIMAGE_SIZE as usize))
        .enumerate()
        .map(|(i, g)| Planned {
            namespace: format!("team-{:03}", i / REQUESTS_PER_NAMESPACE),
            name: format!("pod-{i:05}"),
            lab: g.lab.unwrap_or_default(),
            profile: g.profile,
            size: REIMAGE_SIZE,
        })
        .collect()
}

/// The bookings, drawn from `seed`: sizes 1 to 8 weighted 1/n (small bookings are the most
/// common), each in a (lab, profile) pool drawn by its free hosts among those it fits in, so
/// every booking can be served at once.
fn plan_mixed(bench: &Bench, groups: &[HostGroup]) -> Result<Vec<Planned>> {
    let mut rng = StdRng::seed_from_u64(bench.seed);
    let mut free: Vec<(&'static str, &'static str, usize)> = groups
        .iter()
        .map(|g| (g.lab.unwrap_or_default(), g.profile, g.count))
        .collect();
    let weights: Vec<f64> = (1..=8).map(|n| 1.0 / f64::from(n)).collect();
    let total_weight: f64 = weights.iter().sum();
    let mut planned = Vec::with_capacity(bench.requests);
    for i in 0..bench.requests {
        let mut pick = rng.random_range(0.0..total_weight);
        let mut size = 8;
        for (n, w) in (1..).zip(&weights) {
            if pick < *w {
                size = n;
                break;
            }
            pick -= w;
        }
        let fits: usize = free
            .iter()
            .filter(|(_, _, n)| *n >= size as usize)
            .map(|(_, _, n)| n)
            .sum();
        if fits == 0 {
            bail!(
                "{} bookings of 1 to 8 hosts do not fit in {} hosts (booking {} of {size} found no room); ask for fewer",
                bench.requests,
                bench.hosts,
                i + 1
            );
        }
        let mut at = rng.random_range(0..fits);
        let pool = free
            .iter_mut()
            .filter(|(_, _, n)| *n >= size as usize)
            .find(|(_, _, n)| {
                let here = at < *n;
                at = at.saturating_sub(*n);
                here
            })
            .context("no pool drawn")?;
        pool.2 -= size as usize;
        planned.push(Planned {
            namespace: format!("team-{:03}", i / REQUESTS_PER_NAMESPACE),
            name: format!("pod-{i:05}"),
            lab: pool.0,
            profile: pool.1,
            size,
        });
    }
    Ok(planned)
}

impl Planned {
    /// A jumphost and nodes from 3 hosts up (two roles, as the example pod), else nodes.
    fn podrequest(&self) -> PodRequest {
        let role = |name: &str, count: u32| {
            RoleSpec::new(name, count)
                .with_match_labels([(LABEL_LAB, self.lab)])
                .with_profile(self.profile)
        };
        let roles = if self.size >= 3 {
            vec![role("jumphost", 1), role("node", self.size - 1)]
        } else {
            vec![role("node", self.size)]
        };
        let mut request = PodRequest::new(
            &self.name,
            PodRequestSpec::new(roles, ImageSpec::new(IMAGE), BOOKING_LENGTH),
        );
        request.metadata.namespace = Some(self.namespace.clone());
        request
    }
}

/// The operator's config: the documented defaults but for where it listens and keeps its
/// election Lease (the namespace the bench made) and the Redfish limits, with the idle
/// interval written out.
fn operator_config(limits: Limits, metrics: SocketAddr) -> String {
    format!(
        "# cargo xtask bench: the defaults of examples/operator-config.yaml but for these\n\
         bmc:\n  globalConcurrency: {global}\n  perBmcConcurrency: {per_bmc}\n\
         polling:\n  idleInterval: {idle}s\n  idleJitter: {IDLE_JITTER}\n\
         http:\n  metricsAddress: {metrics}\n\
         phoneHome:\n  listenAddress: 127.0.0.1:0\n\
         leaderElection:\n  leaseNamespace: {OPERATOR_NAMESPACE}\n\
         logging:\n  filter: info\n",
        idle = IDLE_INTERVAL.as_secs(),
        global = limits.global,
        per_bmc = limits.per_bmc,
    )
}

/// Runs one size to its end and reports; see the module documentation.
pub async fn run(bench: &Bench) -> Result<Report> {
    let groups = bench.groups();
    let planned = plan(bench, &groups)?;
    let label = match bench.workload {
        Workload::Mixed => format!("[{} hosts]", bench.hosts),
        Workload::Reimage => format!("[{} hosts, limits {}]", bench.hosts, bench.limits),
    };
    let mut report = Report::new(bench);
    report.load_before = load_average();

    let started = Instant::now();
    let plane = ControlPlane::start(ControlPlaneConfig::default().crds(labpods_crds()))
        .await
        .context("starting the control plane")?;
    let client = client_for(plane.kubeconfig()).await?;
    report.kubernetes = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .unwrap_or_default();
    report.control_plane_start = started.elapsed();
    let namespaces: BTreeSet<&str> = planned.iter().map(|p| p.namespace.as_str()).collect();
    for namespace in std::iter::once(OPERATOR_NAMESPACE).chain(namespaces) {
        create_namespace(&client, namespace, &[])
            .await
            .with_context(|| format!("creating namespace {namespace}"))?;
    }

    let registering = Instant::now();
    let name = format!("bench-{}", bench.hosts);
    let timing = Timing {
        boot_time: bench.boot,
        power_delay: POWER_DELAY,
        latency: bench.latency,
    };
    let logs = logs_dir(bench)?;
    let lab = ProcessLab::start(
        &beside_this_executable("labpods-sim")?,
        &client,
        &name,
        OPERATOR_NAMESPACE,
        &groups,
        timing,
        &logs,
    )
    .await?;
    report.registration = registering.elapsed();
    eprintln!(
        "{label} control plane {} up in {:.1} s; {} simulated BMCs started and registered as LabHosts in {:.1} s",
        report.kubernetes,
        report.control_plane_start.as_secs_f64(),
        bench.hosts,
        report.registration.as_secs_f64()
    );

    let operator = Operator::start_binary(
        &sibling_operator_binary()?,
        plane.kubeconfig(),
        |metrics| operator_config(bench.limits, metrics),
        "bench-lab",
        &logs,
    )?;
    let mut run = Run {
        label,
        bench: bench.clone(),
        client,
        operator,
        ticks_per_second: measure::clock_ticks_per_second(),
        usage: measure::ProcSample::default(),
        lab,
        report,
    };
    let outcome = run.phases(&planned).await;
    let Run {
        mut report,
        operator,
        lab,
        ..
    } = run;
    report.load_after = load_average();
    report.logs = operator.log_path().to_path_buf();
    // The operator first, so it never sees its BMCs or the apiserver vanish.
    drop(operator);
    drop(lab);
    drop(plane);
    outcome.map(|()| report)
}

/// Runs each of `benches` in turn, printing its table: the reports of the runs carried out
/// (those that ran out of time among them), and how many could not be carried out.
pub async fn run_each(benches: &[Bench]) -> (Vec<Report>, usize) {
    let mut reports = Vec::new();
    let mut not_carried_out = 0;
    for bench in benches {
        let what = match bench.workload {
            Workload::Mixed => format!(
                "{} hosts, {} bookings over {} s, {} s boots",
                bench.hosts,
                bench.requests,
                bench.arrival.as_secs(),
                bench.boot.as_secs()
            ),
            Workload::Reimage => format!(
                "{} hosts, limits {} (global / per-BMC): {} bookings of {REIMAGE_SIZE} hosts",
                bench.hosts, bench.limits, bench.requests
            ),
        };
        eprintln!("==> {what}");
        match run(bench).await {
            Ok(report) => {
                println!("{}", report.table());
                reports.push(report);
            }
            Err(err) => {
                not_carried_out += 1;
                eprintln!("{what}: the run could not be carried out: {err:#}");
            }
        }
    }
    (reports, not_carried_out)
}

/// The `--flag value` pairs of this process's arguments, each value with a parser for
/// numbers; errors end with `usage`.
pub fn flags(usage: &str) -> Result<Vec<Flag>> {
    let mut args = std::env::args().skip(1);
    let mut flags = Vec::new();
    while let Some(name) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{name} needs a value\n{usage}"))?;
        flags.push(Flag {
            name,
            value,
            usage: usage.to_owned(),
        });
    }
    Ok(flags)
}

/// One `--flag value` of the command line.
#[derive(Debug)]
pub struct Flag {
    pub name: String,
    pub value: String,
    usage: String,
}

impl Flag {
    /// The value as a number, or an error naming the flag.
    pub fn number(&self) -> Result<u64> {
        self.value.parse().with_context(|| {
            format!(
                "{} {:?} is not a number\n{}",
                self.name, self.value, self.usage
            )
        })
    }
}

/// An error when a run could not be carried out or ran out of time; missed targets are
/// reported, not failures.
pub fn verdict(reports: &[Report], not_carried_out: usize) -> Result<()> {
    let timed_out = reports.iter().filter(|r| r.failure.is_some()).count();
    if not_carried_out + timed_out > 0 {
        bail!("{not_carried_out} runs could not be carried out, {timed_out} ran out of time");
    }
    Ok(())
}

/// target/bench-lab/<hosts>-hosts (benchmark 2: reimage-<hosts>-<global>-<per BMC>): the
/// operator's config and log, the simulators' logs, kept after the run.
fn logs_dir(bench: &Bench) -> Result<PathBuf> {
    let name = match bench.workload {
        Workload::Mixed => format!("{}-hosts", bench.hosts),
        Workload::Reimage => format!(
            "reimage-{}-{}-{}",
            bench.hosts, bench.limits.global, bench.limits.per_bmc
        ),
    };
    let dir = workspace_root().join("target/bench-lab").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The 1-minute load average, to say how busy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

/// The run in progress.
struct Run {
    label: String,
    bench: Bench,
    client: Client,
    operator: Operator,
    ticks_per_second: f64,
    /// The operator's latest /proc sample (kept once it has exited).
    usage: measure::ProcSample,
    lab: ProcessLab,
    report: Report,
}

/// What the counters said at a point of the run.
struct Snapshot {
    at: Instant,
    apiserver: String,
    operator: String,
    /// Redfish requests each BMC received so far, by LabHost name.
    calls: HashMap<String, u64>,
    cpu_seconds: f64,
}

/// One booking as the watch follows it.
#[derive(Debug)]
struct Tracked {
    sent: Instant,
    bound: Option<Instant>,
    ready: Option<Instant>,
    failed: bool,
    /// Its hosts, as they showed in its status.
    hosts: BTreeSet<String>,
    /// Each host's BMC request count when it first showed in the status.
    calls_at_bound: BTreeMap<String, u64>,
    /// Each host's BMC request count when the booking was first seen Ready.
    calls_at_ready: BTreeMap<String, u64>,
}

/// When a BMC's request count was asked for.
#[derive(Debug, Clone, Copy)]
enum Mark {
    Bound,
    Ready,
}

impl Run {
    async fn phases(&mut self, planned: &[Planned]) -> Result<()> {
        let settle_started = Instant::now();
        match self.settle().await? {
            Some(failure) => {
                self.report.failure = Some(failure);
                return Ok(());
            }
            None => self.report.settle = Some(settle_started.elapsed()),
        }
        self.report.cpu_settle = self.usage.cpu_seconds;
        if self.bench.workload == Workload::Reimage {
            return self.reimage(planned).await;
        }
        eprintln!(
            "{} every host Available {:.1} s after the operator started; {} s idle",
            self.label,
            settle_started.elapsed().as_secs_f64(),
            IDLE_WINDOW.as_secs()
        );
        let before_idle = self.snapshot().await?;
        let idle_until = tokio::time::Instant::now() + IDLE_WINDOW;
        while tokio::time::Instant::now() < idle_until {
            tokio::time::sleep(SAMPLE_EVERY).await;
            self.sample()?;
        }
        let baseline = self.snapshot().await?;
        self.report.idle(&before_idle, &baseline, self.bench.hosts);
        let result = self.bookings(planned).await;
        let end = self.snapshot().await?;
        let tracked = result?;
        self.report
            .bookings(&baseline, &end, &tracked, self.lab.hosts());
        Ok(())
    }

    /// Benchmark 2's phase 4: the first booking alone, then the rest at once (measured as
    /// benchmark 1's bookings).
    async fn reimage(&mut self, planned: &[Planned]) -> Result<()> {
        let Some((first, rest)) = planned.split_first() else {
            bail!("no booking of {REIMAGE_SIZE} hosts fits in the lab");
        };
        eprintln!(
            "{} every host Available; one booking of {} hosts alone",
            self.label, first.size
        );
        let alone = self.bookings(std::slice::from_ref(first)).await?;
        self.report.alone = alone.values().find_map(|t| t.ready.map(|r| r - t.sent));
        if self.report.alone.is_none() {
            self.report.failure = Some("the booking alone did not get Ready".to_string());
            return Ok(());
        }
        eprintln!(
            "{} alone: Ready in {:.1} s; now {} bookings of {} at once",
            self.label,
            self.report.alone.unwrap_or_default().as_secs_f64(),
            rest.len(),
            first.size
        );
        let baseline = self.snapshot().await?;
        let result = self.bookings(rest).await;
        let end = self.snapshot().await?;
        self.report
            .bookings(&baseline, &end, &result?, self.lab.hosts());
        Ok(())
    }

    /// Reads the operator's /proc; fails if it exited.
    fn sample(&mut self) -> Result<()> {
        self.operator
            .check_running()
            .context("the operator exited during the run")?;
        if let Some(pid) = self.operator.pid()
            && let Some(sample) = measure::sample_process(pid, self.ticks_per_second)
        {
            self.usage = sample;
            self.report.peak_rss_kib = self.report.peak_rss_kib.max(sample.peak_kib);
        }
        Ok(())
    }

    fn usage_line(&self) -> String {
        format!(
            "operator RSS {} MiB (peak {}), CPU {:.0} s",
            self.usage.rss_kib / 1024,
            self.usage.peak_kib / 1024,
            self.usage.cpu_seconds
        )
    }

    async fn snapshot(&mut self) -> Result<Snapshot> {
        self.sample()?;
        let request = http::Request::get("/metrics").body(Vec::new())?;
        let apiserver = self
            .client
            .request_text(request)
            .await
            .context("scraping the apiserver's /metrics")?;
        let operator = self.operator.scrape_metrics().await?;
        let calls = self.lab.requests().await?;
        Ok(Snapshot {
            at: Instant::now(),
            apiserver,
            operator,
            calls,
            cpu_seconds: self.usage.cpu_seconds,
        })
    }

    /// Phase 2: watches LabHosts until every one is Available. Some(what was reached) when
    /// the timeout passed first.
    async fn settle(&mut self) -> Result<Option<String>> {
        let started = Instant::now();
        let api: Api<LabHost> = Api::all(self.client.clone());
        let mut events = watch(api);
        let mut available: BTreeSet<String> = BTreeSet::new();
        let mut ticks = tokio::time::interval(SAMPLE_EVERY);
        let mut progress_at = started + PROGRESS_EVERY;
        while available.len() < self.bench.hosts {
            tokio::select! {
                event = events.next() => {
                    let Some(event) = event else { bail!("the LabHost watch ended") };
                    if let Some((host, gone)) = applied(event) {
                        let name = host.metadata.name.clone().unwrap_or_default();
                        let state = host.status.as_ref().and_then(|s| s.state);
                        if !gone && state == Some(HostState::Available) {
                            available.insert(name);
                        } else {
                            available.remove(&name);
                        }
                    }
                }
                _ = ticks.tick() => {
                    self.sample()?;
                    let reached = format!(
                        "{} of {} hosts Available after {} s; {}",
                        available.len(),
                        self.bench.hosts,
                        started.elapsed().as_secs(),
                        self.usage_line()
                    );
                    if started.elapsed() > self.bench.timeout {
                        return Ok(Some(format!("settle timed out: {reached}")));
                    }
                    if Instant::now() >= progress_at {
                        progress_at += PROGRESS_EVERY;
                        eprintln!("{} settle: {reached}", self.label);
                    }
                }
            }
        }
        Ok(None)
    }

    /// Phase 4: creates the bookings on schedule and follows them on a watch until all are
    /// Ready or Failed, or the timeout passes (then [`Report::failure`] says what was
    /// reached).
    async fn bookings(&mut self, planned: &[Planned]) -> Result<BTreeMap<String, Tracked>> {
        let started = Instant::now();
        let api: Api<PodRequest> = Api::all(self.client.clone());
        let mut events = watch(api);
        let mut tracked: BTreeMap<String, Tracked> = BTreeMap::new();
        let mut creates: JoinSet<Result<()>> = JoinSet::new();
        // BMC request counts asked for as bookings bind and get Ready.
        let mut counters: JoinSet<(String, Mark, String, Result<u64>)> = JoinSet::new();
        let mut next = 0;
        let spacing = self.bench.arrival.div_f64(planned.len().max(1) as f64);
        let mut ticks = tokio::time::interval(SAMPLE_EVERY);
        let mut progress_at = started + PROGRESS_EVERY;
        loop {
            let done = tracked.values().filter(|t| t.ready.is_some() || t.failed);
            if next == planned.len()
                && creates.is_empty()
                && counters.is_empty()
                && done.count() == planned.len()
            {
                return Ok(tracked);
            }
            let due = started + spacing.mul_f64(next as f64);
            tokio::select! {
                () = tokio::time::sleep_until(due.into()), if next < planned.len() => {
                    let booking = &planned[next];
                    next += 1;
                    let key = format!("{}/{}", booking.namespace, booking.name);
                    tracked.insert(key, Tracked::sent_now());
                    let api = Api::namespaced(self.client.clone(), &booking.namespace);
                    let request = booking.podrequest();
                    creates.spawn(async move {
                        api.create(&PostParams::default(), &request)
                            .await
                            .map(drop)
                            .with_context(|| format!("creating PodRequest {}", request.metadata.name.unwrap_or_default()))
                    });
                }
                Some(created) = creates.join_next(), if !creates.is_empty() => {
                    created.context("a create task panicked")??;
                }
                Some(counted) = counters.join_next(), if !counters.is_empty() => {
                    let (key, mark, host, count) = counted.context("a counter task panicked")?;
                    // A count not read leaves the host out of the calls per booking.
                    let Ok(count) = count else {
                        self.report.counters_unread += 1;
                        continue;
                    };
                    if let Some(booking) = tracked.get_mut(&key) {
                        match mark {
                            Mark::Bound => booking.calls_at_bound.insert(host, count),
                            Mark::Ready => booking.calls_at_ready.insert(host, count),
                        };
                    }
                }
                event = events.next() => {
                    let Some(event) = event else { bail!("the PodRequest watch ended") };
                    if let Some((request, false)) = applied(event) {
                        for (key, mark, host) in follow(&request, &mut tracked) {
                            let Some(count) = self.lab.requests_of(&host) else { continue };
                            counters.spawn(async move { (key, mark, host, count.await) });
                        }
                    }
                }
                _ = ticks.tick() => {
                    self.sample()?;
                    let reached = progress(&tracked, planned.len(), started);
                    if started.elapsed() > self.bench.timeout {
                        self.report.failure = Some(format!(
                            "bookings timed out {} s after the first: {reached}",
                            self.bench.timeout.as_secs()
                        ));
                        return Ok(tracked);
                    }
                    if Instant::now() >= progress_at {
                        progress_at += PROGRESS_EVERY;
                        eprintln!("{} bookings: {reached}; {}", self.label, self.usage_line());
                    }
                }
            }
        }
    }
}

/// Notes when a booking was first seen bound (its status names a Lease) and Ready (or
/// Failed), and returns the hosts whose BMC request counts to read: each host when it first
/// shows in the status, and every host when the booking is first seen Ready.
fn follow(
    request: &PodRequest,
    tracked: &mut BTreeMap<String, Tracked>,
) -> Vec<(String, Mark, String)> {
    let key = format!(
        "{}/{}",
        request.metadata.namespace.as_deref().unwrap_or_default(),
        request.metadata.name.as_deref().unwrap_or_default()
    );
    let mut read = Vec::new();
    let (Some(booking), Some(status)) = (tracked.get_mut(&key), &request.status) else {
        return read;
    };
    let now = Instant::now();
    if status.lease.is_some() && booking.bound.is_none() {
        booking.bound = Some(now);
    }
    for host in &status.hosts {
        if booking.hosts.insert(host.host.clone()) {
            read.push((key.clone(), Mark::Bound, host.host.clone()));
        }
    }
    match status.phase {
        Some(PodRequestPhase::Ready) if booking.ready.is_none() => {
            booking.ready = Some(now);
            for host in &booking.hosts {
                read.push((key.clone(), Mark::Ready, host.clone()));
            }
        }
        Some(PodRequestPhase::Failed) => booking.failed = true,
        _ => {}
    }
    read
}

impl Tracked {
    fn sent_now() -> Self {
        Self {
            sent: Instant::now(),
            bound: None,
            ready: None,
            failed: false,
            hosts: BTreeSet::new(),
            calls_at_bound: BTreeMap::new(),
            calls_at_ready: BTreeMap::new(),
        }
    }
}

/// `120 s: 150 of 200 created, 140 bound, 120 Ready, 0 failed`.
fn progress(tracked: &BTreeMap<String, Tracked>, total: usize, started: Instant) -> String {
    let count = |f: fn(&Tracked) -> bool| tracked.values().filter(|t| f(t)).count();
    format!(
        "{} s: {} of {total} created, {} bound, {} Ready, {} failed",
        started.elapsed().as_secs(),
        tracked.len(),
        count(|t| t.bound.is_some()),
        count(|t| t.ready.is_some()),
        count(|t| t.failed)
    )
}

/// A watch on every object of `api`'s kind, retrying with backoff.
fn watch<K>(api: Api<K>) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Unpin
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed()
}

/// The object an event carries and whether it is gone; None for the markers and errors
/// (the watcher retries on its own).
fn applied<K>(event: watcher::Result<watcher::Event<K>>) -> Option<(K, bool)> {
    match event {
        Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
            Some((object, false))
        }
        Ok(watcher::Event::Delete(object)) => Some((object, true)),
        Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => None,
    }
}

/// Raises this process's open-file limit (inherited by the operator it starts) to `needed`
/// when it is lower. Uses `prlimit` (util-linux) on itself, as the workspace forbids the
/// unsafe setrlimit; past the hard limit only with CAP_SYS_RESOURCE, else up to the hard
/// limit. Returns the soft limit in force.
pub fn raise_open_files(needed: u64) -> Result<u64> {
    let (soft, hard) = open_files_limit().context("reading /proc/self/limits")?;
    if soft >= needed {
        return Ok(soft);
    }
    let pid = std::process::id().to_string();
    for (new_soft, new_hard) in [(needed, hard.max(needed)), (hard, hard)] {
        let raised = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={new_soft}:{new_hard}")])
            .stderr(std::process::Stdio::null())
            .status();
        if raised.is_ok_and(|s| s.success()) {
            break;
        }
    }
    let (soft, _) = open_files_limit().context("reading /proc/self/limits")?;
    Ok(soft)
}

/// Soft and hard RLIMIT_NOFILE ("unlimited" read as u64::MAX).
fn open_files_limit() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line
        .split_whitespace()
        .skip(3)
        .map(|v| v.parse().unwrap_or(u64::MAX));
    Some((values.next()?, values.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_is_split_over_labs_and_profiles_without_losing_a_host() {
        for hosts in [7, 1000, 3001, 10_000] {
            let groups = Bench::new(hosts).groups();
            assert_eq!(groups.iter().map(|g| g.count).sum::<usize>(), hosts);
            assert!(groups.iter().all(|g| g.count > 0), "{groups:?}");
            if hosts >= 1000 {
                let labs: BTreeSet<_> = groups.iter().filter_map(|g| g.lab).collect();
                let profiles: BTreeSet<_> = groups.iter().map(|g| g.profile).collect();
                assert_eq!((labs.len(), profiles.len()), (2, 4), "{groups:?}");
            }
        }
    }

    #[test]
    fn every_planned_booking_fits_in_its_pool() -> Result<()> {
        let bench = Bench::new(1000);
        let groups = bench.groups();
        let planned = plan(&bench, &groups)?;
        assert_eq!(planned.len(), 200);
        let mut used: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for p in &planned {
            assert!((1..=8).contains(&p.size));
            *used.entry((p.lab, p.profile)).or_default() += p.size as usize;
        }
        for g in &groups {
            let taken = used.get(&(g.lab.unwrap_or_default(), g.profile));
            assert!(taken.is_none_or(|n| *n <= g.count), "{g:?} {taken:?}");
        }
        let namespaces: BTreeSet<_> = planned.iter().map(|p| &p.namespace).collect();
        assert_eq!(namespaces.len(), 5);
        let again = plan(&bench, &groups)?;
        assert_eq!(
            planned.iter().map(|p| p.size).collect::<Vec<_>>(),
            again.iter().map(|p| p.size).collect::<Vec<_>>(),
            "the same seed plans the same bookings"
        );
        Ok(())
    }

    #[test]
    fn the_reimage_books_every_pool_in_eights_and_leaves_only_remainders() -> Result<()> {
        let bench = Bench::reimage(
            1000,
            Limits::DEFAULT,
            Duration::from_millis(200),
            Duration::from_secs(60),
        );
        let groups = bench.groups();
        let planned = plan(&bench, &groups)?;
        assert_eq!(planned.len(), bench.requests);
        assert!(planned.iter().all(|p| p.size == REIMAGE_SIZE));
        for g in &groups {
            let booked: usize = planned
                .iter()
                .filter(|p| (Some(p.lab), p.profile) == (g.lab, g.profile))
                .map(|p| p.size as usize)
                .sum();
            assert!(
                g.count - booked < REIMAGE_SIZE as usize,
                "{g:?}: {booked} booked"
            );
        }
        Ok(())
    }

    #[test]
    fn too_many_bookings_are_refused_before_anything_starts() {
        let bench = Bench {
            requests: 400,
            ..Bench::new(100)
        };
        let err = plan(&bench, &bench.groups()).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("do not fit")));
    }

    #[test]
    fn a_booking_of_three_or_more_has_a_jumphost() {
        let p = Planned {
            namespace: "team-000".into(),
            name: "pod-00001".into(),
            lab: "lab-a",
            profile: "gpu",
            size: 5,
        };
        let request = p.podrequest();
        let roles: Vec<(&str, u32)> = request
            .spec
            .roles
            .iter()
            .map(|r| (r.name.as_str(), r.count))
            .collect();
        assert_eq!(roles, [("jumphost", 1), ("node", 4)]);
        assert_eq!(request.spec.host_count(), 5);
        assert!(
            request
                .spec
                .roles
                .iter()
                .all(|r| r.profile.as_deref() == Some("gpu"))
        );
    }

    #[test]
    fn the_operator_config_is_the_defaults_but_addresses() -> Result<()> {
        let config = operator_config(Limits::DEFAULT, "127.0.0.1:9000".parse()?);
        assert!(config.contains("metricsAddress: 127.0.0.1:9000"));
        assert!(config.contains("idleInterval: 60s"));
        assert!(config.contains("leaseNamespace: labpods-system"));
        assert!(config.contains("globalConcurrency: 64\n  perBmcConcurrency: 2"));
        Ok(())
    }
}

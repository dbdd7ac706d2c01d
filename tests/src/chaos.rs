//! The tests that try to break it: bookings stream through a simulated lab while operator
//! replicas are SIGKILLed and restarted, a leader is cut off from the apiserver (its
//! connections black-holed, its BMCs still in reach), or the BMCs misbehave. The invariants
//! are checked continuously from the API and the simulator, and over the BMCs' own call logs
//! at the end. The suite runs short forms (`tests/tests/e2e_chaos.rs`); `cargo xtask chaos`
//! runs the same code with the sizes and prints [`Report::table`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use labpods_api::v1alpha1::{HostState, LabHost, Lease, LeasePhase, PodRequest, PodRequestPhase};
use labpods_sim::{Event, PowerState};
use rand::Rng;

use crate::bmc_log;
use crate::e2e::{E2e, from_now};
use crate::sim::HostGroup;
use crate::tcp_proxy::TcpProxy;

/// The invariants, in the order the table shows them.
pub const ONE_LEASE_PER_HOST: &str = "host bound to one lease";
pub const POWER_FOR_HOLDER: &str = "on only for its holder";
pub const ONE_REPLICA_PER_BMC: &str = "one replica per BMC";
pub const BMC_LIMITS: &str = "BMC limits kept";
pub const CONVERGES: &str = "lease converges";
pub const NOTHING_LOST: &str = "no request lost";
pub const EXPIRED_HOST_FREE: &str = "expired host off+free";
const INVARIANTS: [&str; 7] = [
    ONE_LEASE_PER_HOST,
    POWER_FOR_HOLDER,
    ONE_REPLICA_PER_BMC,
    BMC_LIMITS,
    CONVERGES,
    NOTHING_LOST,
    EXPIRED_HOST_FREE,
];

/// The profile of every chaos host (no wipe image: a wipe needs the test to play the OS).
const PROFILE: &str = "plain";
/// How long a black-holed leader stays cut off: past the lease duration, so the other
/// replica takes over.
const BLACK_HOLE_FOR: Duration = Duration::from_secs(8);
const TICK: Duration = Duration::from_millis(500);
/// The BMC call timeout the replicas run with (short, so injected hangs cost seconds).
const BMC_TIMEOUT: Duration = Duration::from_secs(3);
/// The replicas' `bmc.perBmcConcurrency`: calls in flight per BMC, checked in its call log.
const PER_BMC_CONCURRENCY: usize = 2;

/// What to throw at the lab.
#[derive(Debug, Clone)]
pub struct Chaos {
    /// Namespace, lab label and log directory (target/e2e-logs/<name>).
    pub name: String,
    pub hosts: usize,
    pub leases: usize,
    /// Bookings open at once at most.
    pub concurrent: usize,
    /// SIGKILLs of a replica (the leader when there is one), each followed by a restart.
    pub kills: usize,
    /// Times the leader's apiserver connections are black-holed (then resumed).
    pub black_holes: usize,
    /// Seconds between two disruptions, drawn uniformly.
    pub gap: (u64, u64),
    /// Seconds each booking lasts from its creation, drawn uniformly.
    pub window: (u64, u64),
    /// BMC faults (test 2) instead of none.
    pub faults: bool,
    /// Bound on the whole run.
    pub deadline: Duration,
}

impl Chaos {
    /// Test 1 of issue 9, short form: crashes, failovers, a black hole. At most `hosts / 2`
    /// bookings of at most two hosts are open, so each binds at once and a booking that is
    /// Released without having been Ready is the operator's fault, not the queue's.
    pub fn crash_short(name: &str) -> Self {
        Self {
            name: name.to_string(),
            hosts: 8,
            leases: 12,
            concurrent: 4,
            kills: 5,
            black_holes: 1,
            gap: (5, 10),
            window: (20, 30),
            faults: false,
            deadline: Duration::from_secs(300),
        }
    }

    /// Test 1, long form (`cargo xtask chaos`): the 200 leases over 40 hosts, 50 kills.
    pub fn crash_long(name: &str) -> Self {
        Self {
            hosts: 40,
            leases: 200,
            concurrent: 20,
            kills: 50,
            black_holes: 3,
            gap: (3, 9),
            deadline: Duration::from_secs(3600),
            ..Self::crash_short(name)
        }
    }

    /// Test 2, short form: BMC faults under one replica. Three hosts are broken outright,
    /// so fewer bookings are open at once, and each lasts long enough for a broken host to
    /// be found out (the step timeouts) and replaced.
    pub fn faults_short(name: &str) -> Self {
        Self {
            name: name.to_string(),
            hosts: 8,
            leases: 6,
            concurrent: 3,
            kills: 0,
            black_holes: 0,
            gap: (5, 10),
            window: (60, 75),
            faults: true,
            deadline: Duration::from_secs(300),
        }
    }

    /// Test 2, long form.
    pub fn faults_long(name: &str) -> Self {
        Self {
            hosts: 40,
            leases: 100,
            concurrent: 15,
            deadline: Duration::from_secs(3600),
            ..Self::faults_short(name)
        }
    }
}

/// What a run saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub scenario: String,
    pub hosts: usize,
    pub leases: usize,
    pub ready_then_released: usize,
    pub failed: usize,
    pub kills: usize,
    pub black_holes: usize,
    /// Leader changes seen on the election Lease.
    pub failovers: usize,
    /// From a booking's creation to Released or Failed.
    pub convergence: Vec<Duration>,
    pub violations: BTreeMap<&'static str, Vec<String>>,
    pub took: Duration,
}

impl Report {
    fn violate(&mut self, invariant: &'static str, what: String) {
        let seen = self.violations.entry(invariant).or_default();
        // A violation that lasts is reported once, not once per tick.
        if !seen.contains(&what) {
            seen.push(what);
        }
    }

    pub fn violation_count(&self) -> usize {
        self.violations.values().map(Vec::len).sum()
    }

    pub fn median_convergence(&self) -> Option<Duration> {
        let mut sorted = self.convergence.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied()
    }

    /// Fails with every violation found.
    pub fn ensure_clean(&self) -> Result<()> {
        if self.violation_count() == 0 {
            return Ok(());
        }
        let mut out = format!("{} violations:\n", self.violation_count());
        for (invariant, found) in &self.violations {
            for what in found {
                let _ = writeln!(out, "  [{invariant}] {what}");
            }
        }
        bail!("{out}{}", Self::table(std::slice::from_ref(self)))
    }

    /// One row per run: sizes, disruptions, outcomes, violations per invariant, median
    /// convergence.
    pub fn table(reports: &[Report]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| scenario | hosts | leases | ready->released | failed | kills | black holes | failovers | {} | convergence median | took |",
            INVARIANTS.join(" | ")
        );
        let _ = writeln!(out, "|{}", "---|".repeat(11 + INVARIANTS.len()));
        for r in reports {
            let counts: Vec<String> = INVARIANTS
                .iter()
                .map(|i| r.violations.get(i).map_or(0, Vec::len).to_string())
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} s |",
                r.scenario,
                r.hosts,
                r.leases,
                r.ready_then_released,
                r.failed,
                r.kills,
                r.black_holes,
                r.failovers,
                counts.join(" | "),
                r.median_convergence()
                    .map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64())),
                r.took.as_secs_f64(),
            );
        }
        out
    }
}

/// One booking as the run follows it.
#[derive(Debug)]
struct Tracked {
    created: Instant,
    seen_ready: bool,
    done: Option<Instant>,
}

/// The bookings whose Lease was ever Ready, from a watch (a poll misses a Ready that lasts
/// less than a tick, and the request's status can skip a Ready the Lease had while no replica
/// led long enough to copy it).
#[derive(Clone, Default)]
struct ReadyLeases(Arc<Mutex<BTreeSet<String>>>);

impl ReadyLeases {
    /// Follows the Leases of `namespace` until the returned task is aborted.
    fn follow(&self, api: Api<Lease>) -> tokio::task::JoinHandle<()> {
        let seen = self.clone();
        tokio::spawn(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .for_each(move |lease| {
                    if let Ok(lease) = lease
                        && lease.status.as_ref().and_then(|s| s.phase) == Some(LeasePhase::Ready)
                    {
                        seen.0
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(lease.name_any());
                    }
                    futures::future::ready(())
                }),
        )
    }

    fn contains(&self, name: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(name)
    }
}

/// A replica and the proxy in front of its apiserver connections.
struct Replica {
    suffix: String,
    proxy: TcpProxy,
    black_holed_until: Option<Instant>,
}

/// Runs `chaos` to the end and reports. Errors are for a run that could not be carried out
/// (the lab did not start, the deadline passed); violations are in the report.
pub async fn run(chaos: &Chaos) -> Result<Report> {
    let started = Instant::now();
    let mut e2e = E2e::start_lab(&chaos.name, &[HostGroup::new(PROFILE, chaos.hosts)]).await?;
    let settings = e2e.settings_mut();
    settings.bmc_request_timeout = Some(format!("{}s", BMC_TIMEOUT.as_secs()));
    settings.bmc_per_bmc_concurrency = Some(PER_BMC_CONCURRENCY);
    let mut run = Run {
        chaos: chaos.clone(),
        report: Report {
            scenario: chaos.name.clone(),
            hosts: chaos.hosts,
            leases: chaos.leases,
            ..Report::default()
        },
        replicas: Vec::new(),
        next_replica: 0,
        tracked: BTreeMap::new(),
        leader: None,
        next_disruption: Instant::now() + draw(chaos.gap),
        faults_applied: false,
        locked_host: None,
        ready_leases: ReadyLeases::default(),
    };
    let watch = run
        .ready_leases
        .follow(Api::namespaced(e2e.client(), e2e.namespace()));
    run.start_replica(&mut e2e).await?;
    let outcome = run.drive(&mut e2e, started).await;
    watch.abort();
    let result = match outcome {
        Ok(()) => run.finish(&mut e2e).await.map(|()| run.report.clone()),
        Err(err) => Err(anyhow::anyhow!("{err:#}\n{}", e2e.diagnostics().await)),
    };
    // Also the secrets check of every e2e run: no BMC password in the operators' output.
    let leaks = e2e.shutdown().await;
    let mut report = result?;
    leaks?;
    report.took = started.elapsed();
    Ok(report)
}

struct Run {
    chaos: Chaos,
    report: Report,
    replicas: Vec<Replica>,
    next_replica: usize,
    tracked: BTreeMap<String, Tracked>,
    leader: Option<String>,
    next_disruption: Instant,
    /// Test 2: faults are in place, and the host given wrong credentials.
    faults_applied: bool,
    locked_host: Option<String>,
    ready_leases: ReadyLeases,
}

/// A long run says where it stands this often (a minute without a line looks hung).
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

fn draw((low, high): (u64, u64)) -> Duration {
    Duration::from_secs(rand::rng().random_range(low..=high.max(low)))
}

impl Run {
    fn disruptions_left(&self) -> bool {
        self.report.kills < self.chaos.kills || self.report.black_holes < self.chaos.black_holes
    }

    /// Two replicas during the first half of the disruptions, one afterwards.
    fn wanted_replicas(&self) -> usize {
        let done = self.report.kills + self.report.black_holes;
        let total = self.chaos.kills + self.chaos.black_holes;
        if total > 0 && done * 2 < total { 2 } else { 1 }
    }

    async fn start_replica(&mut self, e2e: &mut E2e) -> Result<()> {
        self.next_replica += 1;
        let suffix = format!("r{}", self.next_replica);
        let proxy = e2e.start_operator_via_proxy(&suffix).await?;
        self.replicas.push(Replica {
            suffix,
            proxy,
            black_holed_until: None,
        });
        Ok(())
    }

    fn identity(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.chaos.name)
    }

    async fn drive(&mut self, e2e: &mut E2e, started: Instant) -> Result<()> {
        let mut progress_at = Instant::now() + PROGRESS_EVERY;
        loop {
            if Instant::now() >= progress_at {
                progress_at += PROGRESS_EVERY;
                eprintln!(
                    "[{}] {:>4} s: {} of {} bookings done, {} open, {} kills, {} black holes",
                    self.chaos.name,
                    started.elapsed().as_secs(),
                    self.tracked.values().filter(|t| t.done.is_some()).count(),
                    self.chaos.leases,
                    self.tracked.values().filter(|t| t.done.is_none()).count(),
                    self.report.kills,
                    self.report.black_holes
                );
            }
            if started.elapsed() > self.chaos.deadline {
                bail!(
                    "the run did not finish within {:?}: {} of {} bookings done, {} kills, {} black holes",
                    self.chaos.deadline,
                    self.tracked.values().filter(|t| t.done.is_some()).count(),
                    self.chaos.leases,
                    self.report.kills,
                    self.report.black_holes
                );
            }
            if self.chaos.faults && !self.faults_applied {
                self.apply_faults(e2e).await?;
            }
            self.submit(e2e).await?;
            self.disrupt(e2e).await?;
            self.check(e2e).await?;
            let all_done = self.tracked.len() == self.chaos.leases
                && self.tracked.values().all(|t| t.done.is_some());
            if all_done && !self.disruptions_left() {
                return Ok(());
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Keeps `concurrent` bookings open until `leases` were made: one or two nodes each, for
    /// the scenario's window.
    async fn submit(&mut self, e2e: &mut E2e) -> Result<()> {
        let open = self.tracked.values().filter(|t| t.done.is_none()).count();
        if open >= self.chaos.concurrent || self.tracked.len() >= self.chaos.leases {
            return Ok(());
        }
        let name = format!("b{:03}", self.tracked.len() + 1);
        let (count, seconds) = {
            let mut rng = rand::rng();
            let (low, high) = self.chaos.window;
            (
                rng.random_range(1..=2),
                rng.random_range(low..=high.max(low)),
            )
        };
        let roles = vec![e2e.role("node", count, None)];
        e2e.book_window(&name, roles, None, from_now(i64::try_from(seconds)?)?)
            .await?;
        self.tracked.insert(
            name,
            Tracked {
                created: Instant::now(),
                seen_ready: false,
                done: None,
            },
        );
        Ok(())
    }

    /// A SIGKILL or a black hole when one is due; restarts replicas up to the wanted count.
    async fn disrupt(&mut self, e2e: &mut E2e) -> Result<()> {
        let now = Instant::now();
        for replica in &mut self.replicas {
            if replica.black_holed_until.is_some_and(|until| now >= until) {
                replica.proxy.resume();
                replica.black_holed_until = None;
            }
        }
        if self.disruptions_left() && now >= self.next_disruption {
            self.next_disruption = now + draw(self.chaos.gap);
            let leader = e2e.leader().await?;
            let target = self
                .replicas
                .iter()
                .position(|r| Some(self.identity(&r.suffix)) == leader)
                .unwrap_or_else(|| rand::rng().random_range(0..self.replicas.len()));
            // A black hole is for the leader, with another replica to take over.
            let is_leader = Some(self.identity(&self.replicas[target].suffix)) == leader;
            let black_hole = self.report.black_holes < self.chaos.black_holes
                && is_leader
                && self.replicas.len() > 1
                && self.replicas[target].black_holed_until.is_none();
            if black_hole {
                let replica = &mut self.replicas[target];
                replica.proxy.black_hole();
                replica.black_holed_until = Some(now + BLACK_HOLE_FOR);
                self.report.black_holes += 1;
            } else if self.report.kills < self.chaos.kills {
                let replica = self.replicas.remove(target);
                e2e.operator(&replica.suffix)?.kill()?;
                self.report.kills += 1;
            }
        }
        while self.replicas.len() < self.wanted_replicas() {
            self.start_replica(e2e).await?;
        }
        // Beyond the wanted count (the second half): the oldest replica goes, by SIGKILL too.
        if self.replicas.len() > self.wanted_replicas()
            && self.replicas[0].black_holed_until.is_none()
        {
            let replica = self.replicas.remove(0);
            e2e.operator(&replica.suffix)?.kill()?;
        }
        Ok(())
    }

    /// Test 2's faults: every BMC fails 10% of calls and leaves 2% unanswered; one stops
    /// answering, one's power will not change, one gets wrong credentials.
    async fn apply_faults(&mut self, e2e: &mut E2e) -> Result<()> {
        let names = e2e.host_names();
        let lab = e2e.sim()?;
        for host in &names {
            let bmc = lab.bmc(host)?;
            bmc.set_error_rate(0.10);
            bmc.set_timeout_rate(0.02);
        }
        let [unresponsive, stuck, locked, ..] = names.as_slice() else {
            bail!("the fault scenario needs at least 3 hosts");
        };
        lab.bmc(unresponsive)?.set_unresponsive(true);
        lab.bmc(stuck)?.set_power_stuck(true);
        set_credentials(e2e, locked, "wrong-password").await?;
        self.faults_applied = true;
        self.locked_host = Some(locked.clone());
        Ok(())
    }

    /// One look at the lab: outcomes of bookings, leader changes, and the invariants that
    /// must hold at every instant.
    async fn check(&mut self, e2e: &mut E2e) -> Result<()> {
        let leader = e2e.leader().await?;
        if leader.is_some() && leader != self.leader {
            if self.leader.is_some() {
                self.report.failovers += 1;
            }
            self.leader = leader;
        }
        let client = e2e.client();
        let requests: Api<PodRequest> = Api::namespaced(client.clone(), e2e.namespace());
        let leases: Api<Lease> = Api::namespaced(client.clone(), e2e.namespace());
        let labhosts: Api<LabHost> = Api::all(client);
        let lab = e2e.sim()?;
        let names = e2e.host_names();
        // Power before and after the API snapshot: a host On in both with no power action in
        // between was On all along.
        let before: Vec<(bool, usize)> = names
            .iter()
            .map(|h| lab.bmc(h).map(|b| power_view(&b)))
            .collect::<Result<_>>()?;
        let hosts = labhosts.list(&Default::default()).await?.items;
        let lease_list = leases.list(&Default::default()).await?.items;
        let after: Vec<(bool, usize)> = names
            .iter()
            .map(|h| lab.bmc(h).map(|b| power_view(&b)))
            .collect::<Result<_>>()?;

        // A Pending Lease is still binding: it holds nothing yet, and one that loses a claim
        // race is rolled back (the claim protocol). Every other unreleased Lease holds what
        // it lists.
        let mut holder: BTreeMap<&str, &str> = BTreeMap::new();
        for lease in &lease_list {
            let phase = lease.status.as_ref().and_then(|s| s.phase);
            if matches!(
                phase,
                None | Some(LeasePhase::Pending | LeasePhase::Released)
            ) {
                continue;
            }
            let name = lease.metadata.name.as_deref().unwrap_or_default();
            // Progress or Ready for a host another Lease holds is a booking reporting
            // someone else's machine.
            let reported = lease
                .status
                .iter()
                .flat_map(|s| &s.hosts)
                .filter(|p| p.state.is_some());
            for progress in reported {
                let claim = hosts
                    .iter()
                    .find(|h| h.metadata.name.as_deref() == Some(progress.host.as_str()))
                    .and_then(|h| h.spec.claim_ref.as_ref());
                if let Some(claim) = claim.filter(|c| c.lease != name) {
                    self.report.violate(
                        ONE_LEASE_PER_HOST,
                        format!(
                            "Lease {name} reports progress of {}, claimed for Lease {}",
                            progress.host, claim.lease
                        ),
                    );
                }
            }
            for host in &lease.spec.hosts {
                if let Some(other) = holder.insert(&host.host, name) {
                    self.report.violate(
                        ONE_LEASE_PER_HOST,
                        format!("{} is in Lease {other} and Lease {name}", host.host),
                    );
                }
            }
        }
        for (i, name) in names.iter().enumerate() {
            let Some(labhost) = hosts
                .iter()
                .find(|h| h.metadata.name.as_deref() == Some(name))
            else {
                continue;
            };
            let claim = labhost.spec.claim_ref.as_ref();
            if let (Some(claim), Some(listed)) = (claim, holder.get(name.as_str()))
                && claim.lease != *listed
            {
                self.report.violate(
                    ONE_LEASE_PER_HOST,
                    format!(
                        "{name} is claimed for Lease {} but listed by Lease {listed}",
                        claim.lease
                    ),
                );
            }
            let stayed_on = before[i].0 && after[i].0 && before[i].1 == after[i].1;
            let claim_lease_exists = claim.is_some_and(|c| {
                lease_list
                    .iter()
                    .any(|l| l.metadata.name.as_deref() == Some(c.lease.as_str()))
            });
            // A host whose release could not complete is quarantined ("claimed by its lease
            // or marked so"): out of the pool, kept off by every means left, for no Lease.
            let quarantined = labhost.status.as_ref().is_some_and(|s| {
                labpods_api::conditions::find_condition(
                    &s.conditions,
                    labpods_api::conditions::QUARANTINED,
                )
                .is_some_and(|c| c.status == labpods_api::conditions::TRUE)
            });
            if stayed_on && !claim_lease_exists && !quarantined {
                self.report.violate(
                    POWER_FOR_HOLDER,
                    format!("{name} is On but no Lease holds it (claim {claim:?})"),
                );
            }
        }

        for request in requests.list(&Default::default()).await?.items {
            let name = request.metadata.name.clone().unwrap_or_default();
            let Some(tracked) = self.tracked.get_mut(&name) else {
                continue;
            };
            if tracked.done.is_some() {
                continue;
            }
            let status = request.status.unwrap_or_default();
            match status.phase {
                Some(PodRequestPhase::Ready) => tracked.seen_ready = true,
                Some(PodRequestPhase::Released) => {
                    tracked.done = Some(Instant::now());
                    self.report.convergence.push(tracked.created.elapsed());
                    if tracked.seen_ready || self.ready_leases.contains(&name) {
                        self.report.ready_then_released += 1;
                    } else {
                        self.report.violate(
                            CONVERGES,
                            format!(
                                "{name} was Released, and neither it nor its Lease was seen Ready"
                            ),
                        );
                    }
                }
                Some(PodRequestPhase::Failed) => {
                    tracked.done = Some(Instant::now());
                    self.report.convergence.push(tracked.created.elapsed());
                    self.report.failed += 1;
                    if status.message.as_deref().is_none_or(str::is_empty) {
                        self.report
                            .violate(CONVERGES, format!("{name} Failed without a reason"));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// After the last booking: every request still there and finished, the BMC logs clean,
    /// BMC faults lifted and every host back in the pool, Off and unclaimed.
    async fn finish(&mut self, e2e: &mut E2e) -> Result<()> {
        for replica in &mut self.replicas {
            replica.proxy.resume();
        }
        let requests: Api<PodRequest> = Api::namespaced(e2e.client(), e2e.namespace());
        let present: BTreeSet<String> = requests
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|r| r.metadata.name)
            .collect();
        for name in self.tracked.keys() {
            if !present.contains(name) {
                self.report
                    .violate(NOTHING_LOST, format!("PodRequest {name} is gone"));
            }
        }
        if self.chaos.faults {
            self.recover(e2e).await?;
        }
        let names = e2e.host_names();
        // Collected Leases and released hosts settle within a few polls of the last release.
        let free = e2e.wait_hosts_free(&names, Duration::from_secs(120)).await;
        if let Err(err) = free {
            self.report
                .violate(EXPIRED_HOST_FREE, format!("{:.400}", format!("{err:#}")));
        }
        let lab = e2e.sim()?;
        for name in &names {
            let state = lab.bmc(name)?.state();
            if state.media.inserted {
                self.report.violate(
                    EXPIRED_HOST_FREE,
                    format!("{name} still has media inserted after its last lease"),
                );
            }
        }
        let min_interval = labpods_redfish::ClientPolicy::default().min_power_action_interval;
        let per_bmc = PER_BMC_CONCURRENCY;
        for (host, calls) in e2e.bmc_calls()? {
            for v in bmc_log::interleavings(
                &host,
                &calls,
                e2e.settings().handover(),
                Duration::from_millis(100),
            ) {
                self.report.violate(ONE_REPLICA_PER_BMC, v);
            }
            for v in bmc_log::power_interval_violations(&host, &calls, min_interval) {
                self.report.violate(BMC_LIMITS, v);
            }
            for v in bmc_log::concurrency_violations(
                &host,
                &calls,
                per_bmc,
                BMC_TIMEOUT,
                Duration::from_millis(100),
            ) {
                self.report.violate(BMC_LIMITS, v);
            }
        }
        Ok(())
    }

    /// The BMCs come back: faults lifted, credentials fixed, hosts that went to Error
    /// returned by the admin's maintenance round trip.
    async fn recover(&mut self, e2e: &mut E2e) -> Result<()> {
        let lab = e2e.sim()?;
        for host in e2e.host_names() {
            let bmc = lab.bmc(&host)?;
            bmc.set_error_rate(0.0);
            bmc.set_timeout_rate(0.0);
            bmc.set_unresponsive(false);
            bmc.set_power_stuck(false);
        }
        if let Some(host) = self.locked_host.clone() {
            let password = lab.password().to_string();
            set_credentials(e2e, &host, &password).await?;
        }
        let labhosts: Api<LabHost> = Api::all(e2e.client());
        for host in labhosts.list(&Default::default()).await?.items {
            let name = host.metadata.name.clone().unwrap_or_default();
            if host.status.as_ref().and_then(|s| s.state) != Some(HostState::Error) {
                continue;
            }
            e2e.set_maintenance(&name, true).await?;
            let api = labhosts.clone();
            let host = name.clone();
            e2e.wait(
                &format!("{name} in Error to go to Maintenance"),
                Duration::from_secs(60),
                || {
                    let api = api.clone();
                    let host = host.clone();
                    async move {
                        let state = api.get(&host).await?.status.and_then(|s| s.state);
                        Ok((state == Some(HostState::Maintenance)).then_some(()))
                    }
                },
            )
            .await?;
            e2e.set_maintenance(&name, false).await?;
        }
        Ok(())
    }
}

/// Whether the BMC reports On, and how many power actions it has seen.
fn power_view(bmc: &labpods_sim::HostHandle) -> (bool, usize) {
    let on = bmc.state().power_state == PowerState::On;
    let actions = bmc
        .history()
        .iter()
        .filter(|e| matches!(e, Event::PowerAction { .. }))
        .count();
    (on, actions)
}

/// Points `host` at a credentials Secret of its own with `password` (the simulator's user).
async fn set_credentials(e2e: &E2e, host: &str, password: &str) -> Result<()> {
    let lab = e2e.sim()?;
    let client = e2e.client();
    let labhosts: Api<LabHost> = Api::all(client.clone());
    let current = labhosts.get(host).await?;
    let reference = &current.spec.bmc.credentials_secret_ref;
    let name = format!("{host}-credentials");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(reference.namespace.clone()),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([
            ("username".to_string(), lab.username().to_string()),
            ("password".to_string(), password.to_string()),
        ])),
        ..Secret::default()
    };
    let secrets: Api<Secret> = Api::namespaced(client, &reference.namespace);
    secrets
        .patch(
            &name,
            &PatchParams::apply("labpods-chaos").force(),
            &Patch::Apply(&secret),
        )
        .await
        .with_context(|| format!("writing Secret {name}"))?;
    let patch =
        serde_json::json!({ "spec": { "bmc": { "credentialsSecretRef": { "name": name } } } });
    labhosts
        .patch(host, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("pointing {host} at Secret {name}"))?;
    Ok(())
}

//! Scheduling quality on a synthetic year of bookings, in simulated time: the planner with
//! backfill against plain FCFS (same planner, `backfill: false`), and an offline bound.
//!
//! The bound is a fluid relaxation per profile: hosts of a profile form one pool that works
//! on any booking at full capacity as soon as it arrives. No real schedule leaves less work
//! unprocessed at any instant, which gives
//! - utilization <= sum over profiles of min(capacity, demand that can run inside the year),
//! - sum_i work_i * wait_i >= integral of the fluid backlog - sum_i hosts_i * duration_i^2 / 2
//!   (a booking running contributes its remaining work to the backlog; one waiting, all of
//!   it), i.e. a lower bound on the work-weighted mean wait.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::TimeDelta;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use labpods_scheduler::{
    Claim, Decision, Host, Length, PlanInput, Policy, Request, RequestKey, Reservation, Role, Time,
    plan,
};

use crate::synthetic::epoch;

/// The simulated lab and its demand.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationConfig {
    pub seed: u64,
    /// Hosts per profile.
    pub profiles: Vec<(String, usize)>,
    pub days: i64,
    /// Offered load: booked host-hours over available host-hours.
    pub load: f64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            profiles: vec![
                ("x86-small".into(), 40),
                ("x86-large".into(), 30),
                ("arm".into(), 20),
                ("gpu".into(), 10),
            ],
            days: 365,
            load: 0.8,
        }
    }
}

/// Outcome of one scheduling policy over the simulated period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PolicyOutcome {
    /// Host-hours in use within the period over host-hours available.
    pub utilization: f64,
    pub wait_mean_hours: f64,
    pub wait_median_hours: f64,
    pub wait_p95_hours: f64,
    /// Mean wait weighted by each booking's host-hours (comparable with the bound).
    pub wait_weighted_mean_hours: f64,
    pub started: usize,
    pub unsatisfiable: usize,
    /// Planning passes run (each profile's own; see [`simulate`]).
    pub passes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimulationReport {
    pub bookings: usize,
    pub hosts: usize,
    pub days: i64,
    pub backfill: PolicyOutcome,
    pub fcfs: PolicyOutcome,
    pub utilization_upper_bound: f64,
    pub wait_weighted_mean_lower_bound_hours: f64,
}

impl std::fmt::Display for SimulationReport {
    /// A table for `cargo xtask bench scheduler`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} bookings over {} days on {} hosts",
            self.bookings, self.days, self.hosts
        )?;
        writeln!(
            f,
            "{:<16} {:>11} {:>10} {:>12} {:>9} {:>19} {:>8} {:>13}",
            "policy",
            "utilization",
            "wait mean",
            "wait median",
            "wait p95",
            "work-weighted wait",
            "passes",
            "unsatisfiable"
        )?;
        for (name, o) in [
            ("FCFS + backfill", &self.backfill),
            ("plain FCFS", &self.fcfs),
        ] {
            writeln!(
                f,
                "{name:<16} {:>10.1}% {:>9.1}h {:>11.1}h {:>8.1}h {:>18.1}h {:>8} {:>13}",
                o.utilization * 100.0,
                o.wait_mean_hours,
                o.wait_median_hours,
                o.wait_p95_hours,
                o.wait_weighted_mean_hours,
                o.passes,
                o.unsatisfiable
            )?;
        }
        writeln!(
            f,
            "{:<16} {:>10.1}% {:>10} {:>12} {:>9} {:>18.1}h",
            "offline bound",
            self.utilization_upper_bound * 100.0,
            "-",
            "-",
            "-",
            self.wait_weighted_mean_lower_bound_hours
        )
    }
}

/// One booking of the synthetic year: single role, by profile.
#[derive(Debug, Clone)]
struct Booking {
    created: Time,
    start: Option<Time>,
    hosts: u32,
    profile: usize,
    duration: TimeDelta,
}

impl Booking {
    fn earliest(&self) -> Time {
        self.start.map_or(self.created, |s| s.max(self.created))
    }

    fn work_hours(&self) -> f64 {
        f64::from(self.hosts) * hours(self.duration)
    }
}

fn hours(d: TimeDelta) -> f64 {
    // Minute precision is plenty for hour-scale bookings; i64 -> f64 is exact below 2^53.
    d.num_minutes() as f64 / 60.0
}

fn days(d: TimeDelta) -> f64 {
    hours(d) / 24.0
}

/// Host counts skew small, durations from hours to a week, 30% booked ahead; two release
/// crunches (weeks 20 and 45) triple the arrival rate.
fn bookings(config: &SimulationConfig) -> Vec<Booking> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let total_hosts: usize = config.profiles.iter().map(|p| p.1).sum();
    let durations: [(f64, i32); 4] = [(0.4, 4), (0.3, 24), (0.2, 72), (0.1, 168)];
    let mean_hours: f64 = durations
        .iter()
        .map(|&(p, h): &(f64, i32)| p * f64::from(h))
        .sum();
    let mean_hosts = 2.75; // of the distribution below
    let available = total_hosts as f64 * (config.days * 24) as f64;
    let count = (config.load * available / (mean_hours * mean_hosts)).round();
    let count = if count.is_finite() && count > 0.0 {
        count as usize
    } else {
        0
    };

    let period = TimeDelta::days(config.days);
    let crunch = |t: TimeDelta| {
        let week = t.num_days() / 7;
        week == 20 || week == 45
    };
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let at = TimeDelta::minutes(rng.random_range(0..period.num_minutes()));
        // Rejection sampling: outside a crunch keep one in three.
        if !crunch(at) && rng.random_range(0..3) != 0 {
            continue;
        }
        let mut pick = rng.random_range(0.0..1.0);
        let duration = durations
            .iter()
            .find(|(p, _)| {
                pick -= p;
                pick < 0.0
            })
            .map_or(4, |(_, h)| *h);
        let hosts = [1, 1, 2, 2, 3, 4, 4, 5][rng.random_range(0..8)];
        let mut profile_pick = rng.random_range(0..total_hosts);
        let profile = config
            .profiles
            .iter()
            .position(|(_, n)| {
                let hit = profile_pick < *n;
                profile_pick = profile_pick.saturating_sub(*n);
                hit
            })
            .unwrap_or(0);
        let created = epoch() + at;
        let start = rng
            .random_bool(0.3)
            .then(|| created + TimeDelta::hours(rng.random_range(24..7 * 24)));
        out.push(Booking {
            created,
            start,
            hosts,
            profile,
            duration: TimeDelta::hours(i64::from(duration)),
        });
    }
    out.sort_by_key(|b| b.created);
    out
}

fn sooner(a: Option<Time>, b: Time) -> Option<Time> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// What the planner did with some profiles' bookings.
#[derive(Debug, Default)]
struct Served {
    /// (booking, start, end) of every booking that started.
    started: Vec<(usize, Time, Time)>,
    unsatisfiable: usize,
    passes: usize,
}

impl Served {
    fn merge(&mut self, other: Self) {
        self.started.extend(other.started);
        self.unsatisfiable += other.unsatisfiable;
        self.passes += other.passes;
    }
}

/// Runs the planner in simulated time on the hosts and bookings of `profiles`: a pass at
/// every arrival, lease end, reserved start and announced earliest start. `progress` gets
/// each pass: the simulated days done and the requests it planned.
///
/// One `PlanInput` is kept and updated in place between passes (claims set and cleared,
/// requests retained), rather than rebuilt: at thousands of hosts, copying the lab for
/// every pass cost as much as planning it.
fn run(
    config: &SimulationConfig,
    bookings: &[Booking],
    profiles: &[usize],
    backfill: bool,
    progress: &dyn Fn(f64, usize),
) -> Served {
    let hosts: Vec<Host> = profiles
        .iter()
        .flat_map(|&p| {
            let (profile, n) = &config.profiles[p];
            (0..*n).map(move |i| Host {
                name: format!("{profile}-{i:03}"),
                labels: BTreeMap::from([("rack".to_owned(), format!("{profile}-rack-{}", i / 20))]),
                profile: profile.clone(),
                schedulable: true,
                claim: None,
            })
        })
        .collect();
    let by_name: HashMap<String, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.clone(), i))
        .collect();
    // `seq` is the booking's index: decisions find their booking by it.
    let requests: Vec<Request> = bookings
        .iter()
        .enumerate()
        .filter(|(_, b)| profiles.contains(&b.profile))
        .map(|(i, b)| Request {
            key: RequestKey::new("sim", format!("b{i:06}")),
            uid: i.to_string(),
            created: b.created,
            seq: u64::try_from(i).unwrap_or(u64::MAX),
            roles: vec![Role {
                name: "node".into(),
                count: b.hosts,
                profile: Some(config.profiles[b.profile].0.clone()),
                ..Role::default()
            }],
            start: b.start,
            length: Length::For(b.duration),
        })
        .collect();
    let booking_of = |r: &Request| usize::try_from(r.seq).unwrap_or(usize::MAX);
    let index: HashMap<&RequestKey, usize> =
        requests.iter().map(|r| (&r.key, booking_of(r))).collect();

    let from = epoch();
    let period_end = from + TimeDelta::days(config.days);
    let mut input = PlanInput {
        now: requests.first().map_or(period_end, |r| r.created),
        hosts,
        reservations: Vec::new(),
        requests: Vec::new(),
        policy: Policy {
            backfill,
            ..Policy::default()
        },
    };
    let allowance = input.policy.release_allowance;
    let mut arrived = 0;
    let mut waiting = vec![false; bookings.len()];
    let mut served = Served::default();
    loop {
        let now = input.now;
        while let Some(r) = requests.get(arrived).filter(|r| r.created <= now) {
            input.requests.push(r.clone());
            waiting[booking_of(r)] = true;
            arrived += 1;
        }
        for h in &mut input.hosts {
            if h.claim.as_ref().is_some_and(|c| c.until + allowance <= now) {
                h.claim = None;
            }
        }
        let queue = input.requests.len();
        let plans = plan(&input);
        served.passes += 1;
        input.reservations.clear();
        let mut next: Option<Time> = requests.get(arrived).map(|r| r.created);
        for p in plans {
            let Some(&i) = index.get(&p.key) else {
                continue;
            };
            match p.decision {
                Decision::Bind(pl) => {
                    for a in &pl.assignments {
                        if let Some(&h) = by_name.get(&a.host) {
                            input.hosts[h].claim = Some(Claim {
                                owner: p.key.clone(),
                                until: pl.end,
                            });
                        }
                    }
                    served.started.push((i, pl.start, pl.end));
                    waiting[i] = false;
                }
                Decision::Reserve(pl) => {
                    next = sooner(next, pl.start);
                    input
                        .reservations
                        .extend(pl.assignments.iter().map(|a| Reservation {
                            host: a.host.clone(),
                            role: a.role.clone(),
                            owner: p.key.clone(),
                            start: pl.start,
                            end: pl.end,
                        }));
                }
                Decision::Wait { earliest_start, .. } => {
                    if let Some(s) = earliest_start {
                        next = sooner(next, s);
                    }
                }
                Decision::Unsatisfiable { .. } => {
                    served.unsatisfiable += 1;
                    waiting[i] = false;
                }
            }
        }
        input.requests.retain(|r| waiting[booking_of(r)]);
        for c in input.hosts.iter().filter_map(|h| h.claim.as_ref()) {
            next = sooner(next, c.until + allowance);
        }
        progress(days(now - from), queue);
        match next.filter(|t| *t > now) {
            Some(t) => input.now = t,
            None => break,
        }
    }
    served
}

fn outcome(config: &SimulationConfig, bookings: &[Booking], mut served: Served) -> PolicyOutcome {
    // In booking order, so that the sums below do not depend on how the runs were split.
    served.started.sort_unstable_by_key(|s| s.0);
    let started = &served.started;
    let (from, to) = (epoch(), epoch() + TimeDelta::days(config.days));
    let total_hosts: usize = config.profiles.iter().map(|p| p.1).sum();
    let used: f64 = started
        .iter()
        .map(|&(i, s, e)| {
            f64::from(bookings[i].hosts) * hours((e.min(to) - s.max(from)).max(TimeDelta::zero()))
        })
        .sum();
    let mut waits: Vec<f64> = started
        .iter()
        .map(|&(i, s, _)| hours(s - bookings[i].earliest()).max(0.0))
        .collect();
    waits.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if waits.is_empty() {
            return 0.0;
        }
        let rank = ((waits.len() - 1) as f64 * q).round() as usize;
        waits[rank.min(waits.len() - 1)]
    };
    let work: f64 = started
        .iter()
        .map(|&(i, _, _)| bookings[i].work_hours())
        .sum();
    let weighted: f64 = started
        .iter()
        .map(|&(i, s, _)| bookings[i].work_hours() * hours(s - bookings[i].earliest()).max(0.0))
        .sum();
    PolicyOutcome {
        utilization: used / (total_hosts as f64 * hours(to - from)),
        wait_mean_hours: if waits.is_empty() {
            0.0
        } else {
            waits.iter().sum::<f64>() / waits.len() as f64
        },
        wait_median_hours: quantile(0.5),
        wait_p95_hours: quantile(0.95),
        wait_weighted_mean_hours: if work > 0.0 { weighted / work } else { 0.0 },
        started: started.len(),
        unsatisfiable: served.unsatisfiable,
        passes: served.passes,
    }
}

/// The fluid bounds described in the module documentation.
fn offline_bounds(config: &SimulationConfig, bookings: &[Booking]) -> (f64, f64) {
    let to = epoch() + TimeDelta::days(config.days);
    let period = hours(TimeDelta::days(config.days));
    let total_hosts: usize = config.profiles.iter().map(|p| p.1).sum();
    let (mut usable, mut weighted_wait, mut work) = (0.0, 0.0, 0.0);
    for (p, (_, n)) in config.profiles.iter().enumerate() {
        let capacity = *n as f64;
        let mine: Vec<&Booking> = bookings
            .iter()
            .filter(|b| b.profile == p && b.hosts as usize <= *n)
            .collect();
        let in_period: f64 = mine
            .iter()
            .map(|b| {
                f64::from(b.hosts)
                    * hours(b.duration.min((to - b.earliest()).max(TimeDelta::zero())))
            })
            .sum();
        usable += in_period.min(capacity * period);

        let mut arrivals: Vec<(Time, f64)> = mine
            .iter()
            .map(|b| (b.earliest(), b.work_hours()))
            .collect();
        arrivals.sort_by_key(|a| a.0);
        let (mut backlog, mut area) = (0.0f64, 0.0f64);
        for (k, &(t, w)) in arrivals.iter().enumerate() {
            backlog += w;
            let gap = arrivals
                .get(k + 1)
                .map_or(f64::INFINITY, |next| hours(next.0 - t));
            // Integral of max(0, backlog - capacity * x) over [0, gap].
            area += if backlog >= capacity * gap {
                backlog * gap - capacity * gap * gap / 2.0
            } else {
                backlog * backlog / (2.0 * capacity)
            };
            backlog = (backlog - capacity * gap).max(0.0);
        }
        let running: f64 = mine
            .iter()
            .map(|b| f64::from(b.hosts) * hours(b.duration).powi(2) / 2.0)
            .sum();
        weighted_wait += (area - running).max(0.0);
        work += mine.iter().map(|b| b.work_hours()).sum::<f64>();
    }
    let utilization = usable / (total_hosts as f64 * period);
    (
        utilization,
        if work > 0.0 {
            weighted_wait / work
        } else {
            0.0
        },
    )
}

/// The two ways [`simulate`] runs the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discipline {
    /// FCFS with conservative backfill, the operator's default.
    Backfill,
    /// The same planner with `backfill: false`.
    PlainFcfs,
}

/// Where one of [`simulate`]'s runs is.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub discipline: Discipline,
    pub profile: &'a str,
    /// Simulated days done; past the period while bookings queued in it still start.
    pub day: f64,
    /// Requests the pass just run planned (0 when `done`).
    pub queue: usize,
    /// The run is over; called once, from the thread that ran it, after its last pass.
    pub done: bool,
}

/// Simulates `config`'s year with and without backfill and computes the offline bounds.
pub fn simulate(config: &SimulationConfig) -> SimulationReport {
    simulate_with_progress(config, &|_| {})
}

/// [`simulate`], calling `progress` after every planning pass, on the thread that ran it
/// (runs go to several threads).
///
/// Each (discipline, profile) is its own run: the bookings of this model have one role
/// and a profile, no namespace quota and no fairness window apply, so what one profile's
/// hosts do never changes another's decisions, and a pass over the whole lab at another
/// profile's event would decide the same again for this one. Planning each profile alone
/// gives the same schedule (a test checks it) at a fraction of the cost, since a pass
/// costs in proportion to the hosts it is given. The runs share nothing but the bookings
/// and go to as many threads as the machine has cores.
pub fn simulate_with_progress(
    config: &SimulationConfig,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> SimulationReport {
    let bookings = bookings(config);
    let (utilization_upper_bound, wait_lower) = offline_bounds(config, &bookings);
    let mut jobs: Vec<(Discipline, usize)> = [Discipline::Backfill, Discipline::PlainFcfs]
        .into_iter()
        .flat_map(|d| (0..config.profiles.len()).map(move |p| (d, p)))
        .collect();
    // Largest profiles first: they take longest.
    jobs.sort_by_key(|&(_, p)| std::cmp::Reverse(config.profiles[p].1));
    let results: Vec<(Discipline, Served)> = parallel(&jobs, |&(discipline, p)| {
        let profile = config.profiles[p].0.as_str();
        let report = |day, queue, done| {
            progress(Progress {
                discipline,
                profile,
                day,
                queue,
                done,
            })
        };
        let served = run(
            config,
            &bookings,
            &[p],
            discipline == Discipline::Backfill,
            &|day, queue| report(day, queue, false),
        );
        report(config.days as f64, 0, true);
        (discipline, served)
    });
    let [mut backfill, mut fcfs] = [Served::default(), Served::default()];
    for (discipline, served) in results {
        match discipline {
            Discipline::Backfill => backfill.merge(served),
            Discipline::PlainFcfs => fcfs.merge(served),
        }
    }
    SimulationReport {
        bookings: bookings.len(),
        hosts: config.profiles.iter().map(|p| p.1).sum(),
        days: config.days,
        backfill: outcome(config, &bookings, backfill),
        fcfs: outcome(config, &bookings, fcfs),
        utilization_upper_bound,
        wait_weighted_mean_lower_bound_hours: wait_lower,
    }
}

/// `f` over `jobs` on up to one thread per core, results in any order.
fn parallel<J: Sync, R: Send>(jobs: &[J], f: impl Fn(&J) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut out = Vec::new();
        while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
            out.push(f(job));
        }
        out
    };
    std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(worker)).collect();
        let mut out = worker();
        for t in others {
            // A panic in a run is a bug in the planner: the caller gets it.
            out.extend(
                t.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        out
    })
}

/// The default year (100 hosts, 80% offered load) for `seed`.
pub fn simulate_year(seed: u64) -> SimulationReport {
    simulate(&SimulationConfig {
        seed,
        ..SimulationConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimulationConfig {
        SimulationConfig {
            seed: 7,
            profiles: vec![("x86".into(), 12), ("arm".into(), 6)],
            days: 60,
            load: 0.85,
        }
    }

    #[test]
    fn backfill_beats_plain_fcfs_and_both_respect_the_offline_bounds() {
        let report = simulate(&small());
        assert!(report.bookings > 100, "{report:?}");
        for (name, o) in [("backfill", report.backfill), ("fcfs", report.fcfs)] {
            assert_eq!(
                o.started + o.unsatisfiable,
                report.bookings,
                "{name}: every booking starts or is refused"
            );
            assert!(
                o.utilization > 0.3 && o.utilization <= report.utilization_upper_bound + 1e-9,
                "{name}: {report:?}"
            );
            assert!(
                o.wait_weighted_mean_hours + 1e-9 >= report.wait_weighted_mean_lower_bound_hours,
                "{name}: {report:?}"
            );
            assert!(o.wait_median_hours <= o.wait_p95_hours);
        }
        assert!(
            report.backfill.wait_p95_hours < report.fcfs.wait_p95_hours,
            "{report:?}"
        );
        assert!(
            report.backfill.wait_weighted_mean_hours < report.fcfs.wait_weighted_mean_hours,
            "{report:?}"
        );
        assert_eq!(simulate(&small()), report, "deterministic for a seed");
    }

    /// `simulate` plans each profile alone; one pass over the whole lab at every event of
    /// any profile starts every booking at the same time on the same number of hosts.
    #[test]
    fn planning_each_profile_alone_gives_the_lab_wide_schedule() {
        let config = SimulationConfig {
            profiles: vec![("x86".into(), 12), ("arm".into(), 6), ("gpu".into(), 3)],
            load: 0.95,
            ..small()
        };
        let bookings = bookings(&config);
        let all: Vec<usize> = (0..config.profiles.len()).collect();
        for backfill in [true, false] {
            let mut whole = run(&config, &bookings, &all, backfill, &|_, _| {});
            let mut alone = Served::default();
            for p in &all {
                alone.merge(run(&config, &bookings, &[*p], backfill, &|_, _| {}));
            }
            whole.started.sort_unstable_by_key(|s| s.0);
            alone.started.sort_unstable_by_key(|s| s.0);
            assert!(whole.started.len() > 200, "{}", whole.started.len());
            assert!(
                whole
                    .started
                    .iter()
                    .any(|&(i, s, _)| s > bookings[i].earliest()),
                "some bookings wait"
            );
            assert_eq!(whole.started, alone.started, "backfill {backfill}");
            assert_eq!(whole.unsatisfiable, alone.unsatisfiable);
            assert!(
                whole.passes > alone.passes / 3,
                "the whole lab is planned at every event"
            );
        }
    }
}

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

use std::collections::BTreeMap;

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
    pub wait_median_hours: f64,
    pub wait_p95_hours: f64,
    /// Mean wait weighted by each booking's host-hours (comparable with the bound).
    pub wait_weighted_mean_hours: f64,
    pub started: usize,
    pub unsatisfiable: usize,
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
            "{:<22} {:>11} {:>12} {:>12} {:>19}",
            "policy", "utilization", "wait median", "wait p95", "work-weighted wait"
        )?;
        for (name, o) in [
            ("FCFS + backfill", &self.backfill),
            ("plain FCFS", &self.fcfs),
        ] {
            writeln!(
                f,
                "{name:<22} {:>10.1}% {:>11.1}h {:>11.1}h {:>18.1}h",
                o.utilization * 100.0,
                o.wait_median_hours,
                o.wait_p95_hours,
                o.wait_weighted_mean_hours
            )?;
        }
        writeln!(
            f,
            "{:<22} {:>10.1}% {:>12} {:>12} {:>18.1}h",
            "offline bound",
            self.utilization_upper_bound * 100.0,
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

/// Runs the planner in simulated time: a pass at every arrival, lease end, reserved start
/// and announced earliest start.
fn run(config: &SimulationConfig, bookings: &[Booking], backfill: bool) -> PolicyOutcome {
    let policy = Policy {
        backfill,
        ..Policy::default()
    };
    let mut hosts: Vec<Host> = config
        .profiles
        .iter()
        .flat_map(|(profile, n)| {
            (0..*n).map(move |i| Host {
                name: format!("{profile}-{i:03}"),
                labels: BTreeMap::from([("rack".to_owned(), format!("{profile}-rack-{}", i / 20))]),
                profile: profile.clone(),
                schedulable: true,
                claim: None,
            })
        })
        .collect();
    let requests: Vec<Request> = bookings
        .iter()
        .enumerate()
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
    let index: BTreeMap<&RequestKey, usize> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| (&r.key, i))
        .collect();

    let period_end = epoch() + TimeDelta::days(config.days);
    let mut arrived = 0;
    let mut pending: Vec<usize> = Vec::new();
    let mut reservations: Vec<Reservation> = Vec::new();
    let mut started: Vec<(usize, Time, Time)> = Vec::new();
    let mut unsatisfiable = 0;
    let mut now = bookings.first().map_or(period_end, |b| b.created);
    loop {
        while arrived < requests.len() && requests[arrived].created <= now {
            pending.push(arrived);
            arrived += 1;
        }
        for h in &mut hosts {
            if h.claim
                .as_ref()
                .is_some_and(|c| c.until + policy.release_allowance <= now)
            {
                h.claim = None;
            }
        }
        let input = PlanInput {
            now,
            hosts: hosts.clone(),
            reservations: std::mem::take(&mut reservations),
            requests: pending.iter().map(|&i| requests[i].clone()).collect(),
            policy: policy.clone(),
        };
        let mut next: Option<Time> = requests.get(arrived).map(|r| r.created);
        let mut still = Vec::new();
        for p in plan(&input) {
            let Some(&i) = index.get(&p.key) else {
                continue;
            };
            match p.decision {
                Decision::Bind(pl) => {
                    for a in &pl.assignments {
                        if let Some(h) = hosts.iter_mut().find(|h| h.name == a.host) {
                            h.claim = Some(Claim {
                                owner: p.key.clone(),
                                until: pl.end,
                            });
                        }
                    }
                    started.push((i, pl.start, pl.end));
                }
                Decision::Reserve(pl) => {
                    next = sooner(next, pl.start);
                    reservations.extend(pl.assignments.iter().map(|a| Reservation {
                        host: a.host.clone(),
                        role: a.role.clone(),
                        owner: p.key.clone(),
                        start: pl.start,
                        end: pl.end,
                    }));
                    still.push(i);
                }
                Decision::Wait { earliest_start, .. } => {
                    if let Some(s) = earliest_start {
                        next = sooner(next, s);
                    }
                    still.push(i);
                }
                Decision::Unsatisfiable { .. } => unsatisfiable += 1,
            }
        }
        pending = still;
        for c in hosts.iter().filter_map(|h| h.claim.as_ref()) {
            let free = c.until + policy.release_allowance;
            next = sooner(next, free);
        }
        match next.filter(|t| *t > now) {
            Some(t) => now = t,
            None => break,
        }
    }
    outcome(config, bookings, &started, unsatisfiable)
}

fn outcome(
    config: &SimulationConfig,
    bookings: &[Booking],
    started: &[(usize, Time, Time)],
    unsatisfiable: usize,
) -> PolicyOutcome {
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
        wait_median_hours: quantile(0.5),
        wait_p95_hours: quantile(0.95),
        wait_weighted_mean_hours: if work > 0.0 { weighted / work } else { 0.0 },
        started: started.len(),
        unsatisfiable,
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

/// Simulates `config`'s year with and without backfill and computes the offline bounds.
pub fn simulate(config: &SimulationConfig) -> SimulationReport {
    let bookings = bookings(config);
    let (utilization_upper_bound, wait_lower) = offline_bounds(config, &bookings);
    SimulationReport {
        bookings: bookings.len(),
        hosts: config.profiles.iter().map(|p| p.1).sum(),
        days: config.days,
        backfill: run(config, &bookings, true),
        fcfs: run(config, &bookings, false),
        utilization_upper_bound,
        wait_weighted_mean_lower_bound_hours: wait_lower,
    }
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
}

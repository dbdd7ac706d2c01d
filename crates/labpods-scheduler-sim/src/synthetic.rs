//! A seeded synthetic lab and queue for benchmarking one planning pass
//! (`cargo xtask bench scheduler`): a busy lab with several profiles and racks, hosts in
//! maintenance, running leases, and a queue mixing "now" and future bookings, selectors and
//! multi-role pods.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use labpods_scheduler::{
    Claim, Decision, Host, Length, Operator, PlanInput, Policy, Request, RequestKey, RequestPlan,
    Requirement, Role, Selector, Time, plan,
};

const PROFILES: [&str; 5] = ["x86-small", "x86-large", "arm-large", "gpu", "storage"];
const HOSTS_PER_RACK: usize = 40;

/// A fixed epoch, so that a seed always yields the same workload.
pub fn epoch() -> Time {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// `hosts` hosts (about half of them claimed, 2% in maintenance) and `requests` waiting
/// requests in 20 namespaces, deterministic for a seed.
pub fn synthetic_workload(seed: u64, hosts: usize, requests: usize) -> PlanInput {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = epoch() + TimeDelta::days(30);
    let lab: Vec<Host> = (0..hosts)
        .map(|i| {
            let profile = PROFILES[i % PROFILES.len()];
            let rack = format!("rack-{:03}", i / HOSTS_PER_RACK);
            let arch = if profile.starts_with("arm") {
                "aarch64"
            } else {
                "x86_64"
            };
            let labels = BTreeMap::from([
                ("rack".to_owned(), rack),
                ("arch".to_owned(), arch.to_owned()),
                ("profile".to_owned(), profile.to_owned()),
            ]);
            let claim = rng.random_bool(0.5).then(|| Claim {
                owner: RequestKey::new(
                    format!("team-{:02}", rng.random_range(0..20)),
                    format!("running-{i}"),
                ),
                until: now + TimeDelta::minutes(rng.random_range(10..7 * 24 * 60)),
            });
            Host {
                name: format!("host-{i:05}"),
                labels,
                profile: profile.to_owned(),
                schedulable: !rng.random_bool(0.02),
                claim,
            }
        })
        .collect();
    let queue = (0..requests)
        .map(|i| {
            let mut roles = vec![Role {
                name: "node".to_owned(),
                count: rng.random_range(1..=8),
                selector: Selector::default(),
                profile: Some(PROFILES[rng.random_range(0..PROFILES.len())].to_owned()),
            }];
            if rng.random_bool(0.3) {
                roles.push(Role {
                    name: "jumphost".to_owned(),
                    count: 1,
                    selector: Selector {
                        match_labels: BTreeMap::new(),
                        match_expressions: vec![Requirement {
                            key: "arch".to_owned(),
                            operator: Operator::In(vec!["x86_64".to_owned()]),
                        }],
                    },
                    profile: None,
                });
            }
            let start = rng
                .random_bool(0.3)
                .then(|| now + TimeDelta::hours(rng.random_range(1..14 * 24)));
            Request {
                key: RequestKey::new(
                    format!("team-{:02}", rng.random_range(0..20)),
                    format!("pod-{i:05}"),
                ),
                uid: format!("uid-{i}"),
                created: now - TimeDelta::minutes(rng.random_range(0..24 * 60)),
                seq: u64::try_from(i).unwrap_or(u64::MAX),
                roles,
                start,
                length: Length::For(TimeDelta::hours(rng.random_range(1..7 * 24))),
            }
        })
        .collect();
    let policy = Policy {
        fairness_window: TimeDelta::minutes(5),
        ..Policy::default()
    };
    PlanInput {
        now,
        hosts: lab,
        reservations: Vec::new(),
        requests: queue,
        policy,
    }
}

/// How a pass decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanSummary {
    pub bind: usize,
    pub reserve: usize,
    pub wait: usize,
    pub unsatisfiable: usize,
}

impl PlanSummary {
    pub fn of(plans: &[RequestPlan]) -> Self {
        let mut s = Self::default();
        for p in plans {
            match p.decision {
                Decision::Bind(_) => s.bind += 1,
                Decision::Reserve(_) => s.reserve += 1,
                Decision::Wait { .. } => s.wait += 1,
                Decision::Unsatisfiable { .. } => s.unsatisfiable += 1,
            }
        }
        s
    }
}

/// Plans the synthetic workload once and measures it (wall time of `plan` only).
pub fn bench_plan(seed: u64, hosts: usize, requests: usize) -> (PlanSummary, Duration) {
    let input = synthetic_workload(seed, hosts, requests);
    let started = Instant::now();
    let plans = plan(&input);
    let elapsed = started.elapsed();
    (PlanSummary::of(&plans), elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmark's workload plans into valid, non-overlapping placements.
    #[test]
    fn synthetic_workload_plans_without_double_booking() {
        let input = synthetic_workload(3, 600, 150);
        assert_eq!(
            input,
            synthetic_workload(3, 600, 150),
            "deterministic for a seed"
        );
        let out = plan(&input);
        let allow = input.policy.release_allowance;
        assert_eq!(out.len(), 150);
        let mut windows: Vec<(String, Time, Time)> = input
            .hosts
            .iter()
            .filter_map(|h| {
                h.claim
                    .as_ref()
                    .map(|c| (h.name.clone(), input.now, c.until + allow))
            })
            .collect();
        for p in &out {
            match &p.decision {
                Decision::Bind(pl) | Decision::Reserve(pl) => {
                    windows.extend(
                        pl.assignments
                            .iter()
                            .map(|a| (a.host.clone(), pl.start, pl.end + allow)),
                    );
                }
                Decision::Wait { message, .. } | Decision::Unsatisfiable { message } => {
                    assert!(!message.is_empty())
                }
            }
        }
        windows.sort();
        for pair in windows.windows(2) {
            assert!(pair[0].0 != pair[1].0 || pair[0].2 <= pair[1].1, "{pair:?}");
        }
        let summary = PlanSummary::of(&out);
        assert!(
            summary.bind > 0 && summary.wait + summary.reserve > 0,
            "{summary:?}"
        );
    }
}

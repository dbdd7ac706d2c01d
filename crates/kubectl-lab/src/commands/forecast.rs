//! `kubectl lab forecast`: per profile, when demand will exceed capacity at the observed
//! growth, and how many hosts would keep the p95 wait under a target.
//!
//! Demand is the host-hours booked per day (the allocation history, as the report counts
//! them), fitted by least squares to a straight line over the observed period. It exceeds
//! capacity on the first day the line reaches the profile's hosts (not in maintenance) x
//! 24 h. The hosts needed at the horizon come from the scheduler's own simulation
//! (`labpods_scheduler_sim::simulate`): the fewest hosts whose simulated p95 wait, at
//! the demand the line gives for the horizon's end, is at most the target.

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use labpods_operator::history::Usage;
use labpods_operator::history::record::{aggregate, day};
use labpods_operator::history::shards::Contents;
use labpods_scheduler_sim::{SimulationConfig, simulate};
use serde::Serialize;

use crate::cli::ForecastArgs;
use crate::error::Result;
use crate::output::{self, Table};
use crate::session::Session;

/// Days simulated per candidate host count.
const SIMULATED_DAYS: i64 = 60;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProfileForecast {
    pub profile: String,
    pub hosts: u64,
    /// Host-hours per day the fit gives for today, and its growth per day.
    pub demand_now: f64,
    pub growth_per_day: f64,
    /// Days from now until demand exceeds capacity; None if not within the horizon.
    pub exceeds_in_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exceeds_on: Option<String>,
    pub demand_at_horizon: f64,
    /// Fewest hosts keeping the simulated p95 wait under the target at the horizon.
    pub hosts_needed: u64,
}

/// Least-squares line `a + b x` through `points`.
pub fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if points.is_empty() {
        return (0.0, 0.0);
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}

/// Days from day 0 (`now` is at `today`) until `a + b x` reaches `capacity`, within
/// `horizon` days.
pub fn crossing(a: f64, b: f64, today: f64, capacity: f64, horizon: f64) -> Option<i64> {
    let now = a + b * today;
    if now >= capacity {
        return Some(0);
    }
    if b <= 0.0 {
        return None;
    }
    let days = ((capacity - a) / b - today).ceil();
    (days <= horizon).then_some(days as i64)
}

/// The fewest hosts whose simulated p95 wait at `demand` host-hours a day is at most
/// `target_hours` (the p95 falls as hosts are added at the same demand).
pub fn hosts_needed(demand: f64, target_hours: f64, seed: u64) -> u64 {
    if demand <= 0.0 {
        return 0;
    }
    let p95 = |n: u64| {
        let config = SimulationConfig {
            seed,
            profiles: vec![("p".into(), n as usize)],
            days: SIMULATED_DAYS,
            load: demand / (24.0 * n as f64),
        };
        simulate(&config).backfill.wait_p95_hours
    };
    // At least enough hosts to carry the demand at all, a little under full load.
    let mut lo = ((demand / 24.0) / 0.98).ceil().max(1.0) as u64;
    let mut hi = lo.max(2) * 2;
    while p95(hi) > target_hours {
        lo = hi;
        hi *= 2;
        if hi > 1 << 20 {
            return hi;
        }
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if p95(mid) <= target_hours {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    hi
}

/// Per profile daily demand over `[from, to)` (days without bookings are zeros).
pub fn daily_demand(
    contents: &Contents,
    from: Timestamp,
    to: Timestamp,
) -> BTreeMap<String, Vec<f64>> {
    let mut rows: Vec<Usage> = aggregate(&contents.allocations);
    rows.extend(contents.usage.iter().cloned());
    let mut days = Vec::new();
    let mut t = from;
    while t < to {
        days.push(day(t));
        t += SignedDuration::from_hours(24);
    }
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for u in &rows {
        let series = out
            .entry(u.profile.clone())
            .or_insert_with(|| vec![0.0; days.len()]);
        if let Some(i) = days.iter().position(|d| *d == u.day) {
            series[i] += u.host_seconds as f64 / 3_600.0;
        }
    }
    out
}

/// The forecast of one profile's daily demand `series` (oldest first, the last is today).
pub fn forecast(
    profile: &str,
    hosts: u64,
    series: &[f64],
    horizon_days: f64,
    target_p95_hours: f64,
    now: Timestamp,
) -> ProfileForecast {
    let points: Vec<(f64, f64)> = series
        .iter()
        .enumerate()
        .map(|(i, d)| (i as f64, *d))
        .collect();
    let (a, b) = fit(&points);
    let today = series.len().saturating_sub(1) as f64;
    let capacity = hosts as f64 * 24.0;
    let exceeds = crossing(a, b, today, capacity, horizon_days);
    let demand_at_horizon = (a + b * (today + horizon_days)).max(0.0);
    ProfileForecast {
        profile: profile.to_string(),
        hosts,
        demand_now: (a + b * today).max(0.0),
        growth_per_day: b,
        exceeds_in_days: exceeds,
        exceeds_on: exceeds.map(|d| output::time(now + SignedDuration::from_hours(24 * d))),
        demand_at_horizon,
        hosts_needed: hosts_needed(demand_at_horizon, target_p95_hours, 1),
    }
}

pub async fn run(session: &Session, args: &ForecastArgs, out: &mut dyn Write) -> Result<()> {
    let horizon = output::parse_length("--horizon", &args.horizon)?;
    let target = output::parse_length("--target-p95-wait", &args.target_p95_wait)?;
    let since = output::parse_length("--since", &args.since)?;
    let to = session.now;
    let from = to - since;
    let hosts = session.labhosts().await?;
    let contents = session.history(&args.history_namespace, from, to).await?;
    let mut per_profile: BTreeMap<String, u64> = BTreeMap::new();
    for h in &hosts {
        if !h.spec.maintenance {
            *per_profile.entry(h.spec.profile.clone()).or_default() += 1;
        }
    }
    let demand = daily_demand(&contents, from, to);
    let horizon_days = horizon.as_secs() as f64 / 86_400.0;
    let target_hours = target.as_secs() as f64 / 3_600.0;
    let forecasts: Vec<ProfileForecast> = demand
        .iter()
        .map(|(profile, series)| {
            let n = per_profile.get(profile).copied().unwrap_or(0);
            forecast(profile, n, series, horizon_days, target_hours, session.now)
        })
        .collect();
    if output::structured(out, session.format, &forecasts)? {
        return Ok(());
    }
    if forecasts.is_empty() {
        writeln!(
            out,
            "no bookings in the history since {}",
            output::time(from)
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "Forecast over {} at the growth of the last {}; hosts for a p95 wait under {}\n",
        output::length(horizon),
        output::length(since),
        output::length(target)
    )?;
    let mut t = Table::new([
        "profile",
        "hosts",
        "demand h/day",
        "growth h/day",
        "exceeds capacity",
        "demand at horizon",
        "hosts needed",
    ]);
    for f in &forecasts {
        t.row(vec![
            f.profile.as_str().into(),
            f.hosts.to_string().into(),
            format!("{:.0}", f.demand_now).into(),
            format!("{:+.1}", f.growth_per_day).into(),
            f.exceeds_on
                .as_ref()
                .map_or_else(
                    || "not within the horizon".to_string(),
                    |d| format!("{d} (in {}d)", f.exceeds_in_days.unwrap_or(0)),
                )
                .into(),
            format!("{:.0}", f.demand_at_horizon).into(),
            f.hosts_needed.to_string().into(),
        ]);
    }
    t.print(out, session.colour)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn a_line_through_growing_demand_crosses_capacity_when_it_should() {
        // 100 host-hours a day growing by 5 a day; 20 hosts hold 480 a day.
        let series: Vec<f64> = (0..90).map(|i| 100.0 + 5.0 * i as f64).collect();
        let (a, b) = fit(&series
            .iter()
            .enumerate()
            .map(|(i, d)| (i as f64, *d))
            .collect::<Vec<_>>());
        assert!((a - 100.0).abs() < 1e-9 && (b - 5.0).abs() < 1e-9);
        // Today (day 89) demand is 545 >= 480: exceeded already.
        assert_eq!(crossing(a, b, 89.0, 480.0, 180.0), Some(0));
        // With 30 hosts (720 a day): (720 - 100) / 5 = day 124, 35 days from day 89.
        assert_eq!(crossing(a, b, 89.0, 720.0, 180.0), Some(35));
        assert_eq!(
            crossing(a, b, 89.0, 720.0, 30.0),
            None,
            "beyond the horizon"
        );
        assert_eq!(
            crossing(a, -1.0, 89.0, 720.0, 180.0),
            None,
            "shrinking demand"
        );
    }

    #[test]
    fn more_demand_or_a_tighter_target_needs_more_hosts() {
        let loose = hosts_needed(240.0, 48.0, 1);
        let tight = hosts_needed(240.0, 4.0, 1);
        let more = hosts_needed(480.0, 48.0, 1);
        assert!(
            loose >= 11,
            "240 host-hours a day need at least 10 hosts: {loose}"
        );
        assert!(tight >= loose, "{tight} < {loose}");
        assert!(more > loose, "{more} <= {loose}");
        assert_eq!(hosts_needed(0.0, 24.0, 1), 0);
    }
}

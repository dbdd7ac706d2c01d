//! `cargo xtask bench forecast`: the error of `kubectl lab forecast` on synthetic growth
//! traces with a known answer (release build: a debug xtask re-runs itself with `--release`).
//!
//! Each trace is one profile of HOSTS hosts whose offered load grows linearly from U0 (30 to
//! 60%) so that demand reaches capacity a known number of days (60 to 240) after the
//! observed 90 days. The observed history is not the line itself: the scheduler's own
//! simulation (`labpods_scheduler_sim::simulate`) replays each 15-day window at that
//! window's load (45 simulated days, so an empty lab's first days weigh little), and the host-hours it served per day are what the forecast is fitted to
//! (so the bookings' randomness, sizes and crunches are in the data). Reported: the error of
//! the day demand exceeds capacity, and of the hosts needed for a p95 wait under 24 h at a
//! 180-day horizon against the hosts the simulation needs at the trace's true demand.

use anyhow::{Context as _, Result, bail};
use kubectl_lab::commands::forecast::{crossing, fit, hosts_needed};
use labpods_scheduler_sim::{SimulationConfig, simulate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const USAGE: &str = "usage: cargo xtask bench forecast [--traces N] [--hosts N]";
const OBSERVED_DAYS: i64 = 90;
const WINDOW_DAYS: i64 = 15;
/// Each window's load is simulated this long (the first days of a run fill an empty lab).
const SIMULATED_DAYS: i64 = 45;
const HORIZON_DAYS: f64 = 180.0;
const TARGET_P95_HOURS: f64 = 24.0;

pub fn run(args: &[String]) -> Result<()> {
    if crate::bench::reran_in_release("forecast", args)? {
        return Ok(());
    }
    let (mut traces, mut hosts) = (20u64, 100usize);
    for (flag, value) in crate::bench::flag_values(args, USAGE)? {
        match flag {
            "--traces" => traces = value.parse().context("--traces")?,
            "--hosts" => hosts = value.parse().context("--hosts")?,
            _ => bail!("{USAGE}"),
        }
    }
    let capacity = hosts as f64 * 24.0;
    let (mut day_errors, mut host_errors, mut host_rel) = (Vec::new(), Vec::new(), Vec::new());
    println!(
        "forecast on {traces} synthetic traces, {hosts} hosts, {OBSERVED_DAYS} days observed (simulated), horizon {HORIZON_DAYS} days, target p95 wait {TARGET_P95_HOURS} h"
    );
    println!("trace  true day  forecast day  error d  true hosts  forecast hosts  error");
    for seed in 0..traces {
        let mut rng = StdRng::seed_from_u64(seed);
        let u0: f64 = rng.random_range(0.3..0.6);
        let true_day: f64 = rng.random_range(60.0..240.0);
        // Load reaches 1.0 at OBSERVED_DAYS - 1 + true_day.
        let growth = (1.0 - u0) / (OBSERVED_DAYS as f64 - 1.0 + true_day);
        let mut series = Vec::new();
        for w in 0..(OBSERVED_DAYS / WINDOW_DAYS) {
            let mid = (w * WINDOW_DAYS) as f64 + WINDOW_DAYS as f64 / 2.0;
            let load = u0 + growth * mid;
            let report = simulate(&SimulationConfig {
                seed: seed * 100 + w as u64,
                profiles: vec![("p".into(), hosts)],
                days: SIMULATED_DAYS,
                load,
            });
            let served = report.backfill.utilization * capacity;
            for d in 0..WINDOW_DAYS {
                series.push(((w * WINDOW_DAYS + d) as f64, served));
            }
        }
        let (a, b) = fit(&series);
        let today = OBSERVED_DAYS as f64 - 1.0;
        let forecast_day = crossing(a, b, today, capacity, 10_000.0).map(|d| d as f64);
        let true_demand = capacity * (u0 + growth * (today + HORIZON_DAYS));
        let fitted_demand = (a + b * (today + HORIZON_DAYS)).max(0.0);
        let true_hosts = hosts_needed(true_demand, TARGET_P95_HOURS, 7);
        let forecast_hosts = hosts_needed(fitted_demand, TARGET_P95_HOURS, 7);
        let day_error = forecast_day.map(|f| f - true_day.ceil());
        if let Some(e) = day_error {
            day_errors.push(e);
        }
        let host_error = forecast_hosts as f64 - true_hosts as f64;
        host_errors.push(host_error);
        host_rel.push(host_error / true_hosts.max(1) as f64);
        println!(
            "{seed:>5}  {:>8.0}  {:>12}  {:>7}  {true_hosts:>10}  {forecast_hosts:>14}  {host_error:>+5.0}",
            true_day.ceil(),
            forecast_day.map_or_else(|| "never".to_string(), |d| format!("{d:.0}")),
            day_error.map_or_else(|| "-".to_string(), |e| format!("{e:+.0}")),
        );
    }
    let mae = |v: &[f64]| v.iter().map(|e| e.abs()).sum::<f64>() / v.len().max(1) as f64;
    let bias = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "day demand exceeds capacity: mean absolute error {:.1} days (bias {:+.1}) over {} traces that cross",
        mae(&day_errors),
        bias(&day_errors),
        day_errors.len()
    );
    println!(
        "hosts needed at the horizon: mean absolute error {:.1} hosts ({:.1}%), bias {:+.1}",
        mae(&host_errors),
        mae(&host_rel) * 100.0,
        bias(&host_errors)
    );
    Ok(())
}

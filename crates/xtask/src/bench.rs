//! `cargo xtask bench redfish`: Redfish numbers for BENCHMARKS.md, measured on the simulator
//! (release build; a debug xtask re-runs itself with `--release`: [`reran_in_release`], which
//! `bench history`, `forecast` and `scheduler` use too).
//!
//! - simulator requests/s: a bounded loopback load (CLIENTS keep-alive clients, REQUESTS GETs
//!   of a ComputerSystem each), median over runs;
//! - power-cycling a fleet (default 1,000 BMCs, 200 ms per call) through labpods-redfish with
//!   the operator's default global concurrency, against the bound
//!   ceil(hosts / concurrency) * calls_per_cycle * latency;
//! - Redfish calls per reimage sequence, step by step, counted by the simulated BMC.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use labpods_redfish::{
    Bmc as _, BmcTarget, BootEnabled, BootMode, BootTarget, ClientPolicy, Credentials,
    RedfishConnector, ResetKind, TlsOptions, Url,
};
use labpods_sim::{HostHandle, Sim, SimConfig, SimHandle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const USAGE: &str =
    "usage: cargo xtask bench redfish [--hosts N] [--latency 200ms] [--concurrency N] [--runs N]
       cargo xtask bench history [--hosts N] [--days N]
       cargo xtask bench forecast [--traces N] [--hosts N]
       cargo xtask bench lab [--hosts 1000,3000,10000] [--requests N] [--arrival SECS] [--boot SECS] [--timeout SECS] [--seed N]
       cargo xtask bench scheduler [--hosts N[,N...]] [--days N] [--seed N]
       cargo xtask bench reimage [--hosts N] [--latency MS] [--boot SECS] [--limits GLOBAL/PER_BMC,...] [--timeout SECS]";

/// Loopback load: clients x requests per run.
const CLIENTS: usize = 32;
const REQUESTS: usize = 1_000;

#[derive(Debug)]
struct Options {
    hosts: usize,
    latency: Duration,
    /// Redfish calls in flight across all BMCs; default: the operator's bmc.globalConcurrency.
    concurrency: usize,
    runs: usize,
}

pub fn run(args: &[String]) -> Result<()> {
    match args.split_first() {
        Some((what, rest)) if what == "redfish" => redfish(rest),
        Some((what, rest)) if what == "history" => crate::bench_history::run(rest),
        Some((what, rest)) if what == "forecast" => crate::bench_forecast::run(rest),
        Some((what, rest)) if what == "scheduler" => crate::bench_scheduler::run(rest),
        Some((what, rest)) if what == "lab" => crate::bench_lab::run("labpods-bench-lab", rest),
        Some((what, rest)) if what == "reimage" => {
            crate::bench_lab::run("labpods-bench-reimage", rest)
        }
        _ => bail!("{USAGE}"),
    }
}

/// Numbers from a debug build would measure the compiler's settings, not the code: a debug
/// xtask runs `cargo run --release -p xtask -- bench <what> <args>` instead and returns
/// true (the benchmark ran); a release one returns false (run it here).
pub fn reran_in_release(what: &str, args: &[String]) -> Result<bool> {
    if !cfg!(debug_assertions) {
        return Ok(false);
    }
    let status = crate::testenv::cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "bench",
            what,
        ])
        .args(args)
        .status()
        .context("running the release build of xtask")?;
    ensure!(status.success(), "the release benchmark failed ({status})");
    Ok(true)
}

/// A benchmark's arguments as (flag, value) pairs: every flag takes a value.
pub fn flag_values<'a>(args: &'a [String], usage: &str) -> Result<Vec<(&'a str, &'a str)>> {
    args.chunks(2)
        .map(|pair| match pair {
            [flag, value] => Ok((flag.as_str(), value.as_str())),
            [flag, ..] => bail!("{flag} needs a value\n{usage}"),
            [] => bail!("{usage}"),
        })
        .collect()
}

fn redfish(args: &[String]) -> Result<()> {
    if reran_in_release("redfish", args)? {
        return Ok(());
    }
    let options = parse(args)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(measure(&options))
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        hosts: 1_000,
        latency: Duration::from_millis(200),
        concurrency: default_concurrency()?,
        runs: 3,
    };
    for (flag, value) in flag_values(args, USAGE)? {
        match flag {
            "--hosts" => options.hosts = value.parse()?,
            "--latency" => options.latency = humantime::parse_duration(value)?,
            "--concurrency" => options.concurrency = value.parse()?,
            "--runs" => options.runs = value.parse()?,
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    ensure!(
        options.hosts > 0 && options.concurrency > 0 && options.runs > 0,
        "{USAGE}"
    );
    Ok(options)
}

/// bmc.globalConcurrency from examples/operator-config.yaml, which documents every default.
fn default_concurrency() -> Result<usize> {
    let path = crate::workspace_root().join("examples/operator-config.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: serde_yaml::Value = serde_yaml::from_str(&text)?;
    config["bmc"]["globalConcurrency"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .with_context(|| format!("no bmc.globalConcurrency in {}", path.display()))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn measure(options: &Options) -> Result<()> {
    // reqwest (rustls without a built-in provider) needs the process-wide one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    println!(
        "# Redfish benchmark (release build, {} CPUs)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut rates = Vec::new();
    for _ in 0..options.runs {
        rates.push(requests_per_second().await?);
    }
    println!(
        "simulator: {CLIENTS} clients x {REQUESTS} GET /redfish/v1/Systems/1 on loopback (client in the same process)"
    );
    println!(
        "  requests/s per run: {}",
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  median: {:.0} requests/s\n", median(rates));

    let mut walls = Vec::new();
    let mut last = None;
    for _ in 0..options.runs {
        let cycle = power_cycle_fleet(options).await?;
        walls.push(cycle.wall.as_secs_f64());
        last = Some(cycle);
    }
    let cycle = last.context("no run")?;
    let waves = options.hosts.div_ceil(options.concurrency);
    let bound = options.latency.as_secs_f64() * (waves as f64) * (cycle.calls_per_cycle as f64);
    let wall = median(walls.clone());
    println!(
        "power-cycle {} BMCs, {} ms per call, concurrency {} (operator default), ClientPolicy::default()",
        options.hosts,
        options.latency.as_millis(),
        options.concurrency
    );
    println!(
        "  calls per cycle (counted by each BMC): {}",
        cycle.calls_per_cycle
    );
    println!(
        "  bound = ceil({}/{}) x {} x {} ms = {bound:.1} s",
        options.hosts,
        options.concurrency,
        cycle.calls_per_cycle,
        options.latency.as_millis()
    );
    println!(
        "  wall per run: {} s",
        walls
            .iter()
            .map(|w| format!("{w:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  median wall: {wall:.1} s = {:.2} x bound\n", wall / bound);

    fleet_memory().await?;
    reimage_calls().await
}

/// Resident memory of this process, from /proc (Linux).
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What an idle 10,000-BMC fleet costs: start time and resident memory per host.
async fn fleet_memory() -> Result<()> {
    const HOSTS: usize = 10_000;
    let before = resident_kib().context("no VmRSS in /proc/self/status")?;
    let start = Instant::now();
    let sim = Sim::start(SimConfig {
        hosts: HOSTS,
        ..SimConfig::default()
    })
    .await?;
    let started = start.elapsed();
    let after = resident_kib().context("no VmRSS in /proc/self/status")?;
    sim.shutdown().await;
    println!("fleet of {HOSTS} idle BMCs (one listener each)");
    println!(
        "  started in {:.2} s; resident memory +{} MiB = {:.1} KiB per BMC\n",
        started.as_secs_f64(),
        (after.saturating_sub(before)) / 1024,
        after.saturating_sub(before) as f64 / HOSTS as f64
    );
    Ok(())
}

/// One run of the loopback load; returns requests per second.
async fn requests_per_second() -> Result<f64> {
    let sim = Sim::start(SimConfig {
        hosts: 8,
        ..SimConfig::default()
    })
    .await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let start = Instant::now();
    let mut clients = JoinSet::new();
    for c in 0..CLIENTS {
        let url = sim
            .endpoint(c % sim.hosts() + 1)
            .join("/redfish/v1/Systems/1")?;
        let (http, user, password) = (
            http.clone(),
            sim.username().to_owned(),
            sim.password().to_owned(),
        );
        clients.spawn(async move {
            for _ in 0..REQUESTS {
                let response = http
                    .get(url.clone())
                    .basic_auth(&user, Some(&password))
                    .send()
                    .await?;
                ensure!(
                    response.status().is_success(),
                    "GET {url}: {}",
                    response.status()
                );
                response.bytes().await?;
            }
            Ok(())
        });
    }
    while let Some(done) = clients.join_next().await {
        done??;
    }
    let rate = (CLIENTS * REQUESTS) as f64 / start.elapsed().as_secs_f64();
    sim.shutdown().await;
    Ok(rate)
}

#[derive(Debug)]
struct CycleRun {
    wall: Duration,
    calls_per_cycle: u64,
}

fn target(sim: &SimHandle, i: usize) -> BmcTarget {
    BmcTarget {
        endpoint: sim.endpoint(i),
        system_id: Some(sim.system_id(i).to_owned()),
        credentials: Credentials::new(sim.username(), sim.password()),
        tls: TlsOptions::default(),
    }
}

/// Every host: connect (discovery, session), ForceRestart, log out; `concurrency` hosts at a
/// time, as the operator's global limit allows.
async fn power_cycle_fleet(options: &Options) -> Result<CycleRun> {
    let sim = Sim::start(SimConfig {
        hosts: options.hosts,
        latency: options.latency,
        power_delay: Duration::ZERO,
        ..SimConfig::default()
    })
    .await?;
    let connector = Arc::new(RedfishConnector::new(ClientPolicy::default()));
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let start = Instant::now();
    let mut cycles = JoinSet::new();
    for i in 1..=options.hosts {
        let (connector, permits, target) = (connector.clone(), permits.clone(), target(&sim, i));
        cycles.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let bmc = connector.client(&target).await?;
            bmc.reset(ResetKind::ForceRestart).await?;
            bmc.logout().await?;
            anyhow::Ok(())
        });
    }
    while let Some(done) = cycles.join_next().await {
        done??;
    }
    let wall = start.elapsed();
    let mut calls = Vec::with_capacity(options.hosts);
    for i in 1..=options.hosts {
        let host = sim.host(i);
        ensure!(
            host.boots().len() == 1,
            "host {i} did not boot exactly once: {:?}",
            host.history()
        );
        ensure!(host.state().open_sessions == 0, "host {i} leaked a session");
        calls.push(host.state().requests);
    }
    sim.shutdown().await;
    let calls_per_cycle = calls.iter().copied().max().unwrap_or(0);
    ensure!(
        calls.iter().all(|c| *c == calls_per_cycle),
        "hosts saw different call counts: {calls:?}"
    );
    Ok(CycleRun {
        wall,
        calls_per_cycle,
    })
}

/// Redfish calls a BMC sees for each step of the operator's reimage sequence (DESIGN.md).
async fn reimage_calls() -> Result<()> {
    let sim = Sim::start(SimConfig {
        power_delay: Duration::from_millis(200),
        boot_time: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await?;
    let host = sim.host(1);
    let connector = RedfishConnector::new(ClientPolicy::default());
    let image = Url::parse("http://127.0.0.1:8080/images/os.iso")?;
    let mut steps: Vec<(&str, u64)> = Vec::new();
    let mut seen = 0;
    let mut step = |name, host: &HostHandle| {
        let now = host.state().requests;
        steps.push((name, now - seen));
        seen = now;
    };

    let bmc = connector.client(&target(&sim, 1)).await?;
    step("connect (service root, system discovery)", &host);
    bmc.reset(ResetKind::ForceOff).await?;
    step("power off (ForceOff)", &host);
    bmc.eject_media().await?;
    step("eject virtual media", &host);
    bmc.insert_media(&image).await?;
    step("insert the image", &host);
    bmc.set_boot_override(BootTarget::Cd, BootEnabled::Once, BootMode::Uefi)
        .await?;
    step("boot override Cd/Once/UEFI", &host);
    bmc.reset(ResetKind::On).await?;
    step("power on", &host);
    let mut polls = 0;
    while bmc.boot_progress().await?.as_deref() != Some("OSRunning") {
        polls += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    step("wait for BootProgress OSRunning (1 call per poll)", &host);
    bmc.eject_media().await?;
    step("eject", &host);
    bmc.logout().await?;
    step("log out", &host);

    ensure!(
        host.boots() == [("Cd".to_owned(), Some(image.to_string()))],
        "the reimage did not boot the image once: {:?}",
        host.history()
    );
    ensure!(!host.state().media.inserted, "media left inserted");
    sim.shutdown().await;

    let polling = polls + 1;
    let total: u64 = steps.iter().map(|(_, n)| n).sum();
    println!(
        "Redfish calls per reimage sequence (counted by the BMC; session login included where it happens)"
    );
    for (name, calls) in &steps {
        println!("  {calls:>3}  {name}");
    }
    println!(
        "  total {total}: {} fixed + {polling} BootProgress polls (2 s boot, polled every 250 ms)",
        total - polling
    );
    Ok(())
}

//! Issue 12's benchmark 2, run by `cargo xtask bench reimage` (which builds it and the
//! operator with --release and points it at the newest control plane): a lab of slow BMCs
//! reimaged through the operator's whole Redfish flow, once per pair of Redfish limits, a
//! table per run and one row per run against the bound the limits allow. Exits 1 when a run
//! could not be carried out or ran out of time; missed targets are reported, not failures.

use std::time::Duration;

use anyhow::{Result, bail};
use labpods_tests::bench_lab::{self, Bench, Limits};

const USAGE: &str = "usage: labpods-bench-reimage [--hosts N] [--latency MS] [--boot SECS] [--limits GLOBAL/PER_BMC,...] [--timeout SECS]";

#[tokio::main]
async fn main() -> Result<()> {
    if cfg!(debug_assertions) {
        bail!("a debug build measures the compiler's settings: run `cargo xtask bench reimage`");
    }
    let args = Args::parse()?;
    bench_lab::raise_open_files(u64::try_from(args.hosts)? + 4096)?;
    println!(
        "# Reimage benchmark, {} (release operator; {} CPUs): {} hosts, BMCs answering in {} ms, {} s boots\n",
        k8s_openapi::jiff::Timestamp::now(),
        std::thread::available_parallelism().map_or(0, usize::from),
        args.hosts,
        args.latency.as_millis(),
        args.boot.as_secs()
    );
    let benches: Vec<Bench> = args
        .limits
        .iter()
        .map(|limits| Bench {
            timeout: args.timeout,
            ..Bench::reimage(args.hosts, *limits, args.latency, args.boot)
        })
        .collect();
    let (reports, not_carried_out) = bench_lab::run_each(&benches).await;
    println!(
        "## Reimage throughput\n\n{}",
        bench_lab::reimage_table(&reports)
    );
    bench_lab::verdict(&reports, not_carried_out)
}

struct Args {
    hosts: usize,
    latency: Duration,
    boot: Duration,
    limits: Vec<Limits>,
    timeout: Duration,
}

impl Args {
    fn parse() -> Result<Self> {
        let mut parsed = Self {
            hosts: 1000,
            latency: Duration::from_millis(200),
            boot: Duration::from_secs(60),
            limits: ["64/2", "128/2", "128/1", "256/2"]
                .iter()
                .map(|l| limits(l))
                .collect::<Result<_>>()?,
            timeout: Duration::from_secs(1200),
        };
        for flag in bench_lab::flags(USAGE)? {
            match flag.name.as_str() {
                "--hosts" => parsed.hosts = usize::try_from(flag.number()?)?,
                "--latency" => parsed.latency = Duration::from_millis(flag.number()?),
                "--boot" => parsed.boot = Duration::from_secs(flag.number()?),
                "--timeout" => parsed.timeout = Duration::from_secs(flag.number()?),
                "--limits" => {
                    parsed.limits = flag.value.split(',').map(limits).collect::<Result<_>>()?;
                }
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        if parsed.hosts < bench_lab::REIMAGE_SIZE as usize * 2 {
            bail!(
                "--hosts {}: at least {} (a booking alone and one more)\n{USAGE}",
                parsed.hosts,
                bench_lab::REIMAGE_SIZE * 2
            );
        }
        Ok(parsed)
    }
}

/// `128/2`: global and per-BMC concurrency, as the operator validates them.
fn limits(text: &str) -> Result<Limits> {
    let parsed = text.split_once('/').and_then(|(global, per_bmc)| {
        Some(Limits {
            global: global.trim().parse().ok()?,
            per_bmc: per_bmc.trim().parse().ok()?,
        })
    });
    match parsed {
        Some(l) if l.per_bmc >= 1 && l.per_bmc <= l.global => Ok(l),
        _ => bail!(
            "--limits {text:?}: GLOBAL/PER_BMC like 128/2, both at least 1, per-BMC at most global\n{USAGE}"
        ),
    }
}

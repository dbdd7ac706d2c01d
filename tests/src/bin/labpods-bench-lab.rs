//! Issue 12's benchmark 1, run by `cargo xtask bench lab` (which builds it and the operator
//! with --release and points it at the newest control plane): the whole operator at each lab
//! size, a table per size and the scaling of each figure across sizes. Exits 1 when a size
//! could not be carried out or ran out of time (the tables still say what was reached);
//! missed targets are reported, not failures.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use labpods_tests::bench_lab::{self, Bench};

const USAGE: &str = "usage: labpods-bench-lab [--hosts 1000,3000,10000] [--requests N] [--arrival SECS] [--boot SECS] [--timeout SECS] [--seed N]";

/// Open files the operator (which inherits this process's limit) may need: a connection to
/// every BMC, and the rest (apiserver, listeners, runtime). The BMCs themselves run in
/// labpods-sim processes of 5,000 each.
const FILES_PER_HOST: u64 = 1;
const FILES_HEADROOM: u64 = 4096;

#[tokio::main]
async fn main() -> Result<()> {
    if cfg!(debug_assertions) {
        bail!("a debug build measures the compiler's settings: run `cargo xtask bench lab`");
    }
    let (sizes, template) = parse()?;
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let needed = u64::try_from(largest)? * FILES_PER_HOST + FILES_HEADROOM;
    let open_files = bench_lab::raise_open_files(needed)?;
    if open_files < needed {
        eprintln!(
            "warning: {open_files} open files allowed, the operator may need {needed} for {largest} hosts: raise `ulimit -n`"
        );
    }
    println!(
        "# Whole lab benchmark, {} (release operator; {} CPUs, {} GiB RAM; open files {open_files})\n",
        k8s_openapi::jiff::Timestamp::now(),
        std::thread::available_parallelism().map_or(0, usize::from),
        memory_gib()
    );
    let benches: Vec<Bench> = sizes
        .into_iter()
        .map(|hosts| Bench {
            hosts,
            requests: template
                .requests
                .unwrap_or_else(|| Bench::new(hosts).requests),
            ..template.bench.clone()
        })
        .collect();
    let (reports, not_carried_out) = bench_lab::run_each(&benches).await;
    if reports.len() > 1 {
        println!("## Scaling\n\n{}", bench_lab::scaling_table(&reports));
    }
    bench_lab::verdict(&reports, not_carried_out)
}

/// The sizes, and the rest of a [`Bench`] (the requests, when given, apply to every size).
struct Template {
    bench: Bench,
    requests: Option<usize>,
}

fn parse() -> Result<(Vec<usize>, Template)> {
    let mut sizes = vec![1_000, 3_000, 10_000];
    let mut template = Template {
        bench: Bench::new(0),
        requests: None,
    };
    for flag in bench_lab::flags(USAGE)? {
        let (bench, value) = (&mut template.bench, &flag.value);
        match flag.name.as_str() {
            "--hosts" => {
                sizes = value
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--hosts {value:?}: sizes like 1000,3000\n{USAGE}"))?;
            }
            "--requests" => template.requests = Some(usize::try_from(flag.number()?)?),
            "--arrival" => bench.arrival = Duration::from_secs(flag.number()?),
            "--boot" => bench.boot = Duration::from_secs(flag.number()?),
            "--timeout" => bench.timeout = Duration::from_secs(flag.number()?),
            "--seed" => bench.seed = flag.number()?,
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if sizes.is_empty() || sizes.contains(&0) || template.requests == Some(0) {
        bail!("sizes and requests must be positive\n{USAGE}");
    }
    Ok((sizes, template))
}

/// MemTotal, in GiB.
fn memory_gib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024 / 1024)
}

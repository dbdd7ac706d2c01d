//! The long forms of issue 9's tests 1 and 2, run by `cargo xtask chaos`: crashes and
//! failovers (`crash`), BMC faults (`faults`), or both (the default), each on a control
//! plane, a simulated lab and operator processes of its own. Prints the summary table and
//! exits 1 when an invariant was broken.

use anyhow::{Result, bail};
use labpods_tests::chaos::{self, Chaos, Report};

const USAGE: &str = "usage: labpods-chaos [crash|faults] [--leases N] [--hosts N] [--kills N]";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut scenarios = vec![
        Chaos::crash_long("chaos-crash"),
        Chaos::faults_long("chaos-faults"),
    ];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "crash" => scenarios.retain(|s| !s.faults),
            "faults" => scenarios.retain(|s| s.faults),
            "--leases" | "--hosts" | "--kills" => {
                let Some(value) = args.next().and_then(|v| v.parse::<usize>().ok()) else {
                    bail!("{arg} needs a number\n{USAGE}");
                };
                for scenario in &mut scenarios {
                    match arg.as_str() {
                        "--leases" => scenario.leases = value,
                        "--hosts" => {
                            scenario.hosts = value;
                            scenario.concurrent = scenario.concurrent.min(value / 2).max(1);
                        }
                        _ => scenario.kills = if scenario.faults { 0 } else { value },
                    }
                }
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let mut reports = Vec::new();
    for scenario in &scenarios {
        eprintln!(
            "==> {}: {} leases over {} hosts, {} kills, {} black holes{}",
            scenario.name,
            scenario.leases,
            scenario.hosts,
            scenario.kills,
            scenario.black_holes,
            if scenario.faults { ", BMC faults" } else { "" }
        );
        let report = chaos::run(scenario).await?;
        for (invariant, found) in &report.violations {
            for what in found {
                eprintln!("  [{invariant}] {what}");
            }
        }
        reports.push(report);
    }
    println!("{}", Report::table(&reports));
    let broken: usize = reports.iter().map(Report::violation_count).sum();
    if broken > 0 {
        bail!("{broken} invariant violations (listed above)");
    }
    Ok(())
}

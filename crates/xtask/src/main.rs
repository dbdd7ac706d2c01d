//! Project tasks: `cargo xtask <task>`. Each task lives in its own module.

mod bench;
mod bench_forecast;
mod bench_history;
mod bench_lab;
mod bench_scheduler;
mod chaos;
mod crds;
mod demo;
mod fuzz;
mod harness;
mod image;
mod kube_binaries;
#[path = "../../../tests/src/nested_cargo.rs"]
mod nested_cargo;
mod render;
mod test;
mod testenv;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  bench redfish    Redfish numbers for BENCHMARKS.md (release build; simulator req/s,
                   power-cycling 1,000 BMCs at 200 ms/call, calls per reimage)
  bench history [--hosts N] [--days N]
                   the allocation history's size and writes at 10,000 hosts, 400 days
  bench forecast [--traces N] [--hosts N]
                   kubectl lab forecast's error on synthetic growth traces
  bench lab [--hosts 1000,3000,10000] [--requests N] [--arrival SECS] [--boot SECS]
            [--timeout SECS] [--seed N]
                   the whole operator (release) at each lab size: a control plane, simulated
                   LabHosts, bookings arriving over minutes; bind/Ready latency, memory, CPU,
                   API requests and writes, reconciles, Redfish calls (BENCHMARKS.md)
  bench scheduler [--hosts N[,N...]] [--days N] [--seed N]
                   the scheduler on a synthetic year of bookings at 1,000, 3,000 and
                   10,000 hosts (release build): utilization against FCFS and an offline
                   bound, waits, passes and time per size
  bench reimage [--hosts N] [--latency MS] [--boot SECS] [--limits GLOBAL/PER_BMC,...]
                   1,000 hosts reimaged through the operator (release) at 200 ms per Redfish
                   call and 60 s boots, per pair of limits (64/2,128/2,128/1,256/2): hosts
                   per minute against the bound the limits allow (BMCs in labpods-sim)
  demo [--exit-when-ready]
                   a local lab: control plane, 8 simulated BMCs, the operator, a booking
  chaos [crash|faults] [--leases N] [--hosts N] [--kills N]
                   the long forms of the crash/failover and BMC fault tests (200 leases
                   over 40 simulated hosts, 50 SIGKILLs, black-holed leaders; BMC errors,
                   hangs, stuck power, wrong credentials), with a summary table
  fuzz [TARGET...] [--seconds N]
                   the cargo-fuzz targets of fuzz/ (redfish_response, podrequest_validation,
                   cidata_image), N seconds each (default 600); needs a nightly toolchain
  crds [--check]   write the CRD YAML in crds/ from the Rust types (--check: fail on drift)
  image [--out DIR] the OCI image of the release labpods binary, as an OCI layout
                   (default target/image/labpods; push it with crane)
  render [--check] write the kustomize base deploy/ from the Helm chart charts/labpods
  test [--kube MINOR] [ARGS]
                   install what the tests need and run them on real control planes: the
                   whole suite on the newest supported Kubernetes minor, the API, CRD,
                   admission and RBAC tests on the oldest too; --kube MINOR runs the
                   whole suite on that minor alone (ARGS go to cargo nextest run, e.g.
                   -E 'test(podrequest)', and select tests on the newest minor)
  testenv [--kube MINOR]
                   run a control plane with the CRDs installed until Ctrl-C";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        println!("{USAGE}");
        return Ok(());
    };
    match task.as_str() {
        "bench" => bench::run(rest),
        "chaos" => chaos::run(rest),
        "crds" => crds::run(rest),
        "demo" => demo::run(rest),
        "fuzz" => fuzz::run(rest),
        "image" => image::run(rest),
        "render" => render::run(rest),
        "test" => test::run(rest),
        "testenv" => testenv::run(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

/// The workspace root, whatever directory cargo was started from.
pub fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

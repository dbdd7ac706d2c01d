//! `cargo xtask bench lab [--hosts 1000,3000,10000] [--requests N] [--arrival SECS]
//! [--boot SECS] [--timeout SECS] [--seed N]` and `cargo xtask bench reimage [--hosts N]
//! [--latency MS] [--boot SECS] [--limits GLOBAL/PER_BMC,...]`: issue 12's benchmarks 1 and 2,
//! the whole operator at each lab size and reimaging a lab under each pair of Redfish limits
//! (see labpods_tests::bench_lab). Builds the harness, the operator and the simulator, all
//! --release, and the newest control plane if needed; then runs the harness, which prints a
//! table per run and the figures across runs.

use anyhow::{Result, bail};

use crate::harness::{OPERATOR, SIMULATOR};

/// Runs `harness` (`labpods-bench-lab` or `labpods-bench-reimage`) with `args`.
pub fn run(harness: &str, args: &[String]) -> Result<()> {
    let status = crate::harness::run(harness, true, &[OPERATOR, SIMULATOR], args)?;
    if !status.success() {
        bail!(
            "{harness} did not complete ({status}): see the messages above; the operator's logs are in target/bench-lab/"
        );
    }
    Ok(())
}

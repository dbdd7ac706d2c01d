//! `cargo xtask bench lab [--hosts 1000,3000,10000] [--requests N] [--arrival SECS]
//! [--boot SECS] [--timeout SECS] [--seed N]`: issue 12's benchmark 1, the whole operator at
//! each lab size (see labpods_tests::bench_lab). Builds `labpods-bench-lab`, the operator and
//! the simulator, all --release, and the newest control plane if needed; then runs the
//! harness, which prints a table per size and the scaling of each figure across sizes.

use anyhow::{Result, bail};

use crate::harness::{OPERATOR, SIMULATOR};

pub fn run(args: &[String]) -> Result<()> {
    let status = crate::harness::run("labpods-bench-lab", true, &[OPERATOR, SIMULATOR], args)?;
    if !status.success() {
        bail!(
            "the lab benchmark did not complete ({status}): see the messages above; the operator's logs are in target/bench-lab/"
        );
    }
    Ok(())
}

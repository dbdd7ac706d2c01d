//! `cargo xtask chaos [crash|faults] [--leases N] [--hosts N] [--kills N]`: the long forms of
//! the tests that try to break the operator (issue 9, tests 1 and 2; the suite runs their
//! short forms in tests/tests/e2e_chaos.rs). Builds the control plane if needed, then runs
//! `labpods-chaos`, which prints a summary table: leases, kills, failovers, violations per
//! invariant, median convergence.

use anyhow::{Result, bail};

use crate::harness::OPERATOR;

pub fn run(args: &[String]) -> Result<()> {
    let status = crate::harness::run("labpods-chaos", false, &[OPERATOR], args)?;
    if !status.success() {
        bail!("chaos run failed ({status}); operator logs are in target/e2e-logs/chaos-*/");
    }
    Ok(())
}

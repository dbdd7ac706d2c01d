//! `cargo xtask chaos [crash|faults] [--leases N] [--hosts N] [--kills N]`: the long forms of
//! the tests that try to break the operator (issue 9, tests 1 and 2; the suite runs their
//! short forms in tests/tests/e2e_chaos.rs). Builds the control plane if needed, then runs
//! `labpods-chaos`, which prints a summary table: leases, kills, failovers, violations per
//! invariant, median convergence.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::kube_binaries::{ALL_COMPONENTS, KubeBinaries};
use crate::testenv::{cargo, debug_bin};
use crate::workspace_root;

pub fn run(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let binaries = KubeBinaries::install(&root, "newest", ALL_COMPONENTS)?;
    let status = Command::new(cargo())
        .args([
            "build",
            "--package",
            "labpods-tests",
            "--bin",
            "labpods-chaos",
        ])
        .args(["--package", "labpods-operator", "--bin", "labpods"])
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building labpods-chaos failed ({status})");
    }
    let mut command = Command::new(debug_bin(&root).join("labpods-chaos"));
    command.args(args).current_dir(&root);
    binaries.apply_env(&mut command);
    let status = command.status().context("running labpods-chaos")?;
    if !status.success() {
        bail!("chaos run failed ({status}); operator logs are in target/e2e-logs/chaos-*/");
    }
    Ok(())
}

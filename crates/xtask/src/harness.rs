//! The long-running harnesses of the tests crate (`labpods-chaos`, `labpods-bench-lab`):
//! built together with the binaries they start (the operator, the simulator), then run with
//! the newest control plane's binaries named in their environment.

use std::process::{Command, ExitStatus};

use anyhow::{Context, Result, bail};

use crate::kube_binaries::{ALL_COMPONENTS, KubeBinaries};
use crate::testenv::{cargo, target_bin};
use crate::workspace_root;

/// The operator's binary, which every harness starts.
pub const OPERATOR: (&str, &str) = ("labpods-operator", "labpods");
/// The simulator as a process of its own (labs too big for one process's open files).
pub const SIMULATOR: (&str, &str) = ("labpods-sim", "labpods-sim");

/// Builds (cargo's progress shown) and runs `bin` of labpods-tests with `args`, the
/// (package, binary) pairs it starts built beside it; `release` for all. Returns how the
/// harness exited.
pub fn run(
    bin: &str,
    release: bool,
    starts: &[(&str, &str)],
    args: &[String],
) -> Result<ExitStatus> {
    let root = workspace_root();
    let binaries = KubeBinaries::install(&root, "newest", ALL_COMPONENTS)?;
    let mut build = cargo();
    build.arg("build");
    if release {
        build.arg("--release");
    }
    build.args(["--package", "labpods-tests", "--bin", bin]);
    for (package, binary) in starts {
        build.args(["--package", package, "--bin", binary]);
    }
    let status = build
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building {bin} failed ({status})");
    }
    let profile = if release { "release" } else { "debug" };
    let mut command = Command::new(target_bin(&root, profile).join(bin));
    command.args(args).current_dir(&root);
    binaries.apply_env(&mut command);
    command.status().with_context(|| format!("running {bin}"))
}

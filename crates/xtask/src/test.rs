//! `cargo xtask test [NEXTEST ARGS]`: the README's test command. Installs what the tests
//! need, starts one control plane for all of them, runs `cargo nextest run --workspace`,
//! stops the control plane and exits with nextest's status.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::testenv::{SharedControlPlane, build_testenv, cargo, install_control_plane};
use crate::workspace_root;

/// Read by the tests (labpods_tests::KUBECONFIG_ENV).
const KUBECONFIG_ENV: &str = "LABPODS_TEST_KUBECONFIG";
/// Read by the Redfish interoperability tests: the sushy-tools virtualenv.
const VENV_ENV: &str = "LABPODS_VENV";

pub fn run(args: &[String]) -> Result<()> {
    let root = workspace_root();
    phase("control plane binaries", || install_control_plane(&root))?;
    let venv = phase("Python virtualenv", || python_venv(&root))?;
    phase("cargo-nextest", ensure_nextest)?;
    phase("build labpods-testenv", || build_testenv(&root))?;
    let mut plane = phase("start the shared control plane", || {
        SharedControlPlane::start(&root)
    })?;
    let tests = phase("cargo nextest run --workspace", || {
        let mut nextest = Command::new(cargo());
        nextest
            .args(["nextest", "run", "--workspace"])
            .args(args)
            .current_dir(&root)
            .env(KUBECONFIG_ENV, &plane.kubeconfig);
        if let Some(venv) = &venv {
            nextest.env(VENV_ENV, venv);
        }
        nextest.status().context("running cargo nextest")
    })?;
    phase("stop the shared control plane", || plane.stop())?;
    if !tests.success() {
        // nextest has said what failed; keep its exit code for CI.
        std::process::exit(tests.code().unwrap_or(1));
    }
    Ok(())
}

fn phase<T>(name: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("==> {name}");
    let started = Instant::now();
    let result = work();
    let outcome = if result.is_ok() { "done" } else { "failed" };
    eprintln!(
        "==> {name}: {outcome} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    result.with_context(|| format!("cargo xtask test: {name}"))
}

/// Runs tests/support/python-venv.sh when the project has one; the last line it prints is
/// the virtualenv's path.
fn python_venv(root: &Path) -> Result<Option<PathBuf>> {
    let script = root.join("tests/support/python-venv.sh");
    if !script.exists() {
        eprintln!("    no {}: nothing to install", script.display());
        return Ok(None);
    }
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed ({})", script.display(), output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let venv = stdout
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(PathBuf::from)
        .filter(|path| path.is_dir())
        .with_context(|| format!("{} printed no virtualenv directory", script.display()))?;
    eprintln!("    {VENV_ENV}={}", venv.display());
    Ok(Some(venv))
}

fn ensure_nextest() -> Result<()> {
    let installed = Command::new(cargo())
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if installed {
        return Ok(());
    }
    eprintln!("    installing cargo-nextest from crates.io (a few minutes)");
    let status = Command::new(cargo())
        .args(["install", "cargo-nextest", "--locked"])
        .status()
        .context("running cargo install cargo-nextest")?;
    if !status.success() {
        bail!("cargo install cargo-nextest failed ({status})");
    }
    Ok(())
}

//! The Kubernetes parts every task runs, built from Go modules by
//! tests/support/build-control-plane.sh (which owns the supported versions).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Read by the test harness (labpods_tests::binaries): where this run's binaries are.
const BIN_ENV: &str = "LABPODS_K8S_BIN";
const KUBECTL_ENV: &str = "LABPODS_KUBECTL";

/// What the API tests of a minor need; the whole suite also needs the controller-manager.
pub const API_COMPONENTS: &[&str] = &["kube-apiserver", "etcd"];
pub const ALL_COMPONENTS: &[&str] = &["kube-apiserver", "kube-controller-manager", "etcd"];
/// What the test suite adds for the chart's Deployment on a node (tests/tests/kubelet.rs):
/// the scheduler, the kubelet and the pod sandbox's pause.
pub const NODE_COMPONENTS: &[&str] = &["kube-scheduler", "kubelet", "pause"];

/// One minor's binaries, and the newest minor's kubectl (the one users have).
#[derive(Debug, Clone)]
pub struct KubeBinaries {
    /// The full version, e.g. `1.37.2`.
    pub version: String,
    pub bin: PathBuf,
    pub kubectl: PathBuf,
}

impl KubeBinaries {
    /// Builds (once per machine: minutes the first time) `components` of `minor` and the
    /// newest kubectl.
    pub fn install(root: &Path, minor: &str, components: &[&str]) -> Result<Self> {
        let bin = run_script(root, minor, components)?;
        let kubectl = run_script(root, "newest", &["kubectl"])?.join("kubectl");
        // The script caches each version in `k8s-<version>/bin`.
        let version = bin
            .parent()
            .and_then(Path::file_name)
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix("k8s-"))
            .unwrap_or(minor)
            .to_string();
        Ok(Self {
            version,
            bin,
            kubectl,
        })
    }

    /// Points a process (the tests, labpods-testenv) at these binaries.
    pub fn apply_env(&self, command: &mut Command) {
        command
            .env(BIN_ENV, &self.bin)
            .env(KUBECTL_ENV, &self.kubectl);
    }
}

/// The supported minors, newest first.
pub fn supported_minors(root: &Path) -> Result<Vec<String>> {
    let output = script(root)
        .arg("--minors")
        .stderr(Stdio::inherit())
        .output()
        .context("running build-control-plane.sh --minors")?;
    if !output.status.success() {
        bail!("build-control-plane.sh --minors failed ({})", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

fn script(root: &Path) -> Command {
    let mut command = Command::new("bash");
    command.arg(root.join("tests/support/build-control-plane.sh"));
    command
}

/// The script's progress goes to our stderr; its last line of stdout is the directory.
fn run_script(root: &Path, minor: &str, components: &[&str]) -> Result<PathBuf> {
    let output = script(root)
        .arg(minor)
        .args(components)
        .stderr(Stdio::inherit())
        .output()
        .context("running tests/support/build-control-plane.sh")?;
    if !output.status.success() {
        bail!(
            "building Kubernetes {minor} ({}) failed ({}); see the messages above",
            components.join(", "),
            output.status
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .map(|line| PathBuf::from(line.trim()))
        .context("build-control-plane.sh printed no directory")
}

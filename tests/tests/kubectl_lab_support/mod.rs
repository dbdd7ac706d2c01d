#![allow(dead_code)] // each test binary that includes this module uses a part of it
//! Shared by the kubectl_lab* test binaries: the plugin binary, built once per process, and
//! a run of it as a user types it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail, ensure};
use labpods_tests::workspace_root;

/// What one run of the plugin printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Result<String> {
        ensure!(
            self.code == 0,
            "kubectl lab exited {}: {}",
            self.code,
            self.stderr
        );
        Ok(self.stdout)
    }
}

/// The plugin binary, built once per test process (a test must never run a stale one).
pub fn plugin() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build() -> Result<PathBuf> {
    let root = workspace_root();
    let output = labpods_tests::nested_cargo::command()
        .args(["build", "--quiet", "--package", "kubectl-lab", "--bins"])
        .current_dir(&root)
        .output()
        .context("running cargo build -p kubectl-lab")?;
    if !output.status.success() {
        bail!(
            "cargo build -p kubectl-lab failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let binary = target.join("debug").join("kubectl-lab");
    ensure!(
        binary.is_file(),
        "no {} after cargo build",
        binary.display()
    );
    Ok(binary)
}

/// `kubectl-lab --kubeconfig K ARGS...` with no terminal, so no colour.
pub async fn lab(kubeconfig: &Path, args: &[&str]) -> Result<Run> {
    lab_with_env(kubeconfig, args, &[]).await
}

/// [`lab`] with more environment (e.g. a PATH with a fake program first).
pub async fn lab_with_env(
    kubeconfig: &Path,
    args: &[&str],
    env: &[(&str, std::ffi::OsString)],
) -> Result<Run> {
    let binary = plugin()?;
    let output = tokio::process::Command::new(binary)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("KUBECONFIG")
        .output()
        .await
        .context("running kubectl-lab")?;
    Ok(Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

//! The real helm CLI (built from Go modules by tests/support/build-control-plane.sh, beside
//! kubectl) and promtool (Debian's prometheus, installed by tests/support/promtool.sh), as the
//! chart, kustomize and alert tests run them.
//!
//! helm is found the way [`crate::binaries::kubectl`] finds kubectl: [`HELM_ENV`], else the
//! control plane's bin directory, else the build script's `newest helm` (once per process).
//! Each [`Helm`] keeps its config, cache and data in a temporary directory, so no test reads
//! or writes the user's ~/.config/helm.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::binaries;
use crate::workspace_root;

/// helm, when it is not beside kubectl.
pub const HELM_ENV: &str = "LABPODS_HELM";
/// The release namespace of the shipped install (the operator's identity is
/// `system:serviceaccount:<it>:labpods`).
pub const NAMESPACE: &str = "labpods-system";

/// `charts/labpods`.
pub fn chart_dir() -> PathBuf {
    workspace_root().join("charts/labpods")
}

/// The helm binary: [`HELM_ENV`], the control plane's bin directory, or built (a minute cold).
pub fn helm() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(HELM_ENV) {
        return Ok(PathBuf::from(path));
    }
    if let Ok(dir) = binaries::kubernetes_bin_dir() {
        let beside = dir.join("helm");
        if beside.is_file() {
            return Ok(beside);
        }
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            support_script("build-control-plane.sh", &["newest", "helm"])
                .map(|dir| dir.join("helm"))
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// promtool, installed from Debian's prometheus package when missing.
pub fn promtool() -> Result<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| support_script("promtool.sh", &[]).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Runs `tests/support/<script> ARGS`; its last line of stdout is the path it reports.
pub(crate) fn support_script(script: &str, args: &[&str]) -> Result<PathBuf> {
    let path = workspace_root().join("tests/support").join(script);
    let output = Command::new("bash")
        .arg(&path)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last() {
        Some(line) if output.status.success() => Ok(PathBuf::from(line.trim())),
        _ => bail!(
            "{} {} failed ({})",
            path.display(),
            args.join(" "),
            output.status
        ),
    }
}

/// What a helm run printed and how it ended.
#[derive(Debug, Clone)]
pub struct HelmOutput {
    pub args: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl HelmOutput {
    /// Stdout if helm succeeded, else an error with its stderr.
    pub fn ok(self) -> Result<String> {
        if self.success {
            Ok(self.stdout)
        } else {
            bail!("helm {} failed:\n{}", self.args, self.stderr)
        }
    }
}

/// helm with a private home, optionally against a cluster.
#[derive(Debug)]
pub struct Helm {
    binary: PathBuf,
    kubeconfig: Option<PathBuf>,
    home: tempfile::TempDir,
}

impl Helm {
    /// helm without a cluster (lint, template).
    pub fn offline() -> Result<Self> {
        Ok(Self {
            binary: helm()?,
            kubeconfig: None,
            home: tempfile::tempdir()?,
        })
    }

    /// helm against the cluster of `kubeconfig` (install, upgrade, uninstall).
    pub fn with_kubeconfig(kubeconfig: &Path) -> Result<Self> {
        Ok(Self {
            kubeconfig: Some(kubeconfig.to_path_buf()),
            ..Self::offline()?
        })
    }

    pub async fn run<I, S>(&self, args: I) -> Result<HelmOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .args(&args)
            .env("HELM_CONFIG_HOME", self.home.path().join("config"))
            .env("HELM_CACHE_HOME", self.home.path().join("cache"))
            .env("HELM_DATA_HOME", self.home.path().join("data"))
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(kubeconfig) = &self.kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        let output = command
            .output()
            .await
            .with_context(|| format!("running {}", self.binary.display()))?;
        Ok(HelmOutput {
            args: args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// `helm template labpods <chart> -n <namespace> EXTRA...`, as objects.
    pub async fn template(
        &self,
        chart: &Path,
        namespace: &str,
        extra: &[&str],
    ) -> Result<Vec<Value>> {
        let mut args: Vec<&OsStr> = vec![
            "template".as_ref(),
            "labpods".as_ref(),
            chart.as_os_str(),
            "--namespace".as_ref(),
            namespace.as_ref(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        let yaml = self.run(args).await?.ok()?;
        parse_objects(&yaml)
    }
}

/// The objects of a YAML stream (empty documents dropped).
pub fn parse_objects(yaml: &str) -> Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value = <Value as serde::Deserialize>::deserialize(document)?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// The one object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .with_context(|| format!("no {kind} {name} rendered"))
}

/// The previous chart release, as a chart repository served it: `helm package` of
/// charts/labpods at 0.1.0 (see tests/data/charts/README.md).
pub fn previous_chart() -> PathBuf {
    workspace_root().join("tests/data/charts/labpods-0.1.0.tgz")
}

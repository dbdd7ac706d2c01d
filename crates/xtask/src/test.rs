//! `cargo xtask test [--kube MINOR] [NEXTEST ARGS]`: the README's test command. Installs
//! what the tests need, then for each Kubernetes minor it tests starts one control plane,
//! runs `cargo nextest run --workspace` against it and stops it; exits non-zero if any run
//! failed.
//!
//! Without `--kube` the whole suite runs on the newest supported minor and the API tests
//! ([`API_TESTS`]: CRDs, schema and CEL validation, admission policy, RBAC) on the oldest,
//! whose plane is etcd and kube-apiserver alone. Nextest arguments select tests on the
//! newest minor only; `--kube MINOR` runs the whole suite (or the selection) on that minor.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::kube_binaries::{
    ALL_COMPONENTS, API_COMPONENTS, KubeBinaries, NODE_COMPONENTS, supported_minors,
};
use crate::testenv::{SharedControlPlane, build_testenv, cargo};
use crate::workspace_root;

/// Read by the tests (labpods_tests::KUBECONFIG_ENV).
const KUBECONFIG_ENV: &str = "LABPODS_TEST_KUBECONFIG";
/// Read by the Redfish interoperability tests: the sushy-tools virtualenv.
const VENV_ENV: &str = "LABPODS_VENV";
/// The tests that need only the API machinery of a minor (no controller-manager, no operator).
const API_TESTS: &str = "package(labpods-tests) & (binary(crds) | binary(schema_validation) \
    | binary(kubectl_output) | binary(tenancy) | binary(control_plane)) \
    & !test(/^e2e_/) & !test(/controller_manager/)";

/// One nextest run on one minor's control plane.
#[derive(Debug)]
struct Run {
    binaries: KubeBinaries,
    /// Extra nextest arguments: the user's, or the API-tests filter.
    args: Vec<String>,
}

pub fn run(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let (kube, nextest_args) = split_kube(args)?;
    let runs = phase(
        "control plane binaries (built from Go modules once per machine)",
        || plan(&root, kube.as_deref(), nextest_args),
    )?;
    let venv = phase("Python virtualenv", || python_venv(&root))?;
    phase("cargo-nextest", ensure_nextest)?;
    phase("build labpods-testenv", || build_testenv(&root))?;
    if runs
        .iter()
        .all(|run| run.args.is_empty() || run.args == api_filter())
    {
        // The whole suite: build what single tests would otherwise build inside their time
        // limit on a cold machine (a release build, Go tools, a browser).
        phase(
            "tools the tests run: helm, crane, registry, chromium, containerd and CNI plugins",
            || tools(&root),
        )?;
        phase(
            "cargo build --release -p labpods-operator (the image test)",
            || crate::image::build_release(&root).map(drop),
        )?;
    }
    let mut failed = vec![];
    for run in &runs {
        let version = &run.binaries.version;
        let mut plane = phase(
            &format!("start the Kubernetes {version} control plane"),
            || SharedControlPlane::start(&root, &run.binaries),
        )?;
        let tests = phase(
            &format!(
                "cargo nextest run --workspace {} (Kubernetes {version})",
                run.args.join(" ")
            ),
            || {
                let mut nextest = cargo();
                nextest
                    .args(["nextest", "run", "--workspace"])
                    .args(&run.args)
                    .current_dir(&root)
                    .env(KUBECONFIG_ENV, &plane.kubeconfig);
                run.binaries.apply_env(&mut nextest);
                if let Some(venv) = &venv {
                    nextest.env(VENV_ENV, venv);
                }
                nextest.status().context("running cargo nextest")
            },
        )?;
        phase(
            &format!("stop the Kubernetes {version} control plane"),
            || plane.stop(),
        )?;
        if !tests.success() {
            failed.push((version.clone(), tests.code().unwrap_or(1)));
        }
    }
    for run in &runs {
        let version = &run.binaries.version;
        let outcome = match failed.iter().find(|(v, _)| v == version) {
            Some(_) => "FAILED",
            None => "passed",
        };
        eprintln!("==> Kubernetes {version}: {outcome}");
    }
    if let Some((_, code)) = failed.first() {
        // nextest has said what failed; keep its exit code for CI.
        std::process::exit(*code);
    }
    Ok(())
}

/// `--kube MINOR` (anywhere before `--`) and the rest, for nextest.
fn split_kube(args: &[String]) -> Result<(Option<String>, Vec<String>)> {
    let mut kube = None;
    let mut rest = vec![];
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--kube" {
            kube = Some(
                iter.next()
                    .context("--kube needs a minor, e.g. --kube 1.35")?
                    .clone(),
            );
        } else if let Some(minor) = arg.strip_prefix("--kube=") {
            kube = Some(minor.to_string());
        } else {
            rest.push(arg.clone());
        }
    }
    Ok((kube, rest))
}

fn plan(root: &Path, kube: Option<&str>, nextest_args: Vec<String>) -> Result<Vec<Run>> {
    let minors = supported_minors(root)?;
    if let Some(minor) = kube {
        if !minors.iter().any(|m| m == minor) {
            bail!(
                "Kubernetes {minor} is not supported; supported minors: {}",
                minors.join(", ")
            );
        }
        let binaries = KubeBinaries::install(root, minor, &suite_components())?;
        return Ok(vec![Run {
            binaries,
            args: nextest_args,
        }]);
    }
    let (Some(newest), Some(oldest)) = (minors.first(), minors.last()) else {
        bail!("build-control-plane.sh names no supported minor");
    };
    let api_only_on_oldest = nextest_args.is_empty() && oldest != newest;
    let mut runs = vec![Run {
        binaries: KubeBinaries::install(root, newest, &suite_components())?,
        args: nextest_args,
    }];
    if api_only_on_oldest {
        runs.push(Run {
            binaries: KubeBinaries::install(root, oldest, API_COMPONENTS)?,
            args: api_filter(),
        });
    }
    Ok(runs)
}

/// What the whole suite runs: the control plane and a node's parts.
fn suite_components() -> Vec<&'static str> {
    ALL_COMPONENTS
        .iter()
        .chain(NODE_COMPONENTS)
        .copied()
        .collect()
}

fn api_filter() -> Vec<String> {
    vec!["-E".to_string(), API_TESTS.to_string()]
}

/// Runs a script of tests/support that prints what it made, with its progress shown.
fn support_script(root: &Path, script: &str, args: &[&str]) -> Result<()> {
    let status = Command::new("bash")
        .arg(root.join("tests/support").join(script))
        .args(args)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running tests/support/{script}"))?;
    if !status.success() {
        bail!(
            "tests/support/{script} {} failed ({status})",
            args.join(" ")
        );
    }
    Ok(())
}

fn tools(root: &Path) -> Result<()> {
    support_script(
        root,
        "build-control-plane.sh",
        &["newest", "helm", "crane", "registry"],
    )?;
    support_script(root, "chromium.sh", &[])?;
    // A node for the chart's Deployment (tests/tests/kubelet.rs): Debian's containerd, runc
    // and CNI plugins.
    support_script(root, "kubelet-node.sh", &[])
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
    let installed = cargo()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if installed {
        return Ok(());
    }
    eprintln!("    installing cargo-nextest from crates.io (a few minutes)");
    let status = cargo()
        // Without the self-updater: fewer crates to compile on a cold machine.
        .args([
            "install",
            "cargo-nextest",
            "--locked",
            "--no-default-features",
        ])
        .status()
        .context("running cargo install cargo-nextest")?;
    if !status.success() {
        bail!("cargo install cargo-nextest failed ({status})");
    }
    Ok(())
}

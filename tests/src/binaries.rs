//! Finds the control-plane binaries and kubectl.
//!
//! Every Kubernetes part is built from Go modules by tests/support/build-control-plane.sh,
//! which also owns the supported versions. `cargo xtask test` runs it and names the result in
//! [`BIN_ENV`] (and [`KUBECTL_ENV`]); a test process started without the xtask runs it itself,
//! for the minor in [`KUBE_ENV`] (default: the newest), once per process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The directory with kube-apiserver, etcd and, where built, kube-controller-manager.
pub const BIN_ENV: &str = "LABPODS_K8S_BIN";
/// kubectl (the newest minor's), when it is not in [`BIN_ENV`].
pub const KUBECTL_ENV: &str = "LABPODS_KUBECTL";
/// The Kubernetes minor (`1.35`, `newest`, `oldest`) a test process builds or finds itself.
pub const KUBE_ENV: &str = "LABPODS_KUBE";

#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    /// Absent on a plane built for the API tests alone: CRDs, admission and RBAC need only
    /// etcd and the apiserver.
    pub kube_controller_manager: Option<PathBuf>,
    /// Only a control plane for nodes runs it ([`crate::ControlPlaneConfig::for_nodes`]).
    pub kube_scheduler: Option<PathBuf>,
    /// Where they were found.
    pub dir: PathBuf,
}

impl Binaries {
    /// Finds every binary, or says how to get the missing one.
    pub fn locate() -> Result<Self> {
        Self::locate_in(&kubernetes_bin_dir()?)
    }

    /// The same, with the binaries in `bin`.
    pub fn locate_in(bin: &Path) -> Result<Self> {
        Ok(Self {
            kube_apiserver: in_dir(bin, "kube-apiserver")?,
            etcd: in_dir(bin, "etcd")?,
            kube_controller_manager: in_dir(bin, "kube-controller-manager").ok(),
            kube_scheduler: in_dir(bin, "kube-scheduler").ok(),
            dir: bin.to_path_buf(),
        })
    }
}

/// kubectl: [`KUBECTL_ENV`], else the one beside the control plane.
pub fn kubectl() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(KUBECTL_ENV) {
        return Ok(PathBuf::from(path));
    }
    in_dir(&kubernetes_bin_dir()?, "kubectl")
}

/// [`BIN_ENV`], else what the build script prints for [`KUBE_ENV`] (building it the first
/// time on this machine: minutes).
pub fn kubernetes_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        return Ok(PathBuf::from(dir));
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let minor = std::env::var(KUBE_ENV).unwrap_or_else(|_| "newest".to_string());
            build(&minor).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(Error::StartFailedEarlier)
}

/// Runs the build script for `minor` (every component but helm); its last line is the
/// directory.
fn build(minor: &str) -> Result<PathBuf> {
    let script = crate::workspace_root().join("tests/support/build-control-plane.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(minor)
        .stderr(Stdio::inherit())
        .output()
        .map_err(Error::io(format!("running {}", script.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last() {
        Some(dir) if output.status.success() => Ok(PathBuf::from(dir.trim())),
        _ => Err(Error::MissingBinary {
            binary: "kube-apiserver",
            looked_in: format!("the output of {} {minor}", script.display()),
        }),
    }
}

/// `name`, built beside the running executable by the same `cargo build` (with the same
/// profile): what a harness binary runs of the workspace's other binaries.
pub fn beside_this_executable(name: &str) -> anyhow::Result<PathBuf> {
    use anyhow::Context as _;
    let exe = std::env::current_exe().context("finding the running executable")?;
    let built = exe.with_file_name(name);
    anyhow::ensure!(
        built.is_file(),
        "no {name} beside {}: build it with the same cargo build",
        exe.display()
    );
    Ok(built)
}

fn in_dir(dir: &Path, binary: &'static str) -> Result<PathBuf> {
    let path = dir.join(binary);
    if is_executable(&path) {
        Ok(path)
    } else {
        Err(Error::MissingBinary {
            binary,
            looked_in: dir.display().to_string(),
        })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// `cargo xtask image --out DIR`: the operator's image as an OCI layout in `out` (a release
/// build of the labpods binary, cached by cargo after the first); the reference and the
/// digest it printed.
pub fn build_image(out: &Path) -> anyhow::Result<(String, String)> {
    use anyhow::Context;
    let output = crate::nested_cargo::command()
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "image",
            "--out",
        ])
        .arg(out)
        .current_dir(crate::workspace_root())
        .stdin(Stdio::null())
        .output()
        .context("running cargo xtask image")?;
    anyhow::ensure!(
        output.status.success(),
        "cargo xtask image failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let field = |key: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::to_string)
            .with_context(|| format!("no {key:?} line in {printed}"))
    };
    Ok((field("image ")?, field("digest ")?))
}

#[cfg(test)]
mod tests {
    use super::Binaries;

    #[test]
    fn a_missing_binary_says_how_to_install_it() -> std::io::Result<()> {
        let empty = tempfile::tempdir()?;
        let Err(error) = Binaries::locate_in(empty.path()) else {
            panic!("found binaries in an empty directory");
        };
        let message = error.to_string();
        assert!(message.contains("kube-apiserver not found"), "{message}");
        assert!(message.contains("cargo xtask test"), "{message}");
        assert!(message.contains("build-control-plane.sh"), "{message}");
        Ok(())
    }

    #[test]
    fn a_plane_for_the_api_tests_needs_no_controller_manager() -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        for name in ["kube-apiserver", "etcd"] {
            let path = dir.path().join(name);
            std::fs::write(&path, "#!/bin/sh\n")?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        let found = Binaries::locate_in(dir.path()).map_err(std::io::Error::other)?;
        assert_eq!(found.kube_apiserver, dir.path().join("kube-apiserver"));
        assert!(found.kube_controller_manager.is_none());
        Ok(())
    }
}

//! Finds the control-plane binaries and kubectl.
//!
//! kube-apiserver and kube-controller-manager come from tests/support/build-control-plane.sh
//! (no registry ships them), etcd and kubectl from the PATH.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The Kubernetes version the build script produces.
pub const KUBERNETES_VERSION: &str = "1.20.2";

#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
}

impl Binaries {
    /// Finds every binary, or says how to get the missing one.
    pub fn locate() -> Result<Self> {
        Self::locate_in(&kubernetes_bin_dir())
    }

    /// The same, with the Kubernetes binaries in `bin`.
    pub fn locate_in(bin: &Path) -> Result<Self> {
        Ok(Self {
            kube_apiserver: in_dir(bin, "kube-apiserver")?,
            kube_controller_manager: in_dir(bin, "kube-controller-manager")?,
            etcd: on_path("etcd")?,
        })
    }
}

/// kubectl from the PATH, or the one the build script installs beside the control plane
/// when the machine has none.
pub fn kubectl() -> Result<PathBuf> {
    on_path("kubectl").or_else(|_| in_dir(&kubernetes_bin_dir(), "kubectl"))
}

/// `$LABPODS_K8S_BIN`, else `$LABPODS_CACHE/k8s-<version>/bin`, else under
/// `~/.cache/labpods`: the same rule as the build script.
pub fn kubernetes_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LABPODS_K8S_BIN") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("LABPODS_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|home| home.join(".cache/labpods")))
        .unwrap_or_else(|| PathBuf::from("/var/cache/labpods"));
    cache.join(format!("k8s-{KUBERNETES_VERSION}")).join("bin")
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

fn on_path(binary: &'static str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| Error::MissingBinary {
            binary,
            looked_in: "PATH".to_string(),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
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
}

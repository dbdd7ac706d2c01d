//! The cluster a test runs on: the one `cargo xtask test` shares with every test, or,
//! when tests run without it (`cargo nextest run -p labpods-tests`), one started for this
//! test process and stopped when the process exits.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kube::Client;

use crate::cleanup::DeleteOnDrop;
use crate::control_plane::{ControlPlane, ControlPlaneConfig};
use crate::crds::labpods_crds;
use crate::error::{Error, Result};
use crate::kubeconfig::{client_for, config_for};
use crate::kubectl::Kubectl;
use crate::namespace::TestNamespace;

/// Set by `cargo xtask test` to the shared control plane's admin kubeconfig.
pub const KUBECONFIG_ENV: &str = "LABPODS_TEST_KUBECONFIG";

/// A handle on the test cluster; cheap to get, every test gets its own.
#[derive(Debug, Clone)]
pub struct TestCluster {
    kubeconfig: PathBuf,
}

impl TestCluster {
    /// The shared cluster, or this process's own (started on first use, with the labpods
    /// CRDs installed). Fails with how to install the control plane if it is missing.
    pub fn get() -> Result<Self> {
        if let Some(kubeconfig) = std::env::var_os(KUBECONFIG_ENV) {
            return Ok(Self {
                kubeconfig: PathBuf::from(kubeconfig),
            });
        }
        let kubeconfig = process_control_plane()?;
        Ok(Self { kubeconfig })
    }

    /// An admin (system:masters) kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// An admin client. Make one per test: a client belongs to the runtime that made it.
    pub async fn client(&self) -> Result<Client> {
        client_for(&self.kubeconfig).await
    }

    /// A client that acts as `user` in `groups` (by impersonation), for RBAC tests.
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Result<Client> {
        let mut config = config_for(&self.kubeconfig).await?;
        config.auth_info.impersonate = Some(user.to_string());
        config.auth_info.impersonate_groups =
            Some(groups.iter().map(|group| group.to_string()).collect());
        Ok(Client::try_from(config)?)
    }

    /// kubectl with the admin kubeconfig.
    pub fn kubectl(&self) -> Result<Kubectl> {
        Kubectl::new(&self.kubeconfig)
    }

    /// Deletes `target` (`kind/name`, e.g. `labhost/rack1-node3`) when the guard drops.
    pub fn delete_on_drop(&self, target: impl Into<String>) -> DeleteOnDrop {
        DeleteOnDrop::new(self.kubeconfig.clone(), target.into())
    }

    /// A fresh namespace named after `prefix` (the test's name, say), deleted on drop.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace> {
        TestNamespace::create(&self.client().await?, self.kubeconfig.clone(), prefix).await
    }
}

/// Starts this process's control plane once. It lives in a `static`, so it is never
/// dropped: its components stop when this process exits and closes their lifelines.
fn process_control_plane() -> Result<PathBuf> {
    static PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    let plane = PLANE.get_or_init(|| start_in_own_runtime().map_err(|err| err.to_string()));
    match plane {
        Ok(plane) => Ok(plane.kubeconfig().to_path_buf()),
        Err(message) => Err(Error::StartFailedEarlier(message.clone())),
    }
}

/// Callers may be inside a test's runtime, which cannot be blocked on: start on a thread
/// with a runtime of its own, which ends with it (nothing started needs it afterwards).
fn start_in_own_runtime() -> Result<ControlPlane> {
    let started = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::io("starting a tokio runtime"))?;
        runtime.block_on(ControlPlane::start(
            ControlPlaneConfig::default().crds(labpods_crds()),
        ))
    })
    .join();
    started.unwrap_or_else(|_| {
        Err(Error::StartFailedEarlier(
            "the thread starting the control plane panicked".to_string(),
        ))
    })
}

//! Test support: a real control plane (etcd, kube-apiserver, kube-controller-manager on
//! 127.0.0.1, RBAC on) and the helpers the integration and e2e tests share.
//!
//! ```no_run
//! # async fn example() -> labpods_tests::Result<()> {
//! let cluster = labpods_tests::TestCluster::get()?;
//! let namespace = cluster.namespace("my-test").await?;
//! let output = cluster
//!     .kubectl()?
//!     .namespace(namespace.name())
//!     .run(["get", "podrequests"])
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Under `cargo xtask test` every test shares one control plane (named by
//! [`KUBECONFIG_ENV`]); otherwise each test process starts its own on first use.

pub mod bench_lab;
pub mod binaries;
pub mod bmc_log;
pub mod chaos;
mod cleanup;
mod cluster;
pub mod control_plane;
mod crds;
pub mod e2e;
mod error;
pub mod field;
pub mod helm;
pub mod http_get;
pub mod image_server;
mod kubeconfig;
mod kubectl;
pub mod kubelet;
pub mod leaks;
mod namespace;
pub mod nested_cargo;
pub mod openssh;
pub mod operator;
pub mod pharos;
mod pki;
pub mod sim;
pub mod sim_processes;
mod supervised;
pub mod sushy;
pub mod tcp_proxy;
pub mod tenancy;
mod wait;

pub use cleanup::DeleteOnDrop;
pub use cluster::{KUBECONFIG_ENV, TestCluster};
pub use control_plane::{ControlPlane, ControlPlaneConfig, User};
pub use crds::{install_crds, labpods_crds};
pub use error::{Error, INSTALL_HINT, Result};
pub use kubeconfig::{client_for, config_for};
pub use kubectl::{Kubectl, KubectlOutput};
pub use namespace::{TEST_NAMESPACE_LABEL, TestNamespace, create_namespace};
pub use wait::eventually;

/// The repository root (examples/, crds/, charts/ are beneath it).
pub fn workspace_root() -> std::path::PathBuf {
    let tests_crate = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    tests_crate.parent().unwrap_or(tests_crate).to_path_buf()
}

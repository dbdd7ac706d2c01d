//! Deleting what a test made, also when the test fails.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::binaries;

/// Deletes `kind/name` when dropped, without waiting for finalizers. For cluster-scoped
/// objects a test creates (LabHosts): namespaced ones go with the test namespace.
#[derive(Debug)]
pub struct DeleteOnDrop {
    kubeconfig: PathBuf,
    target: String,
}

impl DeleteOnDrop {
    pub(crate) fn new(kubeconfig: PathBuf, target: String) -> Self {
        Self { kubeconfig, target }
    }
}

impl Drop for DeleteOnDrop {
    /// Synchronous (kubectl): Drop cannot await, and also runs while a failed test unwinds.
    fn drop(&mut self) {
        let Ok(kubectl) = binaries::kubectl() else {
            return;
        };
        let deleted = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["delete", &self.target, "--wait=false", "--ignore-not-found"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !deleted.is_ok_and(|status| status.success()) {
            tracing::warn!(target = %self.target, "could not delete a test object");
        }
    }
}

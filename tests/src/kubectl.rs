//! Running kubectl against the test cluster, as a user would.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::binaries;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    namespace: Option<String>,
}

/// What a kubectl run printed and how it ended.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    pub args: String,
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

impl KubectlOutput {
    /// Stdout if kubectl succeeded, else an error with its stderr.
    pub fn ok(self) -> Result<String> {
        if self.success {
            Ok(self.stdout)
        } else {
            Err(Error::Kubectl {
                args: self.args,
                status: self.status,
                stderr: self.stderr,
            })
        }
    }
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Result<Self> {
        Ok(Self {
            binary: binaries::kubectl()?,
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: None,
        })
    }

    /// The same kubectl with `--namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    pub async fn run<I, S>(&self, args: I) -> Result<KubectlOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with_stdin(args, None).await
    }

    /// Runs kubectl with `input` on its stdin, as in `kubectl apply -f -`.
    pub async fn run_with_input<I, S>(&self, args: I, input: &str) -> Result<KubectlOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with_stdin(args, Some(input)).await
    }

    async fn run_with_stdin<I, S>(&self, args: I, input: Option<&str>) -> Result<KubectlOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|arg| arg.as_ref().to_os_string())
            .collect();
        let shown = args
            .iter()
            .map(|arg| arg.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            // Discovery cached beside the kubeconfig: a later control plane on the same
            // port must not see this one's API.
            .arg("--cache-dir")
            .arg(self.cache_dir());
        if let Some(namespace) = &self.namespace {
            command.arg("--namespace").arg(namespace);
        }
        command
            .args(&args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(Error::io(format!("starting kubectl {shown}")))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(input.as_bytes())
                .await
                .map_err(Error::io("writing kubectl's stdin"))?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(Error::io(format!("running kubectl {shown}")))?;
        Ok(KubectlOutput {
            args: shown,
            success: output.status.success(),
            status: output.status.to_string(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    fn cache_dir(&self) -> PathBuf {
        self.kubeconfig
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("kubectl-cache")
    }
}

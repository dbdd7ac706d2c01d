//! `cargo xtask testenv [--kube MINOR]`: a control plane with the CRDs installed, for people
//! and demos. Also the handle `cargo xtask test` keeps on the control plane it shares with
//! the tests.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::kube_binaries::{ALL_COMPONENTS, KubeBinaries};
use crate::workspace_root;

/// The cargo to run builds with (`tests/src/nested_cargo.rs`, shared with the test harness).
pub use crate::nested_cargo::command as cargo;

const PACKAGE_AND_BIN: [&str; 4] = ["--package", "labpods-tests", "--bin", "labpods-testenv"];

/// Builds the control plane if needed, then becomes `labpods-testenv`, which prints
/// `KUBECONFIG=<path>` when ready and runs until Ctrl-C.
pub fn run(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let minor = match args {
        [] => "newest",
        [flag, minor] if flag == "--kube" => minor.as_str(),
        _ => bail!("usage: cargo xtask testenv [--kube MINOR]"),
    };
    let binaries = KubeBinaries::install(&root, minor, ALL_COMPONENTS)?;
    build_testenv(&root)?;
    eprintln!("starting the control plane; Ctrl-C stops it");
    eprintln!(
        "kubectl {}: export PATH={}:$PATH",
        binaries.version,
        binaries.kubectl.parent().unwrap_or(&binaries.bin).display()
    );
    let mut command = testenv_command(&root);
    binaries.apply_env(&mut command);
    let err = command.exec();
    Err(err).context("running labpods-testenv")
}

/// Compiles labpods-testenv, with cargo's progress shown (a first build takes minutes).
pub fn build_testenv(root: &Path) -> Result<()> {
    let status = cargo()
        .arg("build")
        .args(PACKAGE_AND_BIN)
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building labpods-testenv failed ({status})");
    }
    Ok(())
}

/// The built labpods-testenv, run directly: `cargo run` would wait for the build lock
/// whenever anyone else on the machine compiles.
fn testenv_command(root: &Path) -> Command {
    let mut command = Command::new(debug_bin(root).join("labpods-testenv"));
    command.current_dir(root);
    command
}

/// Where cargo puts debug binaries: `$CARGO_TARGET_DIR/debug` (CI keeps one across clones),
/// else `target/debug`.
pub fn debug_bin(root: &Path) -> PathBuf {
    target_bin(root, "debug")
}

/// Where cargo puts the binaries of `profile` (`debug`, `release`).
pub fn target_bin(root: &Path, profile: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join(profile)
}

/// A running `labpods-testenv`. It stops when its stdin closes: on [`SharedControlPlane::stop`],
/// on drop, and when this process dies (a Ctrl-C included, which its own process group
/// keeps from reaching it directly).
#[derive(Debug)]
pub struct SharedControlPlane {
    child: Child,
    lifeline: Option<ChildStdin>,
    _stdout: BufReader<ChildStdout>,
    pub kubeconfig: PathBuf,
}

impl SharedControlPlane {
    pub fn start(root: &Path, binaries: &KubeBinaries) -> Result<Self> {
        let mut command = testenv_command(root);
        binaries.apply_env(&mut command);
        let mut child = command
            .arg("--until-stdin-closes")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("starting labpods-testenv")?;
        let lifeline = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .context("labpods-testenv has no stdout")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            if stdout
                .read_line(&mut line)
                .context("reading labpods-testenv")?
                == 0
            {
                let status = child.wait().context("waiting for labpods-testenv")?;
                bail!("the control plane did not start ({status}); see the messages above");
            }
            if let Some(path) = line.trim_end().strip_prefix("KUBECONFIG=") {
                return Ok(Self {
                    kubeconfig: PathBuf::from(path),
                    child,
                    lifeline,
                    _stdout: stdout,
                });
            }
        }
    }

    pub fn stop(&mut self) -> Result<()> {
        self.lifeline = None;
        let status = self.child.wait().context("waiting for labpods-testenv")?;
        if !status.success() {
            bail!(
                "the control plane failed while the tests ran ({status}); see the messages above"
            );
        }
        Ok(())
    }
}

impl Drop for SharedControlPlane {
    fn drop(&mut self) {
        self.lifeline = None;
        let _ = self.child.wait();
    }
}

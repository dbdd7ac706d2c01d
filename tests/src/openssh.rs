//! The real OpenSSH client (Debian's openssh-client, installed by
//! tests/support/openssh-client.sh when missing): `ssh -G` reads an ssh_config as a user's
//! ssh would, `ssh-keygen` makes host keys and looks names up in a known_hosts file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};

use crate::helm::support_script;

/// The directory holding `ssh` and `ssh-keygen`.
pub fn bin_dir() -> Result<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| support_script("openssh-client.sh", &[]).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn run(tool: &str, args: &[&str]) -> Result<String> {
    let path = bin_dir()?.join(tool);
    let output = Command::new(&path)
        .args(args)
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    if !output.status.success() {
        bail!(
            "{tool} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What `ssh -G -F <config> <host>` resolves: the options ssh would connect with, one
/// `<keyword> <value>` a line, keywords lower-case.
pub fn resolved_config(config: &Path, host: &str) -> Result<String> {
    run("ssh", &["-G", "-F", &config.display().to_string(), host])
}

/// A new host key pair under `dir` (named `name`); returns the public key line, as a booted
/// host reports it.
pub fn host_key(dir: &Path, name: &str) -> Result<String> {
    let private = dir.join(name);
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            name,
            "-f",
            &private.display().to_string(),
        ],
    )?;
    Ok(std::fs::read_to_string(private.with_extension("pub"))?
        .trim()
        .to_owned())
}

/// The lines of `known_hosts` that `ssh-keygen -F <name>` finds for `name`.
pub fn known_hosts_lookup(known_hosts: &Path, name: &str) -> Result<Vec<String>> {
    // Exit status 1 when nothing is found: read that as no lines.
    let path = bin_dir()?.join("ssh-keygen");
    let output = Command::new(&path)
        .args(["-F", name, "-f"])
        .arg(known_hosts)
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect())
}

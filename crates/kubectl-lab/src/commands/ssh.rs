//! `ssh`: log into a booked host with the host key it reported pinned. Reads the booking's
//! access Secret, writes its `ssh_config` and `known_hosts` to a private temporary directory
//! and runs `ssh -F` there, so the first connection is verified, not trust-on-first-use.

use std::ffi::OsString;
use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use labpods_operator::controllers::scheduling::access::{KNOWN_HOSTS, SSH_CONFIG};

use crate::cli::SshArgs;
use crate::error::{Error, Result};
use crate::session::Session;

/// The `Host` names an ssh_config defines, in order.
pub fn hosts_in(config: &str) -> Vec<String> {
    config
        .lines()
        .filter_map(|l| l.strip_prefix("Host "))
        .map(|h| h.trim().to_owned())
        .collect()
}

/// The arguments of `ssh` for `hostname` with the files in `dir`: the config, and its
/// known_hosts at the path it was written to (the config names the user's default place).
pub fn ssh_args(dir: &Path, hostname: &str, command: &[String]) -> Vec<OsString> {
    let mut known_hosts = OsString::from("UserKnownHostsFile=");
    known_hosts.push(dir.join(KNOWN_HOSTS));
    let mut args: Vec<OsString> = vec![
        "-F".into(),
        dir.join(SSH_CONFIG).into(),
        "-o".into(),
        known_hosts,
        hostname.into(),
    ];
    if !command.is_empty() {
        args.push("--".into());
        args.extend(command.iter().map(OsString::from));
    }
    args
}

/// A new directory only its owner can enter (0700, whatever the umask), holding the two
/// files; removed when dropped (when ssh returns).
pub fn private_dir(config: &str, known_hosts: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("kubectl-lab-ssh-")
        .tempdir()?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    std::fs::write(dir.path().join(SSH_CONFIG), config)?;
    std::fs::write(dir.path().join(KNOWN_HOSTS), known_hosts)?;
    Ok(dir)
}

fn file(secret: &Secret, key: &str) -> Result<String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| {
            Error::Api(format!(
                "the access Secret has no {key}: the operator writes it; ask a lab admin"
            ))
        })?;
    String::from_utf8(bytes.0.clone())
        .map_err(|_| Error::Api(format!("the access Secret's {key} is not text")))
}

pub async fn run(session: &Session, args: &SshArgs) -> Result<()> {
    let pr = session.podrequest(&args.name).await?;
    let Some(secret_name) = pr.status.as_ref().and_then(|s| s.access_secret.clone()) else {
        return Err(Error::Failed(format!(
            "booking {} has no access Secret yet: no host has reported its address and host keys (see kubectl lab status {})",
            args.name, args.name
        )));
    };
    let secrets: Api<Secret> = Api::namespaced(session.client.clone(), &session.namespace);
    let secret = secrets
        .get(&secret_name)
        .await
        .map_err(|e| session.err(&format!("reading Secret {secret_name}"), e))?;
    let config = file(&secret, SSH_CONFIG)?;
    let known_hosts = file(&secret, KNOWN_HOSTS)?;
    let hosts = hosts_in(&config);
    let hostname = match &args.hostname {
        Some(h) if hosts.contains(h) => h.clone(),
        Some(h) => {
            return Err(Error::Usage(format!(
                "booking {} has no reachable host {h}: choose one of {}",
                args.name,
                hosts.join(", ")
            )));
        }
        None => hosts.first().cloned().ok_or_else(|| {
            Error::Failed(format!("booking {} has no reachable host yet", args.name))
        })?,
    };
    let dir = private_dir(&config, &known_hosts)?;
    let status = tokio::process::Command::new("ssh")
        .args(ssh_args(dir.path(), &hostname, &args.command))
        .status()
        .await
        .map_err(|e| {
            Error::Failed(format!(
                "cannot run ssh (is OpenSSH's client installed?): {e}"
            ))
        })?;
    match status.code() {
        Some(0) => Ok(()),
        code => Err(Error::Remote(
            code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn the_files_are_written_to_a_directory_only_the_user_can_enter() {
        use std::os::unix::fs::PermissionsExt;
        let dir = private_dir("Host a\n", "a ssh-ed25519 AAAA\n").unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(KNOWN_HOSTS)).unwrap(),
            "a ssh-ed25519 AAAA\n"
        );
        let path = dir.path().to_owned();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn the_hosts_of_a_config_in_order_and_the_ssh_command_line() {
        let config = "# labpods\n\nHost node-2\n    HostName 10.0.0.2\n\nHost jumphost-1\n    HostName 10.0.0.1\n";
        assert_eq!(hosts_in(config), ["node-2", "jumphost-1"]);
        let dir = Path::new("/tmp/x");
        let args = ssh_args(dir, "node-2", &["uname".into(), "-a".into()]);
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-F",
                "/tmp/x/ssh_config",
                "-o",
                "UserKnownHostsFile=/tmp/x/known_hosts",
                "node-2",
                "--",
                "uname",
                "-a"
            ]
        );
    }
}

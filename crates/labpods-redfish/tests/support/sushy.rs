//! sushy-tools, OpenStack's Redfish emulator: `sushy-emulator` with its fake systems driver,
//! and `sushy-static` serving DMTF mockup trees.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::python::{ScratchDir, Server, free_port, venv};

/// One system of the fake driver.
#[derive(Clone, Debug)]
pub struct FakeSystem {
    pub uuid: &'static str,
    pub name: &'static str,
    pub mac: &'static str,
}

/// TLS and basic auth for the emulator.
#[derive(Clone, Debug, Default)]
pub struct Protection {
    /// PEM files: certificate chain, key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Accepted user and password (stored bcrypt-hashed, cost 4).
    pub basic_auth: Option<(String, String)>,
}

/// Starts `sushy-emulator` with the fake driver serving `systems`, all powered off.
pub async fn start_emulator(systems: &[FakeSystem], protection: &Protection) -> Server {
    let venv = venv();
    let dir = ScratchDir::new("sushy");
    let port = free_port();
    let mut config = format!(
        "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n\
         SUSHY_EMULATOR_LISTEN_PORT = {port}\n\
         SUSHY_EMULATOR_STATE_DIR = '{}'\n\
         SUSHY_EMULATOR_FAKE_DRIVER = True\n\
         SUSHY_EMULATOR_FAKE_SYSTEMS = [\n",
        dir.path().join("state").display()
    );
    for s in systems {
        writeln!(
            config,
            "    {{'uuid': '{}', 'name': '{}', 'power_state': 'Off', \
             'nics': [{{'mac': '{}', 'ip': '192.0.2.10'}}]}},",
            s.uuid, s.name, s.mac
        )
        .unwrap();
    }
    config.push_str("]\n");
    if let Some((cert, key)) = &protection.tls {
        writeln!(config, "SUSHY_EMULATOR_SSL_CERT = '{}'", cert.display()).unwrap();
        writeln!(config, "SUSHY_EMULATOR_SSL_KEY = '{}'", key.display()).unwrap();
    }
    if let Some((user, password)) = &protection.basic_auth {
        let htpasswd = dir.path().join("htpasswd");
        let hash = bcrypt_hash(&venv, password);
        std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
        writeln!(
            config,
            "SUSHY_EMULATOR_AUTH_FILE = '{}'",
            htpasswd.display()
        )
        .unwrap();
    }
    let config_path = dir.path().join("emulator.conf");
    std::fs::write(&config_path, config).unwrap();

    let mut command = Command::new(venv.join("bin/sushy-emulator"));
    command.arg("--config").arg(&config_path);
    Server::start(command, port, dir).await
}

/// Starts `sushy-static` serving one mockup tree read-only.
pub async fn start_static(mockup: &Path) -> Server {
    let venv = venv();
    let port = free_port();
    let mut command = Command::new(venv.join("bin/sushy-static"));
    command
        .args([
            "--interface",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--mockup-files",
        ])
        .arg(mockup);
    Server::start(command, port, ScratchDir::new("sushy-static")).await
}

/// The DMTF mockups kept in the repository (tests/data/redfish, with DMTF's license).
pub fn mockup(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/redfish/mockups")
        .join(name);
    assert!(
        path.join("index.json").exists(),
        "Redfish mockup {} not found: tests/data/redfish/mockups is part of the repository",
        path.display()
    );
    path
}

/// htpasswd entry for sushy (it only accepts bcrypt). The password goes through stdin, not
/// argv, so it does not show in the process list.
fn bcrypt_hash(venv: &Path, password: &str) -> String {
    let mut child = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import bcrypt,sys; print(bcrypt.hashpw(sys.stdin.read().encode(), bcrypt.gensalt(4)).decode())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "bcrypt failed; is bcrypt in the venv?"
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

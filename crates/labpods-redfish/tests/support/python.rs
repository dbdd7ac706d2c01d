//! Python servers for interop tests: find the venv, start a server on a free loopback port,
//! wait until it accepts connections, and kill it when the handle is dropped.
//! Dependency-light (std + tokio) so the operator's CLI tests can include it by path.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How to get the venv, printed whenever it is missing.
const INSTALL_HINT: &str = "run tests/support/python-venv.sh from the repository root (or `cargo xtask test`, which runs it)";

/// The venv made by tests/support/python-venv.sh. Panics (the test fails) when it is missing:
/// interop tests are never skipped.
pub fn venv() -> PathBuf {
    let dir = std::env::var_os("LABPODS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".cache"))
                .join("labpods/venv")
        });
    for tool in ["python", "sushy-emulator", "sushy-static"] {
        let path = dir.join("bin").join(tool);
        assert!(
            path.exists(),
            "{} is missing: the Redfish interop tests need the Python venv; {INSTALL_HINT}",
            path.display()
        );
    }
    dir
}

/// A directory under the target dir, removed on drop.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free port on 127.0.0.1 (the OS picks it; the window until the server binds is tiny).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server process; killed and reaped on drop so no process outlives the test.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub port: u16,
    log: PathBuf,
    // Dropped after the child is killed (field order): holds config, state and log.
    _dir: ScratchDir,
}

impl Server {
    /// Starts `command` (which must listen on `port` at 127.0.0.1) and waits until it accepts
    /// connections. The output goes to a log that is shown if the server dies.
    pub async fn start(mut command: Command, port: u16, dir: ScratchDir) -> Self {
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Sushy downloads virtual media with `requests`, which honours proxy settings.
            .env("no_proxy", "127.0.0.1,localhost")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}; {INSTALL_HINT}"));
        let mut server = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        server.wait_until_listening().await;
        server
    }

    async fn wait_until_listening(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "server exited ({status}) before listening:\n{}",
                    self.log_text()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server not listening on port {} after 60 s:\n{}",
                self.port,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

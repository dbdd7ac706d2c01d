//! A child process that cannot outlive its owner.
//!
//! Each component runs under a tiny `sh` wrapper whose stdin is a pipe from this process.
//! The wrapper stops the component when that pipe closes, which happens both on
//! [`Supervised::stop`] and when this process dies in any way (a panic, a kill, or a test
//! binary that exits with a control plane still held in a `static`): no signal handler and
//! no unsafe code needed. Each wrapper leads its own process group, so a Ctrl-C in the
//! terminal reaches the owner, which then stops the components in order.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Runs `"$@"` and stops it with SIGTERM when stdin reaches end of file, and SIGKILL 15 s
/// later: an owner that died cannot escalate, and a kube-apiserver whose etcd went first
/// waits on it for good.
const WRAPPER: &str = r#"
exec 3<&0 </dev/null
"$@" 3<&- &
child=$!
{ cat <&3 >/dev/null; kill -TERM "$child" 2>/dev/null; sleep 15; kill -KILL "$child" 2>/dev/null; } &
guard=$!
exec 3<&-
wait "$child"
status=$?
kill "$guard" 2>/dev/null
exit "$status"
"#;

/// Waits for the other wrappers (given as pids) to be gone, at most 20 s, then removes a
/// directory. The bound matters: a dead owner's orphans may linger as zombies.
const JANITOR: &str = r#"
dir=$1; shift
cat >/dev/null
for pid in "$@"; do
  i=0
  while [ "$i" -lt 200 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
done
rm -rf "$dir"
"#;

/// How long a component gets to exit after SIGTERM before its process group is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Supervised {
    name: String,
    child: Child,
    /// Closing it tells the wrapper to stop the component.
    lifeline: Option<ChildStdin>,
    log: PathBuf,
}

impl Supervised {
    /// Starts `program args...`, its output appended to `log`.
    pub fn spawn(name: &str, program: &Path, args: &[OsString], log: &Path) -> Result<Self> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg(name)
            .arg(program)
            .args(args);
        Self::spawn_command(name, command, log)
    }

    /// A process that removes `dir` once this process lets go of it and the given
    /// processes have exited.
    pub fn janitor(dir: &Path, waits_for: &[u32], log: &Path) -> Result<Self> {
        let mut command = Command::new("sh");
        command.arg("-c").arg(JANITOR).arg("janitor").arg(dir);
        command.args(waits_for.iter().map(u32::to_string));
        Self::spawn_command("janitor", command, log)
    }

    /// Starts `command` (its stdin is the lifeline), its output appended to `log`.
    pub(crate) fn spawn_command(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let open_log = || {
            File::options()
                .create(true)
                .append(true)
                .open(log)
                .map_err(Error::io(format!("opening {}", log.display())))
        };
        // The log, not our stdout: a test's output must not stay open after it ends.
        command
            .stdin(Stdio::piped())
            .stdout(open_log()?)
            .stderr(open_log()?)
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(Error::io(format!("starting {name}")))?;
        let lifeline = child.stdin.take();
        Ok(Self {
            name: name.to_string(),
            child,
            lifeline,
            log: log.to_path_buf(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the component has exited, with the end of its log.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status.to_string())),
            Err(err) => Err(self.exited(err.to_string())),
        }
    }

    fn exited(&self, status: String) -> Error {
        Error::Exited {
            component: self.name.clone(),
            status,
            log: self.log.clone(),
            tail: log_tail(&self.log),
        }
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Waits until something accepts connections on 127.0.0.1:`port`; fails with the log's
    /// end if the component exits or `timeout` passes first.
    pub async fn wait_listening(&mut self, port: u16, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            self.check_running()?;
            if Instant::now() > deadline {
                return Err(Error::NotReady {
                    component: self.name.clone(),
                    seconds: timeout.as_secs(),
                    log: self.log.clone(),
                    tail: log_tail(&self.log),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Stops the component and waits for it; kills its process group if it lingers.
    pub fn stop(&mut self) {
        self.lifeline = None;
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Ok(Some(_)) | Err(_) => return,
            }
        }
        tracing::warn!(component = %self.name, "did not stop after SIGTERM; killing it");
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last lines of a log, for error messages.
pub fn log_tail(path: &Path) -> String {
    const TAIL_BYTES: u64 = 4000;
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)));
    let mut tail = Vec::new();
    let _ = file.read_to_end(&mut tail);
    String::from_utf8_lossy(&tail).into_owned()
}

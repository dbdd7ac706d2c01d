//! The operator under test, as a user runs it: a separate `labpods run` process with a
//! kubeconfig and a config file, its log captured to a file, stopped (SIGTERM) on drop or
//! killed (SIGKILL) on demand to play a crash.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::supervised::{Supervised, log_tail};
use crate::workspace_root;

/// The Cargo package and its binary.
const PACKAGE: &str = "labpods-operator";
const BINARY: &str = "labpods";

/// Settings for a test run: everything short so a lease lives seconds, not days.
#[derive(Debug, Clone, Default)]
pub struct OperatorSettings {
    /// Namespace of the leader-election Lease (the test's namespace).
    pub lease_namespace: String,
    /// `profile -> wipe image URL`, booted at release; written only with `phone_home` (the
    /// operator refuses wipe images it cannot hear report).
    pub wipe_images: Vec<(String, String)>,
    /// `profile -> boot completion fallback` (e.g. "5s").
    pub boot_fallbacks: Vec<(String, String)>,
    /// `bmc.requestTimeout` (e.g. "3s"); the operator's default when absent.
    pub bmc_request_timeout: Option<String>,
    /// `bmc.perBmcConcurrency`; the operator's default when absent.
    pub bmc_per_bmc_concurrency: Option<usize>,
    /// `policy.maxOpenRequestsPerNamespace`; the operator's default when absent.
    pub max_open_requests: Option<u32>,
    /// `images.requireChecksum`.
    pub require_checksum: bool,
    /// `images.allowedHosts` (empty: any).
    pub allowed_image_hosts: Vec<String>,
    /// `phoneHome.listenAddress`, with `externalBaseUrl` `http://<it>/`: hosts (and BMCs
    /// fetching seeds) reach the operator there. None: an OS-assigned port, no external URL
    /// (no seeds delivered).
    pub phone_home: Option<SocketAddr>,
}

impl OperatorSettings {
    /// The config file (see examples/operator-config.yaml for every key), /metrics on
    /// `metrics`.
    pub fn to_yaml(&self, metrics: SocketAddr) -> String {
        let wipes: &[(String, String)] = if self.phone_home.is_some() {
            &self.wipe_images
        } else {
            &[]
        };
        let wipe = yaml_map("wipeImages", wipes);
        let fallbacks = yaml_map("bootFallbackByProfile", &self.boot_fallbacks);
        let mut bmc = String::new();
        if let Some(timeout) = &self.bmc_request_timeout {
            bmc.push_str(&format!("  requestTimeout: {timeout}\n"));
        }
        if let Some(per_bmc) = self.bmc_per_bmc_concurrency {
            bmc.push_str(&format!("  perBmcConcurrency: {per_bmc}\n"));
        }
        let policy = self.max_open_requests.map_or_else(String::new, |n| {
            format!("policy:\n  maxOpenRequestsPerNamespace: {n}\n")
        });
        let bmc = if bmc.is_empty() {
            bmc
        } else {
            format!("bmc:\n{bmc}")
        };
        let hosts: Vec<String> = self
            .allowed_image_hosts
            .iter()
            .map(|h| format!("{h:?}"))
            .collect();
        // Short retries, so an unreachable image fails a booking in seconds.
        let images = format!(
            "images:\n  requireChecksum: {}\n  allowedHosts: [{}]\n  attempts: 2\n  downloadTimeout: 30s\n",
            self.require_checksum,
            hosts.join(", ")
        );
        let phone_home = self.phone_home.map_or_else(
            || "phoneHome:\n  listenAddress: 127.0.0.1:0\n".to_owned(),
            |a| format!("phoneHome:\n  listenAddress: {a}\n  externalBaseUrl: http://{a}/\n"),
        );
        format!(
            "polling:\n  idleInterval: 1s\n  idleJitter: 0.0\n  busyInterval: 1s\n  errorBackoffBase: 1s\n  errorBackoffMax: 4s\n\
             provisioning:\n  timeout: 60s\n  gracefulShutdownTimeout: 3s\n  forcedPowerOffTimeout: 10s\n  wipeTimeout: 60s\n  maxAttempts: 2\n  maxConsecutiveFailures: 3\n  bootFallback: 30s\n{wipe}{fallbacks}\
             leases:\n  retention: 5s\n  expiryNotices: [10s]\n  releaseAllowance: 2s\n\
             http:\n  metricsAddress: {metrics}\n\
             {phone_home}\
             descriptor:\n  lab: labpods e2e\n  location: a test run\n  link: https://labpods.test/\n  contact: lab-admins@labpods.test\n\
             leaderElection:\n  enabled: true\n  leaseName: labpods-operator\n  leaseNamespace: {ns}\n  leaseDuration: {lease}s\n  renewDeadline: {renew}s\n  retryPeriod: 1s\n\
             logging:
  filter: info,labpods_operator=debug
{bmc}{policy}{images}",
            ns = self.lease_namespace,
            lease = LEASE_DURATION.as_secs(),
            renew = RENEW_DEADLINE.as_secs(),
        )
    }
}

impl OperatorSettings {
    /// The least silence a BMC sees between two leaders' calls: leaseDuration minus
    /// renewDeadline of [`OperatorSettings::to_yaml`].
    pub fn handover(&self) -> std::time::Duration {
        LEASE_DURATION.saturating_sub(RENEW_DEADLINE)
    }
}

const LEASE_DURATION: std::time::Duration = std::time::Duration::from_secs(4);
const RENEW_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

/// `  key:` and its entries indented beneath, or `  key: {}` when there are none.
fn yaml_map(key: &str, entries: &[(String, String)]) -> String {
    if entries.is_empty() {
        return format!("  {key}: {{}}\n");
    }
    let mut out = format!("  {key}:\n");
    for (name, value) in entries {
        out.push_str(&format!("    {name}: {value}\n"));
    }
    out
}

/// A running `labpods run`.
#[derive(Debug)]
pub struct Operator {
    identity: String,
    process: Supervised,
    /// Where it serves /metrics.
    metrics: SocketAddr,
    /// The executable it runs (to tell it from its wrapper in /proc).
    binary: PathBuf,
}

impl Operator {
    /// Starts `labpods run --config <file> --identity <identity>` against `kubeconfig`, its
    /// config and log in `dir` (kept after the test, for reading a failure's whole story).
    pub fn start(
        kubeconfig: &Path,
        settings: &OperatorSettings,
        identity: &str,
        dir: &Path,
    ) -> Result<Self> {
        Self::start_binary(
            &operator_binary()?,
            kubeconfig,
            |metrics| settings.to_yaml(metrics),
            identity,
            dir,
        )
    }

    /// The same with another build of the operator (a release build, for benchmarks) and a
    /// config of the caller's: `config` gets the /metrics address and returns the file's text.
    pub fn start_binary(
        binary: &Path,
        kubeconfig: &Path,
        render_config: impl FnOnce(SocketAddr) -> String,
        identity: &str,
        dir: &Path,
    ) -> Result<Self> {
        // As /proc/<pid>/exe names it.
        let binary = binary
            .canonicalize()
            .unwrap_or_else(|_| binary.to_path_buf());
        let config = dir.join(format!("{identity}.yaml"));
        // A port known in advance, so a test can scrape it (the config's `:0` would hide it).
        let metrics = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .context("finding a free port for /metrics")?;
        std::fs::write(&config, render_config(metrics)).context("writing the operator config")?;
        // `env` sets KUBECONFIG for the operator alone (the wrapper passes no environment).
        let args: Vec<OsString> = vec![
            format!("KUBECONFIG={}", kubeconfig.display()).into(),
            binary.clone().into_os_string(),
            "run".into(),
            "--config".into(),
            config.into_os_string(),
            "--identity".into(),
            identity.into(),
        ];
        let log = dir.join(format!("{identity}.log"));
        let process = Supervised::spawn(identity, Path::new("/usr/bin/env"), &args, &log)?;
        Ok(Self {
            identity: identity.to_string(),
            process,
            metrics,
            binary,
        })
    }

    /// The operator's own process id (not its wrapper's), once it runs: what /proc tells its
    /// memory and CPU time by. None before `env` has become the operator, or after it exited.
    pub fn pid(&self) -> Option<u32> {
        let wrapper = self.process.id();
        let children =
            std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children")).ok()?;
        children
            .split_whitespace()
            .filter_map(|pid| pid.parse::<u32>().ok())
            .find(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == self.binary)
            })
    }

    /// Its /metrics exposition, as Prometheus scrapes it.
    pub async fn scrape_metrics(&self) -> Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let scrape = async {
            let mut stream = tokio::net::TcpStream::connect(self.metrics).await?;
            stream
                .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .await?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await?;
            std::io::Result::Ok(response)
        };
        let response = tokio::time::timeout(std::time::Duration::from_secs(10), scrape)
            .await
            .context("scraping /metrics timed out")?
            .with_context(|| format!("scraping {} /metrics", self.identity))?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .with_context(|| format!("no HTTP body from /metrics: {response}"))?;
        if !head.contains(" 200 ") {
            bail!("/metrics answered {head}");
        }
        Ok(body.to_string())
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Fails with the log's end if the operator has exited.
    pub fn check_running(&mut self) -> Result<()> {
        Ok(self.process.check_running()?)
    }

    pub fn log_path(&self) -> &Path {
        self.process.log()
    }

    /// The end of the operator's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(self.process.log())
    }

    /// The whole log (for assertions on what the operator said).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.process.log()).unwrap_or_default()
    }

    /// SIGTERM, as a rollout does: the replica drains, logs out of its BMCs and releases the
    /// leader lease, so another replica takes over at once.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// SIGKILL, as a crash or an OOM kill: no draining, no lease release, no logout.
    pub fn kill(&mut self) -> Result<()> {
        let group = format!("-{}", self.process.id());
        let status = Command::new("kill")
            .args(["-KILL", "--", &group])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -KILL {group} failed ({status})");
        }
        self.process.stop();
        Ok(())
    }
}

/// The sum of every sample of the metric `name` in a Prometheus text exposition (a
/// histogram's `<name>_count`, a counter's `<name>_total`), over all label sets; 0 when the
/// metric has none (a family no code path has touched yet).
pub fn metric_total(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let metric = series.split_once('{').map_or(series, |(metric, _)| metric);
            (metric == name)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// The operator binary, built once per test process (`cargo build` is a no-op when fresh,
/// and a test must never run a stale operator).
pub fn operator_binary() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_operator().map_err(|err| format!("{err:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The operator built beside the running executable by the same `cargo build` (a benchmark
/// harness built with `--release` gets the release operator), snapshotted like
/// [`operator_binary`]'s.
pub fn sibling_operator_binary() -> Result<PathBuf> {
    snapshot(&crate::binaries::beside_this_executable(BINARY)?)
}

fn build_operator() -> Result<PathBuf> {
    let root = workspace_root();
    let output = crate::nested_cargo::command()
        .args(["build", "--quiet", "--package", PACKAGE, "--bins"])
        .current_dir(&root)
        .output()
        .with_context(|| format!("running cargo build -p {PACKAGE}"))?;
    if !output.status.success() {
        bail!(
            "cargo build -p {PACKAGE} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let built = Some(target.join("debug").join(BINARY))
        .filter(|path| path.is_file())
        .with_context(|| {
            format!(
                "no operator binary {BINARY} in {}/debug after cargo build",
                target.display()
            )
        })?;
    snapshot(&built)
}

/// A private snapshot of the built binary: a target directory shared with other checkouts may
/// get their build of it while this test still restarts operators. One snapshot per build
/// (named by its size and modification time), shared by every test process: a copy per
/// process filled /tmp with a 100 MB file per e2e test.
fn snapshot(built: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(built).with_context(|| format!("reading {}", built.display()))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir();
    let shared = dir.join(format!("{BINARY}-{}-{modified}", meta.len()));
    if shared.is_file() {
        return Ok(shared);
    }
    // Made under a name of this process's, then renamed: another process sees no half copy.
    let partial = dir.join(format!("{BINARY}-partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    std::fs::copy(built, &partial)
        .with_context(|| format!("copying {} to {}", built.display(), partial.display()))?;
    std::fs::rename(&partial, &shared)
        .with_context(|| format!("renaming {} to {}", partial.display(), shared.display()))?;
    Ok(shared)
}

#[cfg(test)]
mod tests {
    use super::metric_total;

    #[test]
    fn a_metric_is_summed_over_its_label_sets_and_other_metrics_are_ignored() {
        let exposition = "\
# HELP labpods_status_writes Status writes.
# TYPE labpods_status_writes counter
labpods_status_writes_total{kind=\"LabHost\",outcome=\"written\"} 3
labpods_status_writes_total{kind=\"Lease\",outcome=\"written\"} 2
labpods_status_writes_total_other 7
labpods_leader 1
# EOF
";
        assert_eq!(metric_total(exposition, "labpods_status_writes_total"), 5.0);
        assert_eq!(metric_total(exposition, "labpods_leader"), 1.0);
        assert_eq!(
            metric_total(exposition, "labpods_reconcile_duration_seconds_count"),
            0.0
        );
    }
}

//! A simulated lab served by `labpods-sim` processes, for labs too big for one process: every
//! BMC is a listener plus the connection the operator keeps to it, two open files, and the
//! open-file limit of a process may be out of reach (20,000 on the development machines, where
//! even root may not raise it). Each process serves at most [`HOSTS_PER_PROCESS`] BMCs; the
//! hosts are registered as LabHosts like [`crate::sim::SimLab`]'s, and what each BMC received
//! is read from the processes' admin endpoints (`/admin/requests`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::Client;

use crate::http_get;
use crate::sim::{HostGroup, SimHost, name_hosts, register_labhosts};
use crate::supervised::Supervised;

/// BMCs per process: 10,000 open files for the BMCs, half the limit.
pub const HOSTS_PER_PROCESS: usize = 5_000;
/// The BMCs' account (the password is made per lab).
const USERNAME: &str = "admin";
/// A process binds its listeners in seconds (the kernel hands out 5,000 ports one by one).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How fast the simulated hardware is.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From power-on to BootProgress `OSRunning`.
    pub boot_time: Duration,
    /// PoweringOn / PoweringOff.
    pub power_delay: Duration,
    /// Added to every Redfish response (a real BMC's answer time).
    pub latency: Duration,
}

#[derive(Debug)]
pub struct ProcessLab {
    shards: Vec<Shard>,
    hosts: Vec<SimHost>,
    /// LabHost name -> (shard, host index within it).
    by_name: HashMap<String, (usize, usize)>,
}

#[derive(Debug)]
struct Shard {
    admin: SocketAddr,
    /// Stopped on drop.
    _process: Supervised,
}

impl ProcessLab {
    /// Starts `binary` (labpods-sim) as many times as `groups` need, logs in `logs`, and
    /// registers every BMC as a LabHost named `<lab>-<nn>` with its group's lab label (else
    /// `lab`), with the credentials Secret in `secret_namespace`.
    pub async fn start(
        binary: &Path,
        client: &Client,
        lab: &str,
        secret_namespace: &str,
        groups: &[HostGroup],
        timing: Timing,
        logs: &Path,
    ) -> Result<Self> {
        let hosts = name_hosts(lab, groups);
        let password = crate::leaks::unique_password();
        let mut shards = Vec::new();
        let mut endpoints: HashMap<String, String> = HashMap::new();
        let mut by_name = HashMap::new();
        for (n, chunk) in hosts.chunks(HOSTS_PER_PROCESS).enumerate() {
            let shard = Shard::start(binary, n, chunk.len(), timing, &password, logs).await?;
            let listed = shard.endpoints().await?;
            for (i, host) in chunk.iter().enumerate() {
                let endpoint = listed
                    .get(i)
                    .with_context(|| format!("labpods-sim {n} lists no host {}", i + 1))?;
                endpoints.insert(host.name.clone(), endpoint.clone());
                by_name.insert(host.name.clone(), (n, i + 1));
            }
            shards.push(shard);
        }
        register_labhosts(
            client,
            secret_namespace,
            (USERNAME, &password),
            &hosts,
            |host| {
                let url = endpoints.get(&host.name).cloned().unwrap_or_default();
                // What every simulated BMC calls its ComputerSystem.
                (url, "1".to_string())
            },
        )
        .await?;
        Ok(Self {
            shards,
            hosts,
            by_name,
        })
    }

    pub fn hosts(&self) -> &[SimHost] {
        &self.hosts
    }

    /// Redfish requests every BMC received so far, by LabHost name.
    pub async fn requests(&self) -> Result<HashMap<String, u64>> {
        let mut counts = Vec::with_capacity(self.shards.len());
        for shard in &self.shards {
            let (status, body) = http_get::get(shard.admin, "/admin/requests")
                .await
                .with_context(|| format!("reading labpods-sim's counters at {}", shard.admin))?;
            if status != 200 {
                bail!(
                    "labpods-sim at {} answered {status} to /admin/requests",
                    shard.admin
                );
            }
            counts.push(serde_json::from_slice::<Vec<u64>>(&body)?);
        }
        Ok(self
            .by_name
            .iter()
            .map(|(name, (shard, i))| {
                let n = counts[*shard].get(i - 1).copied().unwrap_or(0);
                (name.clone(), n)
            })
            .collect())
    }

    /// What to GET for one host's request count, as a future that owns it (to run beside
    /// the caller's other work); None for a host of no shard.
    pub fn requests_of(
        &self,
        host: &str,
    ) -> Option<impl Future<Output = Result<u64>> + Send + 'static> {
        let (shard, i) = *self.by_name.get(host)?;
        let admin = self.shards[shard].admin;
        Some(async move {
            let (status, body) = http_get::get(admin, &format!("/admin/hosts/{i}/requests"))
                .await
                .with_context(|| format!("reading host {i}'s counter at {admin}"))?;
            if status != 200 {
                bail!("labpods-sim at {admin} answered {status} for host {i}");
            }
            Ok(serde_json::from_slice(&body)?)
        })
    }
}

impl Shard {
    async fn start(
        binary: &Path,
        n: usize,
        hosts: usize,
        timing: Timing,
        password: &str,
        logs: &Path,
    ) -> Result<Self> {
        let duration = |d: Duration| format!("{}ms", d.as_millis());
        // `env` hands the password over outside the command line.
        let args: Vec<OsString> = [
            format!("LABPODS_SIM_PASSWORD={password}"),
            binary.display().to_string(),
            format!("--hosts={hosts}"),
            // Every port, the admin endpoint's too, from the kernel: a port picked free
            // beforehand may be handed to one of the 5,000 listeners in between.
            "--port-base=0".to_string(),
            format!("--boot-time={}", duration(timing.boot_time)),
            format!("--power-delay={}", duration(timing.power_delay)),
            format!("--latency={}", duration(timing.latency)),
            format!("--username={USERNAME}"),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let name = format!("labpods-sim-{n}");
        let log = logs.join(format!("{name}.log"));
        let mut process = Supervised::spawn(&name, Path::new("/usr/bin/env"), &args, &log)?;
        let admin = admin_address(&mut process).await?;
        Ok(Self {
            admin,
            _process: process,
        })
    }

    /// Each host's Redfish base URL, host 1 first.
    async fn endpoints(&self) -> Result<Vec<String>> {
        let (status, body) = http_get::get(self.admin, "/admin/hosts")
            .await
            .with_context(|| format!("listing labpods-sim's hosts at {}", self.admin))?;
        if status != 200 {
            bail!(
                "labpods-sim at {} answered {status} to /admin/hosts",
                self.admin
            );
        }
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
        listed
            .iter()
            .map(|host| {
                host["endpoint"]
                    .as_str()
                    .map(str::to_string)
                    .context("a host without an endpoint in /admin/hosts")
            })
            .collect()
    }
}

/// The admin endpoint a starting labpods-sim prints (`  admin: http://127.0.0.1:PORT/...`)
/// once every listener is bound.
async fn admin_address(process: &mut Supervised) -> Result<SocketAddr> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        process.check_running()?;
        let log = std::fs::read_to_string(process.log()).unwrap_or_default();
        if let Some(address) = log
            .lines()
            .find_map(|line| line.trim().strip_prefix("admin: http://"))
            .and_then(|rest| rest.split('/').next())
        {
            return address
                .parse()
                .with_context(|| format!("labpods-sim printed an admin address {address:?}"));
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "{} printed no admin endpoint within {} s (log: {})",
                process.name(),
                START_TIMEOUT.as_secs(),
                process.log().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

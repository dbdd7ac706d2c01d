//! A Kubernetes node on this machine, to run the chart's Deployment for real: Debian's
//! containerd 1.6 and runc, a kubelet built from the control plane's own Go module
//! (tests/support/build-control-plane.sh), pods on a Linux bridge (the CNI plugins' bridge,
//! host-local and loopback), images from go-containerregistry's registry on loopback.
//!
//! What the machine lacks is worked around here, each in one place:
//! - cgroup v1 and no systemd: the kubelet runs with `failCgroupV1: false` and `cgroupDriver:
//!   cgroupfs`, runc with `SystemdCgroup = false`, all under a cgroup root of the node's own
//!   inside this process's memory cgroup (the same path made in every other hierarchy);
//! - CAP_SYS_RESOURCE withheld: containerd's `restrict_oom_score_adj` (a pod's negative OOM
//!   score is clamped to containerd's own instead of failing the sandbox);
//! - nothing outside reachable: the sandbox image is made here (pause.c of the same module,
//!   static, packed with crane) and served with the operator's image by the loopback registry;
//! - no kube-proxy: the apiserver listens on the `kubernetes` Service's IP itself, an address
//!   of this machine (see [`crate::control_plane::NodeAccess`]).
//!
//! Everything a node makes (containerd, the kubelet, the shims and the containers, mounts,
//! cgroups, the bridge, its directory) is undone by a janitor process when the [`Node`] is
//! dropped, and also when this process dies.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::{Api, Client};

use crate::binaries::kubernetes_bin_dir;
use crate::control_plane::{ControlPlane, NodeAccess, free_port};
use crate::supervised::{Supervised, log_tail};

/// The Node's name (what the kubelet registers and its token's user names).
pub const NODE_NAME: &str = "labpods-node";
/// The hierarchies of cgroup v1 the kubelet and runc use.
const CGROUP_HIERARCHIES: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
];
const CNI_PLUGINS: &str = "/usr/lib/cni";
/// Directories the kubelet, containerd's CNI library and the shims use whatever their
/// configuration says, deepest first: removed by the janitor, once empty, when the node made
/// them.
const MACHINE_DIRS: &[&str] = &[
    "/var/log/containers",
    "/var/lib/kubelet/device-plugins",
    "/var/lib/kubelet",
    "/var/lib/cni/results",
    "/var/lib/cni",
    "/run/containerd/s",
    "/run/containerd",
];

/// What the kubelet sets on the whole machine at startup (`setupKernelTunables`, and the
/// keyrings its containers need) and the bridge plugin sets for a gateway (`ip_forward`):
/// restored by the janitor.
const KERNEL_TUNABLES: &[&str] = &[
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
];
/// How long the kubelet gets to register its Node and report it Ready (about 10 s here).
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Undoes a node, when its owner lets go of its stdin or dies: kills the kubelet, the
/// containers (by the cgroups they run in), the shims and containerd (by the paths of this
/// node in their command lines, which the janitor's own command line does not hold), unmounts
/// what is mounted beneath the node's directory, removes the cgroups and the bridge, what the
/// kubelet, containerd and its shims leave at fixed paths of the machine (the kubelet's
/// /var/log/containers links and device-plugin socket, the CNI result cache, the shims'
/// sockets in /run/containerd/s, named by a hash of containerd's address, namespace and
/// sandbox id), then the directory; removes those fixed directories it made (`made`, a
/// colon-separated list, deepest first) once empty; and puts back the kernel tunables the
/// kubelet and the bridge plugin set (`name=value` arguments, names under /proc/sys).
/// Bounded: every wait gives up after a few seconds.
const JANITOR: &str = r#"
dir=$1 bridge=$2 cgroup=$3 made=$4
shift 4
cat >/dev/null
# The shims' ids, before containerd cleans up after the dead ones (their sockets stay).
tasks=$(ls "$dir/containerd/state/io.containerd.runtime.v2.task/k8s.io" 2>/dev/null)
kill_named() {
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] && continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    case $cmd in *"$1"*) kill "-$2" "$pid" 2>/dev/null ;; esac
  done
}
kill_cgroups() {
  for h in memory pids; do
    [ -d "/sys/fs/cgroup/$h/$cgroup" ] || continue
    find "/sys/fs/cgroup/$h/$cgroup" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u | while read -r pid; do kill -KILL "$pid" 2>/dev/null; done
}
kill_named "$dir/kubelet.yaml" TERM
sleep 1
kill_named "$dir/kubelet.yaml" KILL
kill_cgroups
kill_named "$dir/containerd.sock" KILL
kill_named "$dir/containerd.toml" TERM
sleep 1
kill_cgroups
kill_named "$dir/containerd.sock" KILL
kill_named "$dir/containerd.toml" KILL
sleep 0.5
findmnt -rn -o TARGET | grep -F "$dir/" | sort -r | while read -r target; do
  umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null
done
for h in cpu cpuacct cpuset memory devices freezer blkio pids systemd; do
  [ -d "/sys/fs/cgroup/$h/$cgroup" ] && find "/sys/fs/cgroup/$h/$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null
  # The parents made in the other hierarchies (the memory one's is this session's own).
  [ "$h" = memory ] && continue
  parent=${cgroup%/*}
  while [ "$parent" != "$cgroup" ] && rmdir "/sys/fs/cgroup/$h/$parent" 2>/dev/null; do
    case $parent in */*) parent=${parent%/*} ;; *) break ;; esac
  done
done
ip link del "$bridge" 2>/dev/null
for task in $tasks; do
  hash=$(printf '%s' "$dir/containerd.sock/k8s.io/$task" | sha256sum | cut -d' ' -f1)
  rm -f "/run/containerd/s/$hash"
done
for result in /var/lib/cni/results/"$bridge"-*; do
  [ -e "$result" ] || continue
  sandbox=${result#/var/lib/cni/results/"$bridge"-}
  rm -f "$result" "/var/lib/cni/results/cni-loopback-${sandbox%-eth0}-lo"
done
for link in /var/log/containers/*.log; do
  case $(readlink "$link") in "$dir"/*) rm -f "$link" ;; esac
done
rm -f /var/lib/kubelet/device-plugins/kubelet.sock
rm -rf "$dir"
IFS=:
for made_dir in $made; do rmdir "$made_dir" 2>/dev/null; done
unset IFS
for setting in "$@"; do
  printf '%s\n' "${setting#*=}" >"/proc/sys/${setting%%=*}" 2>/dev/null
done
"#;

/// The node's network: a bridge carrying the pods' gateway, and the `kubernetes` Service's IP
/// (which the control plane puts on `lo`, see [`NodeAccess`]).
#[derive(Debug, Clone)]
pub struct NodeNetwork {
    pub bridge: String,
    /// The bridge's address: the pods' default gateway, and where this machine's services
    /// (the simulated BMCs) listen for pods.
    pub gateway: Ipv4Addr,
    /// The pods' /24.
    pub pod_subnet: String,
    /// The Service range and its first address, the `kubernetes` Service's.
    pub service_cidr: String,
    pub service_ip: Ipv4Addr,
}

impl NodeNetwork {
    /// Free /24s (10.244.n.0 for pods, 10.97.n.0 for Services) and bridge name for `n` picked
    /// from this process's id, so that two test runs on one machine do not meet.
    fn pick() -> Result<Self> {
        let addresses = run("ip", &["-o", "addr", "show"])?;
        let links = run("ip", &["-o", "link", "show"])?;
        let start = std::process::id() as usize;
        for offset in 0..200 {
            let n = 16 + (start + offset) % 200;
            let bridge = format!("labpods{n}");
            let taken = addresses.contains(&format!(" 10.244.{n}."))
                || addresses.contains(&format!(" 10.97.{n}."))
                || links.contains(&format!(": {bridge}:"))
                || links.contains(&format!(": {bridge}@"));
            if !taken {
                return Ok(Self {
                    bridge,
                    gateway: Ipv4Addr::new(10, 244, n as u8, 1),
                    pod_subnet: format!("10.244.{n}.0/24"),
                    service_cidr: format!("10.97.{n}.0/24"),
                    service_ip: Ipv4Addr::new(10, 97, n as u8, 1),
                });
            }
        }
        bail!("no free 10.244.n.0/24 for a node's pods")
    }

    /// What a control plane for this node is configured with.
    pub fn access(&self) -> NodeAccess {
        NodeAccess {
            service_ip: self.service_ip,
            service_cidr: self.service_cidr.clone(),
        }
    }
}

/// A node: containerd and a kubelet, with a registry the pods' images come from.
#[derive(Debug)]
pub struct Node {
    // Dropped in declaration order: the kubelet stops first (it would restart what the
    // janitor kills), then the janitor undoes the rest; containerd and the registry have
    // exited (or are stopped) after it.
    kubelet: Option<Supervised>,
    _janitor: Janitor,
    containerd: Supervised,
    registry: Supervised,
    network: NodeNetwork,
    dir: PathBuf,
    logs: PathBuf,
    registry_address: String,
    cgroup: String,
    bin: PathBuf,
}

impl Node {
    /// Everything but the kubelet: the bridge, the cgroup root, the registry with the
    /// sandbox image, containerd. The control plane starts next (it listens on the bridge),
    /// then [`Node::join`]. Component logs go to `logs`.
    pub async fn prepare(logs: &Path) -> Result<Self> {
        ensure!(
            run("id", &["-u"])?.trim() == "0",
            "a kubelet needs root (mounts, cgroups, network namespaces): run the test as root"
        );
        // Debian's containerd, runc, CNI plugins and iproute2: installed when missing.
        let cni = crate::helm::support_script("kubelet-node.sh", &[])?;
        ensure!(
            cni == Path::new(CNI_PLUGINS),
            "tests/support/kubelet-node.sh reports the CNI plugins in {}, not {CNI_PLUGINS}",
            cni.display()
        );
        for tool in [
            "containerd",
            "containerd-shim-runc-v2",
            "runc",
            "ip",
            "findmnt",
            "sha256sum",
        ] {
            ensure!(
                which(tool),
                "{tool} is missing after tests/support/kubelet-node.sh"
            );
        }
        let bin = node_binaries()?;

        // containerd's overlay snapshots want a disk, not the tmpfs the control plane uses.
        let tempdir = tempfile::Builder::new()
            .prefix("labpods-node-")
            .tempdir()
            .context("creating the node's directory")?;
        let dir = tempdir.path().to_path_buf();
        let network = NodeNetwork::pick()?;
        let cgroup = node_cgroup(&dir)?;
        // From here the janitor owns the directory, the bridge and the cgroups.
        let janitor = Janitor::spawn(&dir, &network.bridge, &cgroup, logs)?;
        let _ = tempdir.keep();

        let ip = |args: &[&str]| run("ip", args).map(drop);
        ip(&["link", "add", &network.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", network.gateway),
            "dev",
            &network.bridge,
        ])?;
        ip(&["link", "set", &network.bridge, "up"])?;
        for hierarchy in CGROUP_HIERARCHIES {
            let path = Path::new("/sys/fs/cgroup").join(hierarchy).join(&cgroup);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating the cgroup {}", path.display()))?;
        }

        let port = free_port()?;
        let registry_address = format!("127.0.0.1:{port}");
        let mut registry = Supervised::spawn(
            "registry",
            &bin.join("registry"),
            &[OsString::from("-port"), OsString::from(port.to_string())],
            &logs.join("registry.log"),
        )?;
        registry
            .wait_listening(port, Duration::from_secs(30))
            .await?;
        let pause = format!("{registry_address}/pause:3.10.2");
        push_pause(&bin, &dir, &pause)?;

        let config = dir.join("containerd.toml");
        write(&config, &containerd_config(&dir, &registry_address, &pause))?;
        write(
            &dir.join("certs.d")
                .join(&registry_address)
                .join("hosts.toml"),
            &format!(
                "server = \"http://{registry_address}\"\n\n[host.\"http://{registry_address}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )?;
        write(
            &dir.join("cni/10-labpods.conflist"),
            &cni_config(&dir, &network),
        )?;
        let containerd_path = PathBuf::from("containerd");
        let mut containerd = Supervised::spawn(
            "containerd",
            &containerd_path,
            &[OsString::from("--config"), config.into_os_string()],
            &logs.join("containerd.log"),
        )?;
        let socket = dir.join("containerd.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            containerd.check_running()?;
            ensure!(
                Instant::now() < deadline,
                "containerd did not open {} in 30 s:\n{}",
                socket.display(),
                log_tail(containerd.log())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            kubelet: None,
            _janitor: janitor,
            containerd,
            registry,
            network,
            dir,
            logs: logs.to_path_buf(),
            registry_address,
            cgroup,
            bin,
        })
    }

    pub fn network(&self) -> &NodeNetwork {
        &self.network
    }

    /// `host:port` of the registry the node pulls from (plain HTTP, on loopback).
    pub fn registry(&self) -> &str {
        &self.registry_address
    }

    /// The cgroup (relative to each hierarchy's root) the node's pods run under.
    pub fn cgroup_root(&self) -> &str {
        &self.cgroup
    }

    /// Where the kubelet writes the containers' logs (`<namespace>_<pod>_<uid>/<container>/`).
    pub fn pod_logs(&self) -> PathBuf {
        self.dir.join("pod-logs")
    }

    /// Pushes an OCI image layout (`cargo xtask image --out DIR`) to the node's registry as
    /// `<registry>/<name>`; returns the reference by digest.
    pub fn push_image(&self, layout: &Path, name: &str) -> Result<String> {
        let target = format!("{}/{name}", self.registry_address);
        let out = run_os(
            &self.bin.join("crane"),
            &[
                "push".as_ref(),
                "--insecure".as_ref(),
                layout.as_os_str(),
                target.as_ref(),
            ],
        )?;
        Ok(out.trim().to_string())
    }

    /// Starts the kubelet as Node [`NODE_NAME`] with `token` (a token-file user
    /// `system:node:<NODE_NAME>` in group `system:nodes`, so that the Node authorizer governs
    /// it) and waits until its Node is Ready. Its InternalIP is the bridge's address, where
    /// it serves clients with a certificate of the control plane's CA only: the apiserver,
    /// for `kubectl logs` and `exec`.
    pub async fn join(&mut self, plane: &ControlPlane, client: &Client, token: &str) -> Result<()> {
        let kubeconfig = self.dir.join("kubelet.kubeconfig.yaml");
        crate::kubeconfig::write_kubeconfig(
            &kubeconfig,
            plane.server(),
            &plane.ca_cert(),
            &format!("system:node:{NODE_NAME}"),
            token,
        )?;
        let client_ca = self.dir.join("kubelet-client-ca.crt");
        std::fs::copy(plane.ca_cert(), &client_ca)
            .with_context(|| format!("copying {}", plane.ca_cert().display()))?;
        let config = self.dir.join("kubelet.yaml");
        let address = self.network.gateway;
        write(
            &config,
            &kubelet_config(&self.dir, &self.cgroup, address, free_port()?, &client_ca),
        )?;
        let args: Vec<OsString> = [
            format!("--config={}", config.display()),
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--root-dir={}", self.dir.join("kubelet").display()),
            format!("--cert-dir={}", self.dir.join("kubelet/pki").display()),
            format!("--hostname-override={NODE_NAME}"),
            // Not loopback, which a kubelet refuses as its node IP.
            format!("--node-ip={address}"),
            "--v=2".to_string(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let mut kubelet = Supervised::spawn(
            "kubelet",
            &self.bin.join("kubelet"),
            &args,
            &self.logs.join("kubelet.log"),
        )?;
        let nodes: Api<NodeObject> = Api::all(client.clone());
        let deadline = Instant::now() + NODE_READY_TIMEOUT;
        loop {
            kubelet.check_running()?;
            self.containerd.check_running()?;
            let ready = nodes.get_opt(NODE_NAME).await?.is_some_and(|node| {
                node.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
            if ready {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "Node {NODE_NAME} not Ready after {} s; the end of the kubelet's log:\n{}",
                NODE_READY_TIMEOUT.as_secs(),
                log_tail(kubelet.log())
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.kubelet = Some(kubelet);
        Ok(())
    }

    /// Fails with the component's log if containerd, the kubelet or the registry exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.containerd.check_running()?;
        self.registry.check_running()?;
        if let Some(kubelet) = &mut self.kubelet {
            kubelet.check_running()?;
        }
        Ok(())
    }

    /// The pids of a container, found by its id in the node's cgroups.
    pub fn container_pids(&self, container_id: &str) -> Result<Vec<u32>> {
        let root = Path::new("/sys/fs/cgroup/pids").join(&self.cgroup);
        let dir = find_dir(&root, container_id)?.with_context(|| {
            format!(
                "no cgroup of container {container_id} under {}",
                root.display()
            )
        })?;
        let procs = std::fs::read_to_string(dir.join("cgroup.procs"))?;
        Ok(procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// The end of every container's log, for a failing test's diagnostics.
    pub fn pod_log_tails(&self) -> String {
        let mut out = String::new();
        for (pod, container, log) in self.container_logs() {
            out.push_str(&format!(
                "--- pod {pod}, container {container}, end of {}:\n{}\n",
                log.display(),
                log_tail(&log)
            ));
        }
        out
    }

    /// (pod directory name `<namespace>_<pod>_<uid>`, container, log file) of every log.
    fn container_logs(&self) -> Vec<(String, String, PathBuf)> {
        let mut logs = Vec::new();
        let name = |path: &Path| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let entries = |dir: &Path| -> Vec<PathBuf> {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            paths.sort();
            paths
        };
        for pod in entries(&self.pod_logs()) {
            for container in entries(&pod) {
                for log in entries(&container) {
                    logs.push((name(&pod), name(&container), log));
                }
            }
        }
        logs
    }

    /// Copies every container log into the node's log directory (kept after the test) as
    /// `pod-<namespace>_<pod>_<container>-<restart>.log`.
    pub fn keep_pod_logs(&self) -> Result<Vec<PathBuf>> {
        let mut kept = Vec::new();
        for (pod, container, log) in self.container_logs() {
            // <namespace>_<pod>_<uid>: the uid says nothing to a reader.
            let pod = pod.rsplit_once('_').map_or(pod.as_str(), |(p, _)| p);
            let restart = log
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let to = self
                .logs
                .join(format!("pod-{pod}_{container}-{restart}.log"));
            std::fs::copy(&log, &to).with_context(|| format!("copying {}", log.display()))?;
            kept.push(to);
        }
        Ok(kept)
    }
}

/// The node's cgroup root, relative to each hierarchy's root: inside this process's memory
/// cgroup (on this machine, the session's own, which may carry its memory limit), so that
/// what the pods use is charged where this process's use is; cgroupfs on v1 wants the same
/// path in every hierarchy, made in the others.
fn node_cgroup(dir: &Path) -> Result<String> {
    let own = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let memory = own
        .lines()
        .find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            controllers.split(',').any(|c| c == "memory").then(|| path.to_string())
        })
        .context("no memory cgroup (v1) in /proc/self/cgroup: the node needs cgroup v1's memory hierarchy")?;
    let suffix = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("labpods-node-"))
        .unwrap_or("x");
    let parent = memory.trim_matches('/');
    Ok(if parent.is_empty() {
        format!("labpods-node-{suffix}")
    } else {
        format!("{parent}/labpods-node-{suffix}")
    })
}

/// The control plane's bin directory with what a node needs beside it, built by the build
/// script for the same minor when missing (`cargo xtask test` has built them already).
fn node_binaries() -> Result<PathBuf> {
    const NEEDED: &[&str] = &["kube-scheduler", "kubelet", "pause", "crane", "registry"];
    let bin = kubernetes_bin_dir()?;
    if NEEDED.iter().all(|name| bin.join(name).is_file()) {
        return Ok(bin);
    }
    // The script keeps each version in .../k8s-<major.minor.patch>/bin.
    let minor = bin
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("k8s-"))
        .and_then(|v| v.rsplit_once('.').map(|(minor, _)| minor.to_string()))
        .with_context(|| {
            format!(
                "{} is missing some of {NEEDED:?}, and is not a directory of \
                 tests/support/build-control-plane.sh to build them into",
                bin.display()
            )
        })?;
    let mut args = vec![minor.as_str()];
    args.extend(NEEDED);
    let built = crate::helm::support_script("build-control-plane.sh", &args)?;
    ensure!(
        built == bin,
        "build-control-plane.sh built into {}, not {}",
        built.display(),
        bin.display()
    );
    Ok(bin)
}

/// The janitor: a `sh` that runs [`JANITOR`] when its stdin closes, given time to finish.
#[derive(Debug)]
struct Janitor(Option<Supervised>);

impl Janitor {
    fn spawn(dir: &Path, bridge: &str, cgroup: &str, logs: &Path) -> Result<Self> {
        let made: Vec<&str> = MACHINE_DIRS
            .iter()
            .copied()
            .filter(|dir| !Path::new(dir).exists())
            .collect();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(JANITOR)
            .arg("node-janitor")
            .arg(dir)
            .arg(bridge)
            .arg(cgroup)
            .arg(made.join(":"));
        for name in KERNEL_TUNABLES {
            let path = Path::new("/proc/sys").join(name);
            let value = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            command.arg(format!("{name}={}", value.trim()));
        }
        let janitor =
            Supervised::spawn_command("node-janitor", command, &logs.join("node-janitor.log"))?;
        Ok(Self(Some(janitor)))
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        if let Some(mut janitor) = self.0.take() {
            janitor.stop();
        }
    }
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let os: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    run_os(Path::new(program), &os)
}

fn run_os(program: &Path, args: &[&std::ffi::OsStr]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    ensure!(
        output.status.success(),
        "{} {} failed ({}):\n{}",
        program.display(),
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The sandbox image: the static pause binary as /pause, one layer, run as 65535.
fn push_pause(bin: &Path, dir: &Path, reference: &str) -> Result<()> {
    let root = dir.join("pause-image");
    std::fs::create_dir_all(&root)?;
    std::fs::copy(bin.join("pause"), root.join("pause"))?;
    let tarball = dir.join("pause.tar");
    run_os(
        Path::new("tar"),
        &[
            "-C".as_ref(),
            root.as_os_str(),
            "--owner=0".as_ref(),
            "--group=0".as_ref(),
            "-cf".as_ref(),
            tarball.as_os_str(),
            "pause".as_ref(),
        ],
    )?;
    let crane = bin.join("crane");
    run_os(
        &crane,
        &[
            "append".as_ref(),
            "--insecure".as_ref(),
            "--oci-empty-base".as_ref(),
            "-f".as_ref(),
            tarball.as_os_str(),
            "-t".as_ref(),
            reference.as_ref(),
        ],
    )?;
    run_os(
        &crane,
        &[
            "mutate".as_ref(),
            "--insecure".as_ref(),
            "--entrypoint=/pause".as_ref(),
            "--user=65535:65535".as_ref(),
            "--set-platform=linux/amd64".as_ref(),
            reference.as_ref(),
        ],
    )?;
    Ok(())
}

/// containerd's own root, state, socket and CNI directories beneath `dir`; cgroupfs; the
/// OOM score clamped; the sandbox image and plain HTTP from the loopback registry.
fn containerd_config(dir: &Path, registry: &str, pause: &str) -> String {
    let dir = dir.display();
    format!(
        r#"version = 2
root = "{dir}/containerd/root"
state = "{dir}/containerd/state"
# Snapshotters and plugins that would look at the machine's own directories.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{dir}/containerd.sock"

[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # CAP_SYS_RESOURCE is withheld here: runc cannot lower oom_score_adj to the kubelet's -998.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's state, else in /run/containerd/runc.
        Root = "{dir}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_PLUGINS}"
    conf_dir = "{dir}/cni"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    # hosts.toml per registry: {registry} is plain HTTP.
    config_path = "{dir}/certs.d"
"#
    )
}

/// A bridge network: the pods' /24 with the bridge as gateway and default route; no
/// masquerade (pods only talk to this machine).
fn cni_config(dir: &Path, network: &NodeNetwork) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        // Named by the bridge: libcni caches results as /var/lib/cni/results/<name>-<sandbox>-eth0.
        "name": network.bridge,
        "plugins": [{
            "type": "bridge",
            "bridge": network.bridge,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "dataDir": dir.join("cni-ipam"),
                "ranges": [[{
                    "subnet": network.pod_subnet,
                    "gateway": network.gateway.to_string(),
                }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
            },
        }],
    })
    .to_string()
}

/// The kubelet: cgroup v1 allowed, cgroupfs under the node's cgroup root, containerd's
/// socket, its files beneath `dir`, serving on `address` (the bridge's, its node IP) to
/// clients with a certificate of `client_ca` only, no eviction thresholds a busy CI disk
/// could cross.
fn kubelet_config(
    dir: &Path,
    cgroup: &str,
    address: Ipv4Addr,
    port: u16,
    client_ca: &Path,
) -> String {
    let dir = dir.display();
    let client_ca = client_ca.display();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup}
containerRuntimeEndpoint: unix://{dir}/containerd.sock
address: {address}
port: {port}
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {client_ca}}}
authorization: {{mode: AlwaysAllow}}
podLogsDir: {dir}/pod-logs
volumePluginDir: {dir}/volume-plugins
resolvConf: ""
failSwapOn: false
evictionHard: {{memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}}
"#
    )
}

/// The directory named `name` beneath `root` (depth first), if any.
fn find_dir(root: &Path, name: &str) -> Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        if entry.file_name() == name {
            return Ok(Some(path));
        }
        if let Some(found) = find_dir(&path, name)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

//! `cargo xtask demo [--exit-when-ready]`: the README's first command. A local control plane
//! with the CRDs, a simulated lab of 8 BMCs (`labpods-sim`, ports 9101-9108 as in
//! examples/lab), the operator (`labpods run`), and the example booking `team-a/ci-pod` (1
//! jumphost + 3 nodes) made with `kubectl lab book` and your SSH key, followed until Ready and
//! until every host reported its address and host key (the simulated hosts read their seeds and
//! phone home as cloud-init would); then the pod's descriptor and what to try next, and
//! everything keeps running until Ctrl-C, which tears it all down.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use labpods_api::v1alpha1::{LabHost, PodRequest, PodRequestPhase};

use crate::kube_binaries::{ALL_COMPONENTS, KubeBinaries};
use crate::testenv::{SharedControlPlane, cargo, debug_bin};
use crate::workspace_root;

const USAGE: &str = "usage: cargo xtask demo [--exit-when-ready]";
const NAMESPACE: &str = "team-a";
const POD: &str = "ci-pod";
/// The image and purpose of examples/podrequests/pod-now.yaml.
const IMAGE: &str = "http://127.0.0.1:8080/images/ubuntu-24.04-live-server-amd64.iso";
const PURPOSE: &str = "CI for the release branch";
const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// Ports the operator serves on (8080 is the example image server's).
const METRICS_ADDRESS: &str = "127.0.0.1:9180";
const PHONE_HOME_ADDRESS: &str = "127.0.0.1:9181";

/// A demo config: quick polls so the progress moves; everything else the documented default.
const OPERATOR_CONFIG: &str = "\
polling:
  idleInterval: 5s
  busyInterval: 1s
  errorBackoffBase: 1s
  errorBackoffMax: 10s
provisioning:
  bootFallback: 60s
leaderElection:
  leaseNamespace: labpods-system
phoneHome:
  externalBaseUrl: http://127.0.0.1:9181
";

pub fn run(args: &[String]) -> Result<()> {
    let exit_when_ready = match args {
        [] => false,
        [flag] if flag == "--exit-when-ready" => true,
        _ => bail!("{USAGE}"),
    };
    let root = workspace_root();
    say("building the control plane (once per machine; minutes the first time)");
    let binaries = KubeBinaries::install(&root, "newest", ALL_COMPONENTS)?;
    say("building labpods, labpods-sim and labpods-testenv");
    build(&root)?;
    let dir = std::env::temp_dir().join(format!("labpods-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    say("starting the control plane (etcd, kube-apiserver, kube-controller-manager) with the CRDs");
    let mut plane = SharedControlPlane::start(&root, &binaries)?;
    let kubeconfig = plane.kubeconfig.clone();
    let bin = debug_bin(&root);
    let kubectl = Kubectl {
        binary: binaries.kubectl.clone(),
        kubeconfig: kubeconfig.clone(),
        plugins: bin.clone(),
    };

    say("starting 8 simulated BMCs on 127.0.0.1:9101-9108 (labpods-sim)");
    let sim = Background::spawn(
        "labpods-sim",
        Command::new(bin.join("labpods-sim")).args([
            "--hosts",
            "8",
            "--port-base",
            "9100",
            "--boot-time",
            "5s",
        ]),
        &dir.join("labpods-sim.log"),
        "-INT",
    )?;

    say("registering the lab: kubectl apply -f examples/lab/");
    kubectl.run(&[
        "apply",
        "-f",
        &root.join("examples/lab").display().to_string(),
    ])?;

    say("starting the operator: labpods run");
    let config = dir.join("operator-config.yaml");
    std::fs::write(&config, OPERATOR_CONFIG).context("writing the operator config")?;
    let operator_binary = Some(bin.join("labpods"))
        .filter(|path| path.is_file())
        .context("the operator binary `labpods` is missing after cargo build")?;
    let operator_log = dir.join("operator.log");
    let operator = Background::spawn(
        "labpods run",
        Command::new(operator_binary)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .args([
                "--metrics-address",
                METRICS_ADDRESS,
                "--phone-home-address",
                PHONE_HOME_ADDRESS,
            ])
            .env("KUBECONFIG", &kubeconfig),
        &operator_log,
        "-TERM",
    )?;

    let key = ssh_key(&dir);
    say("the team's namespace: kubectl apply -f examples/podrequests/00-namespace.yaml");
    kubectl.run(&[
        "apply",
        "-f",
        &root
            .join("examples/podrequests/00-namespace.yaml")
            .display()
            .to_string(),
    ])?;
    // examples/podrequests/pod-now.yaml as a user books it: the same roles, profiles, image,
    // length and purpose (its arch selector adds nothing here: every example host is x86_64).
    let mut book = vec![
        "lab",
        "book",
        POD,
        "-n",
        NAMESPACE,
        "--role",
        "jumphost=1:x86-small",
        "--role",
        "node=3:x86-large",
        "--image",
        IMAGE,
        "--for",
        "3d",
        "--purpose",
        PURPOSE,
    ];
    let key_path = key.as_ref().map(|path| path.display().to_string());
    if let Some(path) = &key_path {
        book.extend(["--ssh-key", path.as_str()]);
    }
    say(&format!(
        "booking a pod (1 jumphost + 3 nodes, as examples/podrequests/pod-now.yaml) with {}",
        match &key {
            None => "no SSH key (none found, and no ssh-keygen)",
            Some(path) if path.starts_with(&dir) => "a demo SSH key made for it",
            Some(_) => "your SSH key",
        }
    ));
    say(&format!("kubectl {}", shell_words(&book)));
    print!("{}", kubectl.output(&book)?);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    let followed = runtime.block_on(follow(&kubeconfig));
    if let Err(err) = followed {
        eprintln!("\nthe operator's log ends with:\n{}", tail(&operator_log));
        return Err(err);
    }
    // What a user of the lab types next: the plugin, through kubectl's plugin lookup.
    for args in [
        ["lab", "status", POD, "-n", NAMESPACE].as_slice(),
        &["lab", "hosts"],
        &["lab", "descriptor", POD, "-n", NAMESPACE],
    ] {
        say(&format!("kubectl {}", args.join(" ")));
        print!("{}", kubectl.output(args)?);
    }
    print_next_steps(&kubeconfig, &kubectl.binary, &bin, &dir);
    if !exit_when_ready {
        runtime.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
        println!();
    }
    say("tearing down: operator, simulator, control plane");
    drop(operator);
    drop(sim);
    plane.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn build(root: &Path) -> Result<()> {
    let status = cargo()
        .args([
            "build",
            "-p",
            "labpods-operator",
            "-p",
            "labpods-sim",
            "-p",
            "kubectl-lab",
            "--bins",
        ])
        .args(["-p", "labpods-tests", "--bin", "labpods-testenv"])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(())
}

/// Prints the booking's phase changes and each host's steps until the booking is Ready.
async fn follow(kubeconfig: &Path) -> Result<()> {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).context("reading the kubeconfig")?,
        &KubeConfigOptions::default(),
    )
    .await
    .context("loading the kubeconfig")?;
    let client = Client::try_from(config).context("making a Kubernetes client")?;
    let requests: Api<PodRequest> = Api::namespaced(client.clone(), NAMESPACE);
    let hosts: Api<LabHost> = Api::all(client);
    let started = Instant::now();
    let mut shown_request = String::new();
    let mut shown_hosts: BTreeMap<String, String> = BTreeMap::new();
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    loop {
        poll.tick().await;
        let elapsed = started.elapsed();
        if elapsed > READY_TIMEOUT {
            bail!(
                "{NAMESPACE}/{POD} was not Ready within {} s",
                READY_TIMEOUT.as_secs()
            );
        }
        let request = requests
            .get_opt(POD)
            .await
            .context("reading the PodRequest")?;
        let status = request.and_then(|r| r.status).unwrap_or_default();
        let line = format!(
            "{POD}: {}{}",
            status
                .phase
                .map_or_else(|| "(new)".to_string(), |p| format!("{p:?}")),
            status
                .message
                .as_deref()
                .map(|m| format!(" - {m}"))
                .unwrap_or_default()
        );
        if line != shown_request {
            progress(elapsed, &line);
            shown_request = line;
        }
        for host in hosts
            .list(&Default::default())
            .await
            .context("listing LabHosts")?
            .items
        {
            let name = host.metadata.name.clone().unwrap_or_default();
            let line = host_line(&host);
            if shown_hosts.get(&name) != Some(&line) {
                progress(elapsed, &format!("  {name}: {line}"));
                shown_hosts.insert(name, line);
            }
        }
        let reported = status
            .hosts
            .iter()
            .all(|h| !h.addresses.is_empty() && !h.host_keys.is_empty());
        if status.phase == Some(PodRequestPhase::Ready) && reported {
            println!("\n{POD} is Ready after {:.0} s:", elapsed.as_secs_f64());
            for h in &status.hosts {
                println!(
                    "  {:<11} {:<8} {:<15} {}",
                    h.hostname.as_deref().unwrap_or(&h.role),
                    h.host,
                    h.addresses.join(","),
                    h.host_keys
                        .first()
                        .map(|k| key_summary(k))
                        .unwrap_or_default(),
                );
            }
            println!(
                "  (host keys verified: kubectl lab ssh pins them from the Secret {})",
                status.access_secret.as_deref().unwrap_or("<none yet>")
            );
            return Ok(());
        }
    }
}

/// `ssh-ed25519 …0dh2l9GKJl`: the key's type and the end of its body (the start is the same
/// for every key of a type), enough to tell hosts apart on one line.
fn key_summary(key: &str) -> String {
    let mut parts = key.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return key.to_owned();
    };
    let tail: String = blob
        .chars()
        .rev()
        .take(16)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{kind} …{tail}")
}

/// The user's SSH public key file (`~/.ssh/id_ed25519.pub`, `id_ecdsa.pub`, `id_rsa.pub`,
/// the first with a key in it), or a demo key made in `dir` with ssh-keygen; None when there
/// is neither.
fn ssh_key(dir: &Path) -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for name in ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"] {
        if let Some(path) = home.as_ref().map(|h| h.join(".ssh").join(name))
            && let Ok(text) = std::fs::read_to_string(&path)
            && text.lines().any(|l| !l.trim().is_empty())
        {
            return Some(path);
        }
    }
    let private = dir.join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "labpods-demo", "-f"])
        .arg(&private)
        .stdin(Stdio::null())
        .status();
    made.is_ok_and(|s| s.success())
        .then(|| dir.join("id_ed25519.pub"))
}

/// `Provisioning (InsertMedia), power On, claimed by team-a/ci-pod`.
fn host_line(host: &LabHost) -> String {
    let status = host.status.clone().unwrap_or_default();
    let mut line = status
        .state
        .map_or_else(|| "(new)".to_string(), |s| format!("{s:?}"));
    if let Some(progress) = &status.provisioning {
        line.push_str(&format!(" ({:?} {:?})", progress.operation, progress.step));
    }
    if let Some(power) = status.power {
        line.push_str(&format!(", power {power:?}"));
    }
    if let Some(claim) = &host.spec.claim_ref {
        line.push_str(&format!(", claimed by {}/{}", claim.namespace, claim.name));
    }
    if let Some(error) = &status.last_error {
        line.push_str(&format!(", last error: {error}"));
    }
    line
}

fn print_next_steps(kubeconfig: &Path, kubectl: &Path, bin: &Path, dir: &Path) {
    println!(
        "
The lab runs until Ctrl-C. In another terminal:

  export KUBECONFIG={kubeconfig}
  export PATH={kubectl_dir}:{bin}:$PATH   # the kubectl it built, and kubectl-lab
  kubectl lab hosts                                 # the 8 hosts, who holds each until when
  kubectl lab status {POD} -n {NAMESPACE}               # per-host progress, conditions, events
  kubectl lab descriptor {POD} -n {NAMESPACE} --idf      # the pod's IDF (without --idf: its PDF)
  kubectl get secret {POD}-access -n {NAMESPACE} -o jsonpath='{{.data.known_hosts}}' | base64 -d
  kubectl lab calendar --days 3                     # who holds which host when
  kubectl lab book demo-2 -n {NAMESPACE} --role node=2 --profile x86-small \
      --image http://127.0.0.1:8080/images/ubuntu-24.04-live-server-amd64.iso --start +1d --for 1d
  kubectl lab extend {POD} -n {NAMESPACE} --by 1d
  kubectl lab release {POD} -n {NAMESPACE}              # hosts power off, media ejected, back to the pool
  kubectl lab report --since 1d                     # utilization, waits, provisioning
  kubectl get lab -A                                # every labpods object, raw
  LABPODS_BMC_USERNAME=admin LABPODS_BMC_PASSWORD=labpods \
    {bin}/labpods bmc --endpoint http://127.0.0.1:9103 info   # host-03's BMC over Redfish
  curl -s http://127.0.0.1:9100/admin/hosts/3       # what simulated BMC 3 saw
  curl -s http://{METRICS_ADDRESS}/metrics

Logs: {dir}/operator.log, {dir}/labpods-sim.log",
        kubeconfig = kubeconfig.display(),
        kubectl_dir = kubectl.parent().unwrap_or(kubectl).display(),
        bin = bin.display(),
        dir = dir.display(),
    );
}

/// `args` as a shell reads them back: an argument with a space in quotes.
fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') {
                format!("{a:?}")
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn say(what: &str) {
    println!("==> {what}");
}

fn progress(elapsed: Duration, line: &str) {
    println!("[{:>5.1}s] {line}", elapsed.as_secs_f64());
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// kubectl (the newest minor's, built beside the control plane) with the demo's kubeconfig.
struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    /// Put first on kubectl's PATH: where `kubectl lab` finds `kubectl-lab`.
    plugins: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> Result<()> {
        self.output(args).map(drop)
    }

    /// Runs kubectl and returns what it printed.
    fn output(&self, args: &[&str]) -> Result<String> {
        let path = std::env::join_paths(std::iter::once(self.plugins.clone()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .context("building kubectl's PATH")?;
        // KUBECONFIG, not --kubeconfig: kubectl refuses flags before a plugin's name.
        let output = Command::new(&self.binary)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", path)
            .output()
            .context("running kubectl")?;
        if !output.status.success() {
            bail!(
                "kubectl {} failed ({}):\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// A child in its own process group (so a Ctrl-C reaches only the demo, which then stops
/// the children in order), stopped with `signal` when dropped.
struct Background {
    name: &'static str,
    child: Child,
    signal: &'static str,
}

impl Background {
    fn spawn(
        name: &'static str,
        command: &mut Command,
        log: &Path,
        signal: &'static str,
    ) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating a log handle")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name,
            child,
            signal,
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args([self.signal, &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

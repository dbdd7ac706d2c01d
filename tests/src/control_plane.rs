//! etcd + kube-apiserver (+ kube-controller-manager where it was built) on 127.0.0.1, on
//! free ports, in a directory of their own that is removed when the control plane stops.
//! For a node on this machine ([`ControlPlaneConfig::for_nodes`], what [`crate::kubelet`]
//! runs pods with) the apiserver serves on the `kubernetes` Service's own IP instead, with the
//! Node authorizer, a kube-scheduler and the controllers a Deployment needs.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};

use crate::binaries::Binaries;
use crate::crds::install_crds;
use crate::error::{Error, Result};
use crate::kubeconfig::{client_for, write_kubeconfig};
use crate::pki::Pki;
use crate::supervised::{Supervised, log_tail};

/// How long each component gets to become ready; they usually need 1 to 3 s.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(100);

/// A user of the apiserver's token file. The file is read once at startup, so users are
/// part of the [`ControlPlaneConfig`]; tests on a running cluster impersonate instead
/// ([`crate::TestCluster::client_as`]).
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub token: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ControlPlaneConfig {
    users: Vec<User>,
    crds: Vec<CustomResourceDefinition>,
    apiserver_args: Vec<String>,
    nodes: Option<NodeAccess>,
}

/// How pods of a node on this machine reach the apiserver: at the `kubernetes` Service's IP
/// (the first of `service_cidr`), port 443, which is what the kubelet tells every container
/// (KUBERNETES_SERVICE_HOST/PORT). The apiserver listens on that very address, which the
/// control plane adds to `lo` (and removes once the apiserver has exited): a pod's packets
/// to it go to its gateway, this machine, which delivers them locally. No kube-proxy.
#[derive(Debug, Clone)]
pub struct NodeAccess {
    pub service_ip: Ipv4Addr,
    pub service_cidr: String,
}

impl ControlPlaneConfig {
    /// Adds a token-file user and returns its bearer token.
    pub fn add_user(&mut self, name: &str, groups: &[&str]) -> String {
        let token = random_token();
        self.users.push(User {
            name: name.to_string(),
            token: token.clone(),
            groups: groups.iter().map(|group| group.to_string()).collect(),
        });
        token
    }

    /// CRDs installed (and Established) before the controller-manager starts, so that the
    /// garbage collector watches their kinds from its first discovery.
    pub fn crds(mut self, crds: Vec<CustomResourceDefinition>) -> Self {
        self.crds = crds;
        self
    }

    /// Extra kube-apiserver flags, e.g. `--max-requests-inflight=2000` for benchmarks.
    pub fn apiserver_arg(mut self, arg: impl Into<String>) -> Self {
        self.apiserver_args.push(arg.into());
        self
    }

    /// A control plane for kubelets: served on `access.service_ip`:443 (which must be an
    /// address of this machine), the Node authorizer before RBAC, a kube-scheduler, and the
    /// deployment, replicaset and node-lifecycle controllers (the last lifts the not-ready
    /// taint a new Node is registered with). The apiserver reaches a kubelet (`kubectl
    /// logs`, `exec`) at its Node's InternalIP with a client certificate of the CA
    /// ([`ControlPlane::ca_cert`], which the kubelet trusts for clients); it does not verify
    /// the kubelet's self-signed serving certificate (no `--kubelet-certificate-authority`).
    pub fn for_nodes(mut self, access: NodeAccess) -> Self {
        self.nodes = Some(access);
        self
    }
}

#[derive(Debug)]
pub struct ControlPlane {
    // Dropped in declaration order: scheduler, controller-manager, apiserver, etcd, then the
    // janitor removes the directory.
    scheduler: Option<Supervised>,
    controller_manager: Option<Supervised>,
    apiserver: Supervised,
    etcd: Supervised,
    _janitor: Supervised,
    /// For nodes: removes the apiserver's address once the apiserver has exited.
    address: Option<Supervised>,
    dir: PathBuf,
    kubeconfig: PathBuf,
    server: String,
}

impl ControlPlane {
    /// Starts everything and waits until the apiserver is ready, the CRDs are Established
    /// and the controller-manager's controllers run (when there is a controller-manager:
    /// the API tests of the oldest minor run without one). Ports are picked free and bound a moment
    /// later by the components; when another process takes one in between, start again on
    /// new ports (a few times) rather than fail the test.
    pub async fn start(config: ControlPlaneConfig) -> Result<Self> {
        let address = match &config.nodes {
            Some(nodes) => Some(add_service_address(nodes.service_ip)?),
            None => None,
        };
        let mut attempt = 1;
        loop {
            match Self::start_once(config.clone()).await {
                Err(e) if attempt < 3 && e.to_string().contains("address already in use") => {
                    attempt += 1;
                }
                Ok(mut plane) => {
                    plane.address = address;
                    return Ok(plane);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn start_once(config: ControlPlaneConfig) -> Result<Self> {
        let binaries = Binaries::locate()?;
        let root = state_root();
        let tempdir = tempfile::Builder::new()
            .prefix("labpods-cp-")
            .tempdir_in(&root)
            .map_err(Error::io(format!(
                "creating a directory in {}",
                root.display()
            )))?;
        let dir = tempdir.path().to_path_buf();
        let files = Files::write(&dir, &config)?;

        let etcd_client = free_port()?;
        let etcd_peer = free_port()?;
        let (address, apiserver_port) = match &config.nodes {
            Some(nodes) => (IpAddr::V4(nodes.service_ip), 443),
            None => (IpAddr::V4(Ipv4Addr::LOCALHOST), free_port()?),
        };
        let server = format!("https://{address}:{apiserver_port}");

        let mut etcd = Supervised::spawn(
            "etcd",
            &binaries.etcd,
            &etcd_args(&dir, etcd_client, etcd_peer),
            &dir.join("etcd.log"),
        )?;
        wait_for_port(&mut etcd, etcd_client).await?;

        let mut apiserver = Supervised::spawn(
            "kube-apiserver",
            &binaries.kube_apiserver,
            &apiserver_args(&files, etcd_client, address, apiserver_port, &config),
            &dir.join("kube-apiserver.log"),
        )?;
        let kubeconfig = dir.join("kubeconfig.yaml");
        write_kubeconfig(
            &kubeconfig,
            &server,
            &files.ca_cert,
            ADMIN_TOKEN_USER,
            &files.admin_token,
        )?;
        let client = client_for(&kubeconfig).await?;
        wait_for_readyz(&mut apiserver, &client).await?;

        install_crds(&client, &config.crds).await?;

        let controller_manager = match &binaries.kube_controller_manager {
            Some(binary) => {
                let kubeconfig = dir.join("kube-controller-manager.kubeconfig.yaml");
                write_kubeconfig(
                    &kubeconfig,
                    &server,
                    &files.ca_cert,
                    CONTROLLER_MANAGER_USER,
                    &files.controller_manager_token,
                )?;
                let mut controller_manager = Supervised::spawn(
                    "kube-controller-manager",
                    binary,
                    &controller_manager_args(&files, &kubeconfig, config.nodes.is_some()),
                    &dir.join("kube-controller-manager.log"),
                )?;
                wait_for_controllers(&mut controller_manager, &client).await?;
                Some(controller_manager)
            }
            None => None,
        };

        let scheduler = match &config.nodes {
            Some(_) => {
                let binary = binaries
                    .kube_scheduler
                    .as_ref()
                    .ok_or(Error::MissingBinary {
                        binary: "kube-scheduler",
                        looked_in: binaries.dir.display().to_string(),
                    })?;
                let kubeconfig = dir.join("kube-scheduler.kubeconfig.yaml");
                write_kubeconfig(
                    &kubeconfig,
                    &server,
                    &files.ca_cert,
                    SCHEDULER_USER,
                    &files.scheduler_token,
                )?;
                let path = kubeconfig.display();
                Some(Supervised::spawn(
                    "kube-scheduler",
                    binary,
                    &args([
                        format!("--kubeconfig={path}"),
                        format!("--authentication-kubeconfig={path}"),
                        format!("--authorization-kubeconfig={path}"),
                        "--leader-elect=false".to_string(),
                        "--secure-port=0".to_string(),
                    ]),
                    &dir.join("kube-scheduler.log"),
                )?)
            }
            None => None,
        };

        // From here the janitor owns the directory: it removes it even if this process dies.
        let janitor = Supervised::janitor(
            &dir,
            &[
                Some(etcd.id()),
                Some(apiserver.id()),
                controller_manager.as_ref().map(Supervised::id),
                scheduler.as_ref().map(Supervised::id),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
            Path::new("/dev/null"),
        )?;
        let dir = tempdir.keep();
        Ok(Self {
            scheduler,
            controller_manager,
            apiserver,
            etcd,
            _janitor: janitor,
            address: None,
            dir,
            kubeconfig,
            server,
        })
    }

    /// An admin (system:masters) kubeconfig, for kubectl and for processes under test.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// The directory with the components' logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fails with the component's log if one of them has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.etcd.check_running()?;
        self.apiserver.check_running()?;
        self.controller_manager
            .as_mut()
            .map_or(Ok(()), Supervised::check_running)?;
        self.scheduler
            .as_mut()
            .map_or(Ok(()), Supervised::check_running)
    }

    /// The CA that signed the apiserver's serving certificate (for a kubelet's kubeconfig).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
}

/// Keeps the `kubernetes` Service's IP on `lo` while an apiserver listens on it: waits for
/// its owner to let go (or die), then for the apiserver to exit (its supervisor kills it 15 s
/// after SIGTERM; the wait is bounded at 30 s all the same), then removes it.
const ADDRESS_KEEPER: &str = r#"
address=$1
cat >/dev/null
apiserver() {
  for p in /proc/[0-9]*; do
    case $(tr '\0' ' ' 2>/dev/null <"$p/cmdline") in
      *"--bind-address=$address "*) echo "${p#/proc/}" ;;
    esac
  done
}
end=$(($(date +%s) + 30))
while [ -n "$(apiserver)" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 0.5; done
ip addr del "$address/32" dev lo
"#;

/// Adds `address` to the loopback interface (pods reach it through their gateway: it is an
/// address of this machine) and returns the process that removes it again.
fn add_service_address(address: Ipv4Addr) -> Result<Supervised> {
    let added = std::process::Command::new("ip")
        .args(["addr", "add", &format!("{address}/32"), "dev", "lo"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(Error::io("running ip addr add"))?;
    if !added.status.success() {
        return Err(Error::Io {
            context: format!("adding {address}/32 to lo"),
            source: std::io::Error::other(String::from_utf8_lossy(&added.stderr).into_owned()),
        });
    }
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(ADDRESS_KEEPER)
        .arg("address-keeper")
        .arg(address.to_string());
    Supervised::spawn_command("address-keeper", command, Path::new("/dev/null"))
}

const ADMIN_TOKEN_USER: &str = "admin";
const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
/// Bound by the apiserver's bootstrap RBAC to the scheduler's ClusterRoles.
const SCHEDULER_USER: &str = "system:kube-scheduler";

/// The files the components read, and the tokens in the token file.
struct Files {
    ca_cert: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    /// For nodes: the apiserver's client certificate and key for kubelets.
    kubelet_client: Option<(PathBuf, PathBuf)>,
    service_account_key: PathBuf,
    service_account_public_key: PathBuf,
    tokens: PathBuf,
    admin_token: String,
    controller_manager_token: String,
    scheduler_token: String,
    dir: PathBuf,
}

impl Files {
    fn write(dir: &Path, config: &ControlPlaneConfig) -> Result<Self> {
        let addresses: Vec<IpAddr> = config
            .nodes
            .iter()
            .map(|nodes| IpAddr::V4(nodes.service_ip))
            .collect();
        let pki = Pki::generate_for(&addresses)?;
        let write = |name: &str, text: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(Error::io(format!("writing {}", path.display())))?;
            Ok(path)
        };
        let admin_token = random_token();
        let controller_manager_token = random_token();
        let scheduler_token = random_token();
        // The controller-manager runs every controller under its own identity
        // (--use-service-account-credentials=false), which needs more than its
        // bootstrap role grants.
        let builtin = [
            User {
                name: ADMIN_TOKEN_USER.to_string(),
                token: admin_token.clone(),
                groups: vec!["system:masters".to_string()],
            },
            User {
                name: CONTROLLER_MANAGER_USER.to_string(),
                token: controller_manager_token.clone(),
                groups: vec!["system:masters".to_string()],
            },
            User {
                name: SCHEDULER_USER.to_string(),
                token: scheduler_token.clone(),
                groups: Vec::new(),
            },
        ];
        let tokens: String = builtin
            .iter()
            .chain(&config.users)
            .map(|user| {
                format!(
                    "{},{},{},\"{}\"\n",
                    user.token,
                    user.name,
                    user.name,
                    user.groups.join(",")
                )
            })
            .collect();
        let kubelet_client = match &config.nodes {
            Some(_) => Some((
                write("apiserver-kubelet-client.crt", &pki.kubelet_client_cert)?,
                write("apiserver-kubelet-client.key", &pki.kubelet_client_key)?,
            )),
            None => None,
        };
        Ok(Self {
            ca_cert: write("ca.crt", &pki.ca_cert)?,
            serving_cert: write("apiserver.crt", &pki.serving_cert)?,
            serving_key: write("apiserver.key", &pki.serving_key)?,
            kubelet_client,
            service_account_key: write("service-account.key", &pki.service_account_key)?,
            service_account_public_key: write(
                "service-account.pub",
                &pki.service_account_public_key,
            )?,
            tokens: write("tokens.csv", &tokens)?,
            admin_token,
            controller_manager_token,
            scheduler_token,
            dir: dir.to_path_buf(),
        })
    }
}

fn etcd_args(dir: &Path, client: u16, peer: u16) -> Vec<OsString> {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    args([
        "--name=default".to_string(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=default={peer_url}"),
        "--logger=zap".to_string(),
        "--log-level=warn".to_string(),
    ])
}

fn apiserver_args(
    files: &Files,
    etcd_client: u16,
    address: IpAddr,
    port: u16,
    config: &ControlPlaneConfig,
) -> Vec<OsString> {
    let (authorization, service_cidr) = match &config.nodes {
        // A kubelet reads and writes its own Node, its pods and what they mount.
        Some(nodes) => ("Node,RBAC", nodes.service_cidr.as_str()),
        // Only allocated, never routed: nothing listens on or sends to this range.
        None => ("RBAC", "10.96.0.0/24"),
    };
    let mut flags = vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
        format!("--bind-address={address}"),
        format!("--advertise-address={address}"),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", files.dir.display()),
        format!("--tls-cert-file={}", files.serving_cert.display()),
        format!("--tls-private-key-file={}", files.serving_key.display()),
        format!("--token-auth-file={}", files.tokens.display()),
        format!("--authorization-mode={authorization}"),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
        format!(
            "--service-account-key-file={}",
            files.service_account_public_key.display()
        ),
        format!(
            "--service-account-signing-key-file={}",
            files.service_account_key.display()
        ),
        format!("--service-cluster-ip-range={service_cidr}"),
        // Endpoints may not point at loopback; nothing routes Services by them here (pods
        // reach the apiserver at its Service IP directly).
        "--endpoint-reconciler-type=none".to_string(),
        "--profiling=false".to_string(),
    ];
    if let Some((cert, key)) = &files.kubelet_client {
        // `kubectl logs` and `exec` through the kubelet: at the Node's InternalIP (its
        // hostname resolves nowhere), as a client of the CA the kubelet trusts.
        flags.extend([
            format!("--kubelet-client-certificate={}", cert.display()),
            format!("--kubelet-client-key={}", key.display()),
            "--kubelet-preferred-address-types=InternalIP".to_string(),
        ]);
    }
    flags.extend(config.apiserver_args.iter().cloned());
    args(flags)
}

fn controller_manager_args(files: &Files, kubeconfig: &Path, nodes: bool) -> Vec<OsString> {
    // What the tests rely on (namespace deletion, owner-reference garbage collection,
    // default service accounts and their tokens, aggregated ClusterRoles, admission
    // policy type checks, ResourceQuota usage for the quota admission plugin); with no
    // nodes the rest would only log errors. With a node: Deployments, their ReplicaSets,
    // and the Node's not-ready taint lifted once the kubelet reports Ready.
    let mut controllers = "namespace-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller,validatingadmissionpolicy-status-controller,resourcequota-controller".to_string();
    if nodes {
        controllers
            .push_str(",deployment-controller,replicaset-controller,node-lifecycle-controller");
    }
    args([
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".to_string(),
        // No serving: nothing scrapes it, and parallel control planes would fight for ports.
        "--secure-port=0".to_string(),
        "--use-service-account-credentials=false".to_string(),
        format!(
            "--service-account-private-key-file={}",
            files.service_account_key.display()
        ),
        format!("--root-ca-file={}", files.ca_cert.display()),
        format!("--controllers={controllers}"),
    ])
}

fn args(flags: impl IntoIterator<Item = String>) -> Vec<OsString> {
    flags.into_iter().map(OsString::from).collect()
}

async fn wait_for_port(component: &mut Supervised, port: u16) -> Result<()> {
    poll_until_ready(component, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await
}

async fn wait_for_readyz(apiserver: &mut Supervised, client: &Client) -> Result<()> {
    poll_until_ready(apiserver, || async {
        let Ok(request) = http_get("/readyz") else {
            return false;
        };
        client
            .request_text(request)
            .await
            .is_ok_and(|body| body.trim() == "ok")
    })
    .await
}

/// The service-account controller creating `default/default` shows the controllers run.
async fn wait_for_controllers(controller_manager: &mut Supervised, client: &Client) -> Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    poll_until_ready(controller_manager, || async {
        accounts
            .get_opt("default")
            .await
            .is_ok_and(|account| account.is_some())
    })
    .await
}

async fn poll_until_ready<F, Fut>(component: &mut Supervised, ready: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        component.check_running()?;
        if ready().await {
            tracing::debug!(component = component.name(), elapsed = ?started.elapsed(), "ready");
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(Error::NotReady {
                component: component.name().to_string(),
                seconds: READY_TIMEOUT.as_secs(),
                log: component.log().to_path_buf(),
                tail: log_tail(component.log()),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

fn http_get(path: &str) -> Result<http::Request<Vec<u8>>, http::Error> {
    http::Request::get(path).body(Vec::new())
}

/// A port that was free a moment ago. Another process may take it before the component
/// binds it; the component then exits and startup fails with its log.
pub(crate) fn free_port() -> Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(Error::io("finding a free port on 127.0.0.1"))
}

/// tmpfs when there is one: etcd fsyncs every write.
fn state_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn random_token() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

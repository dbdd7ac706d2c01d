//! The end-to-end environment: a private control plane, a lab (simulated BMCs, or sushy-tools
//! systems), the operator as a process, and the waits and checks the e2e scenarios share.
//! Operator configs and logs stay in target/e2e-logs/<test namespace>/ after the test.
//!
//! Each e2e test gets its own control plane (a few seconds to start): the operator watches every
//! LabHost of a cluster, so on the shared apiserver it would drive other tests' hosts and two
//! e2e operators would fight. The e2e tests also run one at a time (the `e2e` test group in
//! .config/nextest.toml): an operator, a fleet and a control plane each is what 2 cores hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use labpods_api::v1alpha1::{
    HostState, ImageSpec, LABEL_LAB, LabHost, Lease, LeasePhase, PodRequest, PodRequestPhase,
    PodRequestSpec, RoleSpec,
};
use labpods_redfish::Bmc;
use labpods_sim::{HostHandle, PowerState};

use crate::control_plane::{ControlPlane, ControlPlaneConfig};
use crate::crds::labpods_crds;
use crate::kubeconfig::client_for;
use crate::kubectl::Kubectl;
use crate::kubelet::Node;
use crate::leaks::{self, Confidential, Output};
use crate::namespace::create_namespace;
use crate::operator::{Operator, OperatorSettings};
use crate::sim::{HostGroup, SimLab};
use crate::sushy::{SUSHY_PROFILE, SushyLab};
use crate::tcp_proxy::TcpProxy;
use crate::tenancy;
use crate::wait::eventually;
use crate::workspace_root;

/// The image every scenario books.
pub const IMAGE: &str = "http://127.0.0.1:8080/images/e2e-os.iso";
/// The wipe image of the `wiped` profile.
pub const WIPE_IMAGE: &str = "http://127.0.0.1:8080/images/e2e-wipe.iso";
/// Hosts of this profile are wiped at release, by replicas that serve phone-home (a wipe
/// counts only on the wipe image's report): see [`E2e::start_wiping`].
pub const WIPED_PROFILE: &str = "wiped";
/// Boot completion fallback of the sushy profile (sushy reports no BootProgress).
const SUSHY_BOOT_FALLBACK: &str = "5s";
/// Bound on a whole provisioning of a few simulated hosts (1 s boots, 1 s polls).
pub const PROVISION_TIMEOUT: Duration = Duration::from_secs(90);

/// target/e2e-logs/<name>, emptied: a previous run's logs would confuse the reader of this
/// one's.
fn fresh_logs(name: &str) -> Result<PathBuf> {
    let logs = workspace_root().join("target/e2e-logs").join(name);
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    Ok(logs)
}

/// An instant `seconds` from now, to the second (the apiserver's precision).
pub fn from_now(seconds: i64) -> Result<Time> {
    let at = Timestamp::from_second(Timestamp::now().as_second() + seconds)
        .context("an instant out of range")?;
    Ok(Time(at))
}

pub struct E2e {
    name: String,
    client: Client,
    namespace: String,
    kubectl: Kubectl,
    hardware: Hardware,
    /// target/e2e-logs/<name>: operator configs and logs, kept after the test.
    logs: PathBuf,
    /// The image bookings ask for (one the hardware can fetch).
    image: String,
    operators: Vec<Operator>,
    settings: OperatorSettings,
    /// The kubeconfig the operators run with: the admin's, or their ServiceAccount's.
    operator_kubeconfig: PathBuf,
    /// Where the operator keeps its election Lease, signing key and history.
    operator_namespace: String,
    /// Bookings each host has been verified Ready for: a host reused by a later booking
    /// has booted the image once per booking.
    bookings_served: BTreeMap<String, usize>,
    /// What must never appear in the operator's output: the lab's BMC login, and whatever a
    /// test adds ([`E2e::keep_confidential`]). Checked by [`E2e::shutdown`].
    confidential: Vec<Confidential>,
    /// The node the chart's Deployment runs on ([`E2e::start_in_pods`]); stopped before the
    /// control plane.
    node: Option<Node>,
    // Last: stopped after the operators, so they never see the apiserver vanish mid-test.
    plane: ControlPlane,
}

impl std::fmt::Debug for E2e {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2e")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl E2e {
    /// A control plane, a namespace `name`, a lab of `groups` labelled `lab=<name>`, and one
    /// operator (identity `<name>-a`).
    pub async fn start(name: &str, groups: &[HostGroup]) -> Result<Self> {
        let mut e2e = Self::start_lab(name, groups).await?;
        e2e.start_operator("a")?;
        Ok(e2e)
    }

    /// The same, with the replica serving phone-home and seeds (see
    /// [`E2e::serve_phone_home`]), so that hosts of [`WIPED_PROFILE`] are wiped at release.
    pub async fn start_wiping(name: &str, groups: &[HostGroup]) -> Result<Self> {
        let mut e2e = Self::start_lab(name, groups).await?;
        e2e.serve_phone_home()?;
        e2e.start_operator("a")?;
        Ok(e2e)
    }

    /// The same without an operator: the test starts its replicas itself (behind proxies,
    /// with other settings).
    pub async fn start_lab(name: &str, groups: &[HostGroup]) -> Result<Self> {
        Self::start_with(name, Source::Sim(groups), Install::Bare).await
    }

    /// The same with `count` sushy-tools systems instead of simulated BMCs.
    pub async fn start_sushy(name: &str, count: usize) -> Result<Self> {
        let mut e2e = Self::start_sushy_lab(name, count).await?;
        e2e.start_operator("a")?;
        Ok(e2e)
    }

    /// The sushy-tools lab without an operator.
    pub async fn start_sushy_lab(name: &str, count: usize) -> Result<Self> {
        Self::start_with(name, Source::Sushy(count), Install::Bare).await
    }

    /// Replicas started from now on serve phone-home and seeds on a fixed local port with an
    /// external base URL, so the seeds they render can be delivered; returns that URL.
    pub fn serve_phone_home(&mut self) -> Result<labpods_redfish::Url> {
        let addr = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .context("finding a free port for phone-home")?;
        self.settings.phone_home = Some(addr);
        Ok(labpods_redfish::Url::parse(&format!("http://{addr}/"))?)
    }

    /// A lab installed as a lab operator installs it: `kubectl apply -k deploy/` as shipped
    /// (namespace, RBAC, roles, admission policies bound cluster-wide), the BMC credentials
    /// in labpods-system, and the operator running as its ServiceAccount (a real token) with
    /// the shipped RBAC, not as an admin.
    pub async fn start_installed(name: &str, groups: &[HostGroup]) -> Result<Self> {
        let mut e2e = Self::start_with(name, Source::Sim(groups), Install::Shipped).await?;
        e2e.start_operator("a")?;
        Ok(e2e)
    }

    /// The same installed by `helm install labpods <chart> -n labpods-system
    /// --create-namespace` (default values): the operator runs with a token of the chart's
    /// ServiceAccount, so the chart's RBAC is all it has.
    pub async fn start_with_chart(
        name: &str,
        groups: &[HostGroup],
        chart: &std::path::Path,
    ) -> Result<Self> {
        let mut e2e = Self::start_with(
            name,
            Source::Sim(groups),
            Install::Chart(chart.to_path_buf()),
        )
        .await?;
        e2e.start_operator("a")?;
        Ok(e2e)
    }

    /// The chart's Deployment run for real, as a lab operator's cluster runs it: a node on
    /// this machine ([`crate::kubelet`]: containerd, runc, a kubelet), the image `cargo xtask
    /// image` builds pushed to the node's registry, `helm install labpods <this chart> -n
    /// labpods-system --create-namespace` with `image.repository` and `image.digest` pointed
    /// at it (and `values`, `--set` pairs), and the lab's BMCs listening on the node's bridge
    /// where pods reach them. No operator process: the Deployment's replicas are the operator.
    pub async fn start_in_pods(name: &str, groups: &[HostGroup], values: &[&str]) -> Result<Self> {
        let logs = fresh_logs(name)?;
        let layout = tempfile::tempdir()?;
        crate::binaries::build_image(layout.path()).context("cargo xtask image")?;
        let mut node = Node::prepare(&logs).await.context("preparing the node")?;
        let pushed = node.push_image(layout.path(), "labpods/labpods")?;
        let (repository, digest) = pushed
            .split_once('@')
            .with_context(|| format!("crane push printed {pushed:?}, not a reference by digest"))?;
        let mut config = ControlPlaneConfig::default()
            .crds(labpods_crds())
            .for_nodes(node.network().access());
        let node_token = config.add_user(
            &format!("system:node:{}", crate::kubelet::NODE_NAME),
            &["system:nodes"],
        );
        let plane = ControlPlane::start(config)
            .await
            .context("starting the control plane")?;
        let client = client_for(plane.kubeconfig()).await?;
        node.join(&plane, &client, &node_token)
            .await
            .context("starting the kubelet")?;
        let kubectl = Kubectl::new(plane.kubeconfig())?;
        create_namespace(&client, name, &[])
            .await
            .context("creating the test namespace")?;
        let mut args: Vec<String> = [
            "install",
            "labpods",
            &crate::helm::chart_dir().display().to_string(),
            "--namespace",
            tenancy::OPERATOR_NAMESPACE,
            "--create-namespace",
            "--set",
            &format!("image.repository={repository}"),
            "--set",
            &format!("image.digest={digest}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for value in values {
            args.extend(["--set".to_string(), value.to_string()]);
        }
        crate::helm::Helm::with_kubeconfig(plane.kubeconfig())?
            .run(&args)
            .await?
            .ok()
            .context("helm install")?;
        let operator_namespace = tenancy::OPERATOR_NAMESPACE.to_string();
        let gateway = std::net::IpAddr::V4(node.network().gateway);
        let lab = SimLab::start_on(&client, name, &operator_namespace, groups, gateway).await?;
        Ok(Self {
            confidential: vec![lab.login()],
            name: name.to_string(),
            kubectl,
            operator_kubeconfig: plane.kubeconfig().to_path_buf(),
            operator_namespace: operator_namespace.clone(),
            client,
            namespace: name.to_string(),
            hardware: Hardware::Sim(lab),
            image: IMAGE.to_string(),
            logs,
            operators: Vec::new(),
            bookings_served: BTreeMap::new(),
            settings: OperatorSettings {
                lease_namespace: operator_namespace,
                ..OperatorSettings::default()
            },
            node: Some(node),
            plane,
        })
    }

    /// The node of [`E2e::start_in_pods`].
    pub fn node(&mut self) -> Result<&mut Node> {
        self.node
            .as_mut()
            .context("this test runs no node (E2e::start_in_pods does)")
    }

    async fn start_with(name: &str, source: Source<'_>, install: Install) -> Result<Self> {
        let plane = ControlPlane::start(ControlPlaneConfig::default().crds(labpods_crds()))
            .await
            .context("starting the control plane")?;
        let client = client_for(plane.kubeconfig()).await?;
        let kubectl = Kubectl::new(plane.kubeconfig())?;
        create_namespace(&client, name, &[])
            .await
            .context("creating the test namespace")?;
        let logs = fresh_logs(name)?;
        let (operator_namespace, operator_kubeconfig) = match install {
            Install::Bare => (name.to_string(), plane.kubeconfig().to_path_buf()),
            Install::Shipped | Install::Chart(_) => {
                if let Install::Chart(chart) = &install {
                    crate::helm::Helm::with_kubeconfig(plane.kubeconfig())?
                        .run([
                            "install".as_ref(),
                            "labpods".as_ref(),
                            chart.as_os_str(),
                            "--namespace".as_ref(),
                            tenancy::OPERATOR_NAMESPACE.as_ref(),
                            "--create-namespace".as_ref(),
                        ])
                        .await?
                        .ok()
                        .context("helm install")?;
                } else {
                    let deploy = workspace_root().join("deploy");
                    kubectl
                        .run(["apply".as_ref(), "-k".as_ref(), deploy.as_os_str()])
                        .await?
                        .ok()
                        .context("kubectl apply -k deploy/")?;
                }
                let token = tenancy::service_account_token(
                    &client,
                    tenancy::OPERATOR_NAMESPACE,
                    tenancy::OPERATOR_SERVICE_ACCOUNT,
                )
                .await?;
                let kubeconfig = logs.join("operator-kubeconfig.yaml");
                tenancy::write_token_kubeconfig(plane.kubeconfig(), &token, &kubeconfig)?;
                (tenancy::OPERATOR_NAMESPACE.to_string(), kubeconfig)
            }
        };
        let mut settings = OperatorSettings {
            lease_namespace: operator_namespace.clone(),
            wipe_images: vec![(WIPED_PROFILE.to_string(), WIPE_IMAGE.to_string())],
            boot_fallbacks: Vec::new(),
            ..OperatorSettings::default()
        };
        let (hardware, image) = match source {
            Source::Sim(groups) => (
                Hardware::Sim(SimLab::start(&client, name, &operator_namespace, groups).await?),
                IMAGE.to_string(),
            ),
            Source::Sushy(count) => {
                let lab = SushyLab::start(&client, name, &operator_namespace, count).await?;
                // sushy reports no BootProgress: completion comes from the per-profile fallback.
                settings
                    .boot_fallbacks
                    .push((SUSHY_PROFILE.to_string(), SUSHY_BOOT_FALLBACK.to_string()));
                let image = lab.image_url().to_string();
                (Hardware::Sushy(Box::new(lab)), image)
            }
        };
        let login = match &hardware {
            Hardware::Sim(lab) => lab.login(),
            Hardware::Sushy(lab) => lab.login(),
        };
        Ok(Self {
            confidential: vec![login],
            name: name.to_string(),
            kubectl,
            operator_kubeconfig,
            operator_namespace,
            client,
            namespace: name.to_string(),
            hardware,
            image,
            logs,
            operators: Vec::new(),
            bookings_served: BTreeMap::new(),
            settings,
            node: None,
            plane,
        })
    }

    /// One more replica, identity `<name>-<suffix>`.
    pub fn start_operator(&mut self, suffix: &str) -> Result<()> {
        let kubeconfig = self.operator_kubeconfig.clone();
        self.start_operator_with(suffix, &kubeconfig)
    }

    /// One more replica whose every apiserver connection (elector, watches, writes) goes
    /// through a proxy the test controls, to cut it off from the apiserver while it still
    /// reaches the BMCs.
    pub async fn start_operator_via_proxy(&mut self, suffix: &str) -> Result<TcpProxy> {
        let kubeconfig = self
            .logs
            .join(format!("{}-{suffix}-kubeconfig.yaml", self.name));
        let proxy = TcpProxy::for_kubeconfig(&self.operator_kubeconfig, &kubeconfig).await?;
        self.start_operator_with(suffix, &kubeconfig)?;
        Ok(proxy)
    }

    fn start_operator_with(&mut self, suffix: &str, kubeconfig: &std::path::Path) -> Result<()> {
        let identity = format!("{}-{suffix}", self.name);
        let operator = Operator::start(kubeconfig, &self.settings, &identity, &self.logs)?;
        self.operators.push(operator);
        Ok(())
    }

    /// The settings replicas run with (those started from now on, for `settings_mut`).
    pub fn settings(&self) -> &OperatorSettings {
        &self.settings
    }

    pub fn settings_mut(&mut self) -> &mut OperatorSettings {
        &mut self.settings
    }

    /// The replicas started so far (killed ones included), oldest first.
    pub fn operators(&mut self) -> &mut [Operator] {
        &mut self.operators
    }

    pub fn operator(&mut self, identity_suffix: &str) -> Result<&mut Operator> {
        let identity = format!("{}-{identity_suffix}", self.name);
        self.operators
            .iter_mut()
            .find(|op| op.identity() == identity)
            .with_context(|| format!("no operator {identity}"))
    }

    /// The simulated lab (tests started with [`E2e::start`]).
    pub fn sim(&self) -> Result<&SimLab> {
        match &self.hardware {
            Hardware::Sim(lab) => Ok(lab),
            Hardware::Sushy(_) => bail!("this test runs on sushy-tools, not the simulator"),
        }
    }

    /// The sushy-tools lab (tests started with [`E2e::start_sushy`]).
    pub fn sushy(&self) -> Result<&SushyLab> {
        match &self.hardware {
            Hardware::Sushy(lab) => Ok(lab),
            Hardware::Sim(_) => bail!("this test runs on the simulator, not sushy-tools"),
        }
    }

    /// Every simulated BMC's own record of the Redfish calls it received, by LabHost name.
    pub fn bmc_calls(&self) -> Result<Vec<(String, Vec<labpods_sim::Call>)>> {
        let lab = self.sim()?;
        lab.names()
            .into_iter()
            .map(|host| Ok((host.clone(), lab.bmc(&host)?.calls())))
            .collect()
    }

    /// What the replica `<name>-<suffix>` has done so far, where its work would show: the
    /// calls the BMCs recorded from it (the operator's User-Agent names its replica), the
    /// Events it published (their reportingInstance is its identity) and its own /metrics.
    /// The replica must be running.
    pub async fn replica_activity(&mut self, suffix: &str) -> Result<ReplicaActivity> {
        let identity = format!("{}-{suffix}", self.name);
        let bmc_calls = self
            .bmc_calls()?
            .iter()
            .flat_map(|(_, calls)| calls)
            .filter(|call| crate::bmc_log::replica(call) == Some(identity.as_str()))
            .count();
        let events = Api::<Event>::all(self.client.clone())
            .list(&Default::default())
            .await?
            .items
            .iter()
            .filter(|e| e.reporting_instance.as_deref() == Some(identity.as_str()))
            .count();
        let operator = self.operator(suffix)?;
        operator.check_running()?;
        let metrics = operator.scrape_metrics().await?;
        let total = |name: &str| crate::operator::metric_total(&metrics, name);
        Ok(ReplicaActivity {
            bmc_calls,
            events,
            reconciles: total("labpods_reconcile_duration_seconds_count"),
            status_writes: total("labpods_status_writes_total"),
            redfish_requests: total("labpods_redfish_request_duration_seconds_count"),
            leading: total("labpods_leader") > 0.0,
        })
    }

    /// Fencing and pacing as the BMCs saw them: no two replicas' calls interleave
    /// (`bmc_log::interleavings`) and no two power actions closer than the client's minimum
    /// interval. Fails with every violation.
    pub fn check_bmc_calls(&self) -> Result<()> {
        let min = labpods_redfish::ClientPolicy::default().min_power_action_interval;
        let handover = self.settings.handover();
        let mut violations = Vec::new();
        for (host, calls) in self.bmc_calls()? {
            violations.extend(crate::bmc_log::interleavings(
                &host,
                &calls,
                handover,
                Duration::from_millis(100),
            ));
            violations.extend(crate::bmc_log::power_interval_violations(
                &host, &calls, min,
            ));
        }
        if !violations.is_empty() {
            bail!("the BMCs saw:\n{}", violations.join("\n"));
        }
        Ok(())
    }

    /// The image bookings ask for.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Makes `url` the image later bookings ask for and [`E2e::check_ready`] expects booted.
    pub fn use_image(&mut self, url: impl Into<String>) {
        self.image = url.into();
    }

    /// The LabHost names of the lab.
    pub fn host_names(&self) -> Vec<String> {
        match &self.hardware {
            Hardware::Sim(lab) => lab.names(),
            Hardware::Sushy(lab) => lab.names(),
        }
    }

    async fn probe(&self, host: &str) -> Result<Probe> {
        Ok(match &self.hardware {
            Hardware::Sim(lab) => Probe::Sim(lab.bmc(host)?),
            Hardware::Sushy(lab) => Probe::Redfish(lab.bmc(host).await?),
        })
    }

    /// An admin (system:masters) client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The admin kubeconfig of this test's control plane.
    pub fn kubeconfig(&self) -> &std::path::Path {
        self.plane.kubeconfig()
    }

    /// A client acting as `user` in `groups` (impersonation, as `kubectl --as`).
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Result<Client> {
        tenancy::client_as(self.plane.kubeconfig(), user, groups).await
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Where the operator keeps its Secrets, election Lease and history.
    pub fn operator_namespace(&self) -> &str {
        &self.operator_namespace
    }

    fn podrequests(&self) -> Api<PodRequest> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn labhosts(&self) -> Api<LabHost> {
        Api::all(self.client.clone())
    }

    /// A role selecting this test's lab (and a profile, when given).
    pub fn role(&self, name: &str, count: u32, profile: Option<&str>) -> RoleSpec {
        let role = RoleSpec::new(name, count).with_match_labels([(LABEL_LAB, self.name.as_str())]);
        match profile {
            Some(profile) => role.with_profile(profile),
            None => role,
        }
    }

    /// Books `roles` for `duration` (e.g. "1h"), starting now.
    pub async fn book(
        &self,
        name: &str,
        roles: Vec<RoleSpec>,
        duration: &str,
    ) -> Result<PodRequest> {
        self.book_spec(
            name,
            PodRequestSpec::new(roles, ImageSpec::new(&self.image), duration),
        )
        .await
    }

    /// Books `roles` for a window: from `start` (None: now) to `end`.
    pub async fn book_window(
        &self,
        name: &str,
        roles: Vec<RoleSpec>,
        start: Option<Time>,
        end: Time,
    ) -> Result<PodRequest> {
        let spec = PodRequestSpec {
            roles,
            image: ImageSpec::new(&self.image),
            start,
            end: Some(end),
            ..PodRequestSpec::default()
        };
        self.book_spec(name, spec).await
    }

    /// Asks for a new end, as a user (or `kubectl lab extend`) does.
    pub async fn set_end(&self, name: &str, end: &Time) -> Result<()> {
        let patch = serde_json::json!({ "spec": { "end": end } });
        self.podrequests()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("changing the end of PodRequest {name}"))?;
        Ok(())
    }

    pub async fn book_spec(&self, name: &str, spec: PodRequestSpec) -> Result<PodRequest> {
        let request = PodRequest::new(name, spec);
        self.podrequests()
            .create(&PostParams::default(), &request)
            .await
            .with_context(|| format!("creating PodRequest {name}"))
    }

    pub async fn release(&self, name: &str) -> Result<()> {
        self.podrequests()
            .delete(name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting PodRequest {name}"))?;
        Ok(())
    }

    pub async fn podrequest(&self, name: &str) -> Result<Option<PodRequest>> {
        Ok(self.podrequests().get_opt(name).await?)
    }

    pub async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        Ok(self.leases().get_opt(name).await?)
    }

    pub async fn labhost(&self, name: &str) -> Result<LabHost> {
        Ok(self.labhosts().get(name).await?)
    }

    /// The README's command for it (runbook LabpodsHostQuarantined), run as written.
    pub async fn set_maintenance(&self, host: &str, maintenance: bool) -> Result<()> {
        let patch = format!(r#"{{"spec":{{"maintenance":{maintenance}}}}}"#);
        self.kubectl
            .run(["patch", "labhost", host, "--type", "merge", "-p", &patch])
            .await?
            .ok()
            .with_context(|| format!("kubectl patch labhost {host} (maintenance {maintenance})"))?;
        Ok(())
    }

    /// Polls `check` until it yields a value; on timeout the error carries the lab's objects
    /// as YAML and the end of every operator log, so a failure explains itself.
    pub async fn wait<T, F, Fut>(&mut self, what: &str, timeout: Duration, check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = crate::Result<Option<T>>>,
    {
        match eventually(what, timeout, check).await {
            Ok(value) => Ok(value),
            Err(err) => Err(anyhow!("{err}\n{}", self.diagnostics().await)),
        }
    }

    /// What a person debugging a failure looks at first.
    pub async fn diagnostics(&mut self) -> String {
        let mut out = String::new();
        let objects = self
            .kubectl
            .run([
                "get",
                "labhosts,podrequests,leases.labpods.dev",
                "-A",
                "-o",
                "yaml",
            ])
            .await;
        match objects {
            Ok(output) => out.push_str(&format!("--- objects\n{}{}", output.stdout, output.stderr)),
            Err(err) => out.push_str(&format!("--- objects: {err}\n")),
        }
        for operator in &mut self.operators {
            let running = match operator.check_running() {
                Ok(()) => "running".to_string(),
                Err(err) => format!("exited: {err}"),
            };
            out.push_str(&format!(
                "--- operator {} ({running}), end of {}:\n{}\n",
                operator.identity(),
                operator.log_path().display(),
                operator.log_tail()
            ));
        }
        if let Some(node) = &self.node {
            match self
                .kubectl
                .run(["get", "nodes,deployments,pods", "-A", "-o", "wide"])
                .await
            {
                Ok(output) => {
                    out.push_str(&format!("--- node\n{}{}", output.stdout, output.stderr))
                }
                Err(err) => out.push_str(&format!("--- node: {err}\n")),
            }
            out.push_str(&node.pod_log_tails());
        }
        out
    }

    /// Waits for the PodRequest's phase.
    pub async fn wait_phase(
        &mut self,
        name: &str,
        phase: PodRequestPhase,
        timeout: Duration,
    ) -> Result<PodRequest> {
        let api = self.podrequests();
        let what = format!("PodRequest {name} to reach {phase:?}");
        self.wait(&what, timeout, || {
            let api = api.clone();
            async move {
                let request = api.get(name).await?;
                let reached = request.status.as_ref().and_then(|s| s.phase) == Some(phase);
                Ok(reached.then_some(request))
            }
        })
        .await
    }

    /// Waits until a PodRequest waits with a message (the scheduler's explanation).
    pub async fn wait_waiting(&mut self, name: &str, timeout: Duration) -> Result<String> {
        let api = self.podrequests();
        let what = format!("PodRequest {name} to wait with a message");
        self.wait(&what, timeout, || {
            let api = api.clone();
            async move {
                let request = api.get(name).await?;
                let status = request.status.unwrap_or_default();
                let waiting = matches!(
                    status.phase,
                    Some(PodRequestPhase::Pending | PodRequestPhase::Scheduled)
                ) && status.hosts.is_empty();
                Ok(status.message.filter(|m| waiting && !m.is_empty()))
            }
        })
        .await
    }

    /// Waits until the Lease is gone (collected after retention).
    pub async fn wait_lease_gone(&mut self, name: &str, timeout: Duration) -> Result<()> {
        let api = self.leases();
        let what = format!("Lease {name} to be collected");
        self.wait(&what, timeout, || {
            let api = api.clone();
            async move { Ok(api.get_opt(name).await?.is_none().then_some(())) }
        })
        .await
    }

    /// Waits until every host is back in the pool: Available, unclaimed, and powered off on
    /// the BMC.
    pub async fn wait_hosts_free(&mut self, hosts: &[String], timeout: Duration) -> Result<()> {
        let api = self.labhosts();
        let mut bmcs = Vec::new();
        for host in hosts {
            bmcs.push((host.clone(), self.probe(host).await?));
        }
        let what = format!("hosts {hosts:?} to be Available, unclaimed and Off");
        self.wait(&what, timeout, || {
            let api = api.clone();
            let bmcs = bmcs.clone();
            async move {
                for (host, bmc) in &bmcs {
                    let labhost = api.get(host).await?;
                    let state = labhost.status.as_ref().and_then(|s| s.state);
                    if state != Some(HostState::Available)
                        || labhost.spec.claim_ref.is_some()
                        || !bmc.view().await?.off
                    {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            }
        })
        .await
    }

    /// The hosts assigned to a PodRequest, from its status.
    pub async fn assigned_hosts(&self, name: &str) -> Result<Vec<String>> {
        let request = self
            .podrequest(name)
            .await?
            .with_context(|| format!("PodRequest {name} is gone"))?;
        Ok(request
            .status
            .map(|s| s.hosts.into_iter().map(|h| h.host).collect())
            .unwrap_or_default())
    }

    /// A Ready booking as its user and the hardware see it: the PodRequest lists `count`
    /// hosts with the roles asked, the Lease is Ready and lists the same hosts, each host is
    /// claimed by it, and each BMC is On, booted the image exactly once for this booking
    /// from the virtual CD, with the media ejected afterwards.
    pub async fn check_ready(
        &mut self,
        name: &str,
        roles: &[(&str, usize)],
    ) -> Result<Vec<String>> {
        let request = self
            .wait_phase(name, PodRequestPhase::Ready, PROVISION_TIMEOUT)
            .await?;
        match self.verify_ready(name, request, roles, 1).await {
            Ok(hosts) => {
                for host in &hosts {
                    *self.bookings_served.entry(host.clone()).or_default() += 1;
                }
                Ok(hosts)
            }
            Err(err) => Err(anyhow!("{err:#}\n{}", self.diagnostics().await)),
        }
    }

    /// A booking [`E2e::check_ready`] saw Ready is still Ready, and no host booted again since
    /// (a late write of a deposed replica must not restart a finished run).
    pub async fn check_still_ready(
        &mut self,
        name: &str,
        roles: &[(&str, usize)],
    ) -> Result<Vec<String>> {
        let request = self
            .podrequest(name)
            .await?
            .with_context(|| format!("PodRequest {name} is gone"))?;
        match self.verify_ready(name, request, roles, 0).await {
            Ok(hosts) => Ok(hosts),
            Err(err) => Err(anyhow!("{err:#}\n{}", self.diagnostics().await)),
        }
    }

    /// `new_boots`: boots of the image per host beyond the bookings already verified (1 for a
    /// booking seen Ready for the first time, 0 for one seen before).
    async fn verify_ready(
        &self,
        name: &str,
        request: PodRequest,
        roles: &[(&str, usize)],
        new_boots: usize,
    ) -> Result<Vec<String>> {
        let phase = request.status.as_ref().and_then(|s| s.phase);
        if phase != Some(PodRequestPhase::Ready) {
            bail!("PodRequest {name} is {phase:?}, not Ready");
        }
        let status = request.status.unwrap_or_default();
        let mut by_role: BTreeMap<String, usize> = BTreeMap::new();
        for assigned in &status.hosts {
            *by_role.entry(assigned.role.clone()).or_default() += 1;
        }
        let wanted: BTreeMap<String, usize> =
            roles.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        if by_role != wanted {
            bail!("PodRequest {name} has hosts by role {by_role:?}, asked for {wanted:?}");
        }
        let hosts: Vec<String> = status.hosts.iter().map(|h| h.host.clone()).collect();
        let lease_name = status
            .lease
            .clone()
            .with_context(|| format!("PodRequest {name} names no Lease"))?;
        let lease = self
            .lease(&lease_name)
            .await?
            .with_context(|| format!("Lease {lease_name} is missing"))?;
        let lease_phase = lease.status.as_ref().and_then(|s| s.phase);
        if lease_phase != Some(LeasePhase::Ready) {
            bail!("Lease {lease_name} is {lease_phase:?} while its PodRequest is Ready");
        }
        let lease_hosts: BTreeSet<&str> =
            lease.spec.hosts.iter().map(|h| h.host.as_str()).collect();
        let request_hosts: BTreeSet<&str> = hosts.iter().map(String::as_str).collect();
        if lease_hosts != request_hosts {
            bail!(
                "Lease {lease_name} holds {lease_hosts:?}, the PodRequest lists {request_hosts:?}"
            );
        }
        for host in &hosts {
            let labhost = self.labhost(host).await?;
            let claim = labhost.spec.claim_ref.as_ref();
            if claim.map(|c| (c.namespace.as_str(), c.lease.as_str()))
                != Some((self.namespace.as_str(), lease_name.as_str()))
            {
                bail!("{host} is claimed by {claim:?}, not by Lease {lease_name}");
            }
            let state = labhost.status.as_ref().and_then(|s| s.state);
            if state != Some(HostState::Provisioned) {
                bail!("{host} is {state:?} in a Ready lease");
            }
            let seen = self.probe(host).await?.view().await?;
            if !seen.on {
                bail!("{host}'s BMC does not report On in a Ready lease: {seen:?}");
            }
            if seen.media_inserted {
                bail!("{host} still has media inserted after provisioning: {seen:?}");
            }
            // What the simulator records: the image booted once, from the virtual CD.
            if let Some(boots) = &seen.boots {
                let of_image: Vec<_> = boots
                    .iter()
                    .filter(|(_, image)| image.as_deref() == Some(self.image.as_str()))
                    .collect();
                let expected = self.bookings_served.get(host).copied().unwrap_or(0) + new_boots;
                if of_image.len() != expected || of_image.iter().any(|(source, _)| source != "Cd") {
                    bail!(
                        "{host} booted the image {} times ({of_image:?}); expected {expected} (once per booking) from Cd. The BMC saw:\n{}",
                        of_image.len(),
                        seen.history
                    );
                }
            }
        }
        Ok(hosts)
    }

    /// Every host is claimed by at most one Lease, and every claim matches a Lease that lists
    /// the host: the invariant that must hold at every instant.
    pub async fn check_no_double_binding(&self) -> Result<()> {
        let leases = self.leases().list(&Default::default()).await?;
        let mut holder: BTreeMap<String, String> = BTreeMap::new();
        for lease in &leases.items {
            let released =
                lease.status.as_ref().and_then(|s| s.phase) == Some(LeasePhase::Released);
            if released {
                continue;
            }
            let lease_name = lease.metadata.name.clone().unwrap_or_default();
            for host in &lease.spec.hosts {
                if let Some(other) = holder.insert(host.host.clone(), lease_name.clone()) {
                    bail!("{} is in Lease {other} and Lease {lease_name}", host.host);
                }
            }
        }
        for labhost in self.labhosts().list(&Default::default()).await?.items {
            let host = labhost.metadata.name.clone().unwrap_or_default();
            if let Some(claim) = &labhost.spec.claim_ref
                && let Some(lease) = holder.get(&host)
                && claim.lease != *lease
            {
                bail!(
                    "{host} is claimed for Lease {} but listed by Lease {lease}",
                    claim.lease
                );
            }
        }
        Ok(())
    }

    /// The name of the coordination Lease holder (leader election).
    pub async fn leader(&self) -> Result<Option<String>> {
        let api: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.client.clone(), &self.operator_namespace);
        Ok(api
            .get_opt("labpods-operator")
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity))
    }

    /// Waits until a replica leads (`identity`, when given, and no other) and returns its
    /// identity.
    pub async fn wait_leader(
        &mut self,
        identity: Option<&str>,
        timeout: Duration,
    ) -> Result<String> {
        let api: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.client.clone(), &self.operator_namespace);
        let what = identity.map_or_else(
            || "a leader to be elected".to_owned(),
            |i| format!("{i} to lead"),
        );
        self.wait(&what, timeout, || {
            let api = api.clone();
            async move {
                let holder = api
                    .get_opt("labpods-operator")
                    .await?
                    .and_then(|l| l.spec)
                    .and_then(|s| s.holder_identity);
                Ok(holder.filter(|h| identity.is_none_or(|want| want == h)))
            }
        })
        .await
    }

    /// Something a test handed the operator that must never appear in its output (a
    /// password a tenant put in an image URL, ...), checked with the BMC login at shutdown.
    pub fn keep_confidential(&mut self, secret: Confidential) {
        self.confidential.push(secret);
    }

    /// Stops operators, fleet and control plane, in that order, and fails if anything
    /// confidential of this run appears in what the operator said: its /metrics (scraped
    /// from each replica still running), every Event, every object's status, the ConfigMaps
    /// in its namespace, and (once the operators have stopped) every log of this test.
    pub async fn shutdown(mut self) -> Result<()> {
        let said = self.operator_output().await;
        self.operators.clear();
        if let Some(node) = &self.node {
            // What the replicas in pods said, kept beside the other logs and checked with them.
            node.keep_pod_logs().context("copying the pods' logs")?;
        }
        let checked = said.and_then(|mut outputs| {
            outputs.extend(self.operator_logs()?);
            Ok(leaks::find(&self.confidential, &outputs))
        });
        if let Hardware::Sim(lab) = self.hardware {
            lab.shutdown().await;
        }
        let found = checked.context("collecting what the operator said")?;
        if !found.is_empty() {
            bail!(
                "confidential data of this run appears in the operator's output (logs in {}):\n{}",
                self.logs.display(),
                found.join("\n")
            );
        }
        Ok(())
    }

    /// What the operator said through the API and /metrics (after a test deleted the CRDs,
    /// there is no lab object left to say anything in).
    async fn operator_output(&mut self) -> Result<Vec<Output>> {
        let mut outputs = Vec::new();
        for operator in &mut self.operators {
            if operator.check_running().is_ok() {
                outputs.push(Output {
                    source: format!("/metrics of {}", operator.identity()),
                    text: operator.scrape_metrics().await?,
                });
            }
        }
        let all = Default::default();
        let events: Api<Event> = Api::all(self.client.clone());
        for event in events.list(&all).await?.items {
            outputs.push(Output {
                source: format!(
                    "Event {}/{}",
                    event.metadata.namespace.clone().unwrap_or_default(),
                    event.metadata.name.clone().unwrap_or_default()
                ),
                text: serde_json::to_string(&event)?,
            });
        }
        for host in listed(&self.labhosts()).await? {
            outputs.push(status_of("LabHost", &host.metadata, &host.status)?);
        }
        let requests: Api<PodRequest> = Api::all(self.client.clone());
        for request in listed(&requests).await? {
            outputs.push(status_of("PodRequest", &request.metadata, &request.status)?);
        }
        let leases: Api<Lease> = Api::all(self.client.clone());
        for lease in listed(&leases).await? {
            outputs.push(status_of("Lease", &lease.metadata, &lease.status)?);
        }
        let config_maps: Api<ConfigMap> =
            Api::namespaced(self.client.clone(), &self.operator_namespace);
        for config_map in config_maps.list(&all).await?.items {
            outputs.push(Output {
                source: format!(
                    "ConfigMap {}/{}",
                    self.operator_namespace,
                    config_map.metadata.name.clone().unwrap_or_default()
                ),
                text: serde_json::to_string(&config_map.data)?,
            });
        }
        Ok(outputs)
    }

    /// Every log file of this test (operators, and anything else that logs beside them).
    fn operator_logs(&self) -> Result<Vec<Output>> {
        let mut outputs = Vec::new();
        let dir = std::fs::read_dir(&self.logs)
            .with_context(|| format!("reading {}", self.logs.display()))?;
        for entry in dir {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "log") {
                outputs.push(Output {
                    source: path.display().to_string(),
                    text: String::from_utf8_lossy(&std::fs::read(&path)?).into_owned(),
                });
            }
        }
        Ok(outputs)
    }
}

/// What one replica has done (see [`E2e::replica_activity`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaActivity {
    /// Redfish calls the BMCs received from it.
    pub bmc_calls: usize,
    /// Events it published.
    pub events: usize,
    /// From its /metrics: reconciles of every controller, status writes of every outcome,
    /// Redfish requests, and whether it says it leads.
    pub reconciles: f64,
    pub status_writes: f64,
    pub redfish_requests: f64,
    pub leading: bool,
}

impl ReplicaActivity {
    /// Nothing at all: no BMC call, no Event, no reconcile, no status write, no Redfish
    /// request, not leading.
    pub fn is_idle(&self) -> bool {
        self.bmc_calls == 0
            && self.events == 0
            && self.reconciles == 0.0
            && self.status_writes == 0.0
            && self.redfish_requests == 0.0
            && !self.leading
    }

    /// Some of each: the checks of [`ReplicaActivity::is_idle`] can see this replica's work.
    pub fn acted(&self) -> bool {
        self.bmc_calls > 0
            && self.events > 0
            && self.reconciles > 0.0
            && self.status_writes > 0.0
            && self.redfish_requests > 0.0
    }
}

/// The instant a waiting PodRequest's message gives as its "earliest start" (the scheduler
/// writes it to the minute), if it gives one.
pub fn earliest_start(message: &str) -> Option<Timestamp> {
    let (_, after) = message.split_once("earliest start ")?;
    let text = after.split([';', ' ', ',']).next()?;
    let minute = text.strip_suffix('Z')?;
    format!("{minute}:00Z").parse().ok()
}

/// `t` to the minute, rounded down: what an instant the scheduler prints can be compared to.
pub fn to_minute(t: Timestamp) -> Result<Timestamp> {
    let seconds = t.as_second();
    Ok(Timestamp::from_second(seconds - seconds.rem_euclid(60))?)
}

/// An object's status as the operator wrote it.
fn status_of<S: serde::Serialize>(kind: &str, meta: &ObjectMeta, status: &S) -> Result<Output> {
    let namespace = meta
        .namespace
        .as_deref()
        .map_or(String::new(), |n| format!("{n}/"));
    Ok(Output {
        source: format!(
            "{kind} {namespace}{} status",
            meta.name.as_deref().unwrap_or_default()
        ),
        text: serde_json::to_string(status)?,
    })
}

enum Source<'a> {
    Sim(&'a [HostGroup]),
    Sushy(usize),
}

/// How the lab is installed.
enum Install {
    /// CRDs only; the operator runs as the admin (in the test's namespace).
    Bare,
    /// `deploy/` as shipped; the operator runs as its ServiceAccount in labpods-system.
    Shipped,
    /// `helm install` of this chart directory; the operator runs as the chart's
    /// ServiceAccount in labpods-system.
    Chart(PathBuf),
}

#[derive(Debug)]
enum Hardware {
    Sim(SimLab),
    Sushy(Box<SushyLab>),
}

/// Reads what a host's BMC reports: the simulator's own record, or Redfish for sushy.
#[derive(Clone)]
enum Probe {
    Sim(HostHandle),
    Redfish(Arc<dyn Bmc>),
}

/// A BMC's view of a host.
#[derive(Debug)]
struct BmcView {
    on: bool,
    off: bool,
    media_inserted: bool,
    /// Boots as (source, image): only the simulator records them.
    boots: Option<Vec<(String, Option<String>)>>,
    history: String,
}

impl Probe {
    async fn view(&self) -> crate::Result<BmcView> {
        match self {
            Probe::Sim(bmc) => {
                let state = bmc.state();
                Ok(BmcView {
                    on: state.power_state == PowerState::On,
                    off: state.power_state == PowerState::Off,
                    media_inserted: state.media.inserted,
                    boots: Some(bmc.boots()),
                    history: format!("{:#?}", bmc.history()),
                })
            }
            Probe::Redfish(bmc) => {
                let redfish = |err: labpods_redfish::Error| crate::Error::Io {
                    context: "asking the BMC".to_string(),
                    source: std::io::Error::other(err.to_string()),
                };
                let power = bmc.power_state().await.map_err(redfish)?;
                let media = bmc.media_state().await.map_err(redfish)?;
                Ok(BmcView {
                    on: power == labpods_redfish::PowerState::On,
                    off: power == labpods_redfish::PowerState::Off,
                    media_inserted: media.inserted,
                    boots: None,
                    history: String::new(),
                })
            }
        }
    }
}

/// Every object of a kind; none when its CRD is gone.
async fn listed<K>(api: &Api<K>) -> Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.list(&Default::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_start_is_read_from_a_waiting_message_to_the_minute() {
        let at = |text: &str| text.parse::<Timestamp>().ok();
        let message = "waiting for 1 hosts matching labpods.dev/lab=x; 0 free now; earliest start 2026-12-06T19:14Z";
        assert_eq!(earliest_start(message), at("2026-12-06T19:14:00Z"));
        assert_eq!(earliest_start("no window found in the calendar"), None);
        let rounded = at("2026-12-06T19:14:59Z").map(to_minute);
        assert_eq!(rounded.and_then(Result::ok), at("2026-12-06T19:14:00Z"));
    }
}

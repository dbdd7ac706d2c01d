//! A simulated lab for the e2e tests: a labpods-sim fleet in this process (so a test reads
//! what each BMC saw straight from its history) registered as LabHosts that carry a
//! test-unique `labpods.dev/lab` label, with the credentials Secret they point at.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use labpods_api::v1alpha1::{
    LABEL_ARCH, LABEL_LAB, LABEL_PROFILE, LabHost, LabHostSpec, SecretReference,
};
use labpods_redfish::{
    BmcConnector, BmcTarget, ClientPolicy, Credentials, RedfishConnector, ResetKind, TlsOptions,
};
use labpods_sim::{HostHandle, Sim, SimConfig, SimHandle};

use crate::leaks::Confidential;

const SECRET_NAME: &str = "bmc-credentials";

/// `count` hosts of one hardware profile.
#[derive(Debug, Clone, Copy)]
pub struct HostGroup {
    pub profile: &'static str,
    pub count: usize,
    /// Their `labpods.dev/lab` label; None: the lab's name.
    pub lab: Option<&'static str>,
}

impl HostGroup {
    pub const fn new(profile: &'static str, count: usize) -> Self {
        Self {
            profile,
            count,
            lab: None,
        }
    }

    /// The same hosts labelled `labpods.dev/lab: <lab>` (a fleet spread over several labs).
    pub const fn in_lab(mut self, lab: &'static str) -> Self {
        self.lab = Some(lab);
        self
    }
}

/// One registered host: its LabHost name, profile and lab label, and its BMC in the fleet.
#[derive(Debug, Clone)]
pub struct SimHost {
    pub name: String,
    pub profile: String,
    pub lab: String,
    /// 1-based, in the order of the groups.
    pub(crate) index: usize,
}

/// The hosts of `groups`, named `<lab>-<nn>` in order and labelled with their group's lab
/// (else `lab`).
pub(crate) fn name_hosts(lab: &str, groups: &[HostGroup]) -> Vec<SimHost> {
    groups
        .iter()
        .flat_map(|group| std::iter::repeat_n(group, group.count))
        .enumerate()
        .map(|(i, group)| SimHost {
            name: format!("{lab}-{:02}", i + 1),
            profile: group.profile.to_string(),
            lab: group.lab.unwrap_or(lab).to_string(),
            index: i + 1,
        })
        .collect()
}

/// LabHosts created at once while a lab registers (one by one, a 10,000-host lab waits on
/// 10,000 round trips in a row).
const REGISTER_CONCURRENCY: usize = 16;

/// Creates the credentials Secret (`username`, `password`) in `secret_namespace` and one
/// LabHost per host, whose BMC `endpoint` gives (with its system id).
pub(crate) async fn register_labhosts(
    client: &Client,
    secret_namespace: &str,
    (username, password): (&str, &str),
    hosts: &[SimHost],
    endpoint: impl Fn(&SimHost) -> (String, String),
) -> Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.to_string()),
            namespace: Some(secret_namespace.to_string()),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([
            ("username".to_string(), username.to_string()),
            ("password".to_string(), password.to_string()),
        ])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), secret_namespace)
        .create(&PostParams::default(), &secret)
        .await
        .context("creating the BMC credentials Secret")?;
    let api: Api<LabHost> = Api::all(client.clone());
    let creates = hosts.iter().map(|host| {
        let (url, system_id) = endpoint(host);
        let spec = LabHostSpec::new(
            url.as_str(),
            host.profile.clone(),
            SecretReference::new(secret_namespace, SECRET_NAME),
        )
        .with_system_id(system_id);
        let mut labhost = LabHost::new(&host.name, spec);
        labhost.metadata.labels = Some(BTreeMap::from([
            (LABEL_LAB.to_string(), host.lab.clone()),
            (LABEL_PROFILE.to_string(), host.profile.clone()),
            (LABEL_ARCH.to_string(), "x86_64".to_string()),
        ]));
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &labhost)
                .await
                .with_context(|| format!("registering LabHost {}", host.name))
        }
    });
    futures::stream::iter(creates)
        .buffer_unordered(REGISTER_CONCURRENCY)
        .try_for_each(|_| futures::future::ready(Ok(())))
        .await
}

#[derive(Debug)]
pub struct SimLab {
    sim: SimHandle,
    lab: String,
    hosts: Vec<SimHost>,
}

impl SimLab {
    /// Starts a fleet (fast boots: tests wait on them) and registers one LabHost per BMC,
    /// named `<lab>-<nn>` and labelled `labpods.dev/lab: <lab>` (or its group's lab), with the
    /// Secret in `secret_namespace`.
    pub async fn start(
        client: &Client,
        lab: &str,
        secret_namespace: &str,
        groups: &[HostGroup],
    ) -> Result<Self> {
        let loopback = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        Self::start_on(client, lab, secret_namespace, groups, loopback).await
    }

    /// The same with the BMCs listening on `bind` (an address pods reach, for an operator
    /// running in a pod).
    pub async fn start_on(
        client: &Client,
        lab: &str,
        secret_namespace: &str,
        groups: &[HostGroup],
        bind: std::net::IpAddr,
    ) -> Result<Self> {
        let total = groups.iter().map(|g| g.count).sum();
        let sim = Sim::start(SimConfig {
            hosts: total,
            bind,
            boot_time: Duration::from_secs(1),
            power_delay: Duration::from_millis(200),
            password: crate::leaks::unique_password(),
            ..SimConfig::default()
        })
        .await
        .context("starting the simulated BMCs")?;
        let hosts = name_hosts(lab, groups);
        register_labhosts(
            client,
            secret_namespace,
            (sim.username(), sim.password()),
            &hosts,
            |host| {
                let url = sim.endpoint(host.index).to_string();
                (url, sim.system_id(host.index).to_string())
            },
        )
        .await?;
        Ok(Self {
            sim,
            lab: lab.to_string(),
            hosts,
        })
    }

    /// The BMC login of every host, as something that must never leak.
    pub fn login(&self) -> Confidential {
        Confidential::bmc_login(
            "the simulated BMCs' password",
            self.sim.username(),
            self.sim.password(),
        )
    }

    /// The BMCs' user and password (what the credentials Secret holds).
    pub fn username(&self) -> &str {
        self.sim.username()
    }

    pub fn password(&self) -> &str {
        self.sim.password()
    }

    /// A lab admin changes the BMCs' password (see [`SimHandle::rotate_password`]).
    pub fn rotate_password(&self, password: &str) {
        self.sim.rotate_password(password);
    }

    /// The lab's name: every host's `labpods.dev/lab` label, unless its group names another.
    pub fn lab(&self) -> &str {
        &self.lab
    }

    pub fn hosts(&self) -> &[SimHost] {
        &self.hosts
    }

    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name.clone()).collect()
    }

    /// The BMC behind a LabHost: its state and everything it saw.
    pub fn bmc(&self, host: &str) -> Result<HostHandle> {
        let found = self
            .hosts
            .iter()
            .find(|h| h.name == host)
            .with_context(|| format!("{host} is not a host of lab {}", self.lab))?;
        Ok(self.sim.host(found.index))
    }

    /// What a wipe image does when it is done: the OS powers the machine off. Sent over
    /// Redfish like any other power action.
    pub async fn power_off_from_os(&self, host: &str) -> Result<()> {
        let bmc = self.bmc(host)?;
        let connector = RedfishConnector::new(ClientPolicy::default());
        let target = BmcTarget {
            endpoint: bmc.endpoint(),
            system_id: None,
            credentials: Credentials::new(self.sim.username(), self.sim.password()),
            tls: TlsOptions::default(),
        };
        let client = connector
            .connect(&target)
            .await
            .context("connecting to the BMC")?;
        client
            .reset(ResetKind::ForceOff)
            .await
            .context("powering off")?;
        connector.logout_all().await;
        Ok(())
    }

    pub async fn shutdown(self) {
        self.sim.shutdown().await;
    }
}

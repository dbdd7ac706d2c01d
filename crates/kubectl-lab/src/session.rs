//! The cluster a command talks to (from the kubeconfig, the way kubectl picks it) and the
//! reads every command shares, each turning a 404 into "no such booking" or "labpods is not
//! installed".

use std::io::IsTerminal;
use std::path::Path;

use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use labpods_api::v1alpha1::{LabHost, Lease, PodRequest};
use labpods_operator::history::shards::{self, Contents};
use labpods_operator::history::{ConfigMapStore, StoreError};

use crate::cli::Format;
use crate::error::{Error, Result, api};

/// The group/version the CRDs serve.
const API_VERSION: &str = "labpods.dev/v1alpha1";

/// What a command needs: a client, the namespace, how to print, and the time.
#[derive(Clone)]
pub struct Session {
    pub client: Client,
    pub namespace: String,
    pub format: Format,
    /// ANSI colour: only on a terminal, and never with NO_COLOR set.
    pub colour: bool,
    /// The apiserver, for error messages.
    pub server: String,
    pub now: Timestamp,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("namespace", &self.namespace)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Whether stdout should get colour.
pub fn colour_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The kubeconfig's cluster and credentials, like kubectl: `--kubeconfig`, else $KUBECONFIG,
/// else ~/.kube/config; `--context`, else the current context.
pub async fn config(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Config> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let loaded = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| Error::Kubeconfig(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(file, &options).await
        }
        None => Config::from_kubeconfig(&options).await,
    };
    loaded.map_err(|e| Error::Kubeconfig(e.to_string()))
}

impl Session {
    pub fn new(client: Client, server: String, namespace: String, format: Format) -> Self {
        Self {
            client,
            namespace,
            format,
            colour: false,
            server,
            now: Timestamp::now(),
        }
    }

    pub fn err(&self, what: &str, error: kube::Error) -> Error {
        api(what, &self.server, error)
    }

    /// Fails with "labpods is not installed" when the API group is not served.
    pub async fn ensure_installed(&self, crd: &'static str) -> Result<()> {
        match self.client.list_api_group_resources(API_VERSION).await {
            Ok(list) if list.resources.iter().any(|r| crd.starts_with(&r.name)) => Ok(()),
            Ok(_) => Err(Error::NotInstalled(crd)),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(Error::NotInstalled(crd)),
            Err(e) => Err(self.err("discovering the labpods API", e)),
        }
    }

    /// A failed list: a 404 means the kind is not served at all.
    async fn list_failed(&self, what: &str, crd: &'static str, error: kube::Error) -> Error {
        if matches!(&error, kube::Error::Api(s) if s.code == 404)
            && let Err(e) = self.ensure_installed(crd).await
        {
            return e;
        }
        self.err(what, error)
    }

    pub fn podrequests(&self) -> Api<PodRequest> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The booking `name` in the session's namespace.
    pub async fn podrequest(&self, name: &str) -> Result<PodRequest> {
        let found = match self.podrequests().get_opt(name).await {
            Ok(found) => found,
            // A group that is not served answers a plain "404 page not found", not a Status.
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => return Err(self.err(&format!("reading PodRequest {name}"), e)),
        };
        match found {
            Some(pr) => Ok(pr),
            None => {
                self.ensure_installed("podrequests.labpods.dev").await?;
                Err(Error::NotFound {
                    kind: "PodRequest",
                    name: name.to_string(),
                    namespace: self.namespace.clone(),
                })
            }
        }
    }

    /// The Lease of booking `name` (same name), if it has one yet.
    pub async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        match Api::<Lease>::namespaced(self.client.clone(), &self.namespace)
            .get_opt(name)
            .await
        {
            Ok(found) => Ok(found),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.ensure_installed("leases.labpods.dev").await?;
                Ok(None)
            }
            Err(e) => Err(self.err(&format!("reading Lease {name}"), e)),
        }
    }

    pub async fn labhosts(&self) -> Result<Vec<LabHost>> {
        match Api::<LabHost>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => Ok(list.items),
            Err(kube::Error::Api(s)) if s.code == 403 => Err(Error::Api(format!(
                "listing LabHosts: forbidden: {} (ask a lab admin to bind the ClusterRole labpods-host-reader to you)",
                s.message
            ))),
            Err(e) => Err(self
                .list_failed("listing LabHosts", "labhosts.labpods.dev", e)
                .await),
        }
    }

    /// The allocation history between `from` and `to`, kept by the operator in `namespace`
    /// (what `report` and `forecast` read).
    pub async fn history(
        &self,
        namespace: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Contents> {
        let store = ConfigMapStore::new(self.client.clone(), namespace);
        shards::read(&store, from, to).await.map_err(|e| match e {
            StoreError::Forbidden(message) => Error::Api(format!(
                "reading the allocation history in namespace {namespace}: forbidden: {message} (ask a lab admin to bind the Role labpods-history-reader there to you)"
            )),
            e => Error::Api(format!(
                "reading the allocation history in namespace {namespace}: {e}"
            )),
        })
    }

    /// Every Lease the user may read: all namespaces when allowed, else their own.
    pub async fn leases(&self) -> Result<Vec<Lease>> {
        self.everywhere("listing Leases", "leases.labpods.dev")
            .await
    }

    /// Every PodRequest the user may read: all namespaces when allowed, else their own.
    pub async fn all_podrequests(&self) -> Result<Vec<PodRequest>> {
        self.everywhere("listing PodRequests", "podrequests.labpods.dev")
            .await
    }

    /// A namespaced kind in every namespace, or in the session's when listing them all is
    /// forbidden (a tenant's role is namespaced).
    async fn everywhere<K>(&self, what: &str, crd: &'static str) -> Result<Vec<K>>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let params = ListParams::default();
        let list = match Api::<K>::all(self.client.clone()).list(&params).await {
            Err(kube::Error::Api(s)) if s.code == 403 => {
                Api::<K>::namespaced(self.client.clone(), &self.namespace)
                    .list(&params)
                    .await
            }
            other => other,
        };
        match list {
            Ok(list) => Ok(list.items),
            Err(e) => Err(self.list_failed(what, crd, e).await),
        }
    }
}

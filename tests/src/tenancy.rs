//! What the tenancy tests need: the shipped `deploy/` YAML applied as it is, identities
//! (impersonated people, and real ServiceAccount tokens for the operator), and the admission
//! policy bound in a way that cannot touch other tests on a shared apiserver.
//!
//! The policies in `deploy/admission/` apply to the whole cluster once bound. On the shared
//! apiserver every test binds them with its own copies of the shipped bindings, changed in
//! three places only: the name (test-unique), the parameter (the test's own namespace,
//! annotated with the operator identity as the shipped `labpods-system` is, so no test
//! depends on another's), and the selector: the Lease binding matches namespaces labelled
//! [`SCOPE_LABEL`]`=<scope>`, the LabHost binding (LabHosts are cluster-scoped, a namespace
//! selector would match them all) LabHosts labelled so. Everything else (the policies, their
//! CEL, the messages, the actions) is the shipped file. The operator's e2e applies `deploy/`
//! untouched on its own plane.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::cleanup::DeleteOnDrop;
use crate::kubeconfig::config_for;
use crate::kubectl::Kubectl;
use crate::wait::eventually;
use crate::workspace_root;

/// The identity the shipped policy allows (deploy/admission/params.yaml) and the shipped
/// RBAC binds (deploy/operator/).
pub const OPERATOR_NAMESPACE: &str = "labpods-system";
pub const OPERATOR_SERVICE_ACCOUNT: &str = "labpods";
pub const OPERATOR_USERNAME: &str = "system:serviceaccount:labpods-system:labpods";
/// Label that puts a namespace or a LabHost under one test's bindings.
pub const SCOPE_LABEL: &str = "labpods.dev/tenancy-test";
/// The annotation of the operator's namespace that names the operator (the policies'
/// parameter).
pub const OPERATOR_ANNOTATION: &str = "labpods.dev/operator";
/// Field manager of what the tests apply.
const MANAGER: &str = "labpods-tests";

/// `deploy/<part>`.
pub fn deploy_dir(part: &str) -> PathBuf {
    workspace_root().join("deploy").join(part)
}

/// The objects `kubectl kustomize deploy/<part>` renders (what `kubectl apply -k` applies).
pub async fn rendered(kubectl: &Kubectl, part: &str) -> Result<Vec<Value>> {
    let dir = deploy_dir(part);
    let yaml = kubectl
        .run(["kustomize".as_ref(), dir.as_os_str()])
        .await?
        .ok()?;
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&yaml) {
        let value = <Value as serde::Deserialize>::deserialize(document)?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// Server-side applies `objects` (idempotent: concurrent test processes applying the same
/// shipped objects never conflict).
pub async fn apply(kubectl: &Kubectl, objects: &[Value]) -> Result<()> {
    let mut yaml = String::new();
    for object in objects {
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml::to_string(object)?);
    }
    kubectl
        .run_with_input(
            [
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager",
                MANAGER,
                "-f",
                "-",
            ],
            &yaml,
        )
        .await?
        .ok()?;
    Ok(())
}

/// Applies the shipped operator namespace, ServiceAccount and RBAC and the people's roles, as
/// they are. Cluster-scoped and identical for every test: safe on a shared apiserver.
pub async fn install_roles(kubectl: &Kubectl) -> Result<()> {
    let mut objects = rendered(kubectl, "operator").await?;
    objects.extend(rendered(kubectl, "roles").await?);
    apply(kubectl, &objects).await
}

fn kind_of(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// One test's bindings of the shipped policies; deleted on drop.
#[derive(Debug)]
pub struct ScopedPolicies {
    pub scope: String,
    /// The namespace that is this test's parameter (its operator annotation).
    pub params_namespace: String,
    _bindings: Vec<DeleteOnDrop>,
}

impl ScopedPolicies {
    /// Binds the shipped policies for namespaces and LabHosts labelled
    /// [`SCOPE_LABEL`]`=<scope>`, with `params_namespace` as their parameter, annotated as the
    /// shipped operator namespace is (or naming `operator` when given). Returns once the
    /// apiserver enforces both bindings.
    pub async fn install(
        admin_kubeconfig: &Path,
        client: &Client,
        scope: &str,
        params_namespace: &str,
        operator: Option<&str>,
    ) -> Result<Self> {
        let kubectl = &Kubectl::new(admin_kubeconfig)?;
        let shipped = rendered(kubectl, "admission").await?;
        let policies: Vec<Value> = shipped
            .iter()
            .filter(|o| kind_of(o) == "ValidatingAdmissionPolicy")
            .cloned()
            .collect();
        if policies.len() != 2 {
            bail!(
                "deploy/admission should ship 2 policies, has {}",
                policies.len()
            );
        }
        apply(kubectl, &policies).await?;

        let namespace = rendered(kubectl, "operator")
            .await?
            .into_iter()
            .find(|o| kind_of(o) == "Namespace")
            .context("deploy/operator ships no Namespace")?;
        let shipped_operator = namespace["metadata"]["annotations"][OPERATOR_ANNOTATION]
            .as_str()
            .context("the shipped namespace names no operator")?
            .to_string();
        let operator = operator.map_or(shipped_operator, str::to_string);
        let patch = json!({ "metadata": { "annotations": { OPERATOR_ANNOTATION: operator } } });
        Api::<Namespace>::all(client.clone())
            .patch(
                params_namespace,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;

        let mut bindings = Vec::new();
        let mut guards = Vec::new();
        for shipped in shipped
            .iter()
            .filter(|o| kind_of(o) == "ValidatingAdmissionPolicyBinding")
        {
            let mut binding = shipped.clone();
            let name = format!("{}.{scope}", name_of(shipped));
            binding["metadata"]["name"] = json!(name);
            binding["spec"]["paramRef"]["name"] = json!(params_namespace);
            let selector = json!({ "matchLabels": { SCOPE_LABEL: scope } });
            let policy = binding["spec"]["policyName"].as_str().unwrap_or_default();
            binding["spec"]["matchResources"] = if policy.starts_with("labhost") {
                json!({ "objectSelector": selector })
            } else {
                json!({ "namespaceSelector": selector })
            };
            guards.push(DeleteOnDrop::new(
                admin_kubeconfig.to_path_buf(),
                format!("validatingadmissionpolicybinding/{name}"),
            ));
            bindings.push(binding);
        }
        if bindings.len() != 2 {
            bail!(
                "deploy/admission should ship 2 bindings, has {}",
                bindings.len()
            );
        }
        apply(kubectl, &bindings).await?;
        let scoped = Self {
            scope: scope.to_string(),
            params_namespace: params_namespace.to_string(),
            _bindings: guards,
        };
        scoped.wait_enforced(client).await?;
        Ok(scoped)
    }

    /// Bindings take effect when the apiserver's informers see them and their parameter:
    /// wait until an admin's dry-run claim is refused by the policy itself. (The Lease
    /// binding is read from the same informers at the same time; the tests' first Lease
    /// writes retry until refused all the same.)
    async fn wait_enforced(&self, client: &Client) -> Result<()> {
        let probe = json!({
            "apiVersion": "labpods.dev/v1alpha1",
            "kind": "LabHost",
            "metadata": {
                "name": format!("probe-{}", self.scope),
                "labels": { SCOPE_LABEL: self.scope },
            },
            "spec": {
                "profile": "probe",
                "bmc": {
                    "address": "https://192.0.2.1",
                    "credentialsSecretRef": { "name": "none", "namespace": OPERATOR_NAMESPACE },
                },
                "claimRef": { "namespace": "x", "name": "x", "uid": "x", "lease": "x" },
            },
        });
        let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let waited = eventually(
            "the test's admission bindings to be enforced",
            Duration::from_secs(30),
            || {
                let client = client.clone();
                let probe = probe.clone();
                let last = last.clone();
                async move {
                    let outcome = dry_run_create_labhost(&client, &probe).await?;
                    let enforced = outcome.is_none();
                    if let (Some(seen), Ok(mut last)) = (outcome, last.lock()) {
                        *last = seen;
                    }
                    Ok(enforced.then_some(()))
                }
            },
        )
        .await;
        if let Err(e) = waited {
            let last = last.lock().map(|l| l.clone()).unwrap_or_default();
            bail!("{e}; the last probe got: {last}");
        }
        Ok(())
    }
}

/// Labels a namespace into a scope.
pub async fn label_namespace(client: &Client, namespace: &str, scope: &str) -> Result<()> {
    let patch = json!({ "metadata": { "labels": { SCOPE_LABEL: scope } } });
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// None when the apiserver's admission policy refuses an admin's dry-run create of
/// `labhost`; otherwise what happened instead.
async fn dry_run_create_labhost(client: &Client, labhost: &Value) -> crate::Result<Option<String>> {
    let request = http::Request::post("/apis/labpods.dev/v1alpha1/labhosts?dryRun=All")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(labhost).unwrap_or_default())
        .map_err(|e| crate::Error::Io {
            context: "building a request".into(),
            source: std::io::Error::other(e),
        })?;
    match client.request_text(request).await {
        Ok(_) => Ok(Some("allowed".into())),
        Err(kube::Error::Api(s))
            if s.code == 403
                && s.message.contains("ValidatingAdmissionPolicy")
                && s.message.contains("may write spec.claimRef") =>
        {
            Ok(None)
        }
        // Not yet (e.g. the binding seen before its parameter: "no params found").
        Err(kube::Error::Api(s)) => Ok(Some(format!("{}: {}", s.code, s.message))),
        Err(e) => Err(e.into()),
    }
}

/// A client acting as `user` in `groups`, by impersonation from the admin kubeconfig.
pub async fn client_as(admin_kubeconfig: &Path, user: &str, groups: &[&str]) -> Result<Client> {
    let mut config = config_for(admin_kubeconfig).await?;
    config.auth_info.impersonate = Some(user.to_string());
    config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    Ok(Client::try_from(config)?)
}

/// A bearer token for ServiceAccount `namespace/name` from the TokenRequest API (creating
/// the account if needed): the apiserver authenticates it as
/// `system:serviceaccount:<namespace>:<name>`, no impersonation involved.
pub async fn service_account_token(client: &Client, namespace: &str, name: &str) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    if accounts.get_opt(name).await?.is_none() {
        let account = ServiceAccount {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await?;
    issued
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("no token issued for {namespace}/{name}"))
}

/// A client authenticated by a bearer token, against the admin kubeconfig's server and CA.
pub async fn client_with_token(admin_kubeconfig: &Path, token: &str) -> Result<Client> {
    let mut config = config_for(admin_kubeconfig).await?;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_string().into()),
        ..kube::config::AuthInfo::default()
    };
    Ok(Client::try_from(config)?)
}

/// Writes a kubeconfig like `admin_kubeconfig` whose user is the bearer `token` (for a
/// process under test, e.g. the operator running as its ServiceAccount).
pub fn write_token_kubeconfig(admin_kubeconfig: &Path, token: &str, out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(admin_kubeconfig)
        .with_context(|| format!("reading {}", admin_kubeconfig.display()))?;
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let users = config
        .get_mut("users")
        .and_then(serde_yaml::Value::as_sequence_mut)
        .context("the kubeconfig has no users")?;
    for user in users {
        let mut auth = serde_yaml::Mapping::new();
        auth.insert("token".into(), token.into());
        user["user"] = serde_yaml::Value::Mapping(auth);
    }
    std::fs::write(out, serde_yaml::to_string(&config)?)
        .with_context(|| format!("writing {}", out.display()))
}

/// The status (code and message) of a refused request, or an error if it succeeded.
pub fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> Result<(u16, String)> {
    match result {
        Ok(value) => bail!("the request was allowed: {value:?}"),
        Err(kube::Error::Api(status)) => Ok((status.code, status.message)),
        Err(other) => Err(other.into()),
    }
}

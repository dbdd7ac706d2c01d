//! The test control plane itself: it is the Kubernetes it was built as, what tests rely on it
//! for (namespaces, garbage collection, RBAC, kubectl, server-side apply) works, and a
//! control plane leaves nothing behind. Tests that need the controller-manager say so in
//! their name: the oldest minor's plane, for the API tests alone, runs without one.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use labpods_tests::{ControlPlane, ControlPlaneConfig, Kubectl, TestCluster, eventually};

/// Controllers act within seconds; the margin is for a loaded 2-core machine.
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(120);

fn config_map(name: &str, owner: Option<&ConfigMap>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            owner_references: owner.map(|owner| {
                vec![OwnerReference {
                    api_version: "v1".to_string(),
                    kind: "ConfigMap".to_string(),
                    name: owner.name_any(),
                    uid: owner.uid().unwrap_or_default(),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        },
        data: Some([("hello".to_string(), "world".to_string())].into()),
        ..ConfigMap::default()
    }
}

async fn gone<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    eventually(
        &format!("{name} to be deleted"),
        CONTROLLER_TIMEOUT,
        || async { Ok(api.get_opt(name).await?.is_none().then_some(())) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_controller_manager_deletes_a_dropped_test_namespace_with_its_contents() -> Result<()> {
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let namespace = cluster.namespace("namespace-lifecycle").await?;
    let name = namespace.name().to_string();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    config_maps
        .create(&PostParams::default(), &config_map("content", None))
        .await?;

    drop(namespace);

    // Only the namespace controller (kube-controller-manager) finalizes a namespace.
    gone(&Api::<Namespace>::all(client), &name).await
}

#[tokio::test]
async fn the_controller_manager_garbage_collects_dependents_of_a_deleted_owner() -> Result<()> {
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let namespace = cluster.namespace("garbage-collector").await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client, namespace.name());
    let owner = config_maps
        .create(&PostParams::default(), &config_map("owner", None))
        .await?;
    config_maps
        .create(
            &PostParams::default(),
            &config_map("dependent", Some(&owner)),
        )
        .await?;

    config_maps
        .delete("owner", &DeleteParams::background())
        .await?;

    gone(&config_maps, "dependent").await
}

#[tokio::test]
async fn rbac_forbids_a_user_until_a_role_binding_allows_it() -> Result<()> {
    let cluster = TestCluster::get()?;
    let admin = cluster.client().await?;
    let namespace = cluster.namespace("rbac").await?;
    let alice = cluster.client_as("alice", &["lab-users"]).await?;
    let as_alice: Api<ConfigMap> = Api::namespaced(alice, namespace.name());

    let denied = as_alice.list(&Default::default()).await;
    match denied {
        Err(kube::Error::Api(status)) => {
            ensure!(status.code == 403, "expected 403 Forbidden, got {status:?}");
            ensure!(status.message.contains("\"alice\""), "{}", status.message);
        }
        other => anyhow::bail!("alice listed config maps without a role: {other:?}"),
    }

    grant_read_config_maps(&admin, namespace.name(), "alice").await?;

    eventually(
        "alice's new role binding to take effect",
        CONTROLLER_TIMEOUT,
        || async { Ok(as_alice.list(&Default::default()).await.ok()) },
    )
    .await?;
    Ok(())
}

async fn grant_read_config_maps(admin: &Client, namespace: &str, user: &str) -> Result<()> {
    let meta = ObjectMeta {
        name: Some("read-config-maps".to_string()),
        ..ObjectMeta::default()
    };
    let role = Role {
        metadata: meta.clone(),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_string()]),
            verbs: vec!["get".to_string(), "list".to_string()],
            ..PolicyRule::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "Role".to_string(),
            name: "read-config-maps".to_string(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "User".to_string(),
            name: user.to_string(),
            namespace: None,
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await?;
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_apiserver_reports_the_kubernetes_version_it_was_built_as() -> Result<()> {
    let cluster = TestCluster::get()?;
    let version = cluster.client().await?.apiserver_version().await?;
    // The build script caches each version in `k8s-<version>/bin`.
    let bin = labpods_tests::binaries::kubernetes_bin_dir()?;
    let built = bin
        .parent()
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("k8s-"))
        .with_context(|| format!("{} is not a k8s-<version>/bin directory", bin.display()))?;
    ensure!(
        version.git_version == format!("v{built}"),
        "the apiserver says {} but was built as {built}",
        version.git_version
    );
    let minor: u32 = version.minor.trim_end_matches('+').parse()?;
    ensure!(
        version.major == "1" && minor >= 35,
        "{} is older than any supported Kubernetes",
        version.git_version
    );
    Ok(())
}

/// Kubernetes 1.20 turned a field dropped from a server-side-applied status into an explicit
/// null (rejected by the schema); the operator's status writer no longer works around it.
#[tokio::test]
async fn server_side_apply_removes_a_status_field_its_manager_drops() -> Result<()> {
    use labpods_api::LabHost;
    use serde_json::json;

    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let name = format!("ssa-drop-{}", std::process::id());
    let _guard = cluster.delete_on_drop(format!("labhost/{name}"));
    let hosts: Api<LabHost> = Api::all(client);
    let host: LabHost = serde_json::from_value(json!({
        "apiVersion": "labpods.dev/v1alpha1",
        "kind": "LabHost",
        "metadata": { "name": name },
        "spec": {
            "profile": "x86-small",
            "bmc": {
                "address": "https://bmc.example:443",
                "credentialsSecretRef": { "name": "bmc", "namespace": "labpods-system" },
            },
        },
    }))?;
    hosts.create(&PostParams::default(), &host).await?;
    let apply = |status: serde_json::Value| json!({ "apiVersion": "labpods.dev/v1alpha1", "kind": "LabHost", "status": status });
    let params = kube::api::PatchParams::apply("ssa-test").force();
    let with_progress = apply(json!({
        "state": "Provisioning",
        "lastError": "BMC timed out",
        "provisioning": {
            "operation": "Provision",
            "step": "PowerOff",
            "attempts": 1,
            "startedAt": "2026-01-01T00:00:00Z",
            "stepStartedAt": "2026-01-01T00:00:00Z",
            "lease": "ssa",
        },
    }));
    hosts
        .patch_status(&name, &params, &kube::api::Patch::Apply(&with_progress))
        .await?;
    let without = apply(json!({ "state": "Available" }));
    let after = hosts
        .patch_status(&name, &params, &kube::api::Patch::Apply(&without))
        .await?;

    let status = after.status.context("no status after the second apply")?;
    ensure!(
        status.provisioning.is_none(),
        "provisioning kept: {status:?}"
    );
    ensure!(status.last_error.is_none(), "lastError kept: {status:?}");
    Ok(())
}

#[tokio::test]
async fn kubectl_works_in_the_test_namespace() -> Result<()> {
    let cluster = TestCluster::get()?;
    let namespace = cluster.namespace("kubectl").await?;
    let kubectl = cluster.kubectl()?.namespace(namespace.name());

    kubectl
        .run([
            "create",
            "configmap",
            "greeting",
            "--from-literal=hello=world",
        ])
        .await?
        .ok()?;
    let value = kubectl
        .run([
            "get",
            "configmap",
            "greeting",
            "-o",
            "jsonpath={.data.hello}",
        ])
        .await?
        .ok()?;
    ensure!(value == "world", "kubectl printed {value:?}");

    let missing = kubectl.run(["get", "configmap", "absent"]).await?;
    ensure!(!missing.success, "getting a missing config map succeeded");
    ensure!(missing.stderr.contains("NotFound"), "{}", missing.stderr);
    Ok(())
}

#[tokio::test]
async fn a_control_plane_of_its_own_serves_token_users_and_leaves_nothing_behind() -> Result<()> {
    let mut config = ControlPlaneConfig::default();
    let bob_token = config.add_user("bob", &[]);
    let plane = ControlPlane::start(config).await?;
    let dir = plane.dir().to_path_buf();
    let kubectl = Kubectl::new(plane.kubeconfig())?;

    let as_admin = kubectl
        .run(["get", "namespaces", "-o", "name"])
        .await?
        .ok()?;
    ensure!(as_admin.contains("namespace/kube-system"), "{as_admin}");
    // The token file authenticates bob; RBAC, with no binding for him, forbids him.
    let as_bob = kubectl
        .run(["--token", &bob_token, "get", "namespaces"])
        .await?;
    ensure!(!as_bob.success, "bob listed namespaces without a role");
    ensure!(
        as_bob
            .stderr
            .contains("User \"bob\" cannot list resource \"namespaces\""),
        "{}",
        as_bob.stderr
    );

    drop(plane);

    ensure!(!dir.exists(), "{} is still there", dir.display());
    let leftovers = processes_mentioning(&dir)?;
    ensure!(leftovers.is_empty(), "still running: {leftovers:?}");
    Ok(())
}

/// Command lines of running processes that mention `path` (every component's does).
fn processes_mentioning(path: &Path) -> Result<Vec<String>> {
    let needle = path.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        // Processes may exit while we look: skip what cannot be read.
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let command_line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if command_line.contains(&needle) {
            found.push(command_line);
        }
    }
    Ok(found)
}

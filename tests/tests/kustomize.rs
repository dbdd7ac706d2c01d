//! The kustomize base deploy/ is the chart rendered with its default values (plus the
//! Namespace, minus the random phone-home Secret: see crates/xtask/src/render.rs), its
//! overlays build, and (e2e, own control plane) the base installs, the operator books under
//! it, and re-applying the base afterwards changes nothing: GitOps and the operator never
//! fight over a field.

use anyhow::{Context, Result, ensure};
use labpods_tests::e2e::E2e;
use labpods_tests::helm::{Helm, NAMESPACE, chart_dir, find, parse_objects};
use labpods_tests::sim::HostGroup;
use labpods_tests::{Kubectl, TestCluster, workspace_root};
use serde_json::Value;

async fn kustomize(kubectl: &Kubectl, dir: &str) -> Result<Vec<Value>> {
    let path = workspace_root().join(dir);
    let yaml = kubectl
        .run(["kustomize".as_ref(), path.as_os_str()])
        .await?
        .ok()?;
    parse_objects(&yaml)
}

fn key(object: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&object["kind"]),
        s(&object["metadata"]["namespace"]),
        s(&object["metadata"]["name"]),
    )
}

fn sorted(mut objects: Vec<Value>) -> Vec<Value> {
    objects.sort_by_key(key);
    objects
}

#[tokio::test]
async fn deploy_is_the_chart_rendered_with_default_values() -> Result<()> {
    let kubectl = TestCluster::get()?.kubectl()?;
    let helm = Helm::offline()?;
    let chart = sorted(
        helm.template(&chart_dir(), NAMESPACE, &["--set", "namespace.create=true"])
            .await?
            .into_iter()
            .filter(|o| !(o["kind"] == "Secret" && o["metadata"]["name"] == "labpods-phone-home"))
            .collect(),
    );
    let base = sorted(kustomize(&kubectl, "deploy").await?);
    let keys = |o: &[Value]| o.iter().map(key).collect::<Vec<_>>();
    assert_eq!(keys(&base), keys(&chart), "run cargo xtask render");
    for (have, want) in base.iter().zip(&chart) {
        assert!(
            have == want,
            "deploy/ differs from the chart in {:?}: run cargo xtask render",
            key(have)
        );
    }
    // And the only things the chart installs that the base has not.
    let defaults = helm.template(&chart_dir(), NAMESPACE, &[]).await?;
    let extra: Vec<_> = defaults
        .iter()
        .filter(|o| !base.iter().any(|b| key(b) == key(o)))
        .map(key)
        .collect();
    assert_eq!(
        extra,
        vec![(
            "Secret".to_string(),
            NAMESPACE.to_string(),
            "labpods-phone-home".to_string()
        )]
    );
    Ok(())
}

#[tokio::test]
async fn overlays_build_the_metrics_stack_and_a_second_lab() -> Result<()> {
    let kubectl = TestCluster::get()?.kubectl()?;
    let metrics = kustomize(&kubectl, "deploy/overlays/metrics").await?;
    let full = Helm::offline()?
        .template(
            &chart_dir(),
            NAMESPACE,
            &[
                "--set",
                "serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboard.enabled=true",
            ],
        )
        .await?;
    for (kind, name) in [
        ("ServiceMonitor", "labpods"),
        ("PrometheusRule", "labpods"),
        ("ConfigMap", "labpods-dashboard"),
        ("Deployment", "labpods"),
    ] {
        assert_eq!(
            find(&metrics, kind, name)?,
            find(&full, kind, name)?,
            "{kind} {name}"
        );
    }
    let lab2 = kustomize(&kubectl, "deploy/overlays/second-lab").await?;
    let deployment = find(&lab2, "Deployment", "labpods")?;
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.lab2.example/labpods:0.1.0"
    );
    let config = find(&lab2, "ConfigMap", "labpods-config")?;
    let config: Value = serde_yaml::from_str(
        config["data"]["config.yaml"]
            .as_str()
            .context("no config.yaml")?,
    )?;
    assert_eq!(config["policy"]["namespaceHostQuota"], 4);
    assert_eq!(config["policy"]["namespaceHostQuotas"]["ci"], 16);
    // The listeners and the election namespace stay the chart's.
    assert_eq!(config["http"]["metricsAddress"], "0.0.0.0:8080");
    assert_eq!(config["leaderElection"]["leaseNamespace"], NAMESPACE);
    Ok(())
}

/// `kubectl diff --server-side` of `dir` against the live cluster: empty when nothing would
/// change.
async fn server_side_diff(kubectl: &Kubectl, dir: &str) -> Result<String> {
    let path = workspace_root().join(dir);
    let out = kubectl
        .run([
            "diff".as_ref(),
            "--server-side".as_ref(),
            "--field-manager".as_ref(),
            "gitops".as_ref(),
            "-k".as_ref(),
            path.as_os_str(),
        ])
        .await?;
    // kubectl diff: 0 no differences, 1 differences, >1 an error.
    ensure!(
        out.success || out.status.contains("1"),
        "kubectl diff failed ({}): {}",
        out.status,
        out.stderr
    );
    Ok(out.stdout)
}

/// As a GitOps tool does: the base server-side applied, the operator booking a pod under
/// it, the base applied again with no change, then the second lab's overlay applied over it.
#[tokio::test]
async fn e2e_kustomize_base_reapplies_without_a_diff_after_the_operator_ran() -> Result<()> {
    let mut e2e = E2e::start_installed("e2e-kustomize", &[HostGroup::new("small", 2)]).await?;
    let kubectl = Kubectl::new(e2e.kubeconfig())?;
    let base = workspace_root().join("deploy");
    // GitOps applies with a field manager of its own (Argo CD and Flux use server-side
    // apply), taking the fields over from the first install's client-side apply.
    kubectl
        .run([
            "apply".as_ref(),
            "--server-side".as_ref(),
            "--force-conflicts".as_ref(),
            "--field-manager".as_ref(),
            "gitops".as_ref(),
            "-k".as_ref(),
            base.as_os_str(),
        ])
        .await?
        .ok()?;
    e2e.book("ci-pod", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    e2e.check_ready("ci-pod", &[("node", 2)]).await?;
    let diff = server_side_diff(&kubectl, "deploy").await?;
    assert!(diff.is_empty(), "re-applying deploy/ would change:\n{diff}");

    let lab2 = workspace_root().join("deploy/overlays/second-lab");
    kubectl
        .run([
            "apply".as_ref(),
            "--server-side".as_ref(),
            "--field-manager".as_ref(),
            "gitops".as_ref(),
            "-k".as_ref(),
            lab2.as_os_str(),
        ])
        .await?
        .ok()?;
    let replicas = kubectl
        .run([
            "get",
            "deployment",
            "labpods",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await?
        .ok()?;
    assert_eq!(replicas, "3");
    let diff = server_side_diff(&kubectl, "deploy/overlays/second-lab").await?;
    assert!(
        diff.is_empty(),
        "re-applying the overlay would change:\n{diff}"
    );
    e2e.shutdown().await?;
    Ok(())
}

//! The kustomize base deploy/ is the chart rendered with its default values, CRDs included
//! (plus the Namespace: see crates/xtask/src/render.rs), its overlays build, and (e2e, own
//! control plane) the base installs, the operator books under it, and re-applying the base
//! afterwards changes nothing: GitOps and the operator never fight over a field.

use std::ffi::OsString;
use std::time::Duration;

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

/// Equal as the apiserver reads them: kustomize writes the CRD schemas' `minimum: 0.0` as `0`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
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
        helm.template(
            &chart_dir(),
            NAMESPACE,
            &["--include-crds", "--set", "namespace.create=true"],
        )
        .await?,
    );
    let base = sorted(kustomize(&kubectl, "deploy").await?);
    let keys = |o: &[Value]| o.iter().map(key).collect::<Vec<_>>();
    assert_eq!(keys(&base), keys(&chart), "run cargo xtask render");
    for (have, want) in base.iter().zip(&chart) {
        assert!(
            same(have, want),
            "deploy/ differs from the chart in {:?}: run cargo xtask render",
            key(have)
        );
    }
    for crd in ["labhosts", "podrequests", "leases"] {
        find(
            &base,
            "CustomResourceDefinition",
            &format!("{crd}.labpods.dev"),
        )?;
    }
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
    // GitOps: the base, with the CRDs (and so every lab object) out of prune's and a
    // cascading delete's reach.
    let base = kustomize(&kubectl, "deploy").await?;
    let gitops = kustomize(&kubectl, "deploy/overlays/gitops").await?;
    assert_eq!(gitops.len(), base.len());
    for object in &gitops {
        let annotations = &object["metadata"]["annotations"];
        if object["kind"] == "CustomResourceDefinition" {
            assert_eq!(
                annotations["argocd.argoproj.io/sync-options"],
                "Delete=false,Prune=false"
            );
            assert_eq!(annotations["kustomize.toolkit.fluxcd.io/prune"], "disabled");
        } else {
            let same = base.iter().find(|b| key(b) == key(object));
            assert_eq!(Some(object), same, "{:?}", key(object));
        }
    }
    let lab2 = kustomize(&kubectl, "deploy/overlays/second-lab").await?;
    find(&lab2, "CustomResourceDefinition", "leases.labpods.dev")?;
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

/// `kubectl apply --server-side -k dir` as a GitOps tool does: with a field manager of its own.
async fn apply_as_gitops(kubectl: &Kubectl, dir: &str, extra: &[&str]) -> Result<()> {
    let path = workspace_root().join(dir);
    let mut args: Vec<OsString> = vec!["apply".into(), "--server-side".into()];
    args.extend(extra.iter().map(OsString::from));
    args.extend(["--field-manager".into(), "gitops".into(), "-k".into()]);
    args.push(path.into_os_string());
    kubectl.run(args).await?.ok()?;
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
/// it, the base applied again with no change, the metrics overlay applied where the
/// prometheus-operator's CRDs are, then the second lab's overlay applied over it.
#[tokio::test]
async fn e2e_kustomize_base_reapplies_without_a_diff_after_the_operator_ran() -> Result<()> {
    let mut e2e = E2e::start_installed("e2e-kustomize", &[HostGroup::new("small", 2)]).await?;
    let kubectl = Kubectl::new(e2e.kubeconfig())?;
    // GitOps applies with a field manager of its own (Argo CD and Flux use server-side
    // apply), taking the fields over from the first install's client-side apply.
    apply_as_gitops(&kubectl, "deploy", &["--force-conflicts"]).await?;
    e2e.book("ci-pod", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    e2e.check_ready("ci-pod", &[("node", 2)]).await?;
    let diff = server_side_diff(&kubectl, "deploy").await?;
    assert!(diff.is_empty(), "re-applying deploy/ would change:\n{diff}");

    // The metrics overlay on a cluster with the prometheus-operator's CRDs: the real schemas
    // accept its ServiceMonitor and PrometheusRule.
    let monitoring = workspace_root().join("tests/data/prometheus-operator");
    kubectl
        .run([
            "apply".as_ref(),
            "--server-side".as_ref(),
            "-f".as_ref(),
            monitoring.as_os_str(),
        ])
        .await?
        .ok()?;
    kubectl
        .run([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        ])
        .await?
        .ok()?;
    apply_as_gitops(&kubectl, "deploy/overlays/metrics", &[]).await?;
    let monitors = kubectl
        .run([
            "get",
            "servicemonitors.monitoring.coreos.com,prometheusrules.monitoring.coreos.com,configmaps",
            "-n",
            NAMESPACE,
            "-o",
            "name",
        ])
        .await?
        .ok()?;
    for object in [
        "servicemonitor.monitoring.coreos.com/labpods",
        "prometheusrule.monitoring.coreos.com/labpods",
        "configmap/labpods-dashboard",
    ] {
        assert!(
            monitors.lines().any(|l| l == object),
            "{object} in {monitors}"
        );
    }
    let diff = server_side_diff(&kubectl, "deploy/overlays/metrics").await?;
    assert!(
        diff.is_empty(),
        "re-applying the metrics overlay would change:\n{diff}"
    );

    apply_as_gitops(&kubectl, "deploy/overlays/second-lab", &[]).await?;
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

    // Removing the lab for good (README "Upgrade and uninstall"): every booking released,
    // then `kubectl delete -f crds/`, which takes every lab object with the CRDs.
    let hosts = e2e.assigned_hosts("ci-pod").await?;
    e2e.release("ci-pod").await?;
    e2e.wait_hosts_free(&hosts, Duration::from_secs(120))
        .await?;
    let crds = workspace_root().join("crds");
    kubectl
        .run([
            "delete".as_ref(),
            "-f".as_ref(),
            crds.as_os_str(),
            "--timeout=120s".as_ref(),
        ])
        .await?
        .ok()?;
    let left = kubectl.run(["get", "crd", "-o", "name"]).await?.ok()?;
    assert!(!left.contains("labpods.dev"), "{left}");
    e2e.shutdown().await?;
    Ok(())
}

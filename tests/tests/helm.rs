//! The Helm chart `charts/labpods`, with the real helm CLI: lint, render (default and every
//! option), the values schema refusing bad values, what it renders accepted by the apiserver,
//! and (e2e, own control plane) installed with `helm install`, the operator booking under the
//! chart's RBAC and nothing more, upgraded from the previous chart version with a booking
//! running, and uninstalled leaving the CRDs and the lab's data.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail, ensure};
use kube::Api;
use labpods_api::v1alpha1::{Lease, LeasePhase, PodRequest};
use labpods_tests::e2e::E2e;
use labpods_tests::helm::{Helm, NAMESPACE, chart_dir, find, parse_objects, previous_chart};
use labpods_tests::sim::HostGroup;
use labpods_tests::{Kubectl, TestCluster, workspace_root};
use serde_json::{Value, json};

fn full_values() -> String {
    chart_dir()
        .join("ci/full-values.yaml")
        .display()
        .to_string()
}

#[tokio::test]
async fn chart_lints_strict_with_default_and_full_values() -> Result<()> {
    let helm = Helm::offline()?;
    let chart = chart_dir();
    for extra in [vec![], vec!["--values".to_string(), full_values()]] {
        let mut args = vec![
            "lint".to_string(),
            "--strict".into(),
            chart.display().to_string(),
        ];
        args.extend(extra);
        let out = helm.run(&args).await?;
        ensure!(
            out.success && out.stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
            "helm {}:\n{}{}",
            out.args,
            out.stdout,
            out.stderr
        );
    }
    Ok(())
}

/// The chart installs the very CRDs `cargo xtask crds` generates: charts/labpods/crds is a
/// link to crds/, and `helm package` (what a chart repository serves) carries those bytes.
#[tokio::test]
async fn chart_crds_are_the_generated_crds() -> Result<()> {
    let out = tempfile::tempdir()?;
    Helm::offline()?
        .run([
            "package".as_ref(),
            chart_dir().as_os_str(),
            "--destination".as_ref(),
            out.path().as_os_str(),
        ])
        .await?
        .ok()?;
    let package = out.path().join("labpods-0.2.0.tgz");
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&package)
        .arg("-C")
        .arg(out.path())
        .status()?;
    ensure!(status.success(), "tar xzf {} failed", package.display());
    let names = |dir: &std::path::Path| -> Result<BTreeSet<String>> {
        let mut names = BTreeSet::new();
        for entry in std::fs::read_dir(dir)? {
            names.insert(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    };
    let generated = workspace_root().join("crds");
    let packaged = out.path().join("labpods/crds");
    assert_eq!(names(&packaged)?, names(&generated)?);
    assert_eq!(names(&generated)?.len(), 3);
    for name in names(&generated)? {
        let want = std::fs::read(generated.join(&name))?;
        let have = std::fs::read(packaged.join(&name))?;
        assert!(
            want == have,
            "the packaged chart's crds/{name} differs from crds/{name}"
        );
        assert!(!parse_objects(std::str::from_utf8(&have)?)?.is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn chart_default_render_is_a_hardened_two_replica_operator() -> Result<()> {
    let objects = Helm::offline()?
        .template(&chart_dir(), NAMESPACE, &[])
        .await?;
    let deployment = find(&objects, "Deployment", "labpods")?;
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "labpods");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        spread["labelSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "ghcr.io/labpods/labpods:0.1.0");
    assert_eq!(
        container["args"],
        json!(["run", "--config", "/etc/labpods/config.yaml"])
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert!(container["resources"]["requests"]["cpu"].is_string());

    // The config the replicas run with: election in the release namespace, listeners the
    // probes and Services use; phone-home tokens keyed from the Lease signing key, which
    // every replica reads (nothing random rendered, so `kubectl apply -k deploy/` is the same).
    let config = find(&objects, "ConfigMap", "labpods-config")?;
    let config: Value = serde_yaml::from_str(
        config["data"]["config.yaml"]
            .as_str()
            .context("no config.yaml")?,
    )?;
    assert_eq!(config["leaderElection"]["enabled"], true);
    assert_eq!(config["leaderElection"]["leaseNamespace"], NAMESPACE);
    assert_eq!(config["http"]["metricsAddress"], "0.0.0.0:8080");
    assert_eq!(config["phoneHome"]["listenAddress"], "0.0.0.0:8081");
    assert!(config["phoneHome"].get("secretFile").is_none(), "{config}");
    assert!(objects.iter().all(|o| o["kind"] != "Secret"));
    let volumes = pod["volumes"].as_array().context("no volumes")?;
    assert!(
        volumes.iter().all(|v| v.get("secret").is_none()),
        "{volumes:?}"
    );
    for service in ["labpods-metrics", "labpods-phone-home"] {
        find(&objects, "Service", service)?;
    }
    assert_eq!(
        find(&objects, "PodDisruptionBudget", "labpods")?["spec"]["minAvailable"],
        1
    );
    // Off by default: they need the prometheus-operator's CRDs, or a choice of the lab's.
    for kind in [
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
        "Namespace",
    ] {
        assert!(
            objects.iter().all(|o| o["kind"] != kind),
            "{kind} rendered by default"
        );
    }
    // The admission policies take the release namespace as their parameter.
    for binding in objects
        .iter()
        .filter(|o| o["kind"] == "ValidatingAdmissionPolicyBinding")
    {
        assert_eq!(binding["spec"]["paramRef"]["name"], NAMESPACE);
    }
    Ok(())
}

#[tokio::test]
async fn chart_full_values_render_every_optional_part() -> Result<()> {
    let objects = Helm::offline()?
        .template(&chart_dir(), NAMESPACE, &["--values", &full_values()])
        .await?;
    let deployment = find(&objects, "Deployment", "labpods")?;
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        "registry.lab.example/labpods@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(pod["imagePullSecrets"], json!([{ "name": "lab-registry" }]));
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    // A Secret of the lab's for the phone-home tokens, mounted where the config points.
    assert!(objects.iter().all(|o| o["kind"] != "Secret"));
    assert!(pod["volumes"].as_array().is_some_and(|v| {
        v.iter()
            .any(|v| v["secret"]["secretName"] == "lab-phone-home")
    }));
    let namespace = find(&objects, "Namespace", NAMESPACE)?;
    assert_eq!(
        namespace["metadata"]["annotations"]["labpods.dev/operator"],
        "system:serviceaccount:labpods-system:labpods"
    );
    let phone = find(&objects, "Service", "labpods-phone-home")?;
    assert_eq!(phone["spec"]["type"], "NodePort");
    assert_eq!(phone["spec"]["ports"][0]["nodePort"], 30081);
    let config = find(&objects, "ConfigMap", "labpods-config")?;
    let config: Value =
        serde_yaml::from_str(config["data"]["config.yaml"].as_str().unwrap_or_default())?;
    assert_eq!(config["policy"]["namespaceHostQuota"], 8);
    assert_eq!(
        config["phoneHome"]["secretFile"],
        "/etc/labpods/phone-home/secret"
    );
    assert_eq!(
        config["phoneHome"]["externalBaseUrl"],
        "http://10.0.0.5:30081"
    );
    assert_eq!(config["leaderElection"]["leaseDuration"], "20s");
    let retention = find(&objects, "ConfigMap", "labpods-history-settings")?;
    assert_eq!(
        retention["data"],
        json!({ "retentionDays": "30", "usageRetentionDays": "400" })
    );
    let policy = find(&objects, "NetworkPolicy", "labpods")?;
    assert_eq!(
        policy["spec"]["ingress"][1]["from"][0]["ipBlock"]["cidr"],
        "10.0.0.0/16"
    );
    let monitor = find(&objects, "ServiceMonitor", "labpods")?;
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    // The PrometheusRule carries exactly the promtool-tested rule file.
    let rules = find(&objects, "PrometheusRule", "labpods")?;
    let tested: Value = serde_yaml::from_str(&std::fs::read_to_string(
        chart_dir().join("files/alerts.yaml"),
    )?)?;
    assert_eq!(rules["spec"]["groups"], tested["groups"]);
    let dashboard = find(&objects, "ConfigMap", "labpods-dashboard")?;
    let json: Value = serde_json::from_str(
        dashboard["data"]["labpods.json"]
            .as_str()
            .context("no dashboard")?,
    )?;
    assert_eq!(json["uid"], "labpods");
    Ok(())
}

/// Bad values fail at install time, naming the field and what is wrong.
#[tokio::test]
async fn chart_schema_refuses_bad_values() -> Result<()> {
    let helm = Helm::offline()?;
    let chart = chart_dir();
    let cases = [
        ("replicas=0", "at '/replicas': minimum: got 0, want 1"),
        (
            "image.pullPolicy=Sometimes",
            "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        (
            "config.polling.idleInterval=soon",
            "at '/config/polling/idleInterval': 'soon' does not match pattern",
        ),
        ("replica=2", "additional properties 'replica' not allowed"),
        (
            "config.logging.format=xml",
            "at '/config/logging/format': value must be one of 'text', 'json'",
        ),
        (
            "service.phoneHome.nodePort=80",
            "at '/service/phoneHome/nodePort'",
        ),
        (
            "phoneHome.externalBaseUrl=ftp://lab",
            "at '/phoneHome/externalBaseUrl'",
        ),
        ("image.digest=latest", "at '/image/digest'"),
        (
            "history.retentionDays=0",
            "at '/history/retentionDays': minimum: got 0, want 1",
        ),
        // A wipe reports through phone-home: without its URL no wipe could count.
        (
            "config.provisioning.wipeImages.x86=http://images.lab/wipe.iso",
            "at '/phoneHome/externalBaseUrl'",
        ),
    ];
    for (set, message) in cases {
        let out = helm
            .run([
                "template".as_ref(),
                "labpods".as_ref(),
                chart.as_os_str(),
                "--set".as_ref(),
                set.as_ref(),
            ])
            .await?;
        ensure!(!out.success, "--set {set} was accepted");
        ensure!(
            out.stderr
                .contains("values don't meet the specifications of the schema")
                && out.stderr.contains(message),
            "--set {set}: expected {message:?} in\n{}",
            out.stderr
        );
    }
    Ok(())
}

/// values.yaml is documented field by field, the way a lab operator reads it before an install.
/// A field is what values.schema.json names: each one the schema describes key by key (image,
/// config.bmc, ...) is a block whose keys are fields in turn; every other one (a value, a
/// list, a free-form map such as podLabels) has a comment line directly above its key, which
/// also covers the list's items or the map's entries. Every field of the schema (but helm's
/// own `global`) is in values.yaml, so none is documented only in the schema, and every key of
/// values.yaml is in the schema.
#[test]
fn chart_values_are_documented_field_by_field() -> Result<()> {
    let values_path = chart_dir().join("values.yaml");
    let values = std::fs::read_to_string(&values_path)
        .with_context(|| format!("reading {}", values_path.display()))?;
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(
        chart_dir().join("values.schema.json"),
    )?)?;
    let lines: Vec<&str> = values.lines().collect();
    // The schema node of a dotted path, if the schema names it.
    let node = |path: &[&str]| -> Option<&Value> {
        path.iter()
            .try_fold(&schema, |n, key| n.get("properties")?.get(*key))
    };

    let mut undocumented = Vec::new();
    let mut unknown = Vec::new();
    let mut seen = BTreeSet::new();
    // The keys of the blocks enclosing the current line, with their indentation.
    let mut blocks: Vec<(usize, &str)> = Vec::new();
    // Lines indented deeper than this belong to the field above (list items, map entries).
    let mut inside_field: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if inside_field.is_some_and(|field| indent > field) {
            continue;
        }
        inside_field = None;
        let key = trimmed
            .split_once(':')
            .map(|(key, _)| key)
            .filter(|key| {
                key.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
            .with_context(|| format!("values.yaml:{}: not a key: {line:?}", i + 1))?;
        blocks.retain(|(block_indent, _)| *block_indent < indent);
        let mut path: Vec<&str> = blocks.iter().map(|(_, key)| *key).collect();
        path.push(key);
        let dotted = path.join(".");
        let Some(field) = node(&path) else {
            unknown.push(dotted);
            inside_field = Some(indent);
            continue;
        };
        if field.get("properties").is_some() {
            blocks.push((indent, key));
            continue;
        }
        let commented = i > 0 && lines[i - 1].trim_start().starts_with('#');
        if !commented {
            undocumented.push(format!("{dotted} (values.yaml:{})", i + 1));
        }
        seen.insert(dotted);
        inside_field = Some(indent);
    }

    // Every field the schema names, by the same rule.
    fn fields(node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (key, child) in properties {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                fields(child, &path, out);
            }
        } else {
            out.insert(prefix.to_string());
        }
    }
    let mut in_schema = BTreeSet::new();
    fields(&schema, "", &mut in_schema);
    in_schema.remove("global");
    let missing: Vec<&String> = in_schema.difference(&seen).collect();

    ensure!(
        undocumented.is_empty() && unknown.is_empty() && missing.is_empty(),
        "values.yaml: fields without a comment line directly above: {undocumented:?}; \
         keys values.schema.json does not name: {unknown:?}; \
         schema fields missing from values.yaml: {missing:?}"
    );
    ensure!(
        seen.len() > 50,
        "found only {} fields: {seen:?}",
        seen.len()
    );
    Ok(())
}

/// Every (group, resource, verb, namespace) the operator's ClusterRole and Role grant.
fn grants(objects: &[Value]) -> Result<BTreeSet<(String, String, String, String)>> {
    let mut out = BTreeSet::new();
    for (kind, scope) in [("ClusterRole", "*cluster*"), ("Role", NAMESPACE)] {
        let role = find(objects, kind, "labpods-operator")?;
        for rule in role["rules"].as_array().context("no rules")? {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        out.insert((group.clone(), resource.clone(), verb, scope.to_string()));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The operator's RBAC is exactly what `labpods run` checks at startup
/// (crates/labpods-operator/src/startup.rs `required_permissions`, written out here): the
/// startup check proves each is needed, the e2e below that they suffice.
#[tokio::test]
async fn chart_rbac_is_exactly_what_the_operator_checks_at_startup() -> Result<()> {
    let objects = Helm::offline()?
        .template(&chart_dir(), NAMESPACE, &[])
        .await?;
    let have = grants(&objects)?;
    let mut want = BTreeSet::new();
    let mut add = |group: &str, resource: &str, verbs: &[&str], scope: &str| {
        for verb in verbs {
            want.insert((group.into(), resource.into(), (*verb).into(), scope.into()));
        }
    };
    let cluster = "*cluster*";
    for resource in ["labhosts", "podrequests"] {
        add(
            "labpods.dev",
            resource,
            &["get", "list", "watch", "patch", "update"],
            cluster,
        );
    }
    add(
        "labpods.dev",
        "leases",
        &["get", "list", "watch", "create", "patch", "delete"],
        cluster,
    );
    for resource in ["labhosts/status", "podrequests/status", "leases/status"] {
        add("labpods.dev", resource, &["patch"], cluster);
    }
    add("events.k8s.io", "events", &["create", "patch"], cluster);
    // A booking's user data (get by name) and its access Secret (server-side apply).
    add("", "secrets", &["create", "get", "patch"], cluster);
    // Each booking's descriptor ConfigMap, by server-side apply: written, never read.
    add("", "configmaps", &["create", "patch"], cluster);
    add(
        "",
        "secrets",
        &["get", "list", "watch", "create"],
        NAMESPACE,
    );
    add(
        "",
        "configmaps",
        &["get", "list", "create", "update", "delete"],
        NAMESPACE,
    );
    add(
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
        NAMESPACE,
    );
    assert_eq!(have, want);
    assert!(
        have.iter()
            .all(|(g, r, v, _)| g != "*" && r != "*" && v != "*")
    );
    Ok(())
}

/// What the chart renders (every optional part but the prometheus-operator kinds, whose CRDs
/// this apiserver has not) is accepted by the real apiserver's server-side apply: schemas of
/// the Deployment, PDB, NetworkPolicy, the admission policies' CEL. A dry run: bound for
/// real, the cluster-wide policies would govern every other test on the shared apiserver
/// (the e2e below installs it for real on its own control plane).
#[tokio::test]
async fn chart_renders_are_accepted_by_server_side_apply() -> Result<()> {
    let cluster = TestCluster::get()?;
    let namespace = cluster.namespace("helm-apply").await?;
    let kubectl = cluster.kubectl()?;
    let helm = Helm::offline()?;
    let chart = chart_dir();
    for extra in [vec![], vec!["--values", &*full_values()]] {
        let mut extra: Vec<&str> = extra;
        // The full values render the Namespace: it is this test's (and exists).
        extra.push("--set");
        extra.push("namespace.create=false");
        let objects = helm.template(&chart, namespace.name(), &extra).await?;
        let mut yaml = String::new();
        for object in objects
            .iter()
            .filter(|o| o["kind"] != "ServiceMonitor" && o["kind"] != "PrometheusRule")
        {
            yaml.push_str("---\n");
            yaml.push_str(&serde_yaml::to_string(object)?);
        }
        let out = kubectl
            .run_with_input(
                [
                    "apply",
                    "--server-side",
                    "--dry-run=server",
                    "--force-conflicts",
                    "--field-manager",
                    "helm-test",
                    "-f",
                    "-",
                ],
                &yaml,
            )
            .await?
            .ok()?;
        for line in [
            "deployment.apps/labpods serverside-applied (server dry run)",
            "validatingadmissionpolicy.admissionregistration.k8s.io/leases.operator-writes.labpods.dev serverside-applied (server dry run)",
            "poddisruptionbudget.policy/labpods serverside-applied (server dry run)",
        ] {
            ensure!(out.contains(line), "{line:?} not in\n{out}");
        }
    }
    Ok(())
}

/// `kubectl auth can-i --as <operator>`: yes or no.
async fn can_i(kubectl: &Kubectl, args: &[&str]) -> Result<bool> {
    let mut all = vec![
        "auth",
        "can-i",
        "--as",
        "system:serviceaccount:labpods-system:labpods",
    ];
    all.extend_from_slice(args);
    let out = kubectl.run(&all).await?;
    match out.stdout.trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => bail!("kubectl {} said {other:?}: {}", all.join(" "), out.stderr),
    }
}

/// Installed as a lab operator installs it: `helm install` of the previous chart release
/// (the 0.1.0 package in tests/data/charts), the operator run with a TokenRequest token of
/// the chart's ServiceAccount (so the chart's RBAC is all it has) books a pod to Ready;
/// `kubectl auth can-i` shows it may do nothing beyond its kinds; the README's upgrade (CRDs
/// applied, then `helm upgrade` to this chart) keeps the running booking; `helm uninstall`
/// leaves the CRDs, the booking and its Lease.
#[tokio::test]
async fn e2e_chart_installed_by_helm_books_under_its_rbac_and_survives_upgrade() -> Result<()> {
    let mut e2e =
        E2e::start_with_chart("e2e-helm", &[HostGroup::new("small", 3)], &previous_chart()).await?;
    let helm = Helm::with_kubeconfig(e2e.kubeconfig())?;
    let kubectl = Kubectl::new(e2e.kubeconfig())?;
    let status = helm
        .run(["status", "labpods", "--namespace", NAMESPACE])
        .await?
        .ok()?;
    assert!(status.contains("STATUS: deployed"), "{status}");

    e2e.book("ci-pod", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    let hosts = e2e.check_ready("ci-pod", &[("node", 2)]).await?;

    // Not excessive: nothing but its kinds, Secrets elsewhere read by name only (at home
    // listed and watched too, for credential rotation), no wildcards.
    for (args, allowed) in [
        (vec!["get", "secrets", "-n", NAMESPACE], true),
        // A booking's user data, by name; never listed.
        (vec!["get", "secrets", "-n", "e2e-helm"], true),
        (vec!["list", "secrets", "--all-namespaces"], false),
        (vec!["watch", "secrets", "-n", "e2e-helm"], false),
        (vec!["list", "secrets", "-n", NAMESPACE], true),
        (vec!["delete", "secrets", "-n", NAMESPACE], false),
        (vec!["patch", "leases.labpods.dev", "-n", "e2e-helm"], true),
        (
            vec!["update", "leases.labpods.dev", "-n", "e2e-helm"],
            false,
        ),
        (
            vec!["patch", "labhosts.labpods.dev", "--subresource=status"],
            true,
        ),
        (vec!["delete", "labhosts.labpods.dev"], false),
        (
            vec!["create", "podrequests.labpods.dev", "-n", "e2e-helm"],
            false,
        ),
        (vec!["create", "pods", "-n", NAMESPACE], false),
        (vec!["get", "configmaps", "-n", "e2e-helm"], false),
        (vec!["patch", "configmaps", "-n", "e2e-helm"], true),
        (vec!["delete", "configmaps", "-n", NAMESPACE], true),
        (vec!["delete", "configmaps", "-n", "e2e-helm"], false),
        (
            vec!["update", "leases.coordination.k8s.io", "-n", NAMESPACE],
            true,
        ),
        (
            vec!["update", "leases.coordination.k8s.io", "-n", "kube-system"],
            false,
        ),
        (vec!["create", "clusterrolebindings"], false),
        (vec!["*", "*"], false),
    ] {
        assert_eq!(
            can_i(&kubectl, &args).await?,
            allowed,
            "can-i {}",
            args.join(" ")
        );
    }

    // The README's upgrade, the booking running: the CRDs first (helm never upgrades them),
    // then the chart.
    let leases: Api<Lease> = Api::namespaced(e2e.client(), "e2e-helm");
    let before = leases.get("ci-pod").await?;
    let crds = workspace_root().join("crds");
    kubectl
        .run([
            "apply".as_ref(),
            "--server-side".as_ref(),
            "-f".as_ref(),
            crds.as_os_str(),
        ])
        .await?
        .ok()?;
    let out = helm
        .run([
            "upgrade".as_ref(),
            "labpods".as_ref(),
            chart_dir().as_os_str(),
            "--namespace".as_ref(),
            NAMESPACE.as_ref(),
        ])
        .await?
        .ok()?;
    assert!(out.contains("REVISION: 2"), "{out}");
    let history = helm
        .run(["history", "labpods", "--namespace", NAMESPACE])
        .await?
        .ok()?;
    assert!(
        history.contains("labpods-0.1.0") && history.contains("labpods-0.2.0"),
        "{history}"
    );
    let after = leases.get("ci-pod").await?;
    assert_eq!(after.metadata.uid, before.metadata.uid);
    assert_eq!(after.spec.hosts, before.spec.hosts);
    assert_eq!(
        after.status.as_ref().and_then(|s| s.phase),
        Some(LeasePhase::Ready)
    );
    assert_eq!(e2e.assigned_hosts("ci-pod").await?, hosts);
    // 0.1.0 mounted a phone-home Secret of its own; 0.2.0 keys phone-home from the Lease
    // signing key. The old Secret is kept (its resource policy), unused.
    let volumes = kubectl
        .run([
            "get",
            "deployment",
            "labpods",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.template.spec.volumes[*].name}",
        ])
        .await?
        .ok()?;
    assert!(!volumes.contains("phone-home"), "{volumes}");
    kubectl
        .run(["get", "secret", "labpods-phone-home", "-n", NAMESPACE])
        .await?
        .ok()?;

    // helm uninstall: the CRDs and the lab's data stay.
    let out = helm
        .run(["uninstall", "labpods", "--namespace", NAMESPACE])
        .await?
        .ok()?;
    assert!(out.contains("release \"labpods\" uninstalled"), "{out}");
    let crds = kubectl.run(["get", "crd", "-o", "name"]).await?.ok()?;
    for crd in ["labhosts", "podrequests", "leases"] {
        assert!(crds.contains(&format!("{crd}.labpods.dev")), "{crds}");
    }
    assert!(leases.get_opt("ci-pod").await?.is_some());
    assert!(
        Api::<PodRequest>::namespaced(e2e.client(), "e2e-helm")
            .get_opt("ci-pod")
            .await?
            .is_some()
    );
    // The Lease signing key (the operator's, not the chart's) is kept, the RBAC is gone.
    let kept = kubectl
        .run([
            "get",
            "secret",
            "labpods-lease-signing",
            "-n",
            NAMESPACE,
            "-o",
            "name",
        ])
        .await?
        .ok()?;
    assert_eq!(kept.trim(), "secret/labpods-lease-signing");
    assert!(!can_i(&kubectl, &["list", "labhosts.labpods.dev"]).await?);
    e2e.shutdown().await?;
    Ok(())
}

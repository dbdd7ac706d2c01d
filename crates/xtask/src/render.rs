//! `cargo xtask render [--check]`: writes the kustomize base deploy/ (and its metrics
//! overlay) from the Helm chart charts/labpods, so the two never drift.
//!
//! deploy/<part>/<file> is `helm template --include-crds` of charts/labpods/templates/<part>/<file>
//! (deploy/crds/: of the chart's crds/) with the default values and one difference a
//! kustomize base needs: the Namespace is rendered (`namespace.create=true`: `kubectl apply
//! -k` creates no namespaces). deploy/overlays/metrics/ holds the chart's ServiceMonitor,
//! PrometheusRule and dashboard ConfigMap. `--check` fails when deploy/ differs from that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

const RELEASE: &str = "labpods";
const NAMESPACE: &str = "labpods-system";
/// The parts of the chart, each a directory of deploy/ and where its files come from in the
/// chart.
const PARTS: [(&str, &str); 4] = [
    ("crds", "crds/"),
    ("operator", "templates/operator/"),
    ("roles", "templates/roles/"),
    ("admission", "templates/admission/"),
];
const HEADER: &str =
    "# Generated from charts/labpods by `cargo xtask render`. Do not edit: change the chart.\n";

pub fn run(args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask render [--check]"),
    };
    let root = crate::workspace_root();
    let files = render(&root)?;
    let mut drift = Vec::new();
    for (path, content) in &files {
        let target = root.join(path);
        let current = std::fs::read_to_string(&target).unwrap_or_default();
        if current == *content {
            continue;
        }
        if check {
            drift.push(path.display().to_string());
        } else {
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&target, content)
                .with_context(|| format!("writing {}", target.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !drift.is_empty() {
        bail!(
            "deploy/ is not what charts/labpods renders: {}; run cargo xtask render",
            drift.join(", ")
        );
    }
    if check {
        println!("deploy/ matches charts/labpods");
    }
    Ok(())
}

/// helm, built by the control-plane script (a minute the first time, then cached).
fn helm(root: &Path) -> Result<PathBuf> {
    let output = Command::new("bash")
        .arg(root.join("tests/support/build-control-plane.sh"))
        .args(["newest", "helm"])
        .stderr(Stdio::inherit())
        .output()
        .context("running tests/support/build-control-plane.sh newest helm")?;
    if !output.status.success() {
        bail!("building helm failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout
        .lines()
        .last()
        .context("the build script printed no directory")?;
    Ok(PathBuf::from(dir.trim()).join("helm"))
}

fn template(root: &Path, helm: &Path, sets: &[&str]) -> Result<String> {
    let home = std::env::temp_dir().join(format!("labpods-render-{}", std::process::id()));
    let mut command = Command::new(helm);
    command
        .args(["template", RELEASE, "--include-crds"])
        .arg(root.join("charts/labpods"))
        .args(["--namespace", NAMESPACE])
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stderr(Stdio::inherit());
    for set in sets {
        command.args(["--set", set]);
    }
    let output = command.output().context("running helm template")?;
    let _ = std::fs::remove_dir_all(&home);
    if !output.status.success() {
        bail!("helm template failed ({})", output.status);
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// `# Source: labpods/<path>` -> the documents of that file of the chart.
fn by_source(yaml: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for document in yaml.split("\n---\n") {
        let document = document.trim_start_matches("---\n");
        let Some(source) = document
            .lines()
            .find_map(|l| l.strip_prefix("# Source: labpods/"))
        else {
            continue;
        };
        let body: String = document
            .lines()
            .filter(|l| !l.starts_with("# Source: "))
            .map(|l| format!("{l}\n"))
            .collect();
        out.entry(source.to_string()).or_default().push(body);
    }
    out
}

fn kustomization(comment: &str, resources: &[String]) -> String {
    let mut out = format!(
        "{HEADER}{comment}apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
    );
    for resource in resources {
        out.push_str(&format!("  - {resource}\n"));
    }
    out
}

/// Every generated file, by path from the workspace root.
fn render(root: &Path) -> Result<BTreeMap<PathBuf, String>> {
    let helm = helm(root)?;
    let base = by_source(&template(root, &helm, &["namespace.create=true"])?);
    let mut files = BTreeMap::new();
    for (part, from) in PARTS {
        let mut resources = Vec::new();
        for (source, documents) in &base {
            let Some(file) = source.strip_prefix(from) else {
                continue;
            };
            let joined = documents.join("---\n");
            files.insert(
                PathBuf::from(format!("deploy/{part}/{file}")),
                format!("{HEADER}{joined}"),
            );
            resources.push(file.to_string());
        }
        files.insert(
            PathBuf::from(format!("deploy/{part}/kustomization.yaml")),
            kustomization("", &resources),
        );
    }
    let metrics = by_source(&template(
        root,
        &helm,
        &[
            "serviceMonitor.enabled=true",
            "prometheusRule.enabled=true",
            "dashboard.enabled=true",
        ],
    )?);
    // The base's parts one by one: kustomize refuses `../..`, a root that contains this one.
    let mut resources: Vec<String> = PARTS.iter().map(|(p, _)| format!("../../{p}")).collect();
    for file in [
        "servicemonitor.yaml",
        "prometheusrule.yaml",
        "dashboard.yaml",
    ] {
        let documents = metrics
            .get(&format!("templates/operator/{file}"))
            .with_context(|| format!("the chart rendered no templates/operator/{file}"))?;
        files.insert(
            PathBuf::from(format!("deploy/overlays/metrics/{file}")),
            format!("{HEADER}{}", documents.join("---\n")),
        );
        resources.push(file.to_string());
    }
    files.insert(
        PathBuf::from("deploy/overlays/metrics/kustomization.yaml"),
        kustomization(
            "# The base plus a prometheus-operator ServiceMonitor and PrometheusRule (needs their CRDs,\n# e.g. kube-prometheus-stack) and the Grafana dashboard ConfigMap (for Grafana's sidecar).\n#\n#   kubectl apply -k deploy/overlays/metrics\n",
            &resources,
        ),
    );
    Ok(files)
}

//! `kubectl lab report` on a history of known content written to the shared cluster through
//! the operator's own history store: the figures in json and csv, and the html opened in
//! headless Chromium (Debian's; tests/support/chromium.sh installs it), which must lay out
//! every chart. The screenshot stays in target/kubectl-lab-report/ for a person to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use labpods_api::v1alpha1::{LABEL_LAB, LabHost, LabHostSpec, SecretReference};
use labpods_operator::history::shards;
use labpods_operator::history::{Allocation, ConfigMapStore, Ending};
use labpods_tests::{TestCluster, tenancy, workspace_root};

mod kubectl_lab_support;
use serde_json::Value;

fn chromium() -> Result<PathBuf> {
    let script = workspace_root().join("tests/support/chromium.sh");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .context("running chromium.sh")?;
    if !output.status.success() {
        bail!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// Headless Chromium on `page`: the DOM it built, and a screenshot at `png`.
fn render(browser: &Path, page: &Path, png: &Path) -> Result<String> {
    let profile = tempfile::tempdir()?;
    let common = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let mut shot = Command::new(browser);
    common(&mut shot);
    let out = shot
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()?;
    ensure!(
        png.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut dom = Command::new(browser);
    common(&mut dom);
    let out = dom
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()?;
    ensure!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lab_report_renders_known_history_as_figures_and_charts_in_chromium() -> Result<()>
{
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let ns = cluster.namespace("kubectl-lab-report").await?;
    // Two hosts of the reported lab and profile: the capacity the bookings are measured on.
    let mut _hosts = Vec::new();
    for h in 0..2 {
        let name = format!("{}-host-{h}", ns.name());
        let mut host = LabHost::new(
            &name,
            LabHostSpec::new(
                "http://127.0.0.1:9",
                "report-large",
                SecretReference::new("labpods-system", "bmc"),
            ),
        );
        host.metadata.labels = Some([(LABEL_LAB.to_string(), "report-lab".to_string())].into());
        Api::<LabHost>::all(client.clone())
            .create(&PostParams::default(), &host)
            .await?;
        _hosts.push(cluster.delete_on_drop(format!("labhost/{name}")));
    }
    let store = ConfigMapStore::new(client, ns.name());
    let now = Timestamp::now();
    let hour = SignedDuration::from_hours(1);
    // 12 bookings of 2 hosts over the last 12 days, each 6 h, waits 1..12 h.
    for i in 0..12i32 {
        let released = now - hour * (24 * (i + 1));
        let records: Vec<Allocation> = (0..2)
            .map(|h| Allocation {
                id: format!("b{i}/host-{h}"),
                host: format!("host-{h}"),
                profile: "report-large".into(),
                lab: "report-lab".into(),
                namespace: if i % 3 == 0 { "team-a" } else { "team-b" }.into(),
                request: format!("pod-{i}"),
                role: "node".into(),
                requested_start: Some(released - hour * (6 + i + 1)),
                start: released - hour * 6,
                end: released,
                released_at: released,
                ending: if i == 0 {
                    Ending::ReleasedEarly
                } else {
                    Ending::Expired
                },
                wait_seconds: 3_600 * (i as u64 + 1),
                provisioning_seconds: Some(600),
                extension_seconds: 0,
            })
            .collect();
        shards::append(&store, &records, released).await?;
    }
    let plugin = kubectl_lab_support::plugin()?;
    let lab = |args: &[&str]| -> Result<String> {
        let out = Command::new(&plugin)
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(args)
            .arg("--history-namespace")
            .arg(ns.name())
            .output()?;
        ensure!(
            out.status.success(),
            "kubectl lab {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let json: Value =
        serde_json::from_str(&lab(&["report", "--since", "30d", "--format", "json"])?)?;
    let group = json["groups"]
        .as_array()
        .context("groups")?
        .iter()
        .find(|g| g["profile"] == "report-large")
        .context("no report-large group")?;
    assert_eq!(group["hosts"], 2);
    assert_eq!(group["utilization"], 0.1, "144 host-hours of 2 x 720");
    assert_eq!(group["bookings"], 12);
    assert_eq!(group["allocations"], 24);
    assert_eq!(group["hostHoursBooked"], 144.0);
    assert_eq!(group["waitMeanHours"], 6.5);
    assert_eq!(group["waitP95Hours"], 12.0);
    assert_eq!(group["provisioningMeanMinutes"], 10.0);
    assert_eq!(json["topNamespaces"][0]["namespace"], "team-b");
    // `-o yaml` and `-o json`, as every command takes them: the same figures.
    let yaml: Value = serde_yaml::from_str(&lab(&["report", "--since", "30d", "-o", "yaml"])?)?;
    assert_eq!(yaml["groups"], json["groups"], "-o yaml");
    assert_eq!(yaml["total"], json["total"], "-o yaml");
    let o_json: Value = serde_json::from_str(&lab(&["report", "--since", "30d", "-o", "json"])?)?;
    assert_eq!(o_json["total"], json["total"], "-o json");
    let clash = Command::new(&plugin)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["report", "--format", "csv", "-o", "yaml"])
        .output()?;
    let stderr = String::from_utf8_lossy(&clash.stderr);
    assert_eq!(clash.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--format csv and -o yaml ask for two different outputs"),
        "{stderr}"
    );
    let csv = lab(&["report", "--since", "30d", "--format", "csv"])?;
    assert!(
        csv.lines().any(|l| l.starts_with(
            "report-lab,report-large,2,1440.00,144.00,0.1000,12,24,6.50,12.00,1.0000,10.0,0,0.00,0,0"
        )),
        "{csv}"
    );
    let week: Value =
        serde_json::from_str(&lab(&["report", "--since", "7d", "--format", "json"])?)?;
    let group = week["groups"]
        .as_array()
        .context("groups")?
        .iter()
        .find(|g| g["profile"] == "report-large")
        .context("no group")?;
    assert_eq!(
        group["bookings"], 6,
        "--since 7d keeps the last 6 days' bookings"
    );

    // The same history forecast: all 12 bookings in the last 12 of 90 days is growth.
    let forecast: Value =
        serde_json::from_str(&lab(&["forecast", "--since", "90d", "-o", "json"])?)?;
    let f = forecast
        .as_array()
        .context("forecast -o json is a list")?
        .iter()
        .find(|f| f["profile"] == "report-large")
        .context("no report-large forecast")?;
    assert_eq!(f["hosts"], 2);
    assert!(f["growthPerDay"].as_f64().is_some_and(|g| g > 0.0), "{f}");
    assert!(f["hostsNeeded"].as_u64().is_some_and(|n| n >= 1), "{f}");
    let table = lab(&["forecast", "--since", "90d", "--horizon", "30d"])?;
    assert!(table.starts_with("Forecast over 30d"), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("report-large")),
        "{table}"
    );

    let dir = workspace_root().join("target/kubectl-lab-report");
    std::fs::create_dir_all(&dir)?;
    let page = dir.join("report.html");
    std::fs::write(
        &page,
        lab(&["report", "--since", "30d", "--format", "html"])?,
    )?;
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>")?;
    let browser = chromium()?;
    let dom = render(&browser, &page, &dir.join("report.png"))?;
    render(&browser, &blank, &dir.join("blank.png"))?;
    for chart in ["utilization", "waits", "occupancy"] {
        assert!(
            dom.contains(&format!("id=\"{chart}\" class=\"chart\"")),
            "chart {chart} missing in Chromium's DOM"
        );
    }
    assert_eq!(
        dom.matches("class=\"cell\"").count(),
        7 * 24,
        "heat map cells"
    );
    assert!(
        dom.matches("class=\"bar\"").count() >= 12,
        "bars of the day and wait charts"
    );
    let report_png = std::fs::metadata(dir.join("report.png"))?.len();
    let blank_png = std::fs::metadata(dir.join("blank.png"))?.len();
    assert!(
        report_png > 5 * blank_png,
        "the screenshot shows something: {report_png} bytes vs {blank_png} for a blank page"
    );
    Ok(())
}

/// Who may read the reports: a lab owner with the shipped Role labpods-history-reader (in
/// the namespace of the history) and ClusterRole labpods-host-reader. Without either,
/// `report` and `forecast` say which role to ask for.
#[tokio::test]
async fn kubectl_lab_report_and_forecast_need_the_history_and_host_reader_roles_and_say_so()
-> Result<()> {
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let kubectl = cluster.kubectl()?;
    let ns = cluster.namespace("kubectl-lab-owner").await?;
    tenancy::install_roles(&kubectl).await?;
    let mut history_reader = tenancy::rendered(&kubectl, "roles")
        .await?
        .into_iter()
        .find(|o| o["kind"] == "Role" && o["metadata"]["name"] == "labpods-history-reader")
        .context("deploy/roles has no Role labpods-history-reader")?;
    history_reader["metadata"]["namespace"] = ns.name().into();
    tenancy::apply(&kubectl, &[history_reader]).await?;

    let token = tenancy::service_account_token(&client, ns.name(), "owner").await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("owner.kubeconfig");
    tenancy::write_token_kubeconfig(cluster.kubeconfig(), &token, &kubeconfig)?;
    let plugin = kubectl_lab_support::plugin()?;
    let owner = format!("system:serviceaccount:{}:owner", ns.name());
    let run = |command: &'static str| {
        let out = Command::new(&plugin)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([command, "--history-namespace", ns.name(), "-o", "json"])
            .output();
        async move {
            let out = out?;
            Ok::<_, anyhow::Error>((
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    };
    let refused_until_bound = |role: &'static str| async move {
        for command in ["report", "forecast"] {
            let (ok, stderr) = run(command).await?;
            ensure!(!ok, "{command} without {role} succeeded");
            ensure!(
                stderr.contains("forbidden") && stderr.contains(role),
                "{command} without {role} does not name it: {stderr}"
            );
        }
        Ok::<_, anyhow::Error>(())
    };

    refused_until_bound("labpods-host-reader").await?;
    let hosts_binding = format!("{}-hosts", ns.name());
    kubectl
        .run([
            "create",
            "clusterrolebinding",
            &hosts_binding,
            "--clusterrole=labpods-host-reader",
            &format!("--serviceaccount={}:owner", ns.name()),
        ])
        .await?
        .ok()?;
    let _hosts_binding = cluster.delete_on_drop(format!("clusterrolebinding/{hosts_binding}"));
    // RBAC takes effect within moments, not at once.
    let mut bound = false;
    for _ in 0..60 {
        let (_, stderr) = run("report").await?;
        if stderr.contains("labpods-history-reader") {
            bound = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    ensure!(bound, "the host reader binding never took effect");
    refused_until_bound("labpods-history-reader").await?;
    kubectl
        .run([
            "create",
            "rolebinding",
            "owner-history",
            "-n",
            ns.name(),
            "--role=labpods-history-reader",
            &format!("--serviceaccount={}:owner", ns.name()),
        ])
        .await?
        .ok()?;
    for command in ["report", "forecast"] {
        let mut last = String::new();
        for _ in 0..60 {
            let (ok, stderr) = run(command).await?;
            if ok {
                last.clear();
                break;
            }
            ensure!(
                stderr.contains("forbidden"),
                "{command} as {owner}: {stderr}"
            );
            last = stderr;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        ensure!(
            last.is_empty(),
            "{command} as {owner} still refused: {last}"
        );
    }
    Ok(())
}

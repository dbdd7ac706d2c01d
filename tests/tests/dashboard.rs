//! The Grafana dashboard (charts/labpods/files/dashboard.json) and the alerts ask only for
//! series the operator exports: a lab installed with the chart, a booking Ready (its wait and
//! provisioning timed), one waiting, and a BMC failing; then `labpods run` with the chart's
//! own configuration file (ConfigMap labpods-config) leading, and every query checked against
//! a scrape of its /metrics: each series name exported, each label it groups or filters by
//! carried.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use labpods_tests::e2e::E2e;
use labpods_tests::helm::{Helm, NAMESPACE, chart_dir, find};
use labpods_tests::operator::{metric_total, operator_binary};
use labpods_tests::sim::HostGroup;
use labpods_tests::tenancy;
use serde_json::Value;

/// Kills the process on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scrape(port: u16) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no HTTP body")?;
    ensure!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    Ok(body.to_string())
}

/// Series names a query may use (samples, and the names a declared family's samples take),
/// and the label names seen per series name.
fn exported(exposition: &str) -> (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    let mut names = BTreeSet::new();
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in suffixes {
                names.insert(format!("{name}{suffix}"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            names.insert(name.to_string());
            if let Some(set) = line[name_end..]
                .strip_prefix('{')
                .and_then(|l| l.split_once('}'))
            {
                for pair in set.0.split(',') {
                    if let Some((label, _)) = pair.split_once('=') {
                        labels
                            .entry(name.to_string())
                            .or_default()
                            .insert(label.to_string());
                    }
                }
            }
        }
    }
    (names, labels)
}

/// The labpods_* series names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("labpods_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The label names of every `by (...)` and `{label=...}` in an expression.
fn label_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (open, close) in [("by (", ")"), ("{", "}")] {
        let mut rest = expr;
        while let Some(at) = rest.find(open) {
            let tail = &rest[at + open.len()..];
            let end = tail.find(close).unwrap_or(tail.len());
            for part in tail[..end].split(',') {
                let label = part
                    .split(['=', '!', '~'])
                    .next()
                    .unwrap_or_default()
                    .trim();
                if !label.is_empty() && !label.starts_with('$') {
                    out.push(label.to_string());
                }
            }
            rest = &tail[end..];
        }
    }
    out
}

#[tokio::test]
async fn e2e_dashboard_and_alerts_query_only_series_the_operator_exports() -> Result<()> {
    let mut e2e =
        E2e::start_with_chart("e2e-dashboard", &[HostGroup::new("small", 2)], &chart_dir()).await?;
    e2e.book("ci-pod", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    e2e.check_ready("ci-pod", &[("node", 1)]).await?;
    // The operator that bound it and saw it Ready timed both, once.
    let booked_by = e2e.operator("a")?.scrape_metrics().await?;
    for timed in [
        "labpods_booking_wait_seconds_count",
        "labpods_provisioning_duration_seconds_count",
    ] {
        assert_eq!(
            metric_total(&booked_by, timed),
            1.0,
            "{timed}:\n{booked_by}"
        );
    }
    // Both hosts for an hour: it waits for ci-pod's (the waiting series appear).
    e2e.book("waiting-pod", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    // The free host's BMC answers 500 to everything: the error series appear (a family
    // without samples is not in the exposition at all).
    let booked = e2e.assigned_hosts("ci-pod").await?;
    let broken = e2e
        .host_names()
        .into_iter()
        .find(|h| !booked.contains(h))
        .context("no free host")?;
    e2e.sim()?.bmc(&broken)?.set_error_rate(1.0);
    // Hand the lab to an operator run with the chart's own configuration file.
    e2e.operator("a")?.kill()?;
    let dir = tempfile::tempdir()?;
    let objects = Helm::offline()?
        .template(&chart_dir(), NAMESPACE, &[])
        .await?;
    let config = find(&objects, "ConfigMap", "labpods-config")?["data"]["config.yaml"]
        .as_str()
        .context("no config.yaml")?
        .to_string();
    let config_file = dir.path().join("config.yaml");
    std::fs::write(&config_file, config)?;
    let secret_file = dir.path().join("phone-home-secret");
    std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef")?;
    let client = e2e.client();
    let token = tenancy::service_account_token(
        &client,
        tenancy::OPERATOR_NAMESPACE,
        tenancy::OPERATOR_SERVICE_ACCOUNT,
    )
    .await?;
    let kubeconfig = dir.path().join("kubeconfig");
    tenancy::write_token_kubeconfig(e2e.kubeconfig(), &token, &kubeconfig)?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(dir.path().join("operator.log"))?;
    let child = Command::new(operator_binary()?)
        .args(["run", "--config"])
        .arg(&config_file)
        .args(["--metrics-address", &format!("127.0.0.1:{port}")])
        .args([
            "--phone-home-address",
            "127.0.0.1:0",
            "--identity",
            "dashboard",
        ])
        .arg("--phone-home-secret-file")
        .arg(&secret_file)
        .env("KUBECONFIG", &kubeconfig)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let _operator = Running(child);

    // Leading, with the counts, Redfish calls and errors of its own in the exposition.
    let ready = e2e
        .wait(
            "the chart-configured operator to lead and poll",
            Duration::from_secs(90),
            || {
                let text = scrape(port).unwrap_or_default();
                let done = [
                    "\nlabpods_leader 1",
                    "\nlabpods_hosts{state=\"Provisioned\",profile=\"small\"} 1",
                    "\nlabpods_leases{",
                    "\nlabpods_leases_oldest_since_timestamp_seconds{phase=\"Ready\"}",
                    "\nlabpods_podrequests{",
                    "\nlabpods_podrequests_oldest_since_timestamp_seconds{phase=\"Pending\"}",
                    "\nlabpods_redfish_request_duration_seconds_count{",
                    "\nlabpods_reconcile_errors_total{",
                    "\nlabpods_reconcile_duration_seconds_count{",
                ]
                .iter()
                .all(|series| text.contains(series));
                async move { Ok(done.then_some(text)) }
            },
        )
        .await;
    let exposition = match ready {
        Ok(text) => text,
        Err(e) => {
            let log = std::fs::read_to_string(dir.path().join("operator.log")).unwrap_or_default();
            let last = scrape(port).unwrap_or_default();
            bail!("{e:#}\nlast scrape:\n{last}\noperator log:\n{log}");
        }
    };
    let (names, labels) = exported(&exposition);

    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
        chart_dir().join("files/dashboard.json"),
    )?)?;
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().context("no panels")? {
        for target in panel["targets"]
            .as_array()
            .context("a panel without targets")?
        {
            let expr = target["expr"].as_str().context("a target without expr")?;
            queries.push((format!("panel {:?}", panel["title"]), expr.to_string()));
        }
    }
    let rules: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(
        chart_dir().join("files/alerts.yaml"),
    )?)?;
    for rule in rules["groups"][0]["rules"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        let expr = rule["expr"].as_str().context("a rule without expr")?;
        queries.push((format!("alert {:?}", rule["alert"]), expr.to_string()));
    }
    assert!(queries.len() >= 17, "{queries:?}");
    for (what, expr) in &queries {
        let used = metric_names(expr);
        assert!(!used.is_empty(), "{what} queries no labpods series: {expr}");
        for name in &used {
            assert!(
                names.contains(name),
                "{what} queries {name}, which the operator does not export: {expr}\nexported: {names:?}"
            );
        }
        // Labels: `le` is the histogram's, `pod` Prometheus' target label.
        let known: BTreeSet<&String> = used
            .iter()
            .filter_map(|n| labels.get(n))
            .flatten()
            .collect();
        if known.is_empty() {
            continue; // declared (# TYPE) without samples: its name is checked
        }
        for label in label_names(expr) {
            if label == "le" || label == "pod" {
                continue;
            }
            assert!(
                known.contains(&label),
                "{what} uses label {label} that {used:?} do not carry: {expr}"
            );
        }
    }
    e2e.shutdown().await?;
    Ok(())
}

//! A user's whole session through `kubectl lab` with the operator running and a simulated
//! lab: book --wait, status, hosts, extend, calendar, release --wait. The plugin runs through
//! its library with the exact arguments a user types (the e2e harness hands out a client,
//! not a kubeconfig); the binary's own flag handling is tested in kubectl_lab.rs.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::{Api, api::DeleteParams};
use labpods_api::v1alpha1::PodRequest;
use labpods_tests::e2e::E2e;
use labpods_tests::sim::HostGroup;

const LAB: &str = "e2e-kubectl-lab";

/// Runs `kubectl lab ARGS` and returns what it printed, or fails with it.
async fn lab(e2e: &E2e, args: &[&str]) -> Result<String> {
    let mut out = Vec::new();
    let result = kubectl_lab::run_with_client(e2e.client(), args.iter().copied(), &mut out).await;
    let printed = String::from_utf8_lossy(&out).into_owned();
    // Shown with a failure's output: the whole session as the user saw it.
    println!("$ kubectl lab {}\n{printed}", args.join(" "));
    match result {
        Ok(()) => Ok(printed),
        Err(e) => bail!(
            "kubectl lab {} failed: {e}\nprinted:\n{printed}",
            args.join(" ")
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_kubectl_lab_session() -> Result<()> {
    let mut e2e = E2e::start(
        LAB,
        &[HostGroup::new("small", 1), HostGroup::new("large", 2)],
    )
    .await?;
    let ns = e2e.namespace().to_string();
    let image = e2e.image().to_string();

    let booked = lab(
        &e2e,
        &[
            "book",
            "pod",
            "-n",
            &ns,
            "--role",
            "jumphost=1",
            "--role",
            "node=2",
            "--lab",
            LAB,
            "--image",
            &image,
            "--for",
            "1h",
            "--wait",
            "--timeout",
            "3m",
        ],
    )
    .await;
    let booked = match booked {
        Ok(text) => text,
        Err(e) => bail!("{e:#}\n{}", e2e.diagnostics().await),
    };
    assert!(
        booked.starts_with(&format!(
            "podrequest {ns}/pod created: 1 jumphost + 2 node for 1h"
        )),
        "{booked}"
    );
    let hosts = e2e.assigned_hosts("pod").await?;
    assert_eq!(hosts.len(), 3);
    for host in &hosts {
        // Each host's bar was shown moving, then full.
        assert!(
            booked
                .lines()
                .any(|l| l.contains(host.as_str()) && l.contains("] ") && !l.contains("9/9")),
            "no progress shown for {host} before Ready:\n{booked}"
        );
        assert!(
            booked
                .lines()
                .any(|l| l.contains(host.as_str()) && l.contains("[##################] 9/9 Ready")),
            "{host} never shown Ready:\n{booked}"
        );
    }
    assert!(booked.contains("pod is Ready: 3 hosts until "), "{booked}");
    // Then each host by role and hostname. This lab serves no phone-home, so no host has
    // reported an address: no ssh line is offered, and the output says why.
    let ready = booked
        .split_once("pod is Ready: ")
        .map(|(_, rest)| rest)
        .context("no Ready")?;
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("ROLE ") && l.contains("HOSTNAME") && l.contains("ADDRESS")),
        "{ready}"
    );
    for (role, hostname) in [
        ("jumphost", "jumphost-1"),
        ("node", "node-1"),
        ("node", "node-2"),
    ] {
        let line = ready
            .lines()
            .find(|l| l.starts_with(&format!("{role} ")) && l.contains(&format!(" {hostname} ")))
            .with_context(|| format!("no line for {hostname}:\n{ready}"))?;
        assert!(
            hosts.iter().any(|h| line.contains(h.as_str())),
            "{hostname} names its LabHost: {line}"
        );
        assert!(line.ends_with("not reported yet"), "{line}");
    }
    assert!(
        ready.contains("The hosts have not reported their addresses and host keys yet"),
        "{ready}"
    );
    assert!(!ready.contains("kubectl lab ssh pod node-1"), "{ready}");
    assert!(
        booked.contains("kubectl lab release pod"),
        "says how to finish:\n{booked}"
    );

    let status = lab(&e2e, &["status", "pod", "-n", &ns]).await?;
    assert!(
        status.starts_with(&format!("PodRequest {ns}/pod: Ready")),
        "{status}"
    );
    for host in &hosts {
        let line = status
            .lines()
            .find(|l| l.starts_with(host.as_str()))
            .with_context(|| format!("{host} missing:\n{status}"))?;
        assert!(line.contains("Provisioned"), "{line}");
    }
    assert!(
        status.contains("CONDITION") && status.contains("Ready"),
        "{status}"
    );
    assert!(
        !status.contains("Queue:"),
        "a Ready pod is in no queue:\n{status}"
    );

    let table = lab(&e2e, &["hosts", "--lab", LAB]).await?;
    for host in &hosts {
        let line = table
            .lines()
            .find(|l| l.starts_with(host.as_str()))
            .with_context(|| format!("{host} missing:\n{table}"))?;
        assert!(
            line.contains(&format!("{ns}/pod")),
            "held by the booking: {line}"
        );
    }

    let before = e2e.lease("pod").await?.context("no Lease")?.spec.end.0;
    let extended = lab(&e2e, &["extend", "pod", "-n", &ns, "--by", "1h"]).await?;
    assert!(extended.starts_with("pod extended: ends "), "{extended}");
    let after = e2e.lease("pod").await?.context("no Lease")?.spec.end.0;
    assert_eq!(
        after.duration_since(before).as_secs(),
        3_600,
        "the Lease ends an hour later"
    );

    // Every host is held: a second booking waits, and status says when it would start (the
    // operator's estimate: once pod's Lease ends and its hosts are back).
    lab(
        &e2e,
        &[
            "book", "next", "-n", &ns, "--role", "node=1", "--lab", LAB, "--image", &image,
            "--for", "1h",
        ],
    )
    .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let queued = loop {
        let status = lab(&e2e, &["status", "next", "-n", &ns]).await?;
        if status.contains("estimated start ") || tokio::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let line = queued
        .lines()
        .find(|l| l.starts_with("Queue: "))
        .with_context(|| format!("a waiting request shows its place:\n{queued}"))?;
    assert!(
        line.starts_with(
            "Queue: position 1 of 1 waiting (first come, first served); estimated start "
        ),
        "{line}"
    );
    let estimate = e2e
        .podrequest("next")
        .await?
        .and_then(|p| p.status)
        .and_then(|s| s.estimated_start)
        .context("no status.estimatedStart")?
        .0;
    assert!(
        estimate.as_second() >= after.as_second() - 60
            && estimate.as_second() <= after.as_second() + 3_600,
        "estimated {estimate}, pod's Lease ends {after}"
    );
    Api::<PodRequest>::namespaced(e2e.client(), &ns)
        .delete("next", &DeleteParams::default())
        .await?;

    let calendar = lab(&e2e, &["calendar", "--lab", LAB, "--days", "2"]).await?;
    assert!(
        calendar.contains(&format!("A  {ns}/pod  Ready  ")),
        "{calendar}"
    );
    assert!(calendar.contains("3 hosts"), "{calendar}");

    let released = lab(
        &e2e,
        &["release", "pod", "-n", &ns, "--wait", "--timeout", "3m"],
    )
    .await?;
    assert!(
        released.starts_with("pod released: its 3 hosts are powered off"),
        "{released}"
    );
    assert!(
        released.contains("every host of pod is back in the pool"),
        "{released}"
    );
    e2e.wait_hosts_free(&hosts, Duration::from_secs(90)).await?;

    // The history (in the operator's namespace, the test's here) is written in the
    // background: the report shows the booking once the writer has flushed.
    let history = [
        "report",
        "--since",
        "1d",
        "--history-namespace",
        ns.as_str(),
        "-o",
        "json",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let report = loop {
        let json: serde_json::Value = serde_json::from_str(&lab(&e2e, &history).await?)?;
        if json["total"]["allocations"] == 3 {
            break json;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the booking never reached the history:\n{json:#}\n{}",
                e2e.diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let total = &report["total"];
    assert_eq!(total["bookings"], 1, "{report:#}");
    assert_eq!(total["provisioningSuccess"], 1.0, "{report:#}");
    assert!(
        total["provisioningMeanMinutes"]
            .as_f64()
            .is_some_and(|m| m > 0.0),
        "{report:#}"
    );
    // The booking's hosts span both profiles; the lab extended it once, by 1 h.
    assert_eq!(total["extended"], 1, "{report:#}");
    assert_eq!(
        total["extensionHours"], 1.0,
        "the 1 h extension, once for the lab: {report:#}"
    );
    let table = lab(
        &e2e,
        &["report", "--since", "1d", "--history-namespace", &ns],
    )
    .await?;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(LAB) && l.contains("large")),
        "{table}"
    );
    let table = lab(&e2e, &["hosts", "--lab", LAB]).await?;
    assert!(
        !table.contains(&format!("{ns}/pod")),
        "nobody holds the hosts:\n{table}"
    );
    e2e.shutdown().await?;
    Ok(())
}

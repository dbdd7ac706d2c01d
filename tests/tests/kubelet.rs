//! The chart's Deployment run for real on a node of this machine (containerd, runc and a
//! kubelet; see labpods_tests::kubelet for what the machine lacks and how that is worked
//! around): its replicas start from the image `cargo xtask image` builds, pass their probes
//! with the chart's security settings in force, elect a leader, and that leader books hosts
//! of a simulated lab to Ready.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use labpods_tests::Kubectl;
use labpods_tests::e2e::E2e;
use labpods_tests::kubelet::NODE_NAME;
use labpods_tests::sim::HostGroup;
use labpods_tests::tenancy::OPERATOR_NAMESPACE;

/// From `helm install` to both replicas Ready: image pulls from loopback, two sandboxes, the
/// startup probe every 2 s (about 15 s here).
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn e2e_chart_deployment_runs_under_a_real_kubelet_and_books() -> Result<()> {
    // Polls of the hardware every second while a booking provisions, as the other e2e
    // tests' operators do (the chart's default is 5 s).
    let mut e2e = E2e::start_in_pods(
        "e2e-kubelet",
        &[HostGroup::new("small", 2)],
        &["config.polling.busyInterval=1s"],
    )
    .await?;

    // The Deployment rolls out: both replicas available, on the node, Ready.
    let deployments: Api<Deployment> = Api::namespaced(e2e.client(), OPERATOR_NAMESPACE);
    e2e.wait(
        "Deployment labpods to have 2 available replicas",
        ROLLOUT_TIMEOUT,
        || {
            let deployments = deployments.clone();
            async move {
                let status = deployments.get("labpods").await?.status.unwrap_or_default();
                Ok(
                    (status.available_replicas == Some(2) && status.ready_replicas == Some(2))
                        .then_some(()),
                )
            }
        },
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(e2e.client(), OPERATOR_NAMESPACE);
    let list = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
        .await?;
    ensure!(list.items.len() == 2, "{} operator pods", list.items.len());
    let mut names = Vec::new();
    for pod in &list.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref().context("a pod without spec")?;
        assert_eq!(spec.node_name.as_deref(), Some(NODE_NAME));
        let status = pod.status.as_ref().context("a pod without status")?;
        assert_eq!(status.phase.as_deref(), Some("Running"), "{name}");
        let container = status
            .container_statuses
            .as_ref()
            .and_then(|c| c.first())
            .context("no container status")?;
        assert!(container.ready, "{name} is not Ready");
        assert_eq!(container.restart_count, 0, "{name} restarted");
        assert!(
            container.image.contains("@sha256:") || container.image_id.contains("sha256:"),
            "{name} runs {} ({})",
            container.image,
            container.image_id
        );
        let id = container
            .container_id
            .as_deref()
            .and_then(|id| id.strip_prefix("containerd://"))
            .context("no containerd container id")?
            .to_string();

        // What the chart's securityContext asks, as the kernel applies it to the operator's
        // process: uid and gid 65532, no capabilities at all, no new privileges, seccomp
        // filtering, and a read-only root filesystem.
        let pids = e2e.node()?.container_pids(&id)?;
        ensure!(!pids.is_empty(), "no process in {name}'s container");
        let process = std::fs::read_to_string(format!("/proc/{}/status", pids[0]))?;
        let field = |key: &str| -> String {
            process
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        assert_eq!(field("Uid:"), "65532 65532 65532 65532", "{name}");
        assert_eq!(field("Gid:"), "65532 65532 65532 65532", "{name}");
        for caps in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(field(caps), "0000000000000000", "{name} {caps}");
        }
        assert_eq!(field("NoNewPrivs:"), "1", "{name}");
        assert_eq!(field("Seccomp:"), "2", "{name}");
        let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", pids[0]))?;
        let root = mounts
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("/"))
            .context("no root mount")?;
        let options = root.split_whitespace().nth(5).unwrap_or_default();
        assert!(
            options.split(',').any(|o| o == "ro"),
            "{name}'s root is mounted {options}"
        );
        names.push(name);
    }

    // The README's commands, verbatim: both pods listed Running, and the operator's log
    // (through the kubelet: the apiserver as a client of the CA the kubelet trusts).
    let kubectl = Kubectl::new(e2e.kubeconfig())?;
    let listed = kubectl
        .run(["get", "pods", "-n", "labpods-system"])
        .await?
        .ok()?;
    for name in &names {
        let line = listed
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name.as_str()))
            .with_context(|| format!("kubectl get pods does not list {name}:\n{listed}"))?;
        let columns: Vec<&str> = line.split_whitespace().collect();
        ensure!(
            columns.get(1..3) == Some(&["1/1", "Running"][..]),
            "kubectl get pods lists {name} as {line:?}:\n{listed}"
        );
    }
    let log = kubectl
        .run(["logs", "-n", "labpods-system", "deploy/labpods"])
        .await?
        .ok()?;
    ensure!(
        log.contains("labpods operator starting"),
        "kubectl logs deploy/labpods printed no start of the operator:\n{log}"
    );

    // One of them leads, under its pod's name (the identity is `<POD_NAME>_<random>`).
    let leader = e2e.wait_leader(None, Duration::from_secs(60)).await?;
    assert!(
        names
            .iter()
            .any(|name| leader.starts_with(&format!("{name}_"))),
        "{leader} leads, not one of {names:?}"
    );

    // And books: the hosts provisioned by the operator in the pod, over the pod network.
    e2e.book("ci-pod", vec![e2e.role("node", 2, None)], "1h")
        .await?;
    e2e.check_ready("ci-pod", &[("node", 2)]).await?;
    e2e.shutdown().await?;
    Ok(())
}

//! The allocation history's ConfigMap store on the real apiserver: segments written by the
//! operator's writer, merged and compacted by its housekeeping, read back each record once;
//! and a booking's record written by an operator restarted while it ran.
//! (Bound and rollover at 10,000 hosts x 400 days: `cargo xtask bench history`.)

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{ListParams, PostParams};
use labpods_api::v1alpha1::PodRequestPhase;
use labpods_operator::history::shards::{self, Settings};
use labpods_operator::history::store::KIND_LABEL;
use labpods_operator::history::{self, Allocation, ConfigMapStore, Queue, SETTINGS_CONFIGMAP};
use labpods_tests::TestCluster;
use labpods_tests::e2e::E2e;
use labpods_tests::helm::{Helm, NAMESPACE, chart_dir, find};
use labpods_tests::sim::HostGroup;

fn record(booking: &str, host: &str, released: Timestamp) -> Allocation {
    Allocation::sample(booking, host, released)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lab_history_configmaps_merge_compact_and_read_back_once() -> Result<()> {
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let ns = cluster.namespace("kubectl-lab-history").await?;
    let store = ConfigMapStore::new(client.clone(), ns.name());
    let queue = Queue::default();
    let day0: Timestamp = "2026-03-01T10:00:00Z".parse()?;
    let hour = SignedDuration::from_hours(1);
    for d in 0..3 {
        for s in 0..3 {
            let t = day0 + hour * (24 * d + s);
            queue.push(
                (0..20)
                    .map(|i| record(&format!("b{d}{s}"), &format!("h{i:02}"), t))
                    .collect(),
            );
            assert!(queue.flush(&store, t).await?);
        }
    }
    // Offered twice (a restarted operator): stored again, read once.
    queue.push(vec![record("b00", "h00", day0)]);
    queue.flush(&store, day0 + hour * 2).await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    let count = || async {
        let list = configmaps
            .list(&ListParams::default().labels(KIND_LABEL))
            .await?;
        anyhow::Ok(list.items.len())
    };
    assert_eq!(count().await?, 10, "one segment per flush");

    let settings = Settings {
        shard_bytes: 900 * 1024,
        retention_days: 1,
        usage_retention_days: 30,
    };
    let now: Timestamp = "2026-03-03T20:00:00Z".parse()?;
    let done = shards::housekeeping(&store, &settings, now).await?;
    assert_eq!((done.merged_days, done.compacted_days), (1, 1), "{done:?}");
    let names: Vec<String> = configmaps
        .list(&ListParams::default().labels(KIND_LABEL))
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(
        names.contains(&"labpods-history-usage-2026-03-01-00".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"labpods-history-raw-2026-03-02-00".to_string()),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("labpods-history-raw-2026-03-03-h")),
        "today's segments merged hourly: {names:?}"
    );
    assert_eq!(names.len(), 3, "{names:?}");

    let read = shards::read(&store, "2026-03-01T00:00:00Z".parse()?, now).await?;
    assert_eq!(
        read.allocations.len(),
        2 * 60,
        "days 2 and 3, each record once"
    );
    assert_eq!(
        read.usage.iter().map(|u| u.allocations).sum::<u64>(),
        60,
        "day 1 compacted"
    );
    assert_eq!(read.usage.iter().map(|u| u.bookings).sum::<u64>(), 3);
    Ok(())
}

/// The chart's `history` values are what the operator's housekeeping keeps: the ConfigMap
/// `helm template --set history.retentionDays=2` renders, in the history's namespace, makes
/// `history::housekeep` (the operator's pass) compact every day older than two and keep the
/// rest raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_history_retention_is_what_the_operators_housekeeping_keeps() -> Result<()> {
    let cluster = TestCluster::get()?;
    let client = cluster.client().await?;
    let ns = cluster.namespace("history-retention").await?;
    let objects = Helm::offline()?
        .template(
            &chart_dir(),
            NAMESPACE,
            &["--set", "history.retentionDays=2"],
        )
        .await?;
    let mut settings: ConfigMap =
        serde_json::from_value(find(&objects, "ConfigMap", SETTINGS_CONFIGMAP)?.clone())?;
    settings.metadata.namespace = Some(ns.name().to_string());
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    configmaps.create(&PostParams::default(), &settings).await?;

    let store = ConfigMapStore::new(client.clone(), ns.name());
    let queue = Queue::default();
    let day0: Timestamp = "2026-05-01T10:00:00Z".parse()?;
    let days = 5;
    for d in 0..days {
        let t = day0 + SignedDuration::from_hours(24 * d);
        queue.push(vec![record(&format!("b{d}"), "h00", t)]);
        queue.flush(&store, t).await?;
    }
    let now = day0 + SignedDuration::from_hours(24 * (days - 1) + 2);
    let done = history::housekeep(&client, ns.name(), now).await?;
    // Days 0 and 1 end more than two days before today (day 4): compacted; 2 to 4 stay raw.
    assert_eq!(done.compacted_days, 2, "{done:?}");
    let read = shards::read(&store, day0 - SignedDuration::from_hours(24), now).await?;
    assert_eq!(read.allocations.len(), 3, "{read:?}");
    assert_eq!(read.usage.iter().map(|u| u.allocations).sum::<u64>(), 2);
    Ok(())
}

/// A booking Ready before the operator restarts and released after: its record, written by
/// the new replica, which never saw it become Ready, still has its provisioning time (read
/// from the Lease's status.readyAt, not from the old replica's memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_history_keeps_the_provisioning_time_across_an_operator_restart() -> Result<()> {
    let mut e2e = E2e::start("e2e-history-restart", &[HostGroup::new("small", 1)]).await?;
    e2e.book("pod", vec![e2e.role("node", 1, None)], "1h")
        .await?;
    e2e.wait_phase("pod", PodRequestPhase::Ready, Duration::from_secs(180))
        .await?;
    let lease = e2e.lease("pod").await?.context("no Lease")?;
    let ready_at = lease
        .status
        .and_then(|s| s.ready_at)
        .context("a Ready Lease without status.readyAt")?
        .0;
    let provisioning = u64::try_from(ready_at.duration_since(lease.spec.start.0).as_secs())?;

    e2e.operator("a")?.stop();
    e2e.start_operator("b")?;
    e2e.release("pod").await?;

    let store = ConfigMapStore::new(e2e.client(), e2e.operator_namespace());
    let day = SignedDuration::from_hours(24);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let records = loop {
        let now = Timestamp::now();
        let read = shards::read(&store, now - day, now + day).await?;
        if !read.allocations.is_empty() {
            break read.allocations;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the booking never reached the history\n{}",
                e2e.diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].request, "pod");
    assert_eq!(
        records[0].provisioning_seconds,
        Some(provisioning),
        "from the start to status.readyAt: {records:?}"
    );
    e2e.shutdown().await?;
    Ok(())
}

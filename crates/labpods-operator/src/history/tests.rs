use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use labpods_api::v1alpha1::{
    HostProgress, ImageSpec, LabHostSpec, LeaseSpec, PodRequestSpec, ReplacedHost, RequestRef,
    RoleSpec, SecretReference,
};

use super::shards::{Settings, dedupe, housekeeping, read};
use super::store::{ShardKind, ShardStore};
use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn host(h: &str, r: &str) -> LeaseHost {
    LeaseHost {
        host: h.into(),
        role: r.into(),
        hostname: None,
    }
}

fn fixtures() -> (Lease, PodRequest, Vec<LabHost>) {
    let mut lease = Lease::new(
        "pod",
        LeaseSpec::new(
            RequestRef {
                name: "pod".into(),
                uid: "u1".into(),
            },
            [host("h1", "jumphost"), host("h2", "node")],
            Time(at("2026-11-24T10:00:00Z")),
            Time(at("2026-11-24T14:00:00Z")),
            ImageSpec::new("http://i.test/a.iso"),
        ),
    );
    lease.metadata.namespace = Some("team".into());
    lease.metadata.uid = Some("lease-uid".into());
    lease.metadata.annotations = Some(BTreeMap::from([(
        ORIGINAL_END.to_owned(),
        "2026-11-24T12:00:00Z".to_owned(),
    )]));
    let labhost = |name: &str, profile: &str| {
        let mut h = LabHost::new(
            name,
            LabHostSpec::new("http://127.0.0.1:1", profile, SecretReference::default()),
        );
        h.metadata.labels = Some(BTreeMap::from([(LABEL_LAB.to_owned(), "lab-a".to_owned())]));
        h
    };
    let mut pr = PodRequest::new(
        "pod",
        PodRequestSpec::new(
            [RoleSpec::new("node", 1)],
            ImageSpec::new("http://i.test/a.iso"),
            "2h",
        ),
    );
    pr.metadata.creation_timestamp = Some(Time(at("2026-11-24T09:30:00Z")));
    (
        lease,
        pr,
        vec![
            labhost("h1", "small"),
            labhost("h2", "large"),
            labhost("h3", "large"),
        ],
    )
}

/// As the Lease controller writes it: `readyAt` from the first Ready (10:05) on.
fn status(phase: LeasePhase, released: Option<&str>, error_host: Option<&str>) -> LeaseStatus {
    LeaseStatus {
        phase: Some(phase),
        ready_at: (phase != LeasePhase::Provisioning).then(|| Time(at("2026-11-24T10:05:00Z"))),
        hosts: error_host
            .map(|h| HostProgress {
                host: h.into(),
                state: Some(HostState::Error),
                ..HostProgress::default()
            })
            .into_iter()
            .collect(),
        released_at: released.map(|r| Time(at(r))),
        ..LeaseStatus::default()
    }
}

#[test]
fn a_lease_yields_one_record_per_host_with_how_it_ended_and_its_times() {
    let (mut lease, pr, labhosts) = fixtures();
    let hosts: Vec<&LabHost> = labhosts.iter().collect();
    let mut t = Tracker::default();
    let mut step = |lease: &mut Lease, after: LeaseStatus| {
        let out = t.observe(lease, Some(&pr), &hosts, &after);
        lease.status = Some(after);
        out
    };
    assert!(step(&mut lease, status(LeasePhase::Provisioning, None, None)).is_empty());
    assert!(step(&mut lease, status(LeasePhase::Ready, None, None)).is_empty());
    // h1 fails and a spare h3 replaces it; later h2 fails with no spare.
    assert!(step(&mut lease, status(LeasePhase::Degraded, None, Some("h1"))).is_empty());
    lease.spec.hosts = vec![host("h2", "node"), host("h3", "jumphost")];
    let h1_replaced = |mut s: LeaseStatus| {
        s.replaced = vec![ReplacedHost {
            host: "h1".into(),
            role: "jumphost".into(),
            at: Time(at("2026-11-24T11:01:00Z")),
        }];
        s
    };
    let healed = step(
        &mut lease,
        h1_replaced(status(LeasePhase::Ready, None, None)),
    );
    assert_eq!(healed.len(), 1);
    assert_eq!(
        (
            healed[0].id.as_str(),
            healed[0].ending,
            healed[0].role.as_str()
        ),
        ("lease-uid/h1", Ending::Healed, "jumphost")
    );
    assert_eq!(healed[0].released_at, at("2026-11-24T11:01:00Z"));
    assert!(
        step(
            &mut lease,
            h1_replaced(status(LeasePhase::Degraded, None, Some("h2")))
        )
        .is_empty(),
        "h1 is queued once"
    );
    let released_status = || {
        h1_replaced(status(
            LeasePhase::Released,
            Some("2026-11-24T13:00:00Z"),
            None,
        ))
    };
    let released = step(&mut lease, released_status());
    assert_eq!(released.len(), 2);
    let h2 = &released[0];
    assert_eq!((h2.host.as_str(), h2.ending), ("h2", Ending::Failed));
    let h3 = &released[1];
    assert_eq!((h3.host.as_str(), h3.ending), ("h3", Ending::ReleasedEarly));
    assert_eq!(h3.id, "lease-uid/h3");
    assert_eq!((h3.profile.as_str(), h3.lab.as_str()), ("large", "lab-a"));
    assert_eq!(
        (h3.namespace.as_str(), h3.request.as_str(), h3.role.as_str()),
        ("team", "pod", "jumphost")
    );
    assert_eq!(h3.requested_start, Some(at("2026-11-24T09:30:00Z")));
    assert_eq!(h3.wait_seconds, 1_800, "created 09:30, started 10:00");
    assert_eq!(
        h3.provisioning_seconds,
        Some(300),
        "Ready 5 minutes after the start"
    );
    assert_eq!(
        h3.extension_seconds, 7_200,
        "granted until 12:00, extended to 14:00"
    );
    // Reconciled again before it is collected: nothing new.
    let again = t.observe(&lease, Some(&pr), &hosts, &released_status());
    assert!(again.is_empty());
    // A restarted operator offers it again (no memory): the same ids, which readers dedupe,
    // the replaced host and the provisioning time read back from the status.
    let restarted =
        Tracker::default().observe(&lease, Some(&pr), &hosts, lease.status.as_ref().unwrap());
    assert_eq!(
        restarted.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        ["lease-uid/h1", "lease-uid/h2", "lease-uid/h3"]
    );
    assert_eq!(restarted[0], healed[0], "as recorded before the restart");
    assert_eq!(restarted[2].ending, Ending::ReleasedEarly);
    assert_eq!(restarted[2].provisioning_seconds, Some(300));
    // Restarted mid-booking, after the swap: nothing until Released, then the replaced host
    // with the time it left, and the failed host from the last status written.
    lease.status = Some(h1_replaced(status(LeasePhase::Degraded, None, Some("h2"))));
    let mut t = Tracker::default();
    let mid = t.observe(
        &lease,
        Some(&pr),
        &hosts,
        &h1_replaced(status(LeasePhase::Degraded, None, Some("h2"))),
    );
    assert!(mid.is_empty(), "{mid:?}");
    let restarted = t.observe(&lease, Some(&pr), &hosts, &released_status());
    let endings: Vec<(&str, Ending, Timestamp)> = restarted
        .iter()
        .map(|r| (r.host.as_str(), r.ending, r.released_at))
        .collect();
    assert_eq!(
        endings,
        [
            ("h1", Ending::Healed, at("2026-11-24T11:01:00Z")),
            ("h2", Ending::Failed, at("2026-11-24T13:00:00Z")),
            ("h3", Ending::ReleasedEarly, at("2026-11-24T13:00:00Z"))
        ]
    );
    // A failure that cleared before the restart: `failedAt` is kept in the status.
    let mut recovered = released_status();
    recovered.hosts = vec![HostProgress {
        host: "h2".into(),
        role: "node".into(),
        state: Some(HostState::Available),
        step: None,
        message: None,
        failed_at: Some(Time(at("2026-11-24T12:00:00Z"))),
    }];
    lease.status = Some(recovered.clone());
    let restarted = Tracker::default().observe(&lease, Some(&pr), &hosts, &recovered);
    assert_eq!(
        restarted.iter().map(|r| r.ending).collect::<Vec<_>>(),
        [Ending::Healed, Ending::Failed, Ending::ReleasedEarly]
    );
}

fn record(booking: &str, host: &str, released: Timestamp) -> Allocation {
    Allocation::sample(booking, host, released)
}

#[tokio::test]
async fn a_failed_write_stays_queued_and_lands_on_a_later_flush() {
    let store = MemoryStore::default();
    let queue = Queue::default();
    let now = at("2026-11-24T13:00:00Z");
    let records = vec![record("b1", "h1", now), record("b1", "h2", now)];
    // Queuing is synchronous: the release path never waits for the store.
    queue.push(records.clone());
    store.fail_next(3);
    for _ in 0..3 {
        assert!(queue.flush(&store, now).await.is_err());
        assert_eq!(queue.len(), 2, "still queued after a failed write");
    }
    assert!(queue.flush(&store, now).await.unwrap());
    assert!(queue.is_empty());
    let contents = read(
        &store,
        at("2026-11-24T00:00:00Z"),
        at("2026-11-25T00:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(contents.allocations, records);
    // Two batches flushed in the same millisecond are two segments; a retried one is one.
    let other = vec![record("b2", "h1", now)];
    shards::append(&store, &other, now).await.unwrap();
    shards::append(&store, &other, now).await.unwrap();
    let contents = read(
        &store,
        at("2026-11-24T00:00:00Z"),
        at("2026-11-25T00:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(contents.allocations.len(), 3);
    assert_eq!(store.stats().shards, 2);
}

#[tokio::test]
async fn a_record_offered_again_after_midnight_counts_once_in_its_release_day() {
    let store = MemoryStore::default();
    let settings = Settings {
        shard_bytes: 4_000,
        retention_days: 1,
        usage_retention_days: 10,
    };
    let released = at("2026-11-24T23:59:50Z");
    let records = vec![record("b1", "h1", released), record("b1", "h2", released)];
    // Flushed before midnight, then offered again after it by a restarted operator, in a
    // batch with a record of the new day.
    shards::append(&store, &records, at("2026-11-24T23:59:55Z"))
        .await
        .unwrap();
    let mut again = records.clone();
    again.push(record("b2", "h3", at("2026-11-25T00:05:00Z")));
    shards::append(&store, &again, at("2026-11-25T00:10:00Z"))
        .await
        .unwrap();
    let nov24 = read(
        &store,
        at("2026-11-24T00:00:00Z"),
        at("2026-11-25T00:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(
        nov24.allocations, records,
        "in the day they were released, once"
    );
    // Past the retention the day is compacted: still one booking of two hosts.
    housekeeping(&store, &settings, at("2026-11-27T01:00:00Z"))
        .await
        .unwrap();
    let compacted = read(
        &store,
        at("2026-11-24T00:00:00Z"),
        at("2026-11-25T23:00:00Z"),
    )
    .await
    .unwrap();
    let nov24: Vec<_> = compacted
        .usage
        .iter()
        .filter(|u| u.day == "2026-11-24")
        .collect();
    assert_eq!(nov24.iter().map(|u| u.allocations).sum::<u64>(), 2);
    assert_eq!(nov24.iter().map(|u| u.bookings).sum::<u64>(), 1);
    let nov25: u64 = compacted
        .usage
        .iter()
        .filter(|u| u.day == "2026-11-25")
        .map(|u| u.allocations)
        .sum();
    assert_eq!(nov25, 1);
}

#[tokio::test]
async fn days_merge_into_bounded_parts_then_compact_into_usage_and_expire() {
    let store = MemoryStore::default();
    let settings = Settings {
        shard_bytes: 400,
        retention_days: 3,
        usage_retention_days: 10,
    };
    let day0 = at("2026-11-01T12:00:00Z");
    let hour = k8s_openapi::jiff::SignedDuration::from_hours(1);
    // Five days of 60 records each, written as 6 segments a day, one of them twice.
    for d in 0..5 {
        for s in 0..6 {
            let t = day0 + hour * (24 * d + s);
            let batch: Vec<Allocation> = (0..10)
                .map(|i| record(&format!("b{d}-{s}"), &format!("h{i}"), t))
                .collect();
            shards::append(&store, &batch, t).await.unwrap();
            if s == 0 {
                shards::append(&store, &batch, t + hour / 2).await.unwrap();
            }
        }
    }
    // On day 5 (Nov 6): days 0-4 are finished; none is past 3 days' retention yet... Nov 1
    // and Nov 2 are.
    let now = at("2026-11-06T01:00:00Z");
    let done = housekeeping(&store, &settings, now).await.unwrap();
    assert_eq!((done.merged_days, done.compacted_days), (3, 2));
    let metas = store.list().await.unwrap();
    let raw: Vec<_> = metas.iter().filter(|m| m.kind == ShardKind::Raw).collect();
    assert!(
        raw.iter().all(|m| !m.name.contains("-s")),
        "segments merged: {metas:?}"
    );
    assert!(
        raw.len() > 3,
        "parts roll over at the size bound: {metas:?}"
    );
    assert!(store.stats().largest_shard <= 400);
    let all = read(&store, at("2026-10-30T00:00:00Z"), now).await.unwrap();
    assert_eq!(all.allocations.len(), 3 * 60, "each record once");
    let usage: u64 = all.usage.iter().map(|u| u.allocations).sum();
    assert_eq!(usage, 2 * 60);
    assert_eq!(all.usage.iter().map(|u| u.bookings).sum::<u64>(), 12);
    // Again: nothing changes (no double counting).
    let again = housekeeping(&store, &settings, now).await.unwrap();
    assert_eq!(
        (again.merged_days, again.compacted_days, again.deleted),
        (0, 0, 0)
    );
    // Much later every raw day is compacted and the oldest usage expired.
    let later = at("2026-11-13T01:00:00Z");
    housekeeping(&store, &settings, later).await.unwrap();
    let left = read(&store, at("2026-10-01T00:00:00Z"), later)
        .await
        .unwrap();
    assert!(left.allocations.is_empty());
    let days: std::collections::BTreeSet<String> =
        left.usage.iter().map(|u| u.day.clone()).collect();
    assert_eq!(
        days.into_iter().collect::<Vec<_>>(),
        ["2026-11-03", "2026-11-04", "2026-11-05"]
    );
    assert_eq!(dedupe(all.allocations.clone()).len(), all.allocations.len());
}

#[test]
fn an_admin_sets_the_retentions_in_a_configmap() {
    let data = BTreeMap::from([
        ("retentionDays".to_owned(), "30".to_owned()),
        ("usageRetentionDays".to_owned(), "0".to_owned()),
    ]);
    let s = settings_from(Some(&data));
    assert_eq!(s.retention_days, 30);
    assert_eq!(
        s.usage_retention_days, 800,
        "0 days is refused: the default stays"
    );
    assert_eq!(settings_from(None), Settings::default());
}

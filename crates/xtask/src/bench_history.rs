//! `cargo xtask bench history`: the allocation history's size and write load at a lab's
//! busiest, through the operator's own code (`labpods_operator::history`) on an in-memory
//! store that counts every write. Release build: a debug xtask re-runs itself with `--release`.
//!
//! The lab: HOSTS hosts (default 10,000) in 3 labs, 10 profiles, 300 namespaces, every host
//! booked back to back all day with bookings of 1 to 8 hosts lasting 1 to 16 hours (mean
//! 8.5 h): about 2.8 allocations per host and day. Every `FLUSH_INTERVAL` (15 s) of simulated
//! time the writer stores what was released in it as one segment, as the operator; each hour the
//! housekeeping merges and compacts with the default settings (raw for 90 days, daily usage
//! for 800, parts under 900 KiB). Reported: what is stored at the end and at its largest,
//! objects, the largest object, and writes (count and bytes) per day.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use labpods_operator::history::shards::{self, Settings};
use labpods_operator::history::{Allocation, Ending, MemoryStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const USAGE: &str = "usage: cargo xtask bench history [--hosts N] [--days N]";

#[derive(Debug)]
struct Options {
    hosts: usize,
    days: i64,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        hosts: 10_000,
        days: 400,
    };
    for (flag, value) in crate::bench::flag_values(args, USAGE)? {
        match flag {
            "--hosts" => o.hosts = value.parse().context("--hosts")?,
            "--days" => o.days = value.parse().context("--days")?,
            _ => bail!("{USAGE}"),
        }
    }
    Ok(o)
}

pub fn run(args: &[String]) -> Result<()> {
    if crate::bench::reran_in_release("history", args)? {
        return Ok(());
    }
    let options = parse(args)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(measure(&options))
}

/// One booking in progress on `hosts`, releasing at `end`.
struct Booking {
    uid: String,
    hosts: Vec<usize>,
    namespace: usize,
    requested: Timestamp,
    start: Timestamp,
    end: Timestamp,
}

fn uid(rng: &mut StdRng) -> String {
    let n: u128 = rng.random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn host_name(i: usize) -> String {
    format!("lab{}-r{:03}-h{:05}", i % 3, i / 40, i)
}

fn records(b: &Booking, released: Timestamp, rng: &mut StdRng) -> Vec<Allocation> {
    let ending = match rng.random_range(0..20) {
        0 => Ending::Failed,
        1 => Ending::Healed,
        2..=8 => Ending::ReleasedEarly,
        _ => Ending::Expired,
    };
    let extension = if rng.random_range(0..5) == 0 {
        3_600 * rng.random_range(1..24)
    } else {
        0
    };
    b.hosts
        .iter()
        .enumerate()
        .map(|(i, h)| Allocation {
            id: format!("{}/{}", b.uid, host_name(*h)),
            host: host_name(*h),
            profile: format!("profile-{}", h % 10),
            lab: format!("lab{}", h % 3),
            namespace: format!("team-{:03}", b.namespace),
            request: format!("pod-{}", &b.uid[..8]),
            role: if i == 0 { "jumphost" } else { "node" }.to_string(),
            requested_start: Some(b.requested),
            start: b.start,
            end: b.end,
            released_at: released,
            ending,
            wait_seconds: u64::try_from(b.start.as_second() - b.requested.as_second()).unwrap_or(0),
            provisioning_seconds: (ending != Ending::Failed).then(|| rng.random_range(240..900)),
            extension_seconds: extension,
        })
        .collect()
}

async fn measure(o: &Options) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(7);
    let store = MemoryStore::default();
    let settings = Settings::default();
    let epoch: Timestamp = "2026-01-01T00:00:00Z".parse()?;
    // Every host is free from a random instant of the first day on.
    let mut free: BinaryHeap<Reverse<(Timestamp, usize)>> = (0..o.hosts)
        .map(|h| {
            Reverse((
                epoch + SignedDuration::from_secs(rng.random_range(0..86_400)),
                h,
            ))
        })
        .collect();
    let mut live: BinaryHeap<Reverse<(Timestamp, usize)>> = BinaryHeap::new();
    let mut bookings: Vec<Option<Booking>> = Vec::new();
    let (mut records_total, mut peak_bytes, mut peak_objects, mut peak_largest) = (0u64, 0, 0, 0);
    let started = Instant::now();
    let mut last_report = (0u64, 0u64);
    let mut daily = Vec::new();
    let mut pending: Vec<Allocation> = Vec::new();
    let step = labpods_operator::history::FLUSH_INTERVAL.as_secs() as i64;
    let per_hour = 3_600 / step;
    let per_day = 24 * per_hour;
    for m in 0..(o.days * per_day) {
        let now = epoch + SignedDuration::from_secs(m * step);
        // Start bookings on hosts that came free, in groups of 1 to 8.
        let mut came_free = Vec::new();
        while free.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            if let Some(Reverse((_, h))) = free.pop() {
                came_free.push(h);
            }
        }
        while !came_free.is_empty() {
            let n = rng.random_range(1..=8).min(came_free.len());
            let hosts: Vec<usize> = came_free.drain(..n).collect();
            let length = SignedDuration::from_mins(rng.random_range(60..=960));
            let waited = SignedDuration::from_mins(rng.random_range(0..600));
            let b = Booking {
                uid: uid(&mut rng),
                namespace: rng.random_range(0..300),
                requested: now - waited,
                start: now,
                end: now + length,
                hosts,
            };
            for h in &b.hosts {
                free.push(Reverse((b.end, *h)));
            }
            live.push(Reverse((b.end, bookings.len())));
            bookings.push(Some(b));
        }
        // Release what ends now (how each ended is drawn: the host is busy until then).
        while live.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            if let Some(Reverse((_, i))) = live.pop()
                && let Some(b) = bookings.get_mut(i).and_then(Option::take)
            {
                pending.extend(records(&b, now, &mut rng));
            }
        }
        // The writer's flush: one segment.
        if !pending.is_empty() {
            records_total += pending.len() as u64;
            shards::append(&store, &pending, now).await?;
            pending.clear();
        }
        if m % per_hour == per_hour - 1 {
            shards::housekeeping(&store, &settings, now).await?;
            let s = store.stats();
            peak_bytes = peak_bytes.max(s.bytes);
            peak_objects = peak_objects.max(s.shards);
            peak_largest = peak_largest.max(s.largest_shard);
        }
        if m % per_day == per_day - 1 {
            let s = store.stats();
            daily.push((s.puts - last_report.0, s.bytes_written - last_report.1));
            last_report = (s.puts, s.bytes_written);
            let day = m / per_day + 1;
            if day % 50 == 0 {
                eprintln!(
                    "[bench history] day {day}: {} records, {} objects, {:.1} MiB stored ({:.0?})",
                    records_total,
                    s.shards,
                    s.bytes as f64 / 1048576.0,
                    started.elapsed()
                );
            }
        }
    }
    let s = store.stats();
    let elapsed = started.elapsed();
    let days = o.days.max(1) as f64;
    let steady: Vec<&(u64, u64)> = daily.iter().skip(daily.len() / 2).collect();
    let mean = |f: fn(&(u64, u64)) -> u64| {
        steady.iter().map(|d| f(d) as f64).sum::<f64>() / steady.len().max(1) as f64
    };
    println!(
        "allocation history, {} hosts, {} days ({} records, {:.0} per day)",
        o.hosts,
        o.days,
        records_total,
        records_total as f64 / days
    );
    println!(
        "  stored at the end: {:.1} MiB in {} ConfigMaps (peak {:.1} MiB, {} objects); largest object {:.0} KiB (peak {:.0} KiB, limit 1024)",
        s.bytes as f64 / 1048576.0,
        s.shards,
        peak_bytes as f64 / 1048576.0,
        peak_objects,
        s.largest_shard as f64 / 1024.0,
        peak_largest as f64 / 1024.0
    );
    println!(
        "  writes per day (second half): {:.0} ({:.2}/s), {:.1} MiB per day",
        mean(|d| d.0),
        mean(|d| d.0) / 86_400.0,
        mean(|d| d.1) / 1048576.0
    );
    println!(
        "  bytes per raw record in a merged part: {:.1}",
        raw_bytes_per_record(&store).await?
    );
    println!(
        "  simulated in {:.1?} ({:.0} records/s through append + housekeeping)",
        elapsed,
        records_total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Mean size of a raw record in the merged parts now stored.
async fn raw_bytes_per_record(store: &MemoryStore) -> Result<f64> {
    use labpods_operator::history::ShardStore;
    use labpods_operator::history::store::ShardKind;
    let (mut bytes, mut n) = (0u64, 0u64);
    for meta in store.list().await? {
        if meta.kind != ShardKind::Raw {
            continue;
        }
        if let Some(shard) = store.get(&meta.name).await? {
            let items: Vec<Allocation> = labpods_operator::history::record::decode(&shard.data)?;
            bytes += shard.data.len() as u64;
            n += items.len() as u64;
        }
    }
    Ok(bytes as f64 / n.max(1) as f64)
}

//! The history's layout over a [`ShardStore`], and the three things done to it:
//!
//! - **append**: each flush of the writer *creates* one small segment,
//!   `labpods-history-raw-<day>-s<millis>` (never a read-modify-write of a large object, so
//!   a write costs what it carries, and a retried create at worst duplicates records, which
//!   readers drop by id);
//! - **merge**: each housekeeping pass (hourly) turns today's segments into one part of the
//!   hour, `labpods-history-raw-<day>-h<millis>-<NN>`; a finished day's pieces are rewritten
//!   as a few parts of at most [`Settings::shard_bytes`] each, `labpods-history-raw-<day>-<NN>`.
//!   Each record is encoded three times in all, and a day holds at most an hour of segments;
//! - **compact**: a day older than [`Settings::retention_days`] becomes daily [`Usage`] rows
//!   in `labpods-history-usage-<day>-<NN>` and its raw shards are deleted; usage older than
//!   [`Settings::usage_retention_days`] is deleted. A day whose usage exists is never
//!   aggregated again, so a crash between the two steps loses nothing and counts nothing
//!   twice.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::record::{Allocation, Usage, aggregate, day, decode, encode};
use super::store::{Shard, ShardKind, ShardMeta, ShardStore, StoreError};

pub const PREFIX: &str = "labpods-history-";

/// Bounds of the store. Defaults: parts under 900 KiB (a ConfigMap holds 1 MiB), raw
/// allocations for 90 days, daily usage for 800 days (two years and a bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub shard_bytes: usize,
    pub retention_days: i64,
    pub usage_retention_days: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            shard_bytes: 900 * 1024,
            retention_days: 90,
            usage_retention_days: 800,
        }
    }
}

/// What one housekeeping pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Housekeeping {
    pub merged_days: usize,
    pub compacted_days: usize,
    pub deleted: usize,
}

/// What follows `<prefix><kind>-<period>-` in a shard's name.
fn suffix(meta: &ShardMeta) -> &str {
    let stem = format!("{PREFIX}{}-{}-", meta.kind.label(), meta.period);
    meta.name.strip_prefix(&stem).unwrap_or("")
}

fn is_segment(meta: &ShardMeta) -> bool {
    suffix(meta).starts_with('s')
}

/// A finished day's part (`-00`), as opposed to segments and hourly parts.
fn is_final(meta: &ShardMeta) -> bool {
    let s = suffix(meta);
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

fn stem(kind: ShardKind, period: &str) -> String {
    format!("{PREFIX}{}-{period}", kind.label())
}

/// The store's text error for an encoding failure (it cannot happen with these types).
fn io(e: std::io::Error) -> StoreError {
    StoreError::Failed(format!("encoding a history shard: {e}"))
}

/// FNV-1a of the records' ids: two batches flushed in the same millisecond get two names,
/// and a retried batch its own again.
fn fingerprint(records: &[Allocation]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for r in records {
        for b in r.id.bytes().chain(std::iter::once(b'\n')) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Stores `records` as new segments, one per day they were released on (flushed at `now`).
/// A record lands in its release day whenever it is flushed, so a copy re-offered after
/// midnight (a restart before the Lease was collected) meets the first in the same day and
/// is merged away, never counted in two.
pub async fn append<S: ShardStore>(
    store: &S,
    records: &[Allocation],
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut by_day: BTreeMap<String, Vec<Allocation>> = BTreeMap::new();
    for record in records {
        by_day
            .entry(day(record.released_at))
            .or_default()
            .push(record.clone());
    }
    for (period, records) in by_day {
        let shard = Shard {
            name: format!(
                "{PREFIX}raw-{period}-s{}-{:016x}",
                now.as_millisecond(),
                fingerprint(&records)
            ),
            kind: ShardKind::Raw,
            period,
            data: encode(&records).map_err(io)?,
            version: None,
        };
        match store.put(&shard).await {
            // The same records at the same instant: a retry of a write that did land.
            Err(StoreError::Conflict(_)) | Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Every item of the shards named, decoded.
async fn read_all<S: ShardStore, T: serde::de::DeserializeOwned>(
    store: &S,
    shards: &[&ShardMeta],
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for meta in shards {
        if let Some(shard) = store.get(&meta.name).await? {
            out.extend(decode::<T>(&shard.data).map_err(io)?);
        }
    }
    Ok(out)
}

/// Raw allocations, each once (by id), sorted by release.
pub fn dedupe(mut records: Vec<Allocation>) -> Vec<Allocation> {
    let mut seen = BTreeSet::new();
    records.retain(|r| seen.insert(r.id.clone()));
    records.sort_by(|a, b| (a.released_at, &a.id).cmp(&(b.released_at, &b.id)));
    records
}

/// Writes `items` as parts `00`, `01`, ... of at most `limit` bytes each, replacing parts of
/// those names; returns the names written.
async fn write_parts<S: ShardStore, T: serde::Serialize>(
    store: &S,
    kind: ShardKind,
    (stem, period): (&str, &str),
    items: &[T],
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let mut take = rest.len();
        let data = loop {
            let data = encode(&rest[..take]).map_err(io)?;
            if data.len() <= limit {
                break data;
            }
            if take == 1 {
                return Err(StoreError::Failed(format!(
                    "one history item is larger than a shard ({} bytes)",
                    data.len()
                )));
            }
            // Proportional guess, a little under, so most parts take two encodings.
            let guess = (take as u128 * limit as u128 * 95 / 100 / data.len() as u128) as usize;
            take = guess.clamp(1, take - 1);
        };
        let name = format!("{stem}-{:02}", names.len());
        let version = store.get(&name).await?.and_then(|s| s.version);
        store
            .put(&Shard {
                name: name.clone(),
                kind,
                period: period.to_owned(),
                data,
                version,
            })
            .await?;
        names.push(name);
        rest = &rest[take..];
    }
    Ok(names)
}

/// Merges finished days' segments, compacts days past the retention, drops old usage.
pub async fn housekeeping<S: ShardStore>(
    store: &S,
    settings: &Settings,
    now: Timestamp,
) -> Result<Housekeeping, StoreError> {
    let mut done = Housekeeping::default();
    let today = day(now);
    let raw_before = day(now - SignedDuration::from_hours(24 * settings.retention_days));
    let usage_before = day(now - SignedDuration::from_hours(24 * settings.usage_retention_days));
    let all = store.list().await?;
    let mut raw: BTreeMap<&str, Vec<&ShardMeta>> = BTreeMap::new();
    let mut usage: BTreeMap<&str, Vec<&ShardMeta>> = BTreeMap::new();
    for meta in &all {
        match meta.kind {
            ShardKind::Raw => raw.entry(meta.period.as_str()).or_default().push(meta),
            ShardKind::Usage => usage.entry(meta.period.as_str()).or_default().push(meta),
        }
    }
    for (period, shards) in &raw {
        let finished = *period < today.as_str();
        if finished && *period < raw_before.as_str() {
            if !usage.contains_key(period) {
                let records = dedupe(read_all(store, shards).await?);
                let rows: Vec<Usage> = aggregate(&records);
                let name = stem(ShardKind::Usage, period);
                write_parts(
                    store,
                    ShardKind::Usage,
                    (&name, period),
                    &rows,
                    settings.shard_bytes,
                )
                .await?;
            }
            for meta in shards {
                store.delete(&meta.name).await?;
                done.deleted += 1;
            }
            done.compacted_days += 1;
        } else if finished && shards.iter().any(|m| !is_final(m)) {
            let records = dedupe(read_all(store, shards).await?);
            let name = stem(ShardKind::Raw, period);
            let written = write_parts(
                store,
                ShardKind::Raw,
                (&name, period),
                &records,
                settings.shard_bytes,
            )
            .await?;
            for meta in shards.iter().filter(|m| !written.contains(&m.name)) {
                store.delete(&meta.name).await?;
                done.deleted += 1;
            }
            done.merged_days += 1;
        } else if !finished {
            let segments: Vec<&ShardMeta> =
                shards.iter().copied().filter(|m| is_segment(m)).collect();
            if segments.is_empty() {
                continue;
            }
            let records = dedupe(read_all(store, &segments).await?);
            let hour = format!("{}-h{}", stem(ShardKind::Raw, period), now.as_millisecond());
            write_parts(
                store,
                ShardKind::Raw,
                (&hour, *period),
                &records,
                settings.shard_bytes,
            )
            .await?;
            for meta in segments {
                store.delete(&meta.name).await?;
                done.deleted += 1;
            }
        }
    }
    for (period, shards) in &usage {
        if *period < usage_before.as_str() {
            for meta in shards {
                store.delete(&meta.name).await?;
                done.deleted += 1;
            }
        }
    }
    Ok(done)
}

/// What a reader gets for `[from, to)`: raw allocations released then (each once) and the
/// usage rows of compacted days.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contents {
    pub allocations: Vec<Allocation>,
    pub usage: Vec<Usage>,
}

pub async fn read<S: ShardStore>(
    store: &S,
    from: Timestamp,
    to: Timestamp,
) -> Result<Contents, StoreError> {
    let (first, last) = (day(from), day(to));
    let all = store.list().await?;
    let in_range = |m: &&ShardMeta| m.period >= first && m.period <= last;
    let raw: Vec<&ShardMeta> = all
        .iter()
        .filter(|m| m.kind == ShardKind::Raw)
        .filter(in_range)
        .collect();
    let usage: Vec<&ShardMeta> = all
        .iter()
        .filter(|m| m.kind == ShardKind::Usage)
        .filter(in_range)
        .collect();
    let allocations = dedupe(read_all(store, &raw).await?)
        .into_iter()
        .filter(|r| r.released_at >= from && r.released_at < to)
        .collect();
    Ok(Contents {
        allocations,
        usage: read_all(store, &usage).await?,
    })
}

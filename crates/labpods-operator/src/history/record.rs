//! What the history holds (pure): one [`Allocation`] per host of every booking, the daily
//! [`Usage`] rows old allocations are compacted into, and the shard encoding (gzip'd JSON
//! lines: self-describing, readable with `zcat`, and ~10x smaller than the JSON).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use k8s_openapi::jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How a host's part in a booking ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ending {
    /// The window ran out.
    Expired,
    /// The user released the booking before its end.
    ReleasedEarly,
    /// The host failed (Error) and no spare replaced it; the booking ran degraded.
    Failed,
    /// The host failed and a spare took its place: this host's part ended early.
    Healed,
}

/// One host's part in one booking. Times are UTC instants; lengths are whole seconds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// `<lease uid>/<host>`: the same allocation offered twice is stored once.
    pub id: String,
    pub host: String,
    pub profile: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lab: String,
    pub namespace: String,
    /// The PodRequest (and Lease) name.
    pub request: String,
    pub role: String,
    /// What the user asked for: `spec.start`, or the request's creation when "now".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_start: Option<Timestamp>,
    /// When the window started (provisioning began).
    pub start: Timestamp,
    /// The planned end of the window (after extensions).
    pub end: Timestamp,
    /// When the host left the booking (released, or replaced when Healed).
    pub released_at: Timestamp,
    pub ending: Ending,
    /// From the requested start to the start.
    pub wait_seconds: u64,
    /// From the start until every host ran the image; absent when it never did (or the
    /// operator restarted before it could see when).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_seconds: Option<u64>,
    /// Time added to the window after it was granted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub extension_seconds: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Allocation {
    /// A plausible record (tests and benchmarks): `host` of booking `booking` in lab-a,
    /// profile large, namespace team, started 2 h before `released` after waiting 1 h,
    /// expired, provisioned in 4 min.
    pub fn sample(booking: &str, host: &str, released: Timestamp) -> Self {
        let hour = k8s_openapi::jiff::SignedDuration::from_hours(1);
        Self {
            id: format!("{booking}/{host}"),
            host: host.into(),
            profile: "large".into(),
            lab: "lab-a".into(),
            namespace: "team".into(),
            request: booking.into(),
            role: "node".into(),
            requested_start: Some(released - hour * 3),
            start: released - hour * 2,
            end: released,
            released_at: released,
            ending: Ending::Expired,
            wait_seconds: 3_600,
            provisioning_seconds: Some(240),
            extension_seconds: 0,
        }
    }

    /// Host-seconds the booking held this host.
    pub fn held_seconds(&self) -> u64 {
        secs_between(self.start, self.released_at)
    }

    /// The lease uid part of the id: one booking.
    pub fn booking(&self) -> &str {
        self.id.split_once('/').map_or(&self.id, |(b, _)| b)
    }
}

/// Whole seconds from `a` to `b`, 0 if `b` is earlier.
pub fn secs_between(a: Timestamp, b: Timestamp) -> u64 {
    u64::try_from(b.as_second() - a.as_second()).unwrap_or(0)
}

/// `2026-12-02`: the UTC day of an instant.
pub fn day(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// Upper bounds (seconds) of the wait histogram buckets; the last bucket is open.
pub const WAIT_BUCKETS: [u64; 14] = [
    60, 300, 900, 1_800, 3_600, 7_200, 14_400, 28_800, 43_200, 86_400, 172_800, 259_200, 604_800,
    1_209_600,
];

/// One day of one (lab, profile, namespace): what raw allocations past the retention are
/// compacted into. Enough for utilization, bookings, waits (mean exactly, p95 to a bucket),
/// provisioning success and time, extensions and endings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub day: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lab: String,
    pub profile: String,
    pub namespace: String,
    pub allocations: u64,
    pub bookings: u64,
    pub host_seconds: u64,
    /// Per booking.
    pub wait_seconds_sum: u64,
    /// Bookings per [`WAIT_BUCKETS`] bucket (one more for the open bucket).
    pub wait_histogram: Vec<u64>,
    /// Bookings whose hosts all ran the image, and the sum of their provisioning times.
    pub provisioned: u64,
    pub provisioning_seconds_sum: u64,
    pub extended: u64,
    pub extension_seconds: u64,
    pub endings: BTreeMap<Ending, u64>,
}

impl Usage {
    pub fn key(&self) -> (String, String, String, String) {
        (
            self.day.clone(),
            self.lab.clone(),
            self.profile.clone(),
            self.namespace.clone(),
        )
    }

    /// Adds `other` (same key) into this row.
    pub fn merge(&mut self, other: &Usage) {
        self.allocations += other.allocations;
        self.bookings += other.bookings;
        self.host_seconds += other.host_seconds;
        self.wait_seconds_sum += other.wait_seconds_sum;
        if self.wait_histogram.len() < other.wait_histogram.len() {
            self.wait_histogram.resize(other.wait_histogram.len(), 0);
        }
        for (a, b) in self.wait_histogram.iter_mut().zip(&other.wait_histogram) {
            *a += b;
        }
        self.provisioned += other.provisioned;
        self.provisioning_seconds_sum += other.provisioning_seconds_sum;
        self.extended += other.extended;
        self.extension_seconds += other.extension_seconds;
        for (k, v) in &other.endings {
            *self.endings.entry(*k).or_default() += v;
        }
    }
}

/// The bucket index of a wait.
pub fn wait_bucket(seconds: u64) -> usize {
    WAIT_BUCKETS
        .iter()
        .position(|b| seconds <= *b)
        .unwrap_or(WAIT_BUCKETS.len())
}

/// Daily rows of `records`, by the UTC day each host was released, sorted by key. Waits,
/// provisioning and extensions count once per booking (its first host in the group).
pub fn aggregate(records: &[Allocation]) -> Vec<Usage> {
    let mut rows: BTreeMap<(String, String, String, String), Usage> = BTreeMap::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for r in records {
        let key = (
            day(r.released_at),
            r.lab.clone(),
            r.profile.clone(),
            r.namespace.clone(),
        );
        let row = rows.entry(key.clone()).or_insert_with(|| Usage {
            day: key.0.clone(),
            lab: key.1.clone(),
            profile: key.2.clone(),
            namespace: key.3.clone(),
            wait_histogram: vec![0; WAIT_BUCKETS.len() + 1],
            ..Usage::default()
        });
        row.allocations += 1;
        row.host_seconds += r.held_seconds();
        *row.endings.entry(r.ending).or_default() += 1;
        if seen.insert((key.0.clone() + &key.2 + &key.3, r.booking().to_string())) {
            row.bookings += 1;
            row.wait_seconds_sum += r.wait_seconds;
            row.wait_histogram[wait_bucket(r.wait_seconds)] += 1;
            if let Some(p) = r.provisioning_seconds {
                row.provisioned += 1;
                row.provisioning_seconds_sum += p;
            }
            if r.extension_seconds > 0 {
                row.extended += 1;
                row.extension_seconds += r.extension_seconds;
            }
        }
    }
    rows.into_values().collect()
}

/// gzip'd JSON lines.
pub fn encode<T: Serialize>(items: &[T]) -> std::io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for item in items {
        serde_json::to_writer(&mut gz, item)?;
        gz.write_all(b"\n")?;
    }
    gz.finish()
}

/// The items of a shard; a line that does not parse (a newer writer's kind) is skipped.
pub fn decode<T: DeserializeOwned>(data: &[u8]) -> std::io::Result<Vec<T>> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(data).read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    pub fn allocation(booking: &str, host: &str, wait: u64, ending: Ending) -> Allocation {
        Allocation {
            id: format!("{booking}/{host}"),
            host: host.into(),
            profile: "x86".into(),
            lab: "lab-a".into(),
            namespace: "team".into(),
            request: booking.into(),
            role: "node".into(),
            requested_start: Some(at("2026-12-01T08:00:00Z")),
            start: at("2026-12-01T10:00:00Z"),
            end: at("2026-12-01T14:00:00Z"),
            released_at: at("2026-12-01T12:00:00Z"),
            ending,
            wait_seconds: wait,
            provisioning_seconds: Some(300),
            extension_seconds: 0,
        }
    }

    #[test]
    fn shards_round_trip_through_gzip_json_lines() {
        let records = vec![
            allocation("b1", "h1", 7_200, Ending::ReleasedEarly),
            allocation("b1", "h2", 7_200, Ending::Healed),
        ];
        let data = encode(&records).unwrap();
        assert_eq!(data[..2], [0x1f, 0x8b], "gzip");
        let back: Vec<Allocation> = decode(&data).unwrap();
        assert_eq!(back, records);
    }

    #[test]
    fn daily_rows_count_hosts_per_allocation_and_waits_per_booking() {
        let mut r3 = allocation("b2", "h3", 60, Ending::Expired);
        r3.provisioning_seconds = None;
        r3.extension_seconds = 3_600;
        let rows = aggregate(&[
            allocation("b1", "h1", 7_200, Ending::ReleasedEarly),
            allocation("b1", "h2", 7_200, Ending::Healed),
            r3,
        ]);
        assert_eq!(rows.len(), 1);
        let u = &rows[0];
        assert_eq!(
            (u.day.as_str(), u.allocations, u.bookings),
            ("2026-12-01", 3, 2)
        );
        assert_eq!(u.host_seconds, 3 * 7_200);
        assert_eq!(u.wait_seconds_sum, 7_260, "one wait per booking");
        assert_eq!(u.wait_histogram[wait_bucket(7_200)], 1);
        assert_eq!(u.wait_histogram[0], 1);
        assert_eq!((u.provisioned, u.provisioning_seconds_sum), (1, 300));
        assert_eq!((u.extended, u.extension_seconds), (1, 3_600));
        assert_eq!(u.endings.get(&Ending::Healed), Some(&1));
        let mut twice = u.clone();
        twice.merge(u);
        assert_eq!(twice.bookings, 4);
        assert_eq!(twice.wait_histogram[0], 2);
    }
}

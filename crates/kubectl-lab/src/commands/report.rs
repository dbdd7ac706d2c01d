//! `kubectl lab report`: how the lab was used over a period, from the operator's allocation
//! history (raw allocations, and the daily usage rows of days already compacted) and the
//! LabHosts there are now.
//!
//! Utilization of a (lab, profile) is the host-hours booked over the host-hours available:
//! its hosts not in maintenance today times the hours of the period (the history records no
//! maintenance windows, so a host in maintenance now counts as out for the whole period).
//! Host-hours are counted on the day a host was released. Waits are per booking; the p95
//! uses exact waits of raw days and the bucket bounds of compacted ones.

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use labpods_api::v1alpha1::{HostState, LABEL_LAB, LabHost};
use labpods_operator::history::record::{WAIT_BUCKETS, aggregate};
use labpods_operator::history::shards::Contents;
use labpods_operator::history::{Allocation, Ending, Usage};
use serde::Serialize;

use crate::cli::{Format, ReportArgs, ReportFormat};
use crate::error::{Error, Result};
use crate::output::{self, Table};
use crate::session::Session;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub from: String,
    pub to: String,
    pub hours: f64,
    pub groups: Vec<Group>,
    pub total: Group,
    pub top_namespaces: Vec<NamespaceRow>,
    /// Utilization of the whole lab per day.
    pub daily: Vec<DayRow>,
    /// Bookings per wait bucket: (upper bound in hours, or None for the open one; count).
    pub wait_histogram: Vec<(Option<f64>, u64)>,
    /// Mean hosts busy per weekday (Monday first) and UTC hour, over hosts available.
    pub occupancy: Vec<Vec<f64>>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub lab: String,
    pub profile: String,
    pub hosts: u64,
    pub host_hours_available: f64,
    pub host_hours_booked: f64,
    pub utilization: f64,
    pub bookings: u64,
    pub allocations: u64,
    pub wait_mean_hours: f64,
    pub wait_p95_hours: f64,
    pub provisioned: u64,
    pub provisioning_success: f64,
    pub provisioning_mean_minutes: f64,
    pub extended: u64,
    pub extension_hours: f64,
    pub failed_hosts: u64,
    pub healed_hosts: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRow {
    pub namespace: String,
    pub bookings: u64,
    pub host_hours: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DayRow {
    pub day: String,
    pub host_hours: f64,
    pub utilization: f64,
}

fn available(hosts: &[LabHost]) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for h in hosts {
        let down = h.spec.maintenance
            || h.status
                .as_ref()
                .and_then(|s| s.state)
                .is_some_and(|s| s == HostState::Maintenance);
        if !down {
            let lab = h.labels().get(LABEL_LAB).cloned().unwrap_or_default();
            *out.entry((lab, h.spec.profile.clone())).or_default() += 1;
        }
    }
    out
}

/// The p95 of weighted values.
fn p95(mut values: Vec<(f64, u64)>) -> f64 {
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = values.iter().map(|v| v.1).sum();
    if total == 0 {
        return 0.0;
    }
    let rank = (total as f64 * 0.95).ceil() as u64;
    let mut seen = 0;
    for (v, n) in values {
        seen += n;
        if seen >= rank {
            return v;
        }
    }
    0.0
}

fn bucket_hours(i: usize) -> f64 {
    WAIT_BUCKETS
        .get(i)
        .or(WAIT_BUCKETS.last())
        .map_or(0.0, |s| *s as f64 / 3_600.0)
}

/// The report of `contents` for `[from, to)` on a lab of `hosts` (pure).
pub fn build(contents: &Contents, hosts: &[LabHost], from: Timestamp, to: Timestamp) -> Report {
    let hours = (to.as_second() - from.as_second()).max(0) as f64 / 3_600.0;
    let mut rows: Vec<Usage> = aggregate(&contents.allocations);
    rows.extend(contents.usage.iter().cloned());
    let capacity = available(hosts);
    // Exact waits where raw records exist, bucket bounds for compacted days.
    let mut waits: BTreeMap<(String, String), Vec<(f64, u64)>> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for a in &contents.allocations {
        if seen.insert(a.booking().to_string()) {
            waits
                .entry((a.lab.clone(), a.profile.clone()))
                .or_default()
                .push((a.wait_seconds as f64 / 3_600.0, 1));
        }
    }
    for u in &contents.usage {
        let w = waits.entry((u.lab.clone(), u.profile.clone())).or_default();
        for (i, n) in u.wait_histogram.iter().enumerate() {
            if *n > 0 {
                w.push((bucket_hours(i), *n));
            }
        }
    }
    let mut groups: BTreeMap<(String, String), (Group, u64, u64)> = BTreeMap::new();
    for (key, n) in &capacity {
        groups.entry(key.clone()).or_default().0.hosts = *n;
    }
    let mut namespaces: BTreeMap<String, NamespaceRow> = BTreeMap::new();
    let mut daily: BTreeMap<String, f64> = BTreeMap::new();
    let mut histogram = vec![0u64; WAIT_BUCKETS.len() + 1];
    for u in &rows {
        let (g, wait_sum, provisioning_sum) = groups
            .entry((u.lab.clone(), u.profile.clone()))
            .or_default();
        g.host_hours_booked += u.host_seconds as f64 / 3_600.0;
        g.bookings += u.bookings;
        g.allocations += u.allocations;
        *wait_sum += u.wait_seconds_sum;
        g.provisioned += u.provisioned;
        *provisioning_sum += u.provisioning_seconds_sum;
        g.extended += u.extended;
        g.extension_hours += u.extension_seconds as f64 / 3_600.0;
        g.failed_hosts += u.endings.get(&Ending::Failed).copied().unwrap_or(0);
        g.healed_hosts += u.endings.get(&Ending::Healed).copied().unwrap_or(0);
        let ns = namespaces
            .entry(u.namespace.clone())
            .or_insert_with(|| NamespaceRow {
                namespace: u.namespace.clone(),
                bookings: 0,
                host_hours: 0.0,
            });
        ns.bookings += u.bookings;
        ns.host_hours += u.host_seconds as f64 / 3_600.0;
        *daily.entry(u.day.clone()).or_default() += u.host_seconds as f64 / 3_600.0;
        for (i, n) in u.wait_histogram.iter().enumerate() {
            if let Some(h) = histogram.get_mut(i) {
                *h += n;
            }
        }
    }
    let finish = |key: &(String, String),
                  (mut g, wait_sum, provisioning_sum): (Group, u64, u64)| {
        g.lab = key.0.clone();
        g.profile = key.1.clone();
        g.host_hours_available = g.hosts as f64 * hours;
        g.utilization = ratio(g.host_hours_booked, g.host_hours_available);
        g.wait_mean_hours = ratio(wait_sum as f64 / 3_600.0, g.bookings as f64);
        g.wait_p95_hours = p95(waits.get(key).cloned().unwrap_or_default());
        g.provisioning_success = ratio(g.provisioned as f64, g.bookings as f64);
        g.provisioning_mean_minutes = ratio(provisioning_sum as f64 / 60.0, g.provisioned as f64);
        g
    };
    let mut total = (Group::default(), 0u64, 0u64);
    let mut all_waits = Vec::new();
    for w in waits.values() {
        all_waits.extend(w.iter().copied());
    }
    let groups: Vec<Group> = groups
        .into_iter()
        .map(|(key, (g, ws, ps))| {
            let t = &mut total;
            t.0.hosts += g.hosts;
            t.0.host_hours_booked += g.host_hours_booked;
            t.0.bookings += g.bookings;
            t.0.allocations += g.allocations;
            t.0.provisioned += g.provisioned;
            t.0.extended += g.extended;
            t.0.extension_hours += g.extension_hours;
            t.0.failed_hosts += g.failed_hosts;
            t.0.healed_hosts += g.healed_hosts;
            t.1 += ws;
            t.2 += ps;
            finish(&key, (g, ws, ps))
        })
        .collect();
    let mut total = finish(&("all".into(), "all".into()), total);
    total.wait_p95_hours = p95(all_waits);
    // A booking with hosts of two profiles is one booking of the lab, with one extension
    // (compacted days keep counts per profile only).
    let raw = per_booking_extensions(&contents.allocations);
    total.bookings = raw.len() as u64 + contents.usage.iter().map(|u| u.bookings).sum::<u64>();
    total.extended = raw.values().filter(|s| **s > 0).count() as u64
        + contents.usage.iter().map(|u| u.extended).sum::<u64>();
    total.extension_hours = (raw.values().sum::<u64>()
        + contents
            .usage
            .iter()
            .map(|u| u.extension_seconds)
            .sum::<u64>()) as f64
        / 3_600.0;
    let mut top: Vec<NamespaceRow> = namespaces.into_values().collect();
    top.sort_by(|a, b| {
        b.host_hours
            .total_cmp(&a.host_hours)
            .then(a.namespace.cmp(&b.namespace))
    });
    top.truncate(10);
    let lab_hosts = total.hosts as f64;
    let daily = daily
        .into_iter()
        .map(|(day, host_hours)| DayRow {
            utilization: ratio(host_hours, lab_hosts * 24.0),
            day,
            host_hours,
        })
        .collect();
    let wait_histogram = histogram
        .iter()
        .enumerate()
        .map(|(i, n)| (WAIT_BUCKETS.get(i).map(|s| *s as f64 / 3_600.0), *n))
        .collect();
    Report {
        from: output::time(from),
        to: output::time(to),
        hours,
        groups,
        total,
        top_namespaces: top,
        daily,
        wait_histogram,
        occupancy: occupancy(contents, from, to, lab_hosts),
    }
}

/// Each raw booking and the time added to it. Every host of a booking records the same
/// extension, except one replaced (Healed) before it was granted: the largest is the
/// booking's.
fn per_booking_extensions(allocations: &[Allocation]) -> BTreeMap<&str, u64> {
    let mut bookings: BTreeMap<&str, u64> = BTreeMap::new();
    for a in allocations {
        let seconds = bookings.entry(a.booking()).or_default();
        *seconds = (*seconds).max(a.extension_seconds);
    }
    bookings
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Mean share of the lab's hosts busy per (weekday, UTC hour) over the raw allocations.
fn occupancy(contents: &Contents, from: Timestamp, to: Timestamp, hosts: f64) -> Vec<Vec<f64>> {
    let mut busy = vec![vec![0.0f64; 24]; 7];
    let mut slots = vec![vec![0u64; 24]; 7];
    let hour = SignedDuration::from_hours(1);
    let start = Timestamp::from_second(from.as_second() - from.as_second().rem_euclid(3_600))
        .unwrap_or(from);
    let mut t = start;
    while t < to {
        let (d, h) = weekday_hour(t);
        slots[d][h] += 1;
        t += hour;
    }
    for a in &contents.allocations {
        let (s, e) = (a.start.max(from), a.released_at.min(to));
        let mut t =
            Timestamp::from_second(s.as_second() - s.as_second().rem_euclid(3_600)).unwrap_or(s);
        while t < e {
            let next = t + hour;
            let covered = (e.min(next).as_second() - s.max(t).as_second()).max(0) as f64;
            let (d, h) = weekday_hour(t);
            busy[d][h] += covered / 3_600.0;
            t = next;
        }
    }
    busy.iter()
        .zip(&slots)
        .map(|(b, n)| {
            b.iter()
                .zip(n)
                .map(|(b, n)| ratio(*b, *n as f64 * hosts).min(1.0))
                .collect()
        })
        .collect()
}

fn weekday_hour(t: Timestamp) -> (usize, usize) {
    let secs = t.as_second();
    // 1970-01-01 was a Thursday (index 3 with Monday 0).
    let days = secs.div_euclid(86_400);
    let weekday = (days + 3).rem_euclid(7) as usize;
    let hour = (secs.rem_euclid(86_400) / 3_600) as usize;
    (weekday, hour)
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rendering {
    Table,
    Csv,
    Html,
    /// `-o json|yaml`, or `--format json`.
    Structured(Format),
}

/// `--format` when given, else `-o` (json and yaml as every command prints them). Both given
/// must ask for the same thing: `--format csv -o yaml` has no answer, so it is refused
/// rather than one of them silently winning.
fn rendering(format: Option<ReportFormat>, o: Format) -> Result<Rendering> {
    match (format, o) {
        (None, Format::Table) | (Some(ReportFormat::Table), Format::Table) => Ok(Rendering::Table),
        (None, o) => Ok(Rendering::Structured(o)),
        (Some(ReportFormat::Json), Format::Table | Format::Json) => {
            Ok(Rendering::Structured(Format::Json))
        }
        (Some(ReportFormat::Csv), Format::Table) => Ok(Rendering::Csv),
        (Some(ReportFormat::Html), Format::Table) => Ok(Rendering::Html),
        (Some(f), o) => Err(Error::Usage(format!(
            "--format {} and -o {} ask for two different outputs: give one of them \
             (--format table|csv|json|html, or -o json|yaml)",
            name(f),
            name(o)
        ))),
    }
}

/// A flag value as the user types it.
fn name(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

pub async fn run(session: &Session, args: &ReportArgs, out: &mut dyn Write) -> Result<()> {
    let since = output::parse_length("--since", &args.since)?;
    // A usage error before any request.
    let rendering = rendering(args.format, session.format)?;
    let to = session.now;
    let from = to - since;
    let hosts = session.labhosts().await?;
    let contents = session.history(&args.history_namespace, from, to).await?;
    let report = build(&contents, &hosts, from, to);
    match rendering {
        Rendering::Structured(format) => {
            output::structured(out, format, &report)?;
        }
        Rendering::Csv => csv(&report, out)?,
        Rendering::Table => table(&report, session, out)?,
        Rendering::Html => write!(out, "{}", super::report_html::html(&report))?,
    }
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn hours(x: f64) -> String {
    format!("{x:.1}")
}

fn csv(report: &Report, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "lab,profile,hosts,host_hours_available,host_hours_booked,utilization,bookings,allocations,wait_mean_hours,wait_p95_hours,provisioning_success,provisioning_mean_minutes,extended,extension_hours,failed_hosts,healed_hosts"
    )?;
    for g in report.groups.iter().chain(std::iter::once(&report.total)) {
        writeln!(
            out,
            "{},{},{},{:.2},{:.2},{:.4},{},{},{:.2},{:.2},{:.4},{:.1},{},{:.2},{},{}",
            g.lab,
            g.profile,
            g.hosts,
            g.host_hours_available,
            g.host_hours_booked,
            g.utilization,
            g.bookings,
            g.allocations,
            g.wait_mean_hours,
            g.wait_p95_hours,
            g.provisioning_success,
            g.provisioning_mean_minutes,
            g.extended,
            g.extension_hours,
            g.failed_hosts,
            g.healed_hosts
        )?;
    }
    Ok(())
}

fn table(report: &Report, session: &Session, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "Lab usage {} -> {} ({:.0} h)\n",
        report.from, report.to, report.hours
    )?;
    let mut t = Table::new([
        "lab",
        "profile",
        "hosts",
        "booked h",
        "util",
        "bookings",
        "wait mean h",
        "wait p95 h",
        "provisioned",
        "prov min",
        "extended",
    ]);
    for g in report.groups.iter().chain(std::iter::once(&report.total)) {
        t.row(vec![
            g.lab.as_str().into(),
            g.profile.as_str().into(),
            g.hosts.to_string().into(),
            hours(g.host_hours_booked).into(),
            pct(g.utilization).into(),
            g.bookings.to_string().into(),
            hours(g.wait_mean_hours).into(),
            hours(g.wait_p95_hours).into(),
            pct(g.provisioning_success).into(),
            format!("{:.1}", g.provisioning_mean_minutes).into(),
            g.extended.to_string().into(),
        ]);
    }
    t.print(out, session.colour)?;
    if !report.top_namespaces.is_empty() {
        writeln!(out)?;
        let mut t = Table::new(["namespace", "bookings", "host hours"]);
        for n in &report.top_namespaces {
            t.row(vec![
                n.namespace.as_str().into(),
                n.bookings.to_string().into(),
                hours(n.host_hours).into(),
            ]);
        }
        t.print(out, session.colour)?;
    }
    Ok(())
}

/// The wait bucket of `seconds`, as the report's histogram labels it.
pub fn wait_label(i: usize) -> String {
    match WAIT_BUCKETS.get(i) {
        Some(s) if *s < 3_600 => format!("≤{}m", s / 60),
        Some(s) if *s < 86_400 => format!("≤{}h", s / 3_600),
        Some(s) => format!("≤{}d", s / 86_400),
        None => format!(">{}d", WAIT_BUCKETS.last().map_or(0, |s| s / 86_400)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use labpods_api::v1alpha1::{LabHostSpec, SecretReference};

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn host(name: &str, lab: &str, profile: &str, maintenance: bool) -> LabHost {
        let mut h = LabHost::new(
            name,
            LabHostSpec::new("http://127.0.0.1:1", profile, SecretReference::default()),
        );
        h.metadata.labels = Some([(LABEL_LAB.to_string(), lab.to_string())].into());
        h.spec.maintenance = maintenance;
        h
    }

    #[allow(clippy::too_many_arguments)]
    fn alloc(
        booking: &str,
        host: &str,
        start: &str,
        end: &str,
        wait_h: u64,
        prov: Option<u64>,
        ext: u64,
        ending: Ending,
    ) -> Allocation {
        Allocation {
            id: format!("{booking}/{host}"),
            host: host.into(),
            profile: "large".into(),
            lab: "lab-a".into(),
            namespace: if booking == "b1" { "team-a" } else { "team-b" }.into(),
            request: booking.into(),
            role: "node".into(),
            requested_start: Some(at(start) - SignedDuration::from_hours(wait_h as i64)),
            start: at(start),
            end: at(end),
            released_at: at(end),
            ending,
            wait_seconds: wait_h * 3_600,
            provisioning_seconds: prov,
            extension_seconds: ext,
        }
    }

    /// Raw days for lab-a, a compacted day for lab-b; every figure worked out by hand.
    pub fn known() -> (Contents, Vec<LabHost>, Timestamp, Timestamp) {
        let compacted = Usage {
            day: "2026-03-01".into(),
            lab: "lab-b".into(),
            profile: "small".into(),
            namespace: "team-c".into(),
            allocations: 1,
            bookings: 1,
            host_seconds: 24 * 3_600,
            wait_seconds_sum: 4 * 3_600,
            wait_histogram: {
                let mut h = vec![0; WAIT_BUCKETS.len() + 1];
                h[labpods_operator::history::record::wait_bucket(4 * 3_600)] = 1;
                h
            },
            provisioned: 1,
            provisioning_seconds_sum: 300,
            ..Usage::default()
        };
        let contents = Contents {
            allocations: vec![
                alloc(
                    "b1",
                    "h1",
                    "2026-03-02T00:00:00Z",
                    "2026-03-03T00:00:00Z",
                    2,
                    Some(600),
                    3_600,
                    Ending::Expired,
                ),
                alloc(
                    "b1",
                    "h2",
                    "2026-03-02T00:00:00Z",
                    "2026-03-03T00:00:00Z",
                    2,
                    Some(600),
                    3_600,
                    Ending::Expired,
                ),
                alloc(
                    "b2",
                    "h1",
                    "2026-03-05T00:00:00Z",
                    "2026-03-05T12:00:00Z",
                    10,
                    None,
                    0,
                    Ending::Failed,
                ),
            ],
            usage: vec![compacted],
        };
        let hosts = vec![
            host("h1", "lab-a", "large", false),
            host("h2", "lab-a", "large", false),
            host("h3", "lab-a", "large", true),
            host("h4", "lab-b", "small", false),
        ];
        (
            contents,
            hosts,
            at("2026-03-01T00:00:00Z"),
            at("2026-03-11T00:00:00Z"),
        )
    }

    #[test]
    fn a_known_history_gives_known_utilization_waits_and_provisioning() {
        let (contents, hosts, from, to) = known();
        let r = build(&contents, &hosts, from, to);
        assert_eq!(r.hours, 240.0);
        let a = &r.groups[0];
        assert_eq!(
            (a.lab.as_str(), a.profile.as_str(), a.hosts),
            ("lab-a", "large", 2),
            "maintenance excluded"
        );
        assert_eq!((a.host_hours_available, a.host_hours_booked), (480.0, 60.0));
        assert_eq!(a.utilization, 0.125);
        assert_eq!((a.bookings, a.allocations), (2, 3));
        assert_eq!((a.wait_mean_hours, a.wait_p95_hours), (6.0, 10.0));
        assert_eq!(
            (
                a.provisioned,
                a.provisioning_success,
                a.provisioning_mean_minutes
            ),
            (1, 0.5, 10.0)
        );
        assert_eq!((a.extended, a.extension_hours, a.failed_hosts), (1, 1.0, 1));
        let b = &r.groups[1];
        assert_eq!((b.lab.as_str(), b.hosts, b.utilization), ("lab-b", 1, 0.1));
        assert_eq!(
            (b.wait_mean_hours, b.wait_p95_hours),
            (4.0, 4.0),
            "a compacted day's p95 is its bucket bound"
        );
        let t = &r.total;
        assert_eq!((t.hosts, t.host_hours_booked, t.bookings), (3, 84.0, 3));
        assert!((t.utilization - 84.0 / 720.0).abs() < 1e-9);
        assert_eq!(t.wait_p95_hours, 10.0);
        assert_eq!(r.top_namespaces[0].namespace, "team-a");
        assert_eq!(r.top_namespaces[0].host_hours, 48.0);
        assert_eq!(
            r.daily.iter().map(|d| d.day.as_str()).collect::<Vec<_>>(),
            ["2026-03-01", "2026-03-03", "2026-03-05"]
        );
        // 2026-03-02 is a Monday: 2 of 3 hosts busy all day, one of the period's 2 Mondays.
        assert!(
            (r.occupancy[0][5] - 1.0 / 3.0).abs() < 1e-9,
            "{:?}",
            r.occupancy[0]
        );
        assert_eq!(r.occupancy[1][5], 0.0);
        assert_eq!(r.wait_histogram.iter().map(|w| w.1).sum::<u64>(), 3);
    }

    #[test]
    fn a_booking_across_two_profiles_counts_its_extension_once_in_the_lab_total() {
        let (start, end) = ("2026-03-02T00:00:00Z", "2026-03-02T12:00:00Z");
        let mut small = alloc("m", "h4", start, end, 1, Some(600), 3_600, Ending::Expired);
        small.profile = "small".into();
        let contents = Contents {
            allocations: vec![
                alloc("m", "h1", start, end, 1, Some(600), 3_600, Ending::Expired),
                small,
                // Replaced before the extension was granted: it recorded none.
                alloc(
                    "m",
                    "h2",
                    start,
                    "2026-03-02T01:00:00Z",
                    1,
                    None,
                    0,
                    Ending::Healed,
                ),
                alloc("n", "h2", start, end, 1, Some(600), 0, Ending::Expired),
            ],
            usage: vec![Usage {
                day: "2026-03-01".into(),
                lab: "lab-a".into(),
                profile: "large".into(),
                namespace: "team-c".into(),
                allocations: 1,
                bookings: 1,
                extended: 1,
                extension_seconds: 2 * 3_600,
                ..Usage::default()
            }],
        };
        let hosts = vec![
            host("h1", "lab-a", "large", false),
            host("h2", "lab-a", "large", false),
            host("h4", "lab-a", "small", false),
        ];
        let r = build(
            &contents,
            &hosts,
            at("2026-03-01T00:00:00Z"),
            at("2026-03-03T00:00:00Z"),
        );
        let profile = |p: &str| r.groups.iter().find(|g| g.profile == p).unwrap();
        // Each profile's row shows the booking's extension: it is that profile's view.
        assert_eq!(
            (profile("large").extended, profile("large").extension_hours),
            (2, 3.0),
            "m's hour and the compacted day's two"
        );
        assert_eq!(
            (profile("small").extended, profile("small").extension_hours),
            (1, 1.0)
        );
        // The lab extended m once by 1 h, and the compacted booking by 2 h.
        let t = &r.total;
        assert_eq!(t.bookings, 3, "m, n and the compacted one");
        assert_eq!((t.extended, t.extension_hours), (2, 3.0));
    }

    #[test]
    fn o_yaml_and_o_json_print_the_figures_and_a_clash_with_format_names_both_flags() {
        use ReportFormat as F;
        assert_eq!(rendering(None, Format::Table).unwrap(), Rendering::Table);
        assert_eq!(
            rendering(None, Format::Yaml).unwrap(),
            Rendering::Structured(Format::Yaml)
        );
        assert_eq!(
            rendering(None, Format::Json).unwrap(),
            Rendering::Structured(Format::Json)
        );
        assert_eq!(
            rendering(Some(F::Json), Format::Json).unwrap(),
            Rendering::Structured(Format::Json)
        );
        assert_eq!(
            rendering(Some(F::Csv), Format::Table).unwrap(),
            Rendering::Csv
        );
        let clash = rendering(Some(F::Csv), Format::Yaml).unwrap_err();
        assert_eq!(clash.exit_code(), 2);
        assert!(
            clash
                .to_string()
                .starts_with("--format csv and -o yaml ask for two different outputs"),
            "{clash}"
        );
        assert!(clash.to_string().contains("-o json|yaml"), "{clash}");
        // The YAML holds the same figures as the JSON.
        let (contents, hosts, from, to) = known();
        let r = build(&contents, &hosts, from, to);
        let mut yaml = Vec::new();
        output::structured(&mut yaml, Format::Yaml, &r).unwrap();
        let yaml: serde_json::Value = serde_yaml::from_slice(&yaml).unwrap();
        assert_eq!(yaml, serde_json::to_value(&r).unwrap());
        assert_eq!(yaml["total"]["bookings"], 3);
    }

    #[test]
    fn csv_and_html_carry_the_same_figures() {
        let (contents, hosts, from, to) = known();
        let r = build(&contents, &hosts, from, to);
        let mut out = Vec::new();
        csv(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("lab,profile,hosts,host_hours_available"));
        assert!(
            lines[1].starts_with(
                "lab-a,large,2,480.00,60.00,0.1250,2,3,6.00,10.00,0.5000,10.0,1,1.00,1,0"
            ),
            "{}",
            lines[1]
        );
        let html = super::super::report_html::html(&r);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            !html.contains("<script") && !html.contains("src=") && !html.contains("href="),
            "self-contained"
        );
        assert_eq!(html.matches("class=\"cell\"").count(), 7 * 24);
        assert_eq!(
            html.matches("class=\"bar\"").count(),
            3 + WAIT_BUCKETS.len() + 1
        );
        assert!(
            html.contains("<b>11.7%</b> utilization, <b>3</b> bookings"),
            "{html}"
        );
    }
}

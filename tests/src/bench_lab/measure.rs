//! What the lab benchmark reads from outside the operator: a process's memory and CPU time in
//! /proc, samples of Prometheus text (the apiserver's and the operator's /metrics), quantiles
//! of latencies some of which were never reached.

use std::collections::BTreeMap;
use std::time::Duration;

/// One process's memory and CPU time.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// VmHWM: the peak resident set so far.
    pub peak_kib: u64,
    /// VmRSS: resident now.
    pub rss_kib: u64,
    /// utime + stime.
    pub cpu_seconds: f64,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat`; None once the process is gone.
pub fn sample_process(pid: u32, ticks_per_second: f64) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(ProcSample {
        peak_kib: status_kib(&status, "VmHWM:")?,
        rss_kib: status_kib(&status, "VmRSS:")?,
        cpu_seconds: cpu_ticks(&stat)? as f64 / ticks_per_second,
    })
}

/// A `Key:   123 kB` line of /proc/<pid>/status.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// utime + stime (fields 14 and 15) of /proc/<pid>/stat, in clock ticks. The command (field
/// 2) is in parentheses and may hold spaces, so fields are counted from its closing one.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_command = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    // `after_command` starts at field 3 (state).
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we know of,
/// the fallback when getconf is missing).
pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Every sample of metric `name` in Prometheus' text format: its labels and value.
pub fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(rest) => {
                    let end = rest.rfind('}')?;
                    (parse_labels(&rest[..end]), &rest[end + 1..])
                }
                None if rest.starts_with(' ') => (BTreeMap::new(), rest),
                None => return None,
            };
            let value = value.split_whitespace().next()?.parse().ok()?;
            Some((labels, value))
        })
        .collect()
}

/// `a="x",b="y \"quoted\""` into a map.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let name = name.trim_matches(|c: char| c == ',' || c.is_whitespace());
        if name.is_empty() || chars.next() != Some('"') {
            return labels;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(escaped) => value.push(escaped),
                    None => break,
                },
                c => value.push(c),
            }
        }
        labels.insert(name.to_string(), value);
    }
}

/// Sums `name`'s samples by the labels `key` picks out, as of `later` minus as of `earlier`
/// (counters: what happened in between).
pub fn counter_delta<K: Ord>(
    earlier: &str,
    later: &str,
    name: &str,
    key: impl Fn(&BTreeMap<String, String>) -> Option<K>,
) -> BTreeMap<K, f64> {
    let mut delta = BTreeMap::new();
    for (text, sign) in [(later, 1.0), (earlier, -1.0)] {
        for (labels, value) in samples(text, name) {
            if let Some(k) = key(&labels) {
                *delta.entry(k).or_insert(0.0) += sign * value;
            }
        }
    }
    delta.retain(|_, v| *v != 0.0);
    delta
}

/// A quantile of latencies, some possibly never reached (a booking not bound by the end).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantile {
    At(Duration),
    /// The quantile falls among the ones never reached: longer than the run allowed.
    NotReached,
}

impl Quantile {
    pub fn seconds(self) -> Option<f64> {
        match self {
            Self::At(d) => Some(d.as_secs_f64()),
            Self::NotReached => None,
        }
    }
}

impl std::fmt::Display for Quantile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::At(d) => write!(f, "{}", seconds(d.as_secs_f64())),
            Self::NotReached => f.write_str("not reached"),
        }
    }
}

/// The `q`-quantile (nearest rank) of `values`, a None counting as longer than any reached.
/// None when there are no values.
pub fn quantile(values: &[Option<Duration>], q: f64) -> Option<Quantile> {
    if values.is_empty() {
        return None;
    }
    let mut reached: Vec<Duration> = values.iter().flatten().copied().collect();
    reached.sort();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(
        reached
            .get(rank - 1)
            .map_or(Quantile::NotReached, |d| Quantile::At(*d)),
    )
}

/// Seconds as people read them: milliseconds under 10 s, tenths above.
pub fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_counted_after_the_command_however_it_is_named() {
        let stat =
            "4242 (labpods (x) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(325));
    }

    #[test]
    fn status_lines_give_kibibytes() {
        let status = "Name:\tlabpods\nVmHWM:\t  123456 kB\nVmRSS:\t   98765 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(123_456));
        assert_eq!(status_kib(status, "VmRSS:"), Some(98_765));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn samples_and_deltas_by_label() {
        let before = "# TYPE apiserver_request_total counter\n\
            apiserver_request_total{code=\"200\",resource=\"labhosts\",verb=\"GET\"} 10\n\
            apiserver_request_total{code=\"404\",resource=\"labhosts\",verb=\"GET\"} 1\n\
            apiserver_request_total_other{verb=\"GET\"} 99\n";
        let after = "apiserver_request_total{code=\"200\",resource=\"labhosts\",verb=\"GET\"} 25\n\
            apiserver_request_total{code=\"404\",resource=\"labhosts\",verb=\"GET\"} 3\n\
            apiserver_request_total{code=\"201\",resource=\"leases\",verb=\"POST\"} 4 1700000000\n";
        let delta = counter_delta(before, after, "apiserver_request_total", |l| {
            Some((l.get("resource")?.clone(), l.get("verb")?.clone()))
        });
        assert_eq!(
            delta,
            BTreeMap::from([
                (("labhosts".to_string(), "GET".to_string()), 17.0),
                (("leases".to_string(), "POST".to_string()), 4.0),
            ])
        );
        let escaped = samples("m{a=\"x \\\"y\\\", z\",b=\"\"} 2\nm 3\n", "m");
        assert_eq!(escaped.len(), 2);
        assert_eq!(
            escaped[0].0.get("a").map(String::as_str),
            Some("x \"y\", z")
        );
        assert_eq!(escaped[0].0.get("b").map(String::as_str), Some(""));
        assert_eq!(escaped[1].1, 3.0);
    }

    #[test]
    fn quantiles_count_the_unreached_as_longest() {
        let s = Duration::from_secs;
        let values = [Some(s(3)), Some(s(1)), None, Some(s(2))];
        assert_eq!(quantile(&values, 0.5), Some(Quantile::At(s(2))));
        assert_eq!(quantile(&values, 0.75), Some(Quantile::At(s(3))));
        assert_eq!(quantile(&values, 0.99), Some(Quantile::NotReached));
        assert_eq!(quantile(&[], 0.5), None);
    }
}

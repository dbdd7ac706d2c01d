//! Benchmark 2's figures: how fast the operator reimages a lab's worth of hosts, against the
//! bound its Redfish limits allow, a row per pair of limits.
//!
//! The bound: every Redfish operation (a power state read, a media insert: one or more
//! requests) holds one of `bmc.globalConcurrency` slots while it runs, and the operator's
//! own metric (`labpods_redfish_request_duration_seconds`) says how long the operations of
//! the burst held them, so no more than `global x 60 s / (slot-seconds per host)` hosts a
//! minute get through. Counting the BMCs' requests x their answer time instead is no bound:
//! an operation may send two requests at once (`bmc.perBmcConcurrency`) under one slot.
//! Each host here has a BMC of its own, so the per-BMC limit only shortens operations that
//! read several resources, which the rows with per-BMC 1 and 2 show.

use std::fmt::Write as _;
use std::time::Duration;

use super::measure::seconds;
use super::report::Report;

/// Target: hosts reimaged per minute with limits a real lab could use.
pub const HOSTS_PER_MINUTE_TARGET: f64 = 1000.0;
/// Target: the throughput's share of the bound.
pub const OF_BOUND_TARGET: f64 = 0.8;

impl Report {
    /// Hosts per minute through the pipeline: the burst's hosts over its wall time less the
    /// time one booking takes alone (which the last host needs however free the BMCs were).
    pub fn hosts_per_minute(&self) -> Option<f64> {
        let b = self.bookings.as_ref()?;
        let span = b.all_ready?.checked_sub(self.alone?)?;
        (span >= Duration::from_secs(1)).then(|| b.ready_hosts as f64 / span.as_secs_f64() * 60.0)
    }

    /// The hosts per minute `bmc.globalConcurrency` allows (the module's documentation).
    pub fn bound_per_minute(&self) -> Option<f64> {
        let b = self.bookings.as_ref()?;
        let per_host = b.redfish_seconds / b.ready_hosts as f64;
        (b.ready_hosts > 0 && per_host > 0.0).then(|| self.limits.global as f64 * 60.0 / per_host)
    }

    /// Seconds of a global slot each host of the burst took.
    fn slot_seconds_per_host(&self) -> Option<f64> {
        let b = self.bookings.as_ref()?;
        (b.ready_hosts > 0).then(|| b.redfish_seconds / b.ready_hosts as f64)
    }

    fn of_bound(&self) -> Option<f64> {
        Some(self.hosts_per_minute()? / self.bound_per_minute()?)
    }
}

/// One row per run, and whether each met the targets.
pub fn reimage_table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| limits global / per-BMC | hosts at once | Redfish requests per host | slot-seconds per host | one booking alone | all at once: first create -> last Ready | hosts per minute | bound | of bound | targets (>= 1,000 a minute, >= 0.8 of bound) |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let figure = |v: Option<f64>, format: fn(f64) -> String| v.map_or("-".to_string(), format);
    for r in reports {
        let b = r.bookings.clone().unwrap_or_default();
        let verdict = match (r.hosts_per_minute(), r.of_bound()) {
            _ if r.failure.is_some() => "not completed".to_string(),
            (Some(rate), Some(share)) => {
                let met = |ok: bool| if ok { "met" } else { "missed" };
                format!(
                    "{} / {}",
                    met(rate >= HOSTS_PER_MINUTE_TARGET),
                    met(share >= OF_BOUND_TARGET)
                )
            }
            _ => "not measured".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} of {} Ready | {} | {} | {} | {} | {} | {} | {} | {verdict} |",
            r.limits,
            b.ready_hosts,
            b.created * super::REIMAGE_SIZE as usize,
            figure(b.calls_to_ready, |c| format!("{c:.1}")),
            figure(r.slot_seconds_per_host(), |s| format!("{s:.1} s")),
            figure(r.alone.map(|d| d.as_secs_f64()), seconds),
            figure(b.all_ready.map(|d| d.as_secs_f64()), seconds),
            figure(r.hosts_per_minute(), |v| format!("{v:.0}")),
            figure(r.bound_per_minute(), |v| format!("{v:.0}")),
            figure(r.of_bound(), |v| format!("{v:.2}")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_lab::Limits;
    use crate::bench_lab::report::Bookings;

    fn report(alone: u64, all_ready: u64, hosts: usize, redfish_seconds: f64) -> Report {
        Report {
            latency: Duration::from_millis(200),
            limits: Limits {
                global: 128,
                per_bmc: 2,
            },
            alone: Some(Duration::from_secs(alone)),
            bookings: Some(Bookings {
                created: hosts / 8,
                ready_hosts: hosts,
                all_ready: Some(Duration::from_secs(all_ready)),
                calls_to_ready: Some(32.0),
                redfish_seconds,
                ..Bookings::default()
            }),
            ..Report::default()
        }
    }

    #[test]
    fn throughput_is_the_burst_past_one_reimage_against_the_global_limit() {
        // 960 hosts 60 s past the 70 s one booking takes alone: 960 a minute; 128 slots and
        // 7.5 slot-seconds a host allow 1,024.
        let r = report(70, 130, 960, 7.5 * 960.0);
        assert_eq!(r.hosts_per_minute(), Some(960.0));
        assert_eq!(r.bound_per_minute(), Some(1024.0));
        let table = reimage_table(&[r]);
        assert!(table.contains("| 128/2 | 960 of 960 Ready |"), "{table}");
        assert!(table.contains("| 7.5 s |"), "{table}");
        assert!(table.contains("| 0.94 | missed / met |"), "{table}");
    }

    #[test]
    fn a_burst_done_within_one_reimage_has_no_throughput_to_claim() {
        let r = report(70, 70, 960, 7.5 * 960.0);
        assert_eq!(r.hosts_per_minute(), None);
        assert!(reimage_table(&[r]).contains("not measured"));
    }
}

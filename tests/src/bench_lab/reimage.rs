//! Benchmark 2's figures: how fast the operator reimages a lab's worth of hosts, against the
//! bound its Redfish limits allow, a row per pair of limits.
//!
//! The bound: every Redfish operation (a power state read, a media insert: one or more
//! requests) holds one of `bmc.globalConcurrency` slots while it runs, and the operator's
//! own metric (`labpods_redfish_request_duration_seconds`) says how long the operations of
//! the burst held them. No schedule finishes the burst before its slot-seconds fit in the
//! slots (`hosts x slot-seconds per host / global`), nor before one booking alone does: the
//! larger of the two is the fastest wall time the limits allow, and its share of the
//! measured wall time is the run's share of the bound. Counting the BMCs' requests x their answer time instead is no bound:
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

    /// The fastest wall time the limits allow (the module's documentation), in seconds.
    pub fn bound_seconds(&self) -> Option<f64> {
        let b = self.bookings.as_ref()?;
        let slots = b.redfish_seconds / self.limits.global as f64;
        Some(slots.max(self.alone?.as_secs_f64()))
    }

    /// Seconds of a global slot each host of the burst took.
    fn slot_seconds_per_host(&self) -> Option<f64> {
        let b = self.bookings.as_ref()?;
        (b.ready_hosts > 0).then(|| b.redfish_seconds / b.ready_hosts as f64)
    }

    fn of_bound(&self) -> Option<f64> {
        let wall = self.bookings.as_ref()?.all_ready?.as_secs_f64();
        (wall > 0.0).then_some(self.bound_seconds()? / wall)
    }
}

/// One row per run, and whether each met the targets.
pub fn reimage_table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| limits global / per-BMC | hosts at once | Redfish requests per host | slot-seconds per host | one booking alone | all at once: first create -> last Ready | hosts per minute | fastest the limits allow | of bound | targets (>= 1,000 a minute, >= 0.8 of bound) |\n|---|---|---|---|---|---|---|---|---|---|\n",
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
            figure(r.bound_seconds(), seconds),
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
    fn throughput_is_the_burst_past_one_reimage_and_the_bound_the_fastest_wall() {
        // 960 hosts 60 s past the 70 s one booking takes alone: 960 a minute. 128 slots and
        // 8 slot-seconds a host need 60 s, less than one booking alone: 70 of 130 s.
        let r = report(70, 130, 960, 8.0 * 960.0);
        assert_eq!(r.hosts_per_minute(), Some(960.0));
        assert_eq!(r.bound_seconds(), Some(70.0));
        // 16 slot-seconds a host need 120 s: the slots bound it.
        assert_eq!(
            report(70, 130, 960, 16.0 * 960.0).bound_seconds(),
            Some(120.0)
        );
        let table = reimage_table(&[r]);
        assert!(table.contains("| 128/2 | 960 of 960 Ready |"), "{table}");
        assert!(table.contains("| 8.0 s |"), "{table}");
        assert!(table.contains("| 0.54 | missed / missed |"), "{table}");
    }

    #[test]
    fn a_burst_done_within_one_reimage_has_no_throughput_to_claim() {
        let r = report(70, 70, 960, 8.0 * 960.0);
        assert_eq!(r.hosts_per_minute(), None);
        assert!(reimage_table(&[r]).contains("not measured"));
    }
}

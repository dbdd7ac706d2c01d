//! Healing: a replacement for a host that failed during a lease.

use chrono::{DateTime, Utc};

use super::calendar::Calendar;
use super::lab::{Lab, NO_RACK};
use super::model::{PlanInput, RequestKey, Role, Time};

/// The lease that lost a host, and for which window it needs a replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpareQuery<'a> {
    pub owner: &'a RequestKey,
    pub role: &'a Role,
    pub failed_host: &'a str,
    pub end: Time,
}

/// A schedulable, unclaimed host matching the role and free from now until the lease ends,
/// honouring every reservation. Prefers the failed host's rack, then tight packing, then
/// name. None when nothing fits: the lease reports Degraded.
pub fn find_spare(query: &SpareQuery<'_>, lab: &PlanInput) -> Option<String> {
    let index = Lab::new(&lab.hosts, &lab.policy.rack_label);
    let calendar = Calendar::new(
        &lab.hosts,
        &lab.reservations,
        |n| index.index(n),
        lab.now,
        lab.policy.release_allowance,
    );
    let failed_rack = index
        .index(query.failed_host)
        .map_or(NO_RACK, |i| index.rack[i]);
    let busy_from = query.end + lab.policy.release_allowance;
    index
        .candidates(query.role)
        .schedulable
        .iter()
        .copied()
        .filter(|&h| {
            let host = &lab.hosts[h];
            host.name != query.failed_host
                && host.claim.is_none()
                && calendar.is_free(h, lab.now, query.end, Some(query.owner))
        })
        .min_by_key(|&h| {
            let same_rack = failed_rack != NO_RACK && index.rack[h] == failed_rack;
            let tight = calendar
                .next_busy_start(h, busy_from)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            (!same_rack, tight, index.rank[h])
        })
        .map(|h| lab.hosts[h].name.clone())
}

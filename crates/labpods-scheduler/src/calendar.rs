//! Per-host calendars: the busy intervals `[start, end)` of claims, reservations and the
//! windows planned earlier in the same pass, each already extended by the release allowance.

use chrono::TimeDelta;

use super::model::{Host, RequestKey, Reservation, Time};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub start: Time,
    pub end: Time,
    pub owner: RequestKey,
}

/// Calendars indexed like the host slice they were built from.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// Sorted by start. Intervals do not overlap when the inputs are consistent, but nothing
    /// here relies on it: a stale cache may briefly show a claim over a reservation.
    busy: Vec<Vec<Busy>>,
    allowance: TimeDelta,
}

impl Calendar {
    /// Claims run from `now` to their end; the reservations given are added (the planner
    /// passes only those it keeps). Reservations on unknown hosts are ignored.
    pub fn new<'a>(
        hosts: &[Host],
        reservations: impl IntoIterator<Item = &'a Reservation>,
        host_index: impl Fn(&str) -> Option<usize>,
        now: Time,
        allowance: TimeDelta,
    ) -> Self {
        let mut calendar = Self {
            busy: vec![Vec::new(); hosts.len()],
            allowance,
        };
        for (i, host) in hosts.iter().enumerate() {
            if let Some(claim) = &host.claim {
                calendar.insert(i, now, claim.until, &claim.owner);
            }
        }
        for r in reservations {
            if let Some(i) = host_index(&r.host) {
                calendar.insert(i, r.start, r.end, &r.owner);
            }
        }
        calendar
    }

    pub fn allowance(&self) -> TimeDelta {
        self.allowance
    }

    /// Holds host `i` for a booking `[start, end)` plus the release allowance.
    pub fn insert(&mut self, i: usize, start: Time, end: Time, owner: &RequestKey) {
        let end = end + self.allowance;
        if end <= start {
            return;
        }
        let list = &mut self.busy[i];
        let at = list.partition_point(|b| b.start <= start);
        list.insert(
            at,
            Busy {
                start,
                end,
                owner: owner.clone(),
            },
        );
    }

    /// Whether host `i` can run a booking `[start, end)` (plus allowance), ignoring `except`'s
    /// own intervals.
    pub fn is_free(&self, i: usize, start: Time, end: Time, except: Option<&RequestKey>) -> bool {
        self.is_free_until(i, start, end + self.allowance, except)
    }

    /// Like `is_free` with the allowance already added to the end (hot loops add it once).
    pub fn is_free_until(
        &self,
        i: usize,
        start: Time,
        busy_end: Time,
        except: Option<&RequestKey>,
    ) -> bool {
        let list = &self.busy[i];
        let before_end = list.partition_point(|b| b.start < busy_end);
        !list[..before_end]
            .iter()
            .any(|b| b.end > start && Some(&b.owner) != except)
    }

    /// The first busy interval starting at or after `t`, for tight packing.
    pub fn next_busy_start(&self, i: usize, t: Time) -> Option<Time> {
        let list = &self.busy[i];
        list.get(list.partition_point(|b| b.start < t))
            .map(|b| b.start)
    }

    /// Calls `range(first, last)` for each range of start instants `>= from` at which host
    /// `i` can run a booking of `length` (allowance included); `last` is None for the open
    /// end of the calendar.
    pub fn start_ranges(
        &self,
        i: usize,
        from: Time,
        length: TimeDelta,
        mut range: impl FnMut(Time, Option<Time>),
    ) {
        let span = length + self.allowance;
        let mut gap_start = from;
        for b in &self.busy[i] {
            if b.end <= gap_start {
                continue;
            }
            if b.start - gap_start >= span {
                range(gap_start, Some(b.start - span));
            }
            gap_start = gap_start.max(b.end);
        }
        range(gap_start, None);
    }
}

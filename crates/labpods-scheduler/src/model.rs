//! The scheduler's own domain types: only what planning needs, independent of the CRDs
//! (`from_api` adapts those), so that the planner is exhaustively testable with plain values.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use super::selector::Selector;

/// Instants are UTC; the caller injects `now` (STYLE.md 10).
pub type Time = DateTime<Utc>;

/// `namespace/name` of a PodRequest: the owner of reservations and the FCFS tiebreak.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKey {
    pub namespace: String,
    pub name: String,
}

impl RequestKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for RequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A running lease's hold on a host: busy until `until` plus the release allowance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The request whose lease holds the host.
    pub owner: RequestKey,
    pub until: Time,
}

/// One server as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub profile: String,
    /// False in maintenance, Error, or while the BMC is unreachable: never newly chosen.
    pub schedulable: bool,
    pub claim: Option<Claim>,
}

/// A future booking already held in a host's calendar (persisted by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub host: String,
    pub role: String,
    pub owner: RequestKey,
    pub start: Time,
    pub end: Time,
}

/// `count` hosts matching `selector` and, if set, `profile`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Role {
    pub name: String,
    pub count: u32,
    pub selector: Selector,
    pub profile: Option<String>,
}

/// How long a booking lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Ends at a fixed instant, also when the start has to move later (the booking is then
    /// shorter): what `spec.end` says, and what the Lease is given.
    Until(Time),
    For(TimeDelta),
}

/// A booking waiting for a decision (PodRequests that have no Lease yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub key: RequestKey,
    pub uid: String,
    pub created: Time,
    /// Monotonic tiebreak for equal `created` (the apiserver's timestamps have 1 s resolution).
    pub seq: u64,
    pub roles: Vec<Role>,
    /// None: as soon as possible.
    pub start: Option<Time>,
    pub length: Length,
}

impl Request {
    /// The instant the user asked for, never earlier than `now`.
    pub fn earliest(&self, now: Time) -> Time {
        self.start.map_or(now, |s| s.max(now))
    }

    pub fn duration(&self) -> TimeDelta {
        match self.length {
            Length::For(d) => d,
            Length::Until(end) => end - self.start.unwrap_or(self.created),
        }
    }

    pub fn host_count(&self) -> u32 {
        self.roles.iter().map(|r| r.count).sum()
    }
}

/// The lab's rules. `Default` is permissive except for the release allowance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Concurrent hosts a namespace may hold (claims + reservations); None: unlimited.
    pub default_quota: Option<u32>,
    pub quota_overrides: BTreeMap<String, u32>,
    pub max_duration: Option<TimeDelta>,
    /// Total extension a booking may accumulate beyond its original end.
    pub extension_budget: Option<TimeDelta>,
    /// Time after a lease's end during which its hosts power off and wipe.
    pub release_allowance: TimeDelta,
    /// Requests created within the same window of this length compete as equals and the
    /// namespace holding fewer hosts goes first (see `order`). Zero: strict FCFS.
    pub fairness_window: TimeDelta,
    /// False: plain FCFS for comparison: no request overtakes an earlier delayed one.
    pub backfill: bool,
    /// Label naming a host's rack, used to keep a request's hosts together.
    pub rack_label: String,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            default_quota: None,
            quota_overrides: BTreeMap::new(),
            max_duration: None,
            extension_budget: None,
            release_allowance: TimeDelta::minutes(10),
            fairness_window: TimeDelta::zero(),
            backfill: true,
            rack_label: "rack".to_owned(),
        }
    }
}

impl Policy {
    pub fn quota(&self, namespace: &str) -> Option<u32> {
        self.quota_overrides
            .get(namespace)
            .copied()
            .or(self.default_quota)
    }
}

/// Everything one planning pass looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    pub now: Time,
    pub hosts: Vec<Host>,
    pub reservations: Vec<Reservation>,
    pub requests: Vec<Request>,
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Assignment {
    pub role: String,
    pub host: String,
}

/// Where and when a request runs; assignments are sorted by (role, host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub start: Time,
    pub end: Time,
    pub assignments: Vec<Assignment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Claim these hosts now.
    Bind(Placement),
    /// Hold these hosts in their calendars for a future start.
    Reserve(Placement),
    /// Not now. `earliest_start` is when it would start if nothing changes (None when that
    /// depends on hosts leaving maintenance); the caller does not persist it.
    Wait {
        message: String,
        earliest_start: Option<Time>,
    },
    /// Can never be satisfied as written; the message names the role and the fix.
    Unsatisfiable { message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPlan {
    pub key: RequestKey,
    pub decision: Decision,
}

/// Timestamps in messages: minute precision, UTC, stable across passes.
pub(crate) fn fmt_time(t: Time) -> String {
    t.format("%Y-%m-%dT%H:%MZ").to_string()
}

pub(crate) fn fmt_duration(d: TimeDelta) -> String {
    let minutes = d.num_minutes();
    if minutes != 0 && minutes % (24 * 60) == 0 {
        format!("{}d", minutes / (24 * 60))
    } else if minutes % 60 == 0 {
        format!("{}h", minutes / 60)
    } else if minutes < 60 {
        format!("{minutes}m")
    } else {
        format!("{}h{:02}m", minutes / 60, minutes % 60)
    }
}

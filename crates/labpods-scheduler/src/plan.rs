//! One planning pass: FCFS with conservative backfill.
//!
//! 1. Reservations that still hold (same window, every host still schedulable) are kept and
//!    their requests become Bind at their start, Reserve before it.
//! 2. The other requests are planned one by one in `order`; each gets the earliest window at
//!    or after its requested start in which every role fits, given the calendar so far, and
//!    that window is written into the calendar before the next request is planned. A later
//!    request therefore only uses an earlier one's hosts in windows that end (release
//!    allowance included) before the earlier one starts: backfill never delays anyone.
//! 3. The window found becomes Bind (starts now), Reserve (starts at the explicit future
//!    start the user asked for) or Wait (later than asked; not persisted, re-planned next pass).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use chrono::{DateTime, TimeDelta, Utc};

use super::calendar::Calendar;
use super::lab::{Candidates, Lab, NO_RACK, Pool, pool};
use super::model::{
    Assignment, Decision, Length, Placement, PlanInput, Policy, Request, RequestKey, RequestPlan,
    Reservation, Role, Time, fmt_duration, fmt_time,
};
use super::quota::NamespaceLoad;

/// Decisions for every request: first those whose reservations hold, then the rest in
/// planning order.
pub fn plan(input: &PlanInput) -> Vec<RequestPlan> {
    let policy = &input.policy;
    let lab = Lab::new(&input.hosts, &policy.rack_label);
    let now = input.now;

    let requests: HashMap<&RequestKey, &Request> =
        input.requests.iter().map(|r| (&r.key, r)).collect();
    let mut reserved: BTreeMap<&RequestKey, Vec<&Reservation>> = BTreeMap::new();
    for r in &input.reservations {
        reserved.entry(&r.owner).or_default().push(r);
    }
    // Reservations of requests not passed in stay busy: the caller drops them when it
    // deletes the request; holding a host too long is safer than double-booking it.
    let holding: HashSet<&RequestKey> = reserved
        .iter()
        .filter(|(key, group)| {
            requests
                .get(*key)
                .is_none_or(|req| reservation_holds(req, group, &lab, now))
        })
        .map(|(key, _)| *key)
        .collect();
    let kept = input
        .reservations
        .iter()
        .filter(|r| holding.contains(&r.owner));

    let calendar = Calendar::new(
        &input.hosts,
        kept.clone(),
        |n| lab.index(n),
        now,
        policy.release_allowance,
    );
    let mut load = NamespaceLoad::default();
    for host in &input.hosts {
        if let Some(claim) = &host.claim {
            load.add_claim(&claim.owner.namespace, now, claim.until);
        }
    }
    for r in kept {
        load.add(&r.owner.namespace, r.start, r.end, 1);
    }

    let mut planner = Planner {
        lab,
        calendar,
        load,
        policy,
        now,
        fcfs_floor: HashMap::new(),
    };
    let mut out = Vec::with_capacity(input.requests.len());
    let mut pending = Vec::new();
    for req in &input.requests {
        match reserved.get(&req.key) {
            Some(group) if holding.contains(&req.key) => {
                out.push(RequestPlan {
                    key: req.key.clone(),
                    decision: planner.keep(group),
                });
            }
            _ => pending.push(req),
        }
    }
    pending.sort_by_cached_key(|r| order(r, policy, &planner.load));
    for req in pending {
        out.push(RequestPlan {
            key: req.key.clone(),
            decision: planner.decide(req),
        });
    }
    out
}

/// Planning order: `created`, then `seq`, then the key (FCFS). With a fairness window,
/// requests created in the same window (aligned to the Unix epoch) compete as equals and
/// the namespace holding fewer hosts right now goes first; the rest of the key keeps it
/// deterministic.
fn order(r: &Request, policy: &Policy, load: &NamespaceLoad) -> (i64, u32, Time, u64, RequestKey) {
    let window = policy.fairness_window.num_seconds();
    let (bucket, held) = if window > 0 {
        (
            r.created.timestamp().div_euclid(window),
            load.held_now(&r.key.namespace),
        )
    } else {
        (r.created.timestamp(), 0)
    };
    (bucket, held, r.created, r.seq, r.key.clone())
}

/// A reservation is kept while its request still asks for that window, every host is still
/// schedulable, and the window has not passed (after an outage, the booking is re-planned).
fn reservation_holds(req: &Request, group: &[&Reservation], lab: &Lab<'_>, now: Time) -> bool {
    let Some(start) = req.start else { return false };
    let end = start + req.duration();
    if end <= now {
        return false;
    }
    let hosts_ok = group.iter().all(|r| {
        r.start == start
            && r.end == end
            && lab.index(&r.host).is_some_and(|i| lab.hosts[i].schedulable)
    });
    let roles_ok = req
        .roles
        .iter()
        .all(|role| group.iter().filter(|r| r.role == role.name).count() == role.count as usize);
    hosts_ok && roles_ok && group.len() == req.host_count() as usize
}

/// "3 x86-large hosts matching rack=r1"
fn describe_hosts(role: &Role, count: impl std::fmt::Display) -> String {
    let mut s = format!("{count} ");
    if let Some(p) = &role.profile {
        s.push_str(p);
        s.push(' ');
    }
    s.push_str("hosts");
    if !role.selector.is_empty() {
        s.push_str(" matching ");
        s.push_str(&role.selector.describe());
    }
    s
}

struct Planner<'a> {
    lab: Lab<'a>,
    calendar: Calendar,
    load: NamespaceLoad,
    policy: &'a Policy,
    now: Time,
    /// Without backfill, nobody overtakes a delayed request in the same pool: a later
    /// request starts no earlier than the delayed start of any request planned before it
    /// that asked for the same (profile, selector) in one of its roles. Requests that start
    /// when they asked (now, or a booked future start) block nobody; pools are separate
    /// queues, as a lab with one FCFS queue per hardware type would run them.
    fcfs_floor: HashMap<Pool, Time>,
}

type Picks = Vec<(usize, usize)>; // (role index, host index)

impl Planner<'_> {
    fn keep(&self, group: &[&Reservation]) -> Decision {
        let (Some(start), Some(end)) = (
            group.iter().map(|r| r.start).min(),
            group.iter().map(|r| r.end).max(),
        ) else {
            return Decision::Wait {
                message: "empty reservation".to_owned(),
                earliest_start: None,
            };
        };
        let mut assignments: Vec<Assignment> = group
            .iter()
            .map(|r| Assignment {
                role: r.role.clone(),
                host: r.host.clone(),
            })
            .collect();
        assignments.sort();
        let placement = Placement {
            start,
            end,
            assignments,
        };
        if start > self.now {
            return Decision::Reserve(placement);
        }
        // The start has come but an earlier lease may still be releasing one of the hosts.
        let owner = &group[0].owner;
        let last_blocker = group
            .iter()
            .filter_map(|r| {
                let claim = self
                    .lab
                    .index(&r.host)
                    .and_then(|i| self.lab.hosts[i].claim.as_ref())?;
                let free_at = claim.until + self.policy.release_allowance;
                (claim.owner != *owner && free_at > self.now).then_some((
                    free_at,
                    r.host.as_str(),
                    &claim.owner,
                ))
            })
            .max();
        match last_blocker {
            None => Decision::Bind(placement),
            Some((free_at, host, holder)) => Decision::Wait {
                message: format!(
                    "reserved host {host} is still held by {holder}; earliest start {}",
                    fmt_time(free_at)
                ),
                earliest_start: Some(free_at),
            },
        }
    }

    fn decide(&mut self, req: &Request) -> Decision {
        let duration = req.duration();
        let roles: Vec<(&Role, Rc<Candidates>)> = req
            .roles
            .iter()
            .map(|role| (role, self.lab.candidates(role)))
            .collect();
        if let Some(message) = self.unsatisfiable(req, duration, &roles) {
            return Decision::Unsatisfiable { message };
        }
        for (role, c) in &roles {
            if c.schedulable.len() < role.count as usize {
                return Decision::Wait {
                    message: format!(
                        "waiting for {} (role {}): {} of the {} matching hosts are schedulable, the others are in maintenance, in Error or unreachable",
                        describe_hosts(role, role.count),
                        role.name,
                        c.schedulable.len(),
                        c.all.len()
                    ),
                    earliest_start: None,
                };
            }
        }
        let asked = req.earliest(self.now);
        let from = if self.policy.backfill {
            asked
        } else {
            self.fcfs_from(req, asked)
        };
        // A booking with an end keeps it: starting later makes it shorter, never later.
        let (duration, until) = match req.length {
            Length::Until(end) => (end - from, Some(end)),
            Length::For(_) => (duration, None),
        };
        let found = (duration > TimeDelta::zero())
            .then(|| self.find_window(req, &roles, from, duration))
            .flatten()
            .filter(|(start, _)| until.is_none_or(|end| *start < end));
        let Some((start, picks)) = found else {
            let message = match until {
                Some(end) => format!(
                    "no window found before the booking's end {}: move spec.end later, or ask for fewer hosts",
                    fmt_time(end)
                ),
                None => "no window found in the calendar".to_owned(),
            };
            return Decision::Wait {
                message,
                earliest_start: None,
            };
        };
        let end = until.unwrap_or(start + duration);
        let waiting = start > self.now && req.start != Some(start);
        let message = waiting.then(|| self.wait_message(req, &roles, asked, from, start, duration));

        for &(_, host) in &picks {
            self.calendar.insert(host, start, end, &req.key);
        }
        self.load
            .add(&req.key.namespace, start, end, req.host_count());
        if start > asked && !self.policy.backfill {
            self.raise_fcfs_floor(req, start);
        }

        let mut assignments: Vec<Assignment> = picks
            .iter()
            .map(|&(ri, h)| Assignment {
                role: roles[ri].0.name.clone(),
                host: self.lab.hosts[h].name.clone(),
            })
            .collect();
        assignments.sort();
        let placement = Placement {
            start,
            end,
            assignments,
        };
        match message {
            Some(message) => Decision::Wait {
                message,
                earliest_start: Some(start),
            },
            None if start <= self.now => Decision::Bind(placement),
            None => Decision::Reserve(placement),
        }
    }

    fn fcfs_from(&self, req: &Request, asked: Time) -> Time {
        let floor = req
            .roles
            .iter()
            .filter_map(|r| self.fcfs_floor.get(&pool(r)))
            .max();
        floor.map_or(asked, |f| asked.max(*f))
    }

    fn raise_fcfs_floor(&mut self, req: &Request, start: Time) {
        for role in &req.roles {
            let floor = self.fcfs_floor.entry(pool(role)).or_insert(start);
            *floor = (*floor).max(start);
        }
    }

    fn unsatisfiable(
        &self,
        req: &Request,
        duration: TimeDelta,
        roles: &[(&Role, Rc<Candidates>)],
    ) -> Option<String> {
        let total = req.host_count();
        if total == 0 {
            return Some(
                "the request asks for no hosts: add a role with a count of at least 1".to_owned(),
            );
        }
        if duration <= TimeDelta::zero() {
            return Some("the booking ends before it starts: set the end after the start, or a positive duration".to_owned());
        }
        if let Some(max) = self.policy.max_duration.filter(|max| duration > *max) {
            return Some(format!(
                "the booking lasts {}, more than the lab's maximum of {}: shorten it (it can be extended later)",
                fmt_duration(duration),
                fmt_duration(max)
            ));
        }
        if let Some(quota) = self.policy.quota(&req.key.namespace).filter(|q| total > *q) {
            return Some(format!(
                "namespace {} may hold at most {quota} hosts at once and this request asks for {total}: lower the roles' counts or ask the lab operators for a larger quota",
                req.key.namespace
            ));
        }
        for (role, c) in roles {
            if c.all.len() < role.count as usize {
                return Some(format!(
                    "role {} asks for {} but the lab has only {}: lower the count or choose another profile or selector",
                    role.name,
                    describe_hosts(role, role.count),
                    c.all.len()
                ));
            }
        }
        // Only when no single role's hosts could cover the total is the union worth building.
        if roles.len() > 1 && roles.iter().all(|(_, c)| c.all.len() < total as usize) {
            let union: HashSet<usize> = roles
                .iter()
                .flat_map(|(_, c)| c.all.iter().copied())
                .collect();
            if union.len() < total as usize {
                return Some(format!(
                    "the roles together ask for {total} hosts but only {} hosts match any of them: lower the counts or widen the selectors",
                    union.len()
                ));
            }
        }
        None
    }

    /// The earliest start `>= from` at which every role fits, with the hosts chosen.
    ///
    /// A host's set of free hosts only grows at the first instant of one of its free ranges
    /// (`Calendar::start_ranges`), and the namespace's usage only drops when one of its
    /// intervals ends, so those instants are the only candidates. A sweep keeps per-role
    /// counts of free hosts and runs the full placement only where every role has enough.
    fn find_window(
        &self,
        req: &Request,
        roles: &[(&Role, Rc<Candidates>)],
        from: Time,
        d: TimeDelta,
    ) -> Option<(Time, Picks)> {
        if let Some(picks) = self.try_at(req, roles, from, d) {
            return Some((from, picks));
        }
        let mut union: Vec<usize> = roles
            .iter()
            .flat_map(|(_, c)| c.schedulable.iter().copied())
            .collect();
        union.sort_unstable();
        union.dedup();
        // Which roles each host can serve, as a bit set: the sweep only counts the first 64
        // roles (more are treated as always satisfied; `try_at` checks them all anyway).
        let mut host_roles: Vec<u64> = vec![0; union.len()];
        for (ri, (_, c)) in roles.iter().enumerate().take(64) {
            for h in &c.schedulable {
                if let Ok(pos) = union.binary_search(h) {
                    host_roles[pos] |= 1 << ri;
                }
            }
        }
        let (host_roles, counted) = (&host_roles, roles.len().min(64));
        let roles_of =
            move |pos: usize| (0..counted).filter(move |ri| host_roles[pos] & (1 << ri) != 0);
        const OPEN: u8 = 0;
        const RECHECK: u8 = 1;
        const CLOSE: u8 = 2;
        let mut events: Vec<(Time, u8, usize)> = Vec::new();
        for (pos, &h) in union.iter().enumerate() {
            self.calendar.start_ranges(h, from, d, |first, last| {
                events.push((first, OPEN, pos));
                if let Some(last) = last {
                    events.push((last, CLOSE, pos));
                }
            });
        }
        if self.policy.quota(&req.key.namespace).is_some() {
            events.extend(
                self.load
                    .releases_after(&req.key.namespace, from)
                    .map(|t| (t, RECHECK, 0)),
            );
        }
        events.sort_unstable();

        let mut counts = vec![0usize; roles.len()];
        let mut k = 0;
        while k < events.len() {
            let t = events[k].0;
            let mut j = k;
            while j < events.len() && events[j].0 == t && events[j].1 != CLOSE {
                if events[j].1 == OPEN {
                    roles_of(events[j].2).for_each(|ri| counts[ri] += 1);
                }
                j += 1;
            }
            let enough = roles
                .iter()
                .zip(&counts)
                .take(64)
                .all(|((role, _), &n)| n >= role.count as usize);
            if t > from
                && enough
                && let Some(picks) = self.try_at(req, roles, t, d)
            {
                return Some((t, picks));
            }
            while j < events.len() && events[j].0 == t {
                roles_of(events[j].2).for_each(|ri| counts[ri] -= 1);
                j += 1;
            }
            k = j;
        }
        None
    }

    /// Places every role at `start`, most constrained role first. Among free hosts, prefer
    /// (1) the one whose next booking starts soonest after this one ends (tight packing
    /// keeps long free runs intact), (2) the rack of the request's best host, (3) name.
    fn try_at(
        &self,
        req: &Request,
        roles: &[(&Role, Rc<Candidates>)],
        start: Time,
        d: TimeDelta,
    ) -> Option<Picks> {
        let end = start + d;
        if let Some(quota) = self.policy.quota(&req.key.namespace)
            && self.load.peak(&req.key.namespace, start, end) + req.host_count() > quota
        {
            return None;
        }
        let mut by_constraint: Vec<usize> = (0..roles.len()).collect();
        by_constraint.sort_by_key(|&ri| (roles[ri].1.schedulable.len(), ri));
        let busy_from = end + self.calendar.allowance();
        let mut picks: Picks = Vec::with_capacity(req.host_count() as usize);
        let mut anchor: Option<u32> = None;
        for ri in by_constraint {
            let (role, c) = &roles[ri];
            let count = role.count as usize;
            if count == 0 {
                continue;
            }
            // (tightness, other rack, name rank, host): plain integers, compared cheaply.
            let mut free: Vec<(Time, bool, u32, usize)> = c
                .schedulable
                .iter()
                .copied()
                .filter(|h| {
                    self.calendar.is_free_until(*h, start, busy_from, None)
                        && !picks.iter().any(|p| p.1 == *h)
                })
                .map(|h| {
                    let tight = self
                        .calendar
                        .next_busy_start(h, busy_from)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC);
                    (tight, false, self.lab.rank[h], h)
                })
                .collect();
            if free.len() < count {
                return None;
            }
            let rack = *anchor
                .get_or_insert_with(|| free.iter().min().map_or(NO_RACK, |f| self.lab.rack[f.3]));
            for f in &mut free {
                f.1 = rack == NO_RACK || self.lab.rack[f.3] != rack;
            }
            free.select_nth_unstable(count - 1);
            picks.extend(free[..count].iter().map(|&(.., h)| (ri, h)));
        }
        Some(picks)
    }

    fn wait_message(
        &self,
        req: &Request,
        roles: &[(&Role, Rc<Candidates>)],
        asked: Time,
        from: Time,
        start: Time,
        d: TimeDelta,
    ) -> String {
        let earliest = fmt_time(start);
        let when = if asked > self.now {
            format!("at the requested start {}", fmt_time(asked))
        } else {
            "now".to_owned()
        };
        for (role, c) in roles {
            let free = c
                .schedulable
                .iter()
                .filter(|h| self.calendar.is_free(**h, asked, asked + d, None))
                .count();
            if free < role.count as usize {
                let which = if roles.len() > 1 {
                    format!(" (role {})", role.name)
                } else {
                    String::new()
                };
                return format!(
                    "waiting for {}{which}; {free} free {when}; earliest start {earliest}",
                    describe_hosts(role, role.count)
                );
            }
        }
        let ns = &req.key.namespace;
        if let Some(quota) = self.policy.quota(ns) {
            let held = self.load.peak(ns, asked, asked + d);
            if held + req.host_count() > quota {
                return format!(
                    "waiting for quota: namespace {ns} may hold {quota} hosts at once, holds {held} {when} and this request needs {}; earliest start {earliest}",
                    req.host_count()
                );
            }
        }
        if from > asked {
            return format!(
                "waiting behind earlier requests (first come, first served); earliest start {earliest}"
            );
        }
        format!("waiting: the roles compete for the same hosts; earliest start {earliest}")
    }
}

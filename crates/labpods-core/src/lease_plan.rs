//! What a Lease's status should be (pure): its phase from its window and its hosts, per-host
//! progress, the expiry notice, and when to look again.
//!
//! Phases: Pending (binding) -> Bound (every host claimed) -> Provisioning (the start came) ->
//! Ready (every host Provisioned) or Degraded (a host failed, no spare) -> Releasing (the end
//! came, or the request was deleted) -> Released (no host claims the Lease any more).

use std::{collections::BTreeSet, time::Duration};

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use kube_core::ResourceExt;
use labpods_api::{
    conditions::{
        BOOKING_FAILED, DEGRADED, EXPIRING_SOON, READY, find_condition, new_condition,
        remove_condition, set_condition,
    },
    v1alpha1::{
        ClaimRef, HostProgress, HostState, LabHost, Lease, LeaseHost, LeasePhase, LeaseStatus,
        MAX_LEASE_HOSTS, ReplacedHost,
    },
    validation::format_duration,
};

use crate::{
    claim::{HostCheck, check},
    trust::Untrusted,
};

/// Condition type on a Lease: False when the operator did not write it (see
/// [`trust`](crate::trust)); absent on the Leases it wrote. Defined with the other
/// condition types, which the README's troubleshooting table must each explain.
pub use labpods_api::conditions::AUTHENTIC;
/// Reason of the Ready condition and of the Events of a refused Lease.
pub const NOT_AUTHENTIC: &str = "NotAuthentic";

/// Reason of the Ready condition while a listed LabHost cannot be decoded.
pub const HOST_UNREADABLE: &str = "HostUnreadable";

/// Reason of `BookingFailed` on a Lease whose end came before it was Ready.
pub const NOT_READY_BY_END: &str = "NotReadyByEnd";

/// How often a Releasing Lease looks at its claims even without a watch event.
const RELEASE_RECHECK: Duration = Duration::from_secs(30);

/// What the reconcile observed.
#[derive(Debug)]
pub struct Facts<'a> {
    pub lease: &'a Lease,
    /// Every LabHost the Lease lists or that claims it.
    pub hosts: &'a [&'a LabHost],
    /// The PodRequest is gone, being deleted, or a newer one of the same name.
    pub request_gone: bool,
    /// The request's status already shows how the booking ended (Released or Failed): the
    /// Lease may go. Collected before that, the request could only say "released".
    pub request_told: bool,
    /// Hosts that failed and could not be replaced, with why.
    pub unhealed: &'a [(String, String)],
    /// Listed hosts whose LabHost cannot be decoded, with the error: they may still run the
    /// tenant's OS, and nobody can tell.
    pub unreadable: &'a [(String, String)],
    pub now: Timestamp,
    pub notices: &'a [Duration],
    pub retention: Duration,
}

/// The outcome of planning.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub status: LeaseStatus,
    /// Released and past retention: delete the Lease.
    pub delete: bool,
    /// Look again after this long even if nothing changes.
    pub wake: Option<Duration>,
    /// Ready for the first time: how long it took from the start (or the binding, if later).
    pub ready_after: Option<Duration>,
}

/// When the Lease entered `phase`: kept while the phase stays, `now` when it changes, its
/// creation for the first status.
fn phase_since(lease: &Lease, current: &LeaseStatus, phase: LeasePhase, now: &Time) -> Time {
    match (current.phase, &current.last_phase_transition_time) {
        (Some(was), Some(since)) if was == phase => since.clone(),
        (None, _) => lease
            .metadata
            .creation_timestamp
            .clone()
            .unwrap_or_else(|| now.clone()),
        _ => now.clone(),
    }
}

/// The claim that binds a host to this Lease.
pub fn claim_of(lease: &Lease) -> ClaimRef {
    ClaimRef {
        namespace: lease.namespace().unwrap_or_default(),
        name: lease.spec.request_ref.name.clone(),
        uid: lease.spec.request_ref.uid.clone(),
        lease: lease.name_any(),
    }
}

/// Phases in which the hosts run the image.
pub fn running(phase: LeasePhase) -> bool {
    matches!(
        phase,
        LeasePhase::Provisioning | LeasePhase::Ready | LeasePhase::Degraded
    )
}

/// Listed hosts in Error, or being deleted, while the Lease holds them: candidates for a
/// spare, with what happened to them.
pub fn failed_hosts(lease: &Lease, hosts: &[&LabHost]) -> Vec<(String, String)> {
    let phase = lease
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(LeasePhase::Pending);
    if !(running(phase) || phase == LeasePhase::Bound) {
        return Vec::new();
    }
    lease
        .spec
        .hosts
        .iter()
        .filter_map(|l| {
            let h = hosts.iter().find(|h| h.name_any() == l.host)?;
            let trouble = if h.metadata.deletion_timestamp.is_some() {
                "is being deleted from the lab"
            } else if h.status.as_ref().and_then(|s| s.state) == Some(HostState::Error) {
                "failed"
            } else {
                return None;
            };
            Some((l.host.clone(), trouble.to_owned()))
        })
        .collect()
}

/// A host a Bound or running Lease lists but does not hold (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unheld {
    /// Unclaimed and claimable: a spare whose swap was written but whose claim was not
    /// (a crash, an apiserver error). Claim it now.
    Resume(String),
    /// Another booking holds it, or it cannot be claimed any more: replace it like a failed
    /// host.
    Lost(String),
}

/// The listed hosts a Lease past binding does not hold. A Pending Lease is still binding
/// (the PodRequest controller claims or rolls back), and an ending one lets its hosts go.
pub fn unheld(lease: &Lease, hosts: &[&LabHost]) -> Vec<Unheld> {
    let phase = lease
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(LeasePhase::Pending);
    if !(running(phase) || phase == LeasePhase::Bound) {
        return Vec::new();
    }
    let ours = claim_of(lease);
    lease
        .spec
        .hosts
        .iter()
        .filter_map(|l| {
            // A LabHost that is gone is not a spare to replace: its Lease waits for it.
            let host = hosts.iter().find(|h| h.name_any() == l.host)?;
            match check(host, &ours) {
                HostCheck::Ours => None,
                HostCheck::Free => Some(Unheld::Resume(l.host.clone())),
                HostCheck::Taken(_) => Some(Unheld::Lost(l.host.clone())),
            }
        })
        .collect()
}

pub fn plan(f: &Facts<'_>) -> Plan {
    let lease = f.lease;
    let now = Time(f.now);
    let current = lease.status.clone().unwrap_or_default();
    let phase_now = current.phase.unwrap_or(LeasePhase::Pending);
    let claim = claim_of(lease);
    let claims = |h: &&&LabHost| h.spec.claim_ref.as_ref() == Some(&claim);
    let listed = |name: &str| f.hosts.iter().find(|h| h.name_any() == name);
    // A listed host another Lease holds (left listed by a crash or a failed undo of healing)
    // is never this Lease's: its state says nothing about this booking.
    let foreign = |h: &&&LabHost| h.spec.claim_ref.as_ref().is_some_and(|c| *c != claim);
    let state_of = |name: &str| {
        listed(name)
            .filter(|h| claims(h))
            .and_then(|h| h.status.as_ref())
            .and_then(|s| s.state)
    };
    let (start, end) = (lease.spec.start.0, lease.spec.end.0);
    // A host of ours whose run gave up on the booking's own input: the booking ends.
    let failures: Vec<(String, String)> = lease
        .spec
        .hosts
        .iter()
        .filter_map(|l| {
            let host = listed(&l.host).filter(|h| claims(h))?;
            let c = find_condition(&host.status.as_ref()?.conditions, BOOKING_FAILED)
                .filter(|c| c.status == labpods_api::conditions::TRUE)?;
            Some((c.reason.clone(), format!("host {}: {}", l.host, c.message)))
        })
        .collect();
    let ending = f.now >= end
        || f.request_gone
        || !failures.is_empty()
        || matches!(phase_now, LeasePhase::Releasing | LeasePhase::Released);

    // Released only while no host claims the Lease: one reported Released too early (a cache
    // that had not listed the hosts yet) goes back to Releasing rather than be collected
    // while its hosts still run the tenant's OS. A host whose LabHost cannot be read may be
    // one of those.
    let phase = if ending {
        if f.hosts.iter().any(|h| claims(&h)) || !f.unreadable.is_empty() {
            LeasePhase::Releasing
        } else {
            LeasePhase::Released
        }
    } else {
        let all_claimed = lease
            .spec
            .hosts
            .iter()
            .all(|l| listed(&l.host).is_some_and(|h| claims(&h)));
        match phase_now {
            LeasePhase::Pending if !all_claimed => LeasePhase::Pending,
            LeasePhase::Pending | LeasePhase::Bound if f.now < start => LeasePhase::Bound,
            _ if !f.unhealed.is_empty() => LeasePhase::Degraded,
            _ if lease
                .spec
                .hosts
                .iter()
                .all(|l| state_of(&l.host) == Some(HostState::Provisioned)) =>
            {
                LeasePhase::Ready
            }
            _ => LeasePhase::Provisioning,
        }
    };

    let mut status = LeaseStatus {
        phase: Some(phase),
        last_phase_transition_time: Some(phase_since(lease, &current, phase, &now)),
        hosts: lease
            .spec
            .hosts
            .iter()
            .map(|l| {
                let mut p = match listed(&l.host) {
                    Some(h) if foreign(&h) => held_elsewhere(l),
                    h => progress(l, h.copied()),
                };
                let before = current.hosts.iter().find(|b| b.host == l.host);
                // Sticky, and set in the write that first shows the Error: no write of its own.
                p.failed_at = before
                    .and_then(|b| b.failed_at.clone())
                    .or_else(|| (p.state == Some(HostState::Error)).then(|| now.clone()));
                p
            })
            .collect(),
        host_count: u32::try_from(lease.spec.hosts.len()).ok(),
        // The first Ready, kept (a Lease Ready before the field existed: since it entered Ready).
        ready_at: current.ready_at.clone().or_else(|| {
            (phase == LeasePhase::Ready).then(|| phase_since(lease, &current, phase, &now))
        }),
        released_at: (phase == LeasePhase::Released)
            .then(|| current.released_at.clone().unwrap_or_else(|| now.clone())),
        replaced: replaced(lease, &current, &now),
        observed_generation: lease.metadata.generation,
        conditions: current.conditions.clone(),
    };
    status.hosts.sort_by(|a, b| a.host.cmp(&b.host));
    // The end came before the booking was ever whole (hosts broke and no spare fitted, or
    // provisioning outlasted the window): not a served booking, so it ends Failed and says
    // which hosts and why, not Released as if it had run.
    let unserved = (f.now >= end
        && !f.request_gone
        && failures.is_empty()
        && !matches!(
            phase_now,
            LeasePhase::Ready | LeasePhase::Releasing | LeasePhase::Released
        ))
    .then(|| unserved_why(&status.hosts, f.unhealed));
    let failures = match unserved {
        Some(why) => vec![(NOT_READY_BY_END.to_owned(), why)],
        None => failures,
    };
    let generation = lease.metadata.generation;
    let conditions = &mut status.conditions;
    remove_condition(conditions, AUTHENTIC);
    let ready = phase == LeasePhase::Ready;
    let (reason, message) = if ready {
        ("Ready".to_owned(), "every host runs the image".to_owned())
    } else if !f.unreadable.is_empty() {
        let hosts = f
            .unreadable
            .iter()
            .map(|(h, e)| format!("LabHost {h} cannot be read ({e})"))
            .collect::<Vec<_>>()
            .join("; ");
        (
            HOST_UNREADABLE.to_owned(),
            format!(
                "the lease is {phase:?}: {hosts}; fix it with kubectl edit labhost: it may still run this booking's OS, so the lease waits for its release"
            ),
        )
    } else {
        (format!("{phase:?}"), format!("the lease is {phase:?}"))
    };
    set_condition(
        conditions,
        new_condition(READY, ready, &reason, message, generation, &now),
        &now,
    );
    if let Some((reason, _)) = failures.first() {
        let why = failures
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        set_condition(
            conditions,
            new_condition(BOOKING_FAILED, true, reason, why, generation, &now),
            &now,
        );
    }
    if phase == LeasePhase::Degraded {
        let why = f
            .unhealed
            .iter()
            .map(|(h, why)| format!("host {h}: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        set_condition(
            conditions,
            new_condition(DEGRADED, true, "NoSpare", why, generation, &now),
            &now,
        );
    } else {
        remove_condition(conditions, DEGRADED);
    }
    let notice = (running(phase) || phase == LeasePhase::Bound)
        .then(|| notice(f.notices, f.now, end))
        .flatten();
    match notice {
        Some(within) => {
            let message = format!(
                "the lease ends at {}; raise the PodRequest's end or duration to keep the hosts longer",
                end.strftime("%Y-%m-%dT%H:%MZ")
            );
            let reason = format!("EndsWithin{}", format_duration(within));
            set_condition(
                conditions,
                new_condition(EXPIRING_SOON, true, &reason, message, generation, &now),
                &now,
            );
        }
        None => remove_condition(conditions, EXPIRING_SOON),
    }

    let retention = SignedDuration::try_from(f.retention).unwrap_or(SignedDuration::MAX);
    let collect_at = status
        .released_at
        .as_ref()
        .and_then(|t| t.0.checked_add(retention).ok());
    // Kept past its retention until the request has copied the outcome: the PodRequest
    // controller (possibly another leader's) copies it on its next pass, and wakes this one.
    let delete = collect_at.is_some_and(|t| t <= f.now) && (f.request_gone || f.request_told);
    let mut instants: Vec<Timestamp> = vec![start, end];
    instants.extend(
        f.notices
            .iter()
            .filter_map(|o| SignedDuration::try_from(*o).ok())
            .filter_map(|o| end.checked_sub(o).ok()),
    );
    instants.extend(collect_at);
    let wake = instants
        .into_iter()
        .filter(|t| *t > f.now)
        .min()
        .and_then(|t| Duration::try_from(t.duration_since(f.now)).ok());
    // Safety net: a host that left the Lease (a replaced one) reports its cleared claim to
    // nobody; look again now and then until Released.
    let wake = if phase == LeasePhase::Releasing {
        Some(wake.map_or(RELEASE_RECHECK, |w| w.min(RELEASE_RECHECK)))
    } else {
        wake
    };
    let ready_after = (phase == LeasePhase::Ready
        && matches!(
            phase_now,
            LeasePhase::Pending | LeasePhase::Bound | LeasePhase::Provisioning
        ))
    .then(|| {
        let began = lease
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(start, |c| c.0.max(start));
        Duration::try_from(f.now.duration_since(began)).unwrap_or_default()
    });
    Plan {
        status,
        delete,
        wake,
        ready_after,
    }
}

/// The status of a Lease the operator refuses (pure): no per-host progress of hosts it
/// merely names (they may be anyone's), Releasing while hosts are still claimed for it, then
/// Released; conditions say why.
pub fn refused(lease: &Lease, why: &Untrusted, claimed: bool, now: Timestamp) -> LeaseStatus {
    let current = lease.status.clone().unwrap_or_default();
    let now = Time(now);
    let generation = lease.metadata.generation;
    let phase = if claimed {
        LeasePhase::Releasing
    } else {
        LeasePhase::Released
    };
    let message = if claimed {
        format!("not honoured: {why}; the hosts claimed for it are being released")
    } else {
        format!("not honoured: {why}; no host is claimed or provisioned for it")
    };
    let mut conditions = current.conditions.clone();
    for gone in [DEGRADED, EXPIRING_SOON] {
        remove_condition(&mut conditions, gone);
    }
    set_condition(
        &mut conditions,
        new_condition(
            READY,
            false,
            NOT_AUTHENTIC,
            message.clone(),
            generation,
            &now,
        ),
        &now,
    );
    set_condition(
        &mut conditions,
        new_condition(AUTHENTIC, false, why.reason(), message, generation, &now),
        &now,
    );
    LeaseStatus {
        phase: Some(phase),
        last_phase_transition_time: Some(phase_since(lease, &current, phase, &now)),
        hosts: Vec::new(),
        host_count: None,
        ready_at: current.ready_at.clone(),
        released_at: (phase == LeasePhase::Released)
            .then(|| current.released_at.clone().unwrap_or_else(|| now.clone())),
        replaced: Vec::new(),
        observed_generation: generation,
        conditions,
    }
}

/// Whether a refusal is news: the status before did not say so yet (worth an Event).
pub fn newly_refused(before: Option<&LeaseStatus>) -> bool {
    before
        .and_then(|s| find_condition(&s.conditions, AUTHENTIC))
        .is_none_or(|c| c.status != labpods_api::conditions::FALSE)
}

/// The tightest notice offset the end is within, if any (e.g. 1h when 40 minutes are left).
pub fn notice(offsets: &[Duration], now: Timestamp, end: Timestamp) -> Option<SignedDuration> {
    let left = end.duration_since(now);
    if left <= SignedDuration::ZERO {
        return None;
    }
    offsets
        .iter()
        .filter_map(|o| SignedDuration::try_from(*o).ok())
        .filter(|o| left <= *o)
        .min()
}

/// The reason of the expiry notice when it is new or tighter than before: worth an Event.
pub fn new_notice(before: Option<&LeaseStatus>, after: &LeaseStatus) -> Option<String> {
    let reason =
        |s: &LeaseStatus| find_condition(&s.conditions, EXPIRING_SOON).map(|c| c.reason.clone());
    let new = reason(after)?;
    (before.and_then(reason).as_ref() != Some(&new)).then_some(new)
}

/// Why a booking that reached its end without being Ready failed: its hosts that were not
/// running the image, and what happened to them.
fn unserved_why(hosts: &[HostProgress], unhealed: &[(String, String)]) -> String {
    let why: Vec<String> = hosts
        .iter()
        .filter(|h| h.state != Some(HostState::Provisioned))
        .map(|h| {
            let what = unhealed
                .iter()
                .find(|(name, _)| *name == h.host)
                .map(|(_, why)| why.clone())
                .or_else(|| h.message.clone())
                .unwrap_or_else(|| {
                    h.state
                        .map_or_else(|| "not provisioned".to_owned(), |s| format!("still {s:?}"))
                });
            format!("host {}: {what}", h.host)
        })
        .collect();
    format!(
        "the lease ended before every host ran the image ({})",
        why.join("; ")
    )
}

/// The hosts a spare replaced: those kept from before, and every host the last status showed
/// that `spec.hosts` no longer lists (healing is the only thing that removes a host), which
/// left at `now`. The status changes in that same write (its host list does), so this adds
/// no write.
fn replaced(lease: &Lease, current: &LeaseStatus, now: &Time) -> Vec<ReplacedHost> {
    let listed = |host: &str| lease.spec.hosts.iter().any(|l| l.host == host);
    let gone: Vec<&HostProgress> = current
        .hosts
        .iter()
        .filter(|p| !listed(&p.host) && !current.replaced.iter().any(|r| r.host == p.host))
        .collect();
    // A status written before HostProgress had a role: the spare took over the slot, so its
    // role is the replaced host's when every host swapped in shares one.
    let arrived: BTreeSet<&str> = lease
        .spec
        .hosts
        .iter()
        .filter(|l| !current.hosts.iter().any(|p| p.host == l.host))
        .map(|l| l.role.as_str())
        .collect();
    let only_arrived = (arrived.len() == 1)
        .then(|| arrived.iter().next())
        .flatten();
    let mut replaced = current.replaced.clone();
    replaced.extend(gone.into_iter().map(|p| ReplacedHost {
        host: p.host.clone(),
        role: match (p.role.as_str(), only_arrived) {
            ("", Some(role)) => (*role).to_owned(),
            (role, _) => role.to_owned(),
        },
        at: now.clone(),
    }));
    replaced.sort_by(|a, b| a.host.cmp(&b.host));
    // The schema's bound: past it the apiserver would refuse every status write.
    replaced.truncate(MAX_LEASE_HOSTS as usize);
    replaced
}

/// A listed host that another Lease holds: no state or step of someone else's booking.
fn held_elsewhere(host: &LeaseHost) -> HostProgress {
    HostProgress {
        host: host.host.clone(),
        role: host.role.clone(),
        message: Some("claimed by another booking; not part of this one".to_owned()),
        ..HostProgress::default()
    }
}

fn progress(host: &LeaseHost, labhost: Option<&LabHost>) -> HostProgress {
    let status = labhost.and_then(|h| h.status.as_ref());
    let state = status.and_then(|s| s.state);
    let message = match (labhost, state) {
        (None, _) => Some("the LabHost does not exist".to_owned()),
        (Some(_), Some(HostState::Error)) => status.and_then(|s| s.last_error.clone()),
        _ => None,
    };
    HostProgress {
        host: host.host.clone(),
        role: host.role.clone(),
        state,
        step: status.and_then(|s| s.provisioning.as_ref()).map(|p| p.step),
        message,
        ..HostProgress::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::fixtures;

    const HOUR: Duration = Duration::from_secs(3600);
    const NOTICES: [Duration; 2] = [Duration::from_secs(24 * 3600), HOUR];

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn lease(phase: Option<LeasePhase>) -> Lease {
        let mut l = fixtures::lease(
            "pod",
            "u1",
            &["h1", "h2"],
            Time(at("2026-11-24T10:00:00Z")),
            Time(at("2026-11-26T10:00:00Z")),
        );
        l.status = phase.map(|p| LeaseStatus {
            phase: Some(p),
            ..LeaseStatus::default()
        });
        l
    }

    fn host(name: &str, state: HostState, claimed: bool) -> LabHost {
        let mut h = fixtures::labhost(name, Some(state));
        h.spec.claim_ref = claimed.then(|| claim_of(&lease(None)));
        if let Some(status) = h.status.as_mut() {
            status.last_error = Some("BMC answered 500".into());
        }
        h
    }

    fn facts<'a>(lease: &'a Lease, hosts: &'a [&'a LabHost], now: &str) -> Facts<'a> {
        Facts {
            lease,
            hosts,
            request_gone: false,
            request_told: true,
            unhealed: &[],
            unreadable: &[],
            now: at(now),
            notices: &NOTICES,
            retention: 24 * HOUR,
        }
    }

    fn phase(p: &Plan) -> LeasePhase {
        p.status.phase.unwrap()
    }

    #[test]
    fn bound_only_when_every_host_is_claimed_then_provisioning_at_start() {
        let l = lease(None);
        let (h1, h2) = (
            host("h1", HostState::Claimed, true),
            host("h2", HostState::Available, false),
        );
        assert_eq!(
            phase(&plan(&facts(&l, &[&h1, &h2], "2026-11-24T09:00:00Z"))),
            LeasePhase::Pending
        );
        let h2 = host("h2", HostState::Claimed, true);
        let early = plan(&facts(&l, &[&h1, &h2], "2026-11-24T09:00:00Z"));
        assert_eq!(phase(&early), LeasePhase::Bound);
        assert_eq!(early.wake, Some(HOUR), "wakes exactly at the start");
        assert_eq!(
            phase(&plan(&facts(&l, &[&h1, &h2], "2026-11-24T10:00:00Z"))),
            LeasePhase::Provisioning
        );
    }

    #[test]
    fn ready_when_every_host_is_provisioned_and_progress_is_per_host() {
        let l = lease(Some(LeasePhase::Provisioning));
        let (h1, h2) = (
            host("h1", HostState::Provisioned, true),
            host("h2", HostState::Provisioning, true),
        );
        let p = plan(&facts(&l, &[&h2, &h1], "2026-11-24T10:05:00Z"));
        assert_eq!(phase(&p), LeasePhase::Provisioning);
        let states: Vec<_> = p
            .status
            .hosts
            .iter()
            .map(|h| (h.host.as_str(), h.state))
            .collect();
        assert_eq!(
            states,
            [
                ("h1", Some(HostState::Provisioned)),
                ("h2", Some(HostState::Provisioning))
            ]
        );
        let h2 = host("h2", HostState::Provisioned, true);
        let p = plan(&facts(&l, &[&h1, &h2], "2026-11-24T10:20:00Z"));
        assert_eq!(phase(&p), LeasePhase::Ready);
        assert_eq!(p.status.host_count, Some(2));
    }

    #[test]
    fn the_phase_keeps_the_time_it_was_entered_and_the_first_ready_says_how_long_it_took() {
        let mut l = lease(None);
        l.metadata.creation_timestamp = Some(Time(at("2026-11-24T09:00:00Z")));
        let claimed = |s| host("h1", s, true);
        let (h1, h2) = (
            claimed(HostState::Claimed),
            host("h2", HostState::Claimed, true),
        );
        let since = |p: &Plan| p.status.last_phase_transition_time.clone().unwrap().0;
        // First status: the Lease has been in its phase since it was created.
        let bound = plan(&facts(&l, &[&h1, &h2], "2026-11-24T09:30:00Z"));
        assert_eq!(since(&bound), at("2026-11-24T09:00:00Z"));
        l.status = Some(bound.status);
        let provisioning = plan(&facts(&l, &[&h1, &h2], "2026-11-24T10:01:00Z"));
        assert_eq!(phase(&provisioning), LeasePhase::Provisioning);
        assert_eq!(since(&provisioning), at("2026-11-24T10:01:00Z"));
        l.status = Some(provisioning.status);
        let later = plan(&facts(&l, &[&h1, &h2], "2026-11-24T10:40:00Z"));
        assert_eq!(
            since(&later),
            at("2026-11-24T10:01:00Z"),
            "same phase, same time"
        );
        assert_eq!(later.ready_after, None);
        let (h1, h2) = (
            claimed(HostState::Provisioned),
            host("h2", HostState::Provisioned, true),
        );
        let ready = plan(&facts(&l, &[&h1, &h2], "2026-11-24T10:50:00Z"));
        assert_eq!(phase(&ready), LeasePhase::Ready);
        assert_eq!(since(&ready), at("2026-11-24T10:50:00Z"));
        let ready_at = |p: &Plan| p.status.ready_at.clone().map(|t| t.0);
        assert_eq!(ready_at(&ready), Some(at("2026-11-24T10:50:00Z")));
        assert_eq!(
            ready.ready_after,
            Some(Duration::from_secs(50 * 60)),
            "from the start"
        );
        l.status = Some(ready.status);
        let again = plan(&facts(&l, &[&h1, &h2], "2026-11-24T11:00:00Z"));
        assert_eq!(again.ready_after, None, "counted once");
        assert_eq!(ready_at(&again), Some(at("2026-11-24T10:50:00Z")), "kept");
    }

    #[test]
    fn a_host_whose_booking_image_failed_ends_the_lease_with_the_reason() {
        let l = lease(Some(LeasePhase::Provisioning));
        let h1 = host("h1", HostState::Provisioned, true);
        let mut h2 = host("h2", HostState::Releasing, true);
        let t = Time(at("2026-11-24T10:05:00Z"));
        let why = "spec.image.url http://x.invalid/a.iso cannot be used: unreachable";
        if let Some(s) = h2.status.as_mut() {
            fixtures::image_refused(&mut s.conditions, why, &t);
        }
        let p = plan(&facts(&l, &[&h1, &h2], "2026-11-24T10:06:00Z"));
        assert_eq!(phase(&p), LeasePhase::Releasing);
        let c = find_condition(&p.status.conditions, BOOKING_FAILED).unwrap();
        assert_eq!(c.reason, "ImageRefused");
        assert_eq!(c.message, format!("host h2: {why}"));
        // The reason outlives the claims: Released keeps it.
        let mut released = l.clone();
        released.status = Some(p.status.clone());
        let (h1, h2) = (
            host("h1", HostState::Available, false),
            host("h2", HostState::Available, false),
        );
        let p = plan(&facts(&released, &[&h1, &h2], "2026-11-24T10:09:00Z"));
        assert_eq!(phase(&p), LeasePhase::Released);
        assert!(find_condition(&p.status.conditions, BOOKING_FAILED).is_some());
    }

    #[test]
    fn a_listed_host_another_lease_holds_is_never_ready_nor_shown() {
        let l = lease(Some(LeasePhase::Provisioning));
        let h1 = host("h1", HostState::Provisioned, true);
        let mut h2 = host("h2", HostState::Provisioned, true);
        if let Some(c) = h2.spec.claim_ref.as_mut() {
            c.lease = "other".into();
            c.uid = "u2".into();
        }
        let p = plan(&facts(&l, &[&h1, &h2], "2026-11-24T10:20:00Z"));
        assert_eq!(phase(&p), LeasePhase::Provisioning);
        let shown = p.status.hosts.iter().find(|h| h.host == "h2").unwrap();
        assert_eq!((shown.state, shown.step), (None, None));
        assert!(
            shown
                .message
                .as_deref()
                .unwrap()
                .contains("another booking"),
            "{shown:?}"
        );
    }

    #[test]
    fn a_listed_spare_left_unclaimed_is_resumed_and_one_taken_meanwhile_is_lost() {
        let l = lease(Some(LeasePhase::Ready));
        let h1 = host("h1", HostState::Available, false);
        let mut h2 = host("h2", HostState::Available, true);
        assert_eq!(unheld(&l, &[&h1, &h2]), [Unheld::Resume("h1".into())]);
        if let Some(c) = h2.spec.claim_ref.as_mut() {
            c.lease = "other".into();
        }
        let h1 = host("h1", HostState::Provisioned, true);
        assert_eq!(unheld(&l, &[&h1, &h2]), [Unheld::Lost("h2".into())]);
        let pending = lease(None);
        assert!(unheld(&pending, &[&h1, &h2]).is_empty(), "still binding");
        let releasing = lease(Some(LeasePhase::Releasing));
        assert!(
            unheld(&releasing, &[&h2]).is_empty(),
            "letting its hosts go"
        );
    }

    #[test]
    fn a_lease_whose_end_comes_before_it_was_ready_fails_naming_its_hosts() {
        let l = lease(Some(LeasePhase::Degraded));
        let (h1, h2) = (
            host("h1", HostState::Provisioned, true),
            host("h2", HostState::Error, true),
        );
        let p = plan(&facts(&l, &[&h1, &h2], "2026-11-26T10:00:00Z"));
        assert_eq!(phase(&p), LeasePhase::Releasing);
        let c = find_condition(&p.status.conditions, BOOKING_FAILED).unwrap();
        assert_eq!(
            (c.reason.as_str(), c.message.as_str()),
            (
                NOT_READY_BY_END,
                "the lease ended before every host ran the image (host h2: BMC answered 500)"
            )
        );
        let mut releasing = l.clone();
        releasing.status = Some(p.status);
        let p = plan(&facts(&releasing, &[&h1, &h2], "2026-11-26T10:01:00Z"));
        assert!(
            find_condition(&p.status.conditions, BOOKING_FAILED).is_some(),
            "kept"
        );
    }

    #[test]
    fn end_releases_and_released_waits_for_every_claim_to_clear() {
        let l = lease(Some(LeasePhase::Ready));
        let (h1, h2) = (
            host("h1", HostState::Releasing, true),
            host("h2", HostState::Available, false),
        );
        let p = plan(&facts(&l, &[&h1, &h2], "2026-11-26T10:00:00Z"));
        assert_eq!(phase(&p), LeasePhase::Releasing);
        assert_eq!(p.status.released_at, None);
        assert!(
            find_condition(&p.status.conditions, BOOKING_FAILED).is_none(),
            "a served booking did not fail"
        );
        let h1 = host("h1", HostState::Available, false);
        let p = plan(&facts(&l, &[&h1, &h2], "2026-11-26T10:07:00Z"));
        assert_eq!(phase(&p), LeasePhase::Released);
        assert_eq!(p.status.released_at, Some(Time(at("2026-11-26T10:07:00Z"))));
        assert_eq!(p.wake, Some(24 * HOUR), "wakes when the retention ends");
        assert!(!p.delete);
        let mut released = l.clone();
        released.status = Some(p.status);
        let p = plan(&facts(&released, &[&h1, &h2], "2026-11-27T10:07:00Z"));
        assert_eq!(
            p.status.released_at,
            Some(Time(at("2026-11-26T10:07:00Z"))),
            "kept, not moved"
        );
        assert!(p.delete);
        // Not before the request says how the booking ended.
        let both = [&h1, &h2];
        let mut untold = facts(&released, &both, "2026-11-27T10:07:00Z");
        untold.request_told = false;
        assert!(!plan(&untold).delete);
        untold.request_gone = true;
        assert!(plan(&untold).delete, "nobody left to tell");
    }

    #[test]
    fn a_released_lease_a_host_still_claims_is_releasing_again_and_not_collected() {
        let mut l = lease(Some(LeasePhase::Released));
        if let Some(s) = l.status.as_mut() {
            s.released_at = Some(Time(at("2026-11-26T10:00:00Z")));
        }
        let h1 = host("h1", HostState::Provisioned, true);
        let p = plan(&facts(&l, &[&h1], "2026-11-28T10:00:00Z"));
        assert_eq!(phase(&p), LeasePhase::Releasing);
        assert!(!p.delete);
    }

    #[test]
    fn an_ending_lease_waits_for_a_host_it_cannot_read() {
        let l = lease(Some(LeasePhase::Releasing));
        let h1 = host("h1", HostState::Available, false);
        let hosts = [&h1];
        let unreadable = [("h2".to_owned(), "unknown variant `Rebooting`".to_owned())];
        let mut f = facts(&l, &hosts, "2026-11-24T12:00:00Z");
        f.unreadable = &unreadable;
        let p = plan(&f);
        assert_eq!(phase(&p), LeasePhase::Releasing);
        assert!(!p.delete);
        let ready = find_condition(&p.status.conditions, READY).unwrap();
        assert_eq!(ready.reason, HOST_UNREADABLE);
        assert!(
            ready.message.contains("LabHost h2 cannot be read"),
            "{}",
            ready.message
        );
        // Once it can be read again (and is released), the lease ends.
        f.unreadable = &[];
        assert_eq!(phase(&plan(&f)), LeasePhase::Released);
    }

    #[test]
    fn a_deleted_request_releases_early() {
        let l = lease(Some(LeasePhase::Ready));
        let h1 = host("h1", HostState::Provisioned, true);
        let hosts = [&h1];
        let mut f = facts(&l, &hosts, "2026-11-24T12:00:00Z");
        f.request_gone = true;
        assert_eq!(phase(&plan(&f)), LeasePhase::Releasing);
    }

    #[test]
    fn a_host_being_deleted_is_replaced_like_a_failed_one() {
        let l = lease(Some(LeasePhase::Ready));
        let (mut h1, h2) = (
            host("h1", HostState::Provisioned, true),
            host("h2", HostState::Provisioned, true),
        );
        h1.metadata.deletion_timestamp = Some(Time(at("2026-11-24T10:00:00Z")));
        assert_eq!(
            failed_hosts(&l, &[&h1, &h2]),
            [("h1".to_owned(), "is being deleted from the lab".to_owned())]
        );
    }

    #[test]
    fn failed_hosts_without_spare_degrade_the_lease() {
        let l = lease(Some(LeasePhase::Provisioning));
        let (h1, h2) = (
            host("h1", HostState::Error, true),
            host("h2", HostState::Provisioned, true),
        );
        assert_eq!(
            failed_hosts(&l, &[&h1, &h2]),
            [("h1".to_owned(), "failed".to_owned())]
        );
        let unhealed = [(
            "h1".to_owned(),
            "no spare x86 host is free until 2026-11-26T10:00Z".to_owned(),
        )];
        let hosts = [&h1, &h2];
        let mut f = facts(&l, &hosts, "2026-11-24T10:30:00Z");
        f.unhealed = &unhealed;
        let p = plan(&f);
        assert_eq!(phase(&p), LeasePhase::Degraded);
        let c = find_condition(&p.status.conditions, DEGRADED).unwrap();
        assert_eq!(
            c.message,
            "host h1: no spare x86 host is free until 2026-11-26T10:00Z"
        );
        assert_eq!(
            p.status.hosts[0].message.as_deref(),
            Some("BMC answered 500")
        );
    }

    #[test]
    fn a_host_a_spare_replaced_is_listed_once_with_its_role_and_when_it_left() {
        let mut l = lease(Some(LeasePhase::Ready));
        l.spec.hosts[0].role = "jumphost".into();
        let (h1, h2) = (
            host("h1", HostState::Error, true),
            host("h2", HostState::Provisioned, true),
        );
        let failed = plan(&facts(&l, &[&h1, &h2], "2026-11-24T10:30:00Z"));
        assert!(failed.status.replaced.is_empty());
        let failed_at = |s: &LeaseStatus, h: &str| {
            let p = s.hosts.iter().find(|p| p.host == h).unwrap();
            p.failed_at.clone().map(|t| t.0)
        };
        assert_eq!(
            failed_at(&failed.status, "h1"),
            Some(at("2026-11-24T10:30:00Z"))
        );
        assert_eq!(failed.status.hosts[0].role, "jumphost");
        l.status = Some(failed.status);
        // Healing swapped the spare h3 in for h1 (it takes over the slot and its role).
        l.spec.hosts = vec![
            l.spec.hosts[1].clone(),
            LeaseHost {
                host: "h3".into(),
                role: "jumphost".into(),
                hostname: l.spec.hosts[0].hostname.clone(),
            },
        ];
        let h3 = host("h3", HostState::Provisioning, true);
        let swapped = plan(&facts(&l, &[&h2, &h3], "2026-11-24T10:31:00Z"));
        let h1_left = [ReplacedHost {
            host: "h1".into(),
            role: "jumphost".into(),
            at: Time(at("2026-11-24T10:31:00Z")),
        }];
        assert_eq!(swapped.status.replaced, h1_left);
        l.status = Some(swapped.status.clone());
        let unchanged = plan(&facts(&l, &[&h2, &h3], "2026-11-24T10:40:00Z"));
        assert_eq!(unchanged.status, swapped.status, "nothing new to write");
        let h3 = host("h3", HostState::Provisioned, true);
        let ready = plan(&facts(&l, &[&h2, &h3], "2026-11-24T10:50:00Z"));
        assert_eq!(phase(&ready), LeasePhase::Ready);
        assert_eq!(ready.status.replaced, h1_left, "kept");
        // A status written before hosts had a role: the role of the spare that took the slot.
        let mut old = l.clone();
        if let Some(s) = old.status.as_mut() {
            s.replaced.clear();
            let unroled = |name: &str, h: &LabHost| {
                let host = LeaseHost {
                    host: name.into(),
                    ..LeaseHost::default()
                };
                progress(&host, Some(h))
            };
            s.hosts = vec![unroled("h1", &h1), unroled("h2", &h2)];
        }
        let upgraded = plan(&facts(&old, &[&h2, &h3], "2026-11-24T10:50:00Z"));
        assert_eq!(upgraded.status.replaced[0].role, "jumphost");
    }

    #[test]
    fn a_failure_stays_on_the_host_after_it_recovers() {
        let mut l = lease(Some(LeasePhase::Ready));
        let (h1, h2) = (
            host("h1", HostState::Provisioned, true),
            host("h2", HostState::Error, true),
        );
        let failed = plan(&facts(&l, &[&h1, &h2], "2026-11-24T10:30:00Z"));
        l.status = Some(failed.status);
        let h2 = host("h2", HostState::Provisioned, true);
        let recovered = plan(&facts(&l, &[&h1, &h2], "2026-11-24T10:45:00Z"));
        let failed_at: Vec<_> = recovered
            .status
            .hosts
            .iter()
            .map(|p| (p.host.as_str(), p.state, p.failed_at.clone().map(|t| t.0)))
            .collect();
        assert_eq!(
            failed_at,
            [
                ("h1", Some(HostState::Provisioned), None),
                (
                    "h2",
                    Some(HostState::Provisioned),
                    Some(at("2026-11-24T10:30:00Z"))
                )
            ]
        );
    }

    #[test]
    fn expiry_notices_at_each_offset_and_wake_at_the_next() {
        let l = lease(Some(LeasePhase::Ready));
        let (h1, h2) = (
            host("h1", HostState::Provisioned, true),
            host("h2", HostState::Provisioned, true),
        );
        let p = plan(&facts(&l, &[&h1, &h2], "2026-11-24T12:00:00Z"));
        assert!(find_condition(&p.status.conditions, EXPIRING_SOON).is_none());
        assert_eq!(p.wake, Some(22 * HOUR), "next instant: 24h before the end");
        let day = plan(&facts(&l, &[&h1, &h2], "2026-11-25T10:00:00Z"));
        assert_eq!(
            find_condition(&day.status.conditions, EXPIRING_SOON)
                .unwrap()
                .reason,
            "EndsWithin1d"
        );
        assert_eq!(day.wake, Some(23 * HOUR));
        assert_eq!(
            new_notice(l.status.as_ref(), &day.status),
            Some("EndsWithin1d".into())
        );
        let hour = plan(&facts(&l, &[&h1, &h2], "2026-11-26T09:30:00Z"));
        assert_eq!(
            find_condition(&hour.status.conditions, EXPIRING_SOON)
                .unwrap()
                .reason,
            "EndsWithin1h"
        );
        assert_eq!(
            new_notice(Some(&day.status), &hour.status),
            Some("EndsWithin1h".into())
        );
        assert_eq!(
            new_notice(Some(&hour.status), &hour.status),
            None,
            "one event per offset"
        );
    }

    #[test]
    fn a_refused_lease_reports_why_and_shows_nothing_of_the_hosts_it_names() {
        let mut l = lease(Some(LeasePhase::Ready));
        l.metadata.generation = Some(2);
        let now = at("2026-11-24T12:00:00Z");
        let releasing = refused(&l, &Untrusted::Mismatch, true, now);
        assert_eq!(releasing.phase, Some(LeasePhase::Releasing));
        assert!(releasing.hosts.is_empty(), "{:?}", releasing.hosts);
        assert_eq!(releasing.released_at, None);
        let authentic = find_condition(&releasing.conditions, AUTHENTIC).unwrap();
        assert_eq!(
            (authentic.status.as_str(), authentic.reason.as_str()),
            ("False", "ChangedByOthers")
        );
        assert!(
            authentic
                .message
                .contains("someone other than the labpods operator")
                && authentic.message.contains("being released"),
            "{}",
            authentic.message
        );
        let ready = find_condition(&releasing.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", NOT_AUTHENTIC)
        );
        assert!(newly_refused(l.status.as_ref()));

        // Once no host is claimed for it: Released, and the instant is kept.
        l.status = Some(releasing);
        assert!(!newly_refused(l.status.as_ref()), "one event per refusal");
        let later = at("2026-11-24T12:05:00Z");
        let released = refused(&l, &Untrusted::Mismatch, false, later);
        assert_eq!(released.phase, Some(LeasePhase::Released));
        assert_eq!(released.released_at, Some(Time(later)));
        l.status = Some(released.clone());
        assert_eq!(
            refused(&l, &Untrusted::Mismatch, false, at("2026-11-25T00:00:00Z")),
            released,
            "a second pass writes nothing"
        );
    }

    #[test]
    fn a_sealed_lease_carries_no_authentic_condition() {
        let mut l = lease(Some(LeasePhase::Ready));
        l.status = Some(refused(
            &l,
            &Untrusted::Unsigned,
            false,
            at("2026-11-24T11:00:00Z"),
        ));
        l.status.as_mut().unwrap().phase = Some(LeasePhase::Ready);
        let (h1, h2) = (
            host("h1", HostState::Provisioned, true),
            host("h2", HostState::Provisioned, true),
        );
        let p = plan(&facts(&l, &[&h1, &h2], "2026-11-24T12:00:00Z"));
        assert!(find_condition(&p.status.conditions, AUTHENTIC).is_none());
    }
}

//! Table-style tests of the scheduler with a fixed clock.

use std::collections::BTreeMap;

use chrono::{TimeDelta, TimeZone, Utc};

use super::*;

fn now() -> Time {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0)
        .single()
        .unwrap_or_default()
}

fn at(hours: i64) -> Time {
    now() + TimeDelta::hours(hours)
}

/// The default release allowance.
const ALLOW: TimeDelta = TimeDelta::minutes(10);

fn host(name: &str, profile: &str, rack: &str) -> Host {
    Host {
        name: name.to_owned(),
        labels: [
            ("rack".to_owned(), rack.to_owned()),
            ("profile".to_owned(), profile.to_owned()),
        ]
        .into(),
        profile: profile.to_owned(),
        schedulable: true,
        claim: None,
    }
}

fn hosts(n: usize, profile: &str) -> Vec<Host> {
    (0..n)
        .map(|i| {
            host(
                &format!("{profile}-{i:02}"),
                profile,
                if i % 2 == 0 { "r1" } else { "r2" },
            )
        })
        .collect()
}

fn claimed(mut h: Host, owner: &str, until: Time) -> Host {
    let (ns, name) = owner.split_once('/').unwrap_or(("default", owner));
    h.claim = Some(Claim {
        owner: RequestKey::new(ns, name),
        until,
    });
    h
}

fn role(name: &str, count: u32, profile: &str) -> Role {
    Role {
        name: name.to_owned(),
        count,
        selector: Selector::default(),
        profile: Some(profile.to_owned()),
    }
}

/// A request created `seq` minutes before now, for `hours`, starting at `start` (None: now).
fn req(key: &str, seq: u64, roles: Vec<Role>, start: Option<Time>, hours: i64) -> Request {
    let (ns, name) = key.split_once('/').unwrap_or(("default", key));
    Request {
        key: RequestKey::new(ns, name),
        uid: format!("uid-{seq}"),
        created: now() - TimeDelta::minutes(100)
            + TimeDelta::minutes(i64::try_from(seq).unwrap_or(0)),
        seq,
        roles,
        start,
        length: Length::For(TimeDelta::hours(hours)),
    }
}

fn input(hosts: Vec<Host>, requests: Vec<Request>) -> PlanInput {
    PlanInput {
        now: now(),
        hosts,
        reservations: Vec::new(),
        requests,
        policy: Policy::default(),
    }
}

fn decisions(input: &PlanInput) -> BTreeMap<String, Decision> {
    plan(input)
        .into_iter()
        .map(|p| (p.key.to_string(), p.decision))
        .collect()
}

fn placed_hosts(d: &Decision) -> Vec<&str> {
    match d {
        Decision::Bind(p) | Decision::Reserve(p) => {
            p.assignments.iter().map(|a| a.host.as_str()).collect()
        }
        _ => Vec::new(),
    }
}

fn bind(d: &Decision) -> &Placement {
    match d {
        Decision::Bind(p) => p,
        other => panic!("expected Bind, got {other:?}"),
    }
}

fn wait(d: &Decision) -> (&str, Option<Time>) {
    match d {
        Decision::Wait {
            message,
            earliest_start,
        } => (message, *earliest_start),
        other => panic!("expected Wait, got {other:?}"),
    }
}

fn unsatisfiable(d: &Decision) -> &str {
    match d {
        Decision::Unsatisfiable { message } => message,
        other => panic!("expected Unsatisfiable, got {other:?}"),
    }
}

#[test]
fn free_lab_binds_now_for_the_requested_length() {
    let d = decisions(&input(
        hosts(3, "x86"),
        vec![req("team/a", 1, vec![role("node", 2, "x86")], None, 4)],
    ));
    let p = bind(&d["team/a"]);
    assert_eq!((p.start, p.end), (now(), at(4)));
    // Same rack (even-numbered hosts are in r1).
    assert_eq!(placed_hosts(&d["team/a"]), vec!["x86-00", "x86-02"]);
    assert!(p.assignments.iter().all(|a| a.role == "node"));
}

#[test]
fn first_come_first_served_and_the_wait_message_says_when() {
    let mut lab = hosts(3, "x86-large");
    lab[0] = claimed(lab[0].clone(), "other/x", at(4));
    lab[1] = claimed(lab[1].clone(), "other/x", at(4));
    let requests = vec![
        req(
            "team/second",
            2,
            vec![role("node", 1, "x86-large")],
            None,
            2,
        ),
        req("team/first", 1, vec![role("node", 3, "x86-large")], None, 2),
    ];
    let d = decisions(&input(lab, requests));
    let (message, earliest) = wait(&d["team/first"]);
    assert_eq!(
        message,
        "waiting for 3 x86-large hosts; 1 free now; earliest start 2026-11-24T14:10Z"
    );
    assert_eq!(earliest, Some(at(4) + ALLOW));
    // The later request fits on the free host and ends (2h + allowance) before 14:10: backfill.
    assert_eq!(placed_hosts(&d["team/second"]), vec!["x86-large-02"]);
}

#[test]
fn backfill_is_refused_when_it_would_delay_an_earlier_request() {
    let mut lab = hosts(4, "x86");
    lab[0] = claimed(lab[0].clone(), "other/x", at(4));
    lab[1] = claimed(lab[1].clone(), "other/x", at(4));
    let first = req("team/first", 1, vec![role("node", 4, "x86")], None, 8);
    let cases = [
        // (hours of the later 2-host request, binds now?)
        (1, true),
        (4, true),  // ends 14:00, released by 14:10: just in time
        (5, false), // would be released at 15:10, after the earlier request's start
        (30, false),
    ];
    for (hours, binds) in cases {
        let later = req("team/later", 2, vec![role("node", 2, "x86")], None, hours);
        let d = decisions(&input(lab.clone(), vec![first.clone(), later]));
        let (_, first_start) = wait(&d["team/first"]);
        assert_eq!(
            first_start,
            Some(at(4) + ALLOW),
            "the earlier request is never delayed ({hours}h)"
        );
        match &d["team/later"] {
            Decision::Bind(p) => assert!(binds, "{hours}h backfilled: {p:?}"),
            Decision::Wait { earliest_start, .. } => {
                assert!(!binds, "{hours}h should have backfilled");
                assert_eq!(
                    *earliest_start,
                    Some(at(4) + ALLOW + TimeDelta::hours(8) + ALLOW)
                );
            }
            other => panic!("{hours}h: {other:?}"),
        }
    }
}

#[test]
fn plain_fcfs_never_lets_a_later_request_overtake_a_delayed_one_in_its_pool() {
    let mut lab = hosts(4, "x86");
    lab[0] = claimed(lab[0].clone(), "other/x", at(4));
    lab[1] = claimed(lab[1].clone(), "other/x", at(4));
    lab.push(host("arm-00", "arm", "r1"));
    let mut inp = input(
        lab,
        vec![
            req("team/first", 1, vec![role("node", 4, "x86")], None, 8),
            req("team/later", 2, vec![role("node", 1, "x86")], None, 1),
            req("team/arm", 3, vec![role("node", 1, "arm")], None, 1),
        ],
    );
    inp.policy.backfill = false;
    let d = decisions(&inp);
    let (message, earliest) = wait(&d["team/later"]);
    assert_eq!(earliest, Some(at(4) + ALLOW + TimeDelta::hours(8) + ALLOW));
    assert!(
        message.starts_with("waiting behind earlier requests"),
        "{message}"
    );
    assert!(
        matches!(d["team/arm"], Decision::Bind(_)),
        "another pool is another queue"
    );
    inp.policy.backfill = true;
    assert!(
        matches!(decisions(&inp)["team/later"], Decision::Bind(_)),
        "with backfill it fits before"
    );
}

#[test]
fn future_booking_is_reserved_and_backfill_cannot_steal_it() {
    let lab = hosts(3, "x86");
    let booking = req(
        "team/tomorrow",
        1,
        vec![role("node", 3, "x86")],
        Some(at(24)),
        8,
    );
    let d = decisions(&input(
        lab.clone(),
        vec![
            booking.clone(),
            req("team/long", 2, vec![role("node", 1, "x86")], None, 30),
            req("team/short", 3, vec![role("node", 1, "x86")], None, 2),
        ],
    ));
    match &d["team/tomorrow"] {
        Decision::Reserve(p) => {
            assert_eq!((p.start, p.end, p.assignments.len()), (at(24), at(32), 3))
        }
        other => panic!("{other:?}"),
    }
    let (_, long_start) = wait(&d["team/long"]);
    assert_eq!(long_start, Some(at(32) + ALLOW));
    assert_eq!(placed_hosts(&d["team/short"]).len(), 1);

    // Next pass: the reservation is persisted and honoured, and binds at its start.
    let Decision::Reserve(p) = &d["team/tomorrow"] else {
        unreachable!()
    };
    let reservations: Vec<Reservation> = p
        .assignments
        .iter()
        .map(|a| Reservation {
            host: a.host.clone(),
            role: a.role.clone(),
            owner: booking.key.clone(),
            start: p.start,
            end: p.end,
        })
        .collect();
    let mut next = input(
        lab,
        vec![
            booking,
            req("team/long", 2, vec![role("node", 1, "x86")], None, 30),
        ],
    );
    next.reservations = reservations;
    let d2 = decisions(&next);
    assert_eq!(d2["team/tomorrow"], d["team/tomorrow"]);
    assert_eq!(wait(&d2["team/long"]).1, Some(at(32) + ALLOW));
    next.now = at(24);
    next.requests.truncate(1);
    assert_eq!(bind(&decisions(&next)["team/tomorrow"]), p);
}

#[test]
fn reserved_host_entering_maintenance_is_replaced() {
    let mut lab = hosts(4, "x86");
    let booking = req(
        "team/tomorrow",
        1,
        vec![role("node", 2, "x86")],
        Some(at(24)),
        8,
    );
    let mut inp = input(lab.clone(), vec![booking.clone()]);
    inp.reservations = ["x86-00", "x86-01"]
        .iter()
        .map(|h| Reservation {
            host: (*h).to_owned(),
            role: "node".into(),
            owner: booking.key.clone(),
            start: at(24),
            end: at(32),
        })
        .collect();
    assert_eq!(
        placed_hosts(&decisions(&inp)["team/tomorrow"]),
        vec!["x86-00", "x86-01"]
    );
    lab[0].schedulable = false;
    inp.hosts = lab;
    let d = decisions(&inp);
    assert!(matches!(d["team/tomorrow"], Decision::Reserve(_)));
    assert!(!placed_hosts(&d["team/tomorrow"]).contains(&"x86-00"));
}

#[test]
fn a_reservation_whose_window_passed_is_replanned_not_bound_in_the_past() {
    let booking = req("team/b", 1, vec![role("node", 1, "x86")], Some(at(-3)), 2);
    let mut inp = input(vec![host("h1", "x86", "r1")], vec![booking.clone()]);
    inp.reservations = vec![Reservation {
        host: "h1".into(),
        role: "node".into(),
        owner: booking.key.clone(),
        start: at(-3),
        end: at(-1),
    }];
    let d = decisions(&inp);
    let p = bind(&d["team/b"]);
    assert_eq!(
        (p.start, p.end),
        (now(), at(2)),
        "the booking keeps its length from now"
    );
}

#[test]
fn reserved_start_waits_for_a_lease_still_releasing() {
    let booking = req("team/b", 1, vec![role("node", 1, "x86")], Some(now()), 8);
    let mut inp = input(
        vec![claimed(host("h1", "x86", "r1"), "other/a", now())],
        vec![booking.clone()],
    );
    inp.reservations = vec![Reservation {
        host: "h1".into(),
        role: "node".into(),
        owner: booking.key.clone(),
        start: now(),
        end: at(8),
    }];
    let d = decisions(&inp);
    let (message, earliest) = wait(&d["team/b"]);
    assert_eq!(earliest, Some(now() + ALLOW));
    assert_eq!(
        message,
        "reserved host h1 is still held by other/a; earliest start 2026-11-24T10:10Z"
    );
}

#[test]
fn hosts_in_maintenance_are_never_chosen() {
    let mut lab = hosts(3, "x86");
    lab[0].schedulable = false;
    let d = decisions(&input(
        lab,
        vec![
            req("team/a", 1, vec![role("node", 2, "x86")], None, 4),
            req("team/b", 2, vec![role("node", 3, "x86")], None, 4),
        ],
    ));
    assert_eq!(placed_hosts(&d["team/a"]), vec!["x86-01", "x86-02"]);
    let (message, earliest) = wait(&d["team/b"]);
    assert_eq!(earliest, None);
    assert_eq!(
        message,
        "waiting for 3 x86 hosts (role node): 2 of the 3 matching hosts are schedulable, the others are in maintenance, in Error or unreachable"
    );
}

#[test]
fn namespace_quota_makes_requests_wait_or_unsatisfiable() {
    let mut lab = hosts(8, "x86");
    for h in lab.iter_mut().take(3) {
        *h = claimed(h.clone(), "team/running", at(4));
    }
    let mut inp = input(
        lab,
        vec![
            req("team/two", 1, vec![role("node", 2, "x86")], None, 2),
            req("team/five", 2, vec![role("node", 5, "x86")], None, 2),
            req("other/two", 3, vec![role("node", 2, "x86")], None, 2),
        ],
    );
    inp.policy.default_quota = Some(4);
    let d = decisions(&inp);
    let (message, earliest) = wait(&d["team/two"]);
    assert_eq!(
        earliest,
        Some(at(4)),
        "quota frees at the lease end (the allowance is not counted)"
    );
    assert!(
        message
            .starts_with("waiting for quota: namespace team may hold 4 hosts at once, holds 3 now"),
        "{message}"
    );
    assert!(unsatisfiable(&d["team/five"]).contains("namespace team may hold at most 4 hosts"));
    assert!(matches!(d["other/two"], Decision::Bind(_)));

    inp.policy.quota_overrides.insert("team".into(), 5);
    assert!(matches!(decisions(&inp)["team/two"], Decision::Bind(_)));
}

#[test]
fn fairness_prefers_the_namespace_holding_fewer_hosts() {
    let mut lab = hosts(4, "x86");
    lab[0] = claimed(lab[0].clone(), "big/running", at(8));
    lab[1] = claimed(lab[1].clone(), "big/running", at(8));
    let requests = vec![
        req("big/more", 1, vec![role("node", 2, "x86")], None, 4),
        req("small/first", 2, vec![role("node", 2, "x86")], None, 4),
    ];
    let cases = [
        (TimeDelta::zero(), "big/more"),
        (TimeDelta::hours(1), "small/first"),
    ];
    for (window, winner) in cases {
        let mut inp = input(lab.clone(), requests.clone());
        inp.policy.fairness_window = window;
        let d = decisions(&inp);
        assert!(
            matches!(d[winner], Decision::Bind(_)),
            "window {window}: {d:?}"
        );
    }
}

#[test]
fn unsatisfiable_requests_name_the_role_and_the_fix() {
    let mut two_roles = req(
        "team/r",
        1,
        vec![role("jump", 2, "x86"), role("node", 2, "x86")],
        None,
        2,
    );
    two_roles.roles[1].profile = None;
    two_roles.roles[1]
        .selector
        .match_labels
        .insert("profile".into(), "x86".into());
    let mut ends_before = req("team/e", 1, vec![role("node", 1, "x86")], Some(at(5)), 1);
    ends_before.length = Length::Until(at(4));
    let cases: Vec<(Request, &str)> = vec![
        (
            req("team/big", 1, vec![role("node", 5, "x86-large")], None, 2),
            "role node asks for 5 x86-large hosts but the lab has only 3: lower the count or choose another profile or selector",
        ),
        (
            req("team/long", 1, vec![role("node", 1, "x86")], None, 24 * 30),
            "the booking lasts 30d, more than the lab's maximum of 14d",
        ),
        (
            req("team/none", 1, vec![role("node", 0, "x86")], None, 2),
            "the request asks for no hosts",
        ),
        (ends_before, "the booking ends before it starts"),
        (
            two_roles,
            "the roles together ask for 4 hosts but only 3 hosts match any of them",
        ),
    ];
    let mut lab = hosts(3, "x86-large");
    lab.extend(hosts(3, "x86"));
    for (request, want) in cases {
        let key = request.key.to_string();
        let mut inp = input(lab.clone(), vec![request]);
        inp.policy.max_duration = Some(TimeDelta::days(14));
        let d = decisions(&inp);
        let message = unsatisfiable(&d[&key]);
        assert!(message.starts_with(want), "{key}: {message}");
    }
}

#[test]
fn placement_packs_tightly_then_keeps_racks_together_then_by_name() {
    let lab = vec![
        host("a", "x86", "r1"),
        host("b", "x86", "r2"),
        host("c", "x86", "r2"),
        host("d", "x86", "r1"),
    ];
    let owner = RequestKey::new("other", "later");
    let reservation = |h: &str, start: Time| Reservation {
        host: h.into(),
        role: "node".into(),
        owner: owner.clone(),
        start,
        end: start + TimeDelta::hours(1),
    };
    // d is booked right after the window: pack there; then the rest by rack of d (r1: a), then name.
    let mut inp = input(
        lab.clone(),
        vec![req("team/a", 1, vec![role("node", 2, "x86")], None, 4)],
    );
    inp.reservations = vec![reservation("d", at(5)), reservation("c", at(50))];
    assert_eq!(
        placed_hosts(&decisions(&inp)["team/a"]),
        vec!["c", "d"],
        "tightest first: d (5h), then c (50h)"
    );
    inp.reservations = vec![reservation("d", at(5))];
    assert_eq!(
        placed_hosts(&decisions(&inp)["team/a"]),
        vec!["a", "d"],
        "then the same rack as d"
    );
    inp.reservations.clear();
    assert_eq!(
        placed_hosts(&decisions(&inp)["team/a"]),
        vec!["a", "d"],
        "no bookings: rack of the first by name"
    );
}

#[test]
fn roles_with_narrow_selectors_are_placed_first() {
    let lab = vec![host("a", "x86", "r1"), host("b", "x86", "r2")];
    let mut jump = role("jump", 1, "x86");
    jump.selector.match_expressions.push(Requirement {
        key: "rack".into(),
        operator: Operator::In(vec!["r1".into()]),
    });
    let d = decisions(&input(
        lab,
        vec![req(
            "team/pod",
            1,
            vec![role("node", 1, "x86"), jump],
            None,
            2,
        )],
    ));
    let Decision::Bind(p) = &d["team/pod"] else {
        panic!("{d:?}")
    };
    assert_eq!(
        p.assignments,
        vec![
            Assignment {
                role: "jump".into(),
                host: "a".into()
            },
            Assignment {
                role: "node".into(),
                host: "b".into()
            }
        ]
    );
}

fn extension_lab() -> PlanInput {
    let owner = RequestKey::new("team", "running");
    let other = RequestKey::new("other", "next");
    let mut inp = input(
        vec![
            claimed(host("h1", "x86", "r1"), "team/running", at(4)),
            host("h2", "x86", "r1"),
        ],
        vec![],
    );
    inp.reservations = vec![
        Reservation {
            host: "h1".into(),
            role: "node".into(),
            owner: other.clone(),
            start: at(10),
            end: at(12),
        },
        Reservation {
            host: "h2".into(),
            role: "node".into(),
            owner: other,
            start: at(1),
            end: at(2),
        },
        Reservation {
            host: "h1".into(),
            role: "node".into(),
            owner,
            start: at(-2),
            end: at(4),
        },
    ];
    inp.policy.max_duration = Some(TimeDelta::hours(24));
    inp.policy.extension_budget = Some(TimeDelta::hours(12));
    inp
}

#[test]
fn extensions_are_checked_against_reservations_and_policy() {
    let lab = extension_lab();
    let ext = |new_end: Time| Extension {
        owner: RequestKey::new("team", "running"),
        hosts: vec!["h1".into()],
        start: at(-2),
        original_end: at(2),
        current_end: at(4),
        new_end,
    };
    let cases: Vec<(Time, Option<&str>)> = vec![
        (at(3), None),
        (at(9), None),
        (at(10) - ALLOW, None),
        (
            at(10),
            Some(
                "host h1 is reserved by other/next from 2026-11-24T20:00Z: the booking can end at 2026-11-24T19:50Z at the latest",
            ),
        ),
        (
            at(15),
            Some("extensions may add at most 12h to a booking; this one would add 13h"),
        ),
        (
            at(23),
            Some("the booking would last 25h, more than the lab's maximum of 1d"),
        ),
    ];
    for (new_end, want) in cases {
        let got = check_extension(&ext(new_end), &lab);
        match want {
            None => assert_eq!(got, ExtensionDecision::Accepted, "to {new_end}"),
            Some(w) => assert!(
                matches!(&got, ExtensionDecision::Rejected { reason } if reason.starts_with(w)),
                "to {new_end}: {got:?}"
            ),
        }
    }
}

#[test]
fn spares_match_the_role_prefer_the_rack_and_respect_the_calendar() {
    let owner = RequestKey::new("team", "pod");
    let mut lab = input(
        vec![
            claimed(host("failed", "x86", "r1"), "team/pod", at(6)),
            host("maint", "x86", "r1"),
            claimed(host("busy", "x86", "r1"), "other/x", at(2)),
            host("reserved", "x86", "r1"),
            host("other-rack", "x86", "r2"),
            host("same-rack", "x86", "r1"),
            host("arm", "arm", "r1"),
        ],
        vec![],
    );
    lab.hosts[1].schedulable = false;
    lab.reservations = vec![Reservation {
        host: "reserved".into(),
        role: "node".into(),
        owner: RequestKey::new("other", "y"),
        start: at(3),
        end: at(5),
    }];
    let node = role("node", 1, "x86");
    let query = SpareQuery {
        owner: &owner,
        role: &node,
        failed_host: "failed",
        end: at(6),
    };
    assert_eq!(find_spare(&query, &lab).as_deref(), Some("same-rack"));
    lab.hosts[5].schedulable = false;
    assert_eq!(find_spare(&query, &lab).as_deref(), Some("other-rack"));
    lab.hosts[4].schedulable = false;
    assert_eq!(find_spare(&query, &lab), None);
    let arm = role("node", 1, "arm");
    assert_eq!(
        find_spare(
            &SpareQuery {
                role: &arm,
                ..query
            },
            &lab
        )
        .as_deref(),
        Some("arm")
    );
}

/// xorshift64*: deterministic, no dependency, good enough to shuffle fixtures.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// 20 requests competing for 12 hosts, over many seeds and several passes in simulated
/// time: every binding and reservation is valid and no host is ever in two overlapping
/// windows; every request gets a decision, with a reason when it is not placed.
#[test]
fn twenty_requests_for_twelve_hosts_never_double_assign() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut lab: Vec<Host> = (0..12)
            .map(|i| {
                host(
                    &format!("h{i:02}"),
                    if i < 8 { "x86" } else { "arm" },
                    if i % 3 == 0 { "r1" } else { "r2" },
                )
            })
            .collect();
        lab[usize::try_from(rng.below(12)).unwrap_or(0)].schedulable = false;
        let mut pending: Vec<Request> = (0..20u64)
            .map(|i| {
                let profile = if rng.below(4) == 0 { "arm" } else { "x86" };
                let start =
                    (rng.below(3) == 0).then(|| at(i64::try_from(rng.below(12)).unwrap_or(0)));
                let hours = i64::try_from(1 + rng.below(8)).unwrap_or(1);
                let mut roles = vec![role(
                    "node",
                    u32::try_from(1 + rng.below(4)).unwrap_or(1),
                    profile,
                )];
                if rng.below(3) == 0 {
                    roles.push(role("jump", 1, "x86"));
                }
                req(&format!("ns{}/r{i}", rng.below(3)), i, roles, start, hours)
            })
            .collect();
        let mut policy = Policy {
            fairness_window: TimeDelta::minutes(30),
            ..Policy::default()
        };
        if seed % 2 == 0 {
            policy.default_quota = Some(6);
        }
        // (host, start, end incl. allowance) of every binding ever made.
        let mut history: Vec<(String, Time, Time, String)> = Vec::new();
        let mut reservations: Vec<Reservation> = Vec::new();
        let mut clock = now();
        for _pass in 0..12 {
            let inp = PlanInput {
                now: clock,
                hosts: lab.clone(),
                reservations: reservations.clone(),
                requests: pending.clone(),
                policy: policy.clone(),
            };
            let out = plan(&inp);
            assert_eq!(
                out.len(),
                pending.len(),
                "seed {seed}: one decision per request"
            );
            let mut windows: Vec<(String, Time, Time, String)> = history.clone();
            for p in &out {
                let request = pending
                    .iter()
                    .find(|r| r.key == p.key)
                    .unwrap_or_else(|| panic!("unknown {}", p.key));
                match &p.decision {
                    Decision::Bind(pl) | Decision::Reserve(pl) => {
                        for role in &request.roles {
                            let got: Vec<&Assignment> = pl
                                .assignments
                                .iter()
                                .filter(|a| a.role == role.name)
                                .collect();
                            assert_eq!(
                                got.len(),
                                role.count as usize,
                                "seed {seed} {}: role {}",
                                p.key,
                                role.name
                            );
                            for a in got {
                                let h = lab
                                    .iter()
                                    .find(|h| h.name == a.host)
                                    .unwrap_or_else(|| panic!("no host {}", a.host));
                                assert!(
                                    h.schedulable,
                                    "seed {seed}: {} got unschedulable {}",
                                    p.key, h.name
                                );
                                assert_eq!(Some(&h.profile), role.profile.as_ref());
                            }
                        }
                        let mut distinct: Vec<&str> =
                            pl.assignments.iter().map(|a| a.host.as_str()).collect();
                        distinct.sort_unstable();
                        distinct.dedup();
                        assert_eq!(
                            distinct.len(),
                            pl.assignments.len(),
                            "seed {seed}: a host twice in {}",
                            p.key
                        );
                        for a in &pl.assignments {
                            windows.push((
                                a.host.clone(),
                                pl.start,
                                pl.end + ALLOW,
                                p.key.to_string(),
                            ));
                        }
                    }
                    Decision::Wait { message, .. } | Decision::Unsatisfiable { message } => {
                        assert!(!message.is_empty(), "seed {seed}: {} has no reason", p.key);
                    }
                }
            }
            // Reserve decisions are re-made each pass; keep one window per (host, owner).
            windows.sort();
            windows.dedup();
            for (i, a) in windows.iter().enumerate() {
                for b in &windows[i + 1..] {
                    assert!(
                        a.0 != b.0 || a.3 == b.3 || a.2 <= b.1 || b.2 <= a.1,
                        "seed {seed}: host {} in two windows: {a:?} {b:?}",
                        a.0
                    );
                }
            }
            // Apply the decisions as the controller would, then advance the clock.
            reservations.clear();
            let mut still = Vec::new();
            for p in out {
                let Some(request) = pending.iter().find(|r| r.key == p.key).cloned() else {
                    continue;
                };
                match p.decision {
                    Decision::Bind(pl) => {
                        for a in &pl.assignments {
                            if let Some(h) = lab.iter_mut().find(|h| h.name == a.host) {
                                assert!(
                                    h.claim.is_none(),
                                    "seed {seed}: {} bound while claimed: {h:?}",
                                    p.key
                                );
                                h.claim = Some(Claim {
                                    owner: p.key.clone(),
                                    until: pl.end,
                                });
                            }
                            history.push((
                                a.host.clone(),
                                pl.start,
                                pl.end + ALLOW,
                                p.key.to_string(),
                            ));
                        }
                    }
                    Decision::Reserve(pl) => {
                        reservations.extend(pl.assignments.iter().map(|a| Reservation {
                            host: a.host.clone(),
                            role: a.role.clone(),
                            owner: p.key.clone(),
                            start: pl.start,
                            end: pl.end,
                        }));
                        still.push(request);
                    }
                    Decision::Wait { .. } => still.push(request),
                    Decision::Unsatisfiable { .. } => {}
                }
            }
            pending = still;
            clock += TimeDelta::hours(i64::try_from(1 + rng.below(3)).unwrap_or(1));
            for h in &mut lab {
                if h.claim.as_ref().is_some_and(|c| c.until + ALLOW <= clock) {
                    h.claim = None;
                }
            }
        }
    }
}

/// Planning is sequential: adding later requests never changes an earlier one's decision.
#[test]
fn later_requests_never_change_earlier_decisions() {
    for seed in 1..=50u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
        let mut lab = hosts(10, "x86");
        lab[3] = claimed(lab[3].clone(), "x/y", at(3));
        lab[6] = claimed(lab[6].clone(), "x/y", at(5));
        let requests: Vec<Request> = (0..15u64)
            .map(|i| {
                let start =
                    (rng.below(2) == 0).then(|| at(i64::try_from(rng.below(10)).unwrap_or(0)));
                let hours = i64::try_from(1 + rng.below(10)).unwrap_or(1);
                req(
                    &format!("ns/r{i:02}"),
                    i,
                    vec![role(
                        "node",
                        u32::try_from(1 + rng.below(5)).unwrap_or(1),
                        "x86",
                    )],
                    start,
                    hours,
                )
            })
            .collect();
        let all = plan(&input(lab.clone(), requests.clone()));
        for k in 1..requests.len() {
            let prefix = plan(&input(lab.clone(), requests[..k].to_vec()));
            assert_eq!(
                prefix[..],
                all[..k],
                "seed {seed}: request {k} changed an earlier decision"
            );
        }
    }
}

/// `spec.end` is when the booking ends, however late it starts: a Lease given a later end
/// was shortened again by the next pass (an extra sealed write, and a booking released
/// mid-provisioning when the start had slipped a lot).
#[test]
fn a_booking_with_an_end_keeps_it_when_it_starts_late() {
    // Created 100 minutes ago, until 3 h from now: the one host is busy for another hour.
    let mut late = req("team/late", 0, vec![role("node", 1, "x86")], None, 1);
    late.length = Length::Until(at(3));
    let busy = claimed(host("x86-00", "x86", "r1"), "team/other", at(1));
    let d = decisions(&input(vec![busy.clone()], vec![late.clone()]));
    let (_, earliest) = wait(&d["team/late"]);
    assert_eq!(earliest, Some(at(1) + ALLOW));

    // Free now: bound from now until the end it asked for, not for 4h40m from now.
    let d = decisions(&input(hosts(1, "x86"), vec![late.clone()]));
    let p = bind(&d["team/late"]);
    assert_eq!((p.start, p.end), (now(), at(3)));

    // Busy until after its end: it waits, and says which field to change.
    let busy = claimed(host("x86-00", "x86", "r1"), "team/other", at(4));
    let d = decisions(&input(vec![busy], vec![late]));
    let (message, earliest) = wait(&d["team/late"]);
    assert_eq!(earliest, None);
    assert!(
        message.contains("before the booking's end") && message.contains("spec.end"),
        "{message}"
    );
}

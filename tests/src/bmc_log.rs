//! Checks over what the simulated BMCs themselves recorded (their call logs): which replica
//! called (the operator's User-Agent names it), when, and how hard each BMC was pushed. Pure
//! functions of the logs, so the e2e and chaos tests share them and they are tested alone.

use std::time::Duration;

use labpods_api::v1alpha1::ProvisioningStep;
use labpods_sim::{Call, Event};

/// The replica that sent a call: what the operator puts in its User-Agent after
/// `(replica `; other clients (the tests' own probes) are not replicas.
pub fn replica(call: &Call) -> Option<&str> {
    let agent = call.caller.as_deref()?;
    let start = agent.find("(replica ")? + "(replica ".len();
    let end = agent[start..].find(')')? + start;
    Some(&agent[start..end])
}

/// Fencing: two replicas' calls to one BMC never interleave. A new leader acts no earlier
/// than a lease duration after the last renewal it saw, and the old one stopped acting a
/// renew deadline after that renewal (or died), so whenever the caller changes, the BMC saw
/// at least `handover` (leaseDuration - renewDeadline) of silence between the two; a deposed
/// replica still calling while the new leader does leaves gaps far shorter. A replica may
/// lead again later. `slack` allows for the network. One line per violation.
pub fn interleavings(
    host: &str,
    calls: &[Call],
    handover: Duration,
    slack: Duration,
) -> Vec<String> {
    let min_ms = u64::try_from(handover.saturating_sub(slack).as_millis()).unwrap_or(u64::MAX);
    let mut order: Vec<(u64, &str)> = calls
        .iter()
        .filter_map(|c| replica(c).map(|r| (c.received_ms, r)))
        .collect();
    order.sort_by_key(|(at, _)| *at);
    order
        .windows(2)
        .filter(|pair| pair[0].1 != pair[1].1 && pair[1].0 - pair[0].0 < min_ms)
        .map(|pair| {
            format!(
                "{host}: replica {} called at {} ms, {} ms after replica {} (a handover leaves at least {min_ms} ms)",
                pair[1].1,
                pair[1].0,
                pair[1].0 - pair[0].0,
                pair[0].1
            )
        })
        .collect()
}

/// Reset actions the BMC carried out (2xx), in arrival order.
fn resets(calls: &[Call]) -> Vec<&Call> {
    let mut resets: Vec<&Call> = calls
        .iter()
        .filter(|c| {
            c.method == "POST"
                && c.path.ends_with("ComputerSystem.Reset")
                && c.status.is_some_and(|s| (200..300).contains(&s))
        })
        .collect();
    resets.sort_by_key(|c| c.received_ms);
    resets
}

/// Power actions closer together than `min`, whoever sent them.
pub fn power_interval_violations(host: &str, calls: &[Call], min: Duration) -> Vec<String> {
    let min_ms = u64::try_from(min.as_millis()).unwrap_or(u64::MAX);
    resets(calls)
        .windows(2)
        .filter(|pair| pair[1].received_ms - pair[0].received_ms < min_ms)
        .map(|pair| {
            format!(
                "{host}: power actions at {} ms ({:?}) and {} ms ({:?}), {} ms apart (at least {min_ms} ms allowed)",
                pair[0].received_ms,
                replica(pair[0]),
                pair[1].received_ms,
                replica(pair[1]),
                pair[1].received_ms - pair[0].received_ms
            )
        })
        .collect()
}

/// Instants at which more than `max` calls of the operator were in flight at one BMC. A call
/// is in flight from its arrival until its answer, or until the client's `timeout` after its
/// arrival (the client has given up then, whatever the BMC still does with it); `slack` is
/// the one-way delay allowed between the client's clock and the BMC's.
pub fn concurrency_violations(
    host: &str,
    calls: &[Call],
    max: usize,
    timeout: Duration,
    slack: Duration,
) -> Vec<String> {
    let timeout_ms = u64::try_from(timeout.saturating_sub(slack).as_millis()).unwrap_or(u64::MAX);
    let spans: Vec<(u64, u64)> = calls
        .iter()
        .filter(|c| replica(c).is_some())
        .map(|c| {
            let given_up = c.received_ms.saturating_add(timeout_ms);
            (
                c.received_ms,
                c.answered_ms.map_or(given_up, |a| a.min(given_up)),
            )
        })
        .collect();
    let mut violations = Vec::new();
    for (start, _) in &spans {
        let in_flight = spans
            .iter()
            .filter(|(s, e)| s <= start && start < e)
            .count();
        if in_flight > max {
            violations.push(format!(
                "{host}: {in_flight} calls in flight at {start} ms (at most {max} allowed)"
            ));
        }
    }
    violations
}

/// The provisioning step that makes a BMC event, where exactly one step makes it. Ejects
/// are left out: EjectMedia and EjectAfterBoot both eject the CD.
fn provisioning_step_of(event: &Event) -> Option<ProvisioningStep> {
    match event {
        Event::PowerAction { reset_type, .. } => match reset_type.as_str() {
            "GracefulShutdown" => Some(ProvisioningStep::PowerOff),
            "ForceOff" => Some(ProvisioningStep::WaitPoweredOff),
            "On" => Some(ProvisioningStep::PowerOn),
            _ => None,
        },
        Event::MediaInserted { .. } | Event::MediaRefused { .. } => {
            Some(ProvisioningStep::InsertMedia)
        }
        Event::BootOverrideSet { .. } => Some(ProvisioningStep::SetBootOnce),
        // The boot a power-on starts.
        Event::Boot { .. } => Some(ProvisioningStep::PowerOn),
        _ => None,
    }
}

/// Resume, not restart: what a BMC saw since the operator restarted (`since`) that belongs
/// to a step before `resumed_at`, the step the provisioning run had stored when its operator
/// died. A run resumed where it stood redoes none of it (each handler skips an action whose
/// effect is already there); a run started over powers the host off and inserts the image
/// again. One line per such event. `ProvisioningStep` is declared in run order, so earlier
/// steps compare lower.
pub fn steps_redone(host: &str, resumed_at: ProvisioningStep, since: &[Event]) -> Vec<String> {
    since
        .iter()
        .filter_map(|event| {
            let step = provisioning_step_of(event)?;
            (step < resumed_at).then(|| {
                format!(
                    "{host}: {event:?} is the work of step {step:?}, done again after a restart at step {resumed_at:?}"
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(replica: &str, path: &str, at: u64, answered: Option<u64>) -> Call {
        Call {
            caller: Some(format!("labpods/0.1.0 (replica {replica})")),
            method: if path.ends_with("Reset") {
                "POST"
            } else {
                "GET"
            }
            .into(),
            path: path.into(),
            received_ms: at,
            answered_ms: answered,
            status: answered.map(|_| 204),
        }
    }

    const SYSTEM: &str = "/redfish/v1/Systems/1";
    const RESET: &str = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset";

    #[test]
    fn the_replica_is_read_from_the_user_agent() {
        assert_eq!(replica(&call("lab-a", SYSTEM, 0, None)), Some("lab-a"));
        let probe = Call {
            caller: Some("labpods/0.1.0".into()),
            ..call("x", SYSTEM, 0, None)
        };
        assert_eq!(replica(&probe), None);
    }

    #[test]
    fn a_handover_is_not_an_interleaving_nor_is_leading_again_but_overlap_is() {
        let handover = Duration::from_secs(1);
        let slack = Duration::from_millis(100);
        let handovers = [
            call("a", SYSTEM, 10, Some(11)),
            call("a", SYSTEM, 20, Some(21)),
            call("b", SYSTEM, 2_000, Some(2_001)),
            call("a", SYSTEM, 4_000, Some(4_001)),
        ];
        assert!(interleavings("h", &handovers, handover, slack).is_empty());
        let overlap = [
            call("a", SYSTEM, 10, Some(11)),
            call("b", SYSTEM, 2_000, Some(2_001)),
            call("a", SYSTEM, 2_300, Some(2_301)),
            call("b", SYSTEM, 2_600, Some(2_601)),
        ];
        let found = interleavings("h", &overlap, handover, slack);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("replica a called at 2300 ms, 300 ms after replica b"),
            "{found:?}"
        );
    }

    #[test]
    fn power_actions_closer_than_the_interval_are_found_across_replicas() {
        let calls = [
            call("a", RESET, 1_000, Some(1_010)),
            call("b", RESET, 2_500, Some(2_510)),
            call("b", RESET, 5_000, Some(5_010)),
        ];
        let found = power_interval_violations("h", &calls, Duration::from_secs(2));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("1500 ms apart"), "{found:?}");
        // A refused reset did nothing to the power.
        let refused = Call {
            status: Some(503),
            ..call("b", RESET, 1_200, Some(1_210))
        };
        assert!(
            power_interval_violations("h", &[calls[0].clone(), refused], Duration::from_secs(2))
                .is_empty()
        );
    }

    #[test]
    fn a_restart_from_the_first_step_is_told_from_a_resume_at_the_stored_one() {
        use labpods_sim::Device;
        let power = |reset_type: &str| Event::PowerAction {
            at_ms: 0,
            reset_type: reset_type.into(),
            applied: true,
        };
        let ejected = Event::MediaEjected {
            at_ms: 0,
            device: Device::Cd,
            image: Some("os.iso".into()),
        };
        // Resumed at WaitBooted: it only watched the boot, then ejected the CD.
        let resumed = [ejected.clone()];
        assert!(steps_redone("h", ProvisioningStep::WaitBooted, &resumed).is_empty());
        // Started over: off, eject, insert, override, on, boot.
        let restarted = [
            power("GracefulShutdown"),
            ejected,
            Event::MediaInserted {
                at_ms: 0,
                device: Device::Cd,
                image: "os.iso".into(),
            },
            Event::BootOverrideSet {
                at_ms: 0,
                target: "Cd".into(),
                enabled: "Once".into(),
                mode: "UEFI".into(),
            },
            power("On"),
            Event::Boot {
                at_ms: 0,
                source: "Cd".into(),
                image: Some("os.iso".into()),
            },
        ];
        let found = steps_redone("h", ProvisioningStep::WaitBooted, &restarted);
        assert_eq!(found.len(), 5, "{found:?}");
        // The stored step itself may be run again (it had not completed).
        let at_power_on = steps_redone("h", ProvisioningStep::PowerOn, &restarted[4..]);
        assert!(at_power_on.is_empty(), "{at_power_on:?}");
    }

    #[test]
    fn in_flight_calls_over_the_limit_are_found_and_abandoned_ones_end_at_the_timeout() {
        let timeout = Duration::from_secs(3);
        let slack = Duration::from_millis(100);
        let two = [
            call("a", SYSTEM, 0, Some(500)),
            call("a", SYSTEM, 100, Some(600)),
        ];
        assert!(concurrency_violations("h", &two, 2, timeout, slack).is_empty());
        let three = [
            call("a", SYSTEM, 0, Some(500)),
            call("a", SYSTEM, 100, Some(600)),
            call("a", SYSTEM, 200, Some(300)),
        ];
        assert_eq!(
            concurrency_violations("h", &three, 2, timeout, slack).len(),
            1
        );
        // Never answered (the BMC hung): the client gave up after the timeout.
        let hung = [
            call("a", SYSTEM, 0, None),
            call("a", SYSTEM, 10, None),
            call("a", SYSTEM, 3_000, Some(3_100)),
        ];
        assert!(concurrency_violations("h", &hung, 2, timeout, slack).is_empty());
    }
}
